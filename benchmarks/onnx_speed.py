"""Time the same network in srlib's NumPy engine and in onnxruntime, side by side: one 512x512 colour
image upscaled to 2048x2048 by each shipped model, with 1 thread and with all cores on each side
(SRLIB_THREADS, onnxruntime's intra-op threads), median of interleaved rounds.

Run by hand, on a quiet machine:  python benchmarks/onnx_speed.py [--rounds 5]
Needs the onnx extra: pip install -e '.[onnx]'
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZE = 512


def worker(engine: str, model_name: str, threads: int, rounds: int) -> None:
    """Time ``rounds`` upscales in this process (the thread setting is fixed per process); print JSON."""
    sys.path.insert(0, str(ROOT))
    from srlib.data.photo import jpeg_strength
    from srlib.model import SRModel
    from train_step import measure  # warm-up, then timed rounds: the benchmarks' one timing loop

    model = SRModel.shipped(model_name)
    image = np.random.default_rng(0).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    if engine == "srlib":
        def run():
            return model.predict(image)
    else:
        import onnxruntime as ort

        from srlib.onnx_export import to_onnx

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(to_onnx(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {"image": image.transpose(0, 3, 1, 2).astype(np.float32)}
        if model.nets[0].config.jpeg_aware:
            feeds["jpeg_strength"] = np.full(1, jpeg_strength(None), np.float32)

        def run():
            return session.run(["output"], feeds)[0]
    _, times, _, _ = measure(run, rounds)
    print(json.dumps(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--worker", nargs=3, metavar=("ENGINE", "MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]), args.rounds)
        return
    cores = os.cpu_count() or 1
    print(f"upscaling one {SIZE}x{SIZE} colour image 4x; median seconds of {args.rounds} rounds, each engine in its own process")
    for model in ("photo", "study"):
        for threads in sorted({1, cores}):
            env = {**os.environ, "SRLIB_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
            result = {}
            for engine in ("srlib", "onnxruntime"):
                out = subprocess.run([sys.executable, __file__, "--rounds", str(args.rounds), "--worker", engine, model,
                                      str(threads)], env=env, capture_output=True, text=True, check=True)
                result[engine] = statistics.median(json.loads(out.stdout))
            print(f"{model} model, {threads} thread(s): srlib {result['srlib']:.3f} s, onnxruntime "
                  f"{result['onnxruntime']:.3f} s; srlib / onnxruntime: {result['srlib'] / result['onnxruntime']:.2f}x the time")


if __name__ == "__main__":
    main()
