"""What a photo network costs on the CPU: the study-size network run on each colour channel (the first photo
model), the same widths seeing B, G and R together, and the networks of the shipped photo model and fast tier
(read from ``srlib/models/``; their model cards say what they are). For each: weights, one training iteration
(10 colour 44x44 images -> 176x176: 30 single-channel examples for the first, 10 colour ones for the others;
forward, backward and an Adam step), and upscaling one 512x512 RGB photo to 2048x2048 (``SRModel.upscale``),
each with its peak memory.

``--opencv-models DIR`` also times OpenCV's dnn_superres x4 models found there on the same image (what users
run instead; needs opencv-contrib-python-headless 4.x) and prints each srlib network's upscaling time as a
multiple of each of theirs.

Each measurement runs in its own process, so its peak RSS is its own; times are the median of interleaved
rounds. Run by hand, on a quiet machine:
    python benchmarks/photo_models.py [--rounds 5] [--passes 2] [--opencv-models DIR] [--model LABEL=FILE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srlib.model import SRModel  # noqa: E402
from srlib.recipe import RECIPES  # noqa: E402

PHOTO = RECIPES["photo"]
NETS = {
    "study size, each channel alone": replace(PHOTO.net, channels=(64, 32, 32, 16), kernels=(5, 3, 3, 3),
                                              image_channels=1, jpeg_aware=False),
    "study widths, colour": replace(PHOTO.net, channels=(64, 32, 32, 48), kernels=(5, 3, 3, 3), image_channels=3,
                                    jpeg_aware=False),
    # the networks that ship, whichever recipe trained them
    "photo model (shipped)": SRModel.shipped("photo").nets[0].config,
    "fast tier (shipped)": SRModel.shipped("fast").nets[0].config,
}
IMAGES, LR_SIZE, INFER_SIZE = 10, 44, 512


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(name: str, what: str, rounds: int) -> None:
    from srlib.nn.layers import MSELoss
    from srlib.nn.network import SRNet
    from srlib.nn.optimizers import Adam

    rng = np.random.default_rng(0)
    if what == "opencv":  # name: a dnn_superres model file
        from srlib.evaluation.evaluate import opencv_method

        method = opencv_method(Path(name))
        image = rng.integers(0, 256, (1, INFER_SIZE, INFER_SIZE, 3), dtype=np.uint8)
        _timed(lambda: method(image, None), rounds, 0)
        return
    config = network(name)
    net = SRNet(config, seed=0)
    if what == "train":
        c = config.image_channels
        n = IMAGES * 3 // c  # the same images either way: 30 single channels or 10 colour images
        x = rng.random((n, c, LR_SIZE, LR_SIZE), np.float32)
        t = rng.random((n, c, 4 * LR_SIZE, 4 * LR_SIZE), np.float32) * 0.1
        opt = Adam(net.params(), lr=1e-4)

        def run():
            loss = MSELoss()
            loss.forward(net.forward(x), t)
            net.backward(loss.backward())
            opt.step()
    else:
        model = SRModel(net, residual=True, output_scale=255.0, grid="centre")
        image = rng.integers(0, 256, (INFER_SIZE, INFER_SIZE, 3), dtype=np.uint8)

        def run():
            model.upscale(image)
    _timed(run, rounds, net.n_weights())


def network(name: str):
    """The network of ``name``: one of NETS, or ``LABEL=FILE``, a model file's (``--model``)."""
    if name in NETS:
        return NETS[name]
    return SRModel.from_checkpoint(name.split("=", 1)[1]).nets[0].config


def _timed(run, rounds: int, weights: int) -> None:
    """Print, as JSON, the times of ``rounds`` calls of ``run`` after a warm-up, and the memory they held."""
    base = peak_mib()
    run()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "peak_mib": peak_mib(), "run_mib": peak_mib() - base, "weights": weights}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="timed runs per process (default 5)")
    ap.add_argument("--passes", type=int, default=2, help="interleaved passes over the networks (default 2)")
    ap.add_argument("--opencv-models", metavar="DIR", help="also time OpenCV's dnn_superres x4 models in DIR")
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=FILE",
                    help="also time the network of this model file (e.g. a version before the shipped one)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.rounds)
        return
    anchors: dict[str, str] = {}  # model file -> label
    if args.opencv_models:
        from srlib.evaluation.evaluate import opencv_models

        anchors = {str(path): f"OpenCV {name}" for name, path in opencv_models(args.opencv_models).items()}
    for m in args.model:
        if "=" not in m:
            ap.error(f"--model {m!r}: give it as LABEL=FILE")
        network(m)  # a file that is not a model fails here, not in a worker
    names = [*NETS, *args.model]
    jobs = [(name, what) for name in names for what in ("train", "infer")] + [(a, "opencv") for a in anchors]
    results: dict[tuple[str, str], dict] = {}
    for _ in range(args.passes):
        for name, what in jobs:
            r = subprocess.run([sys.executable, __file__, "--worker", name, what, "--rounds", str(args.rounds)],
                               capture_output=True, text=True, check=True, env=dict(os.environ))
            rec = json.loads(r.stdout.strip().splitlines()[-1])
            acc = results.setdefault((name, what), {"times": [], "peak_mib": 0.0, "run_mib": 0.0})
            acc["times"] += rec["times"]
            acc["weights"] = rec["weights"]
            acc["peak_mib"] = max(acc["peak_mib"], rec["peak_mib"])
            acc["run_mib"] = max(acc["run_mib"], rec["run_mib"])
    print(f"{'network':<52} {'weights':>8} {'ms/iteration':>12} {'train MiB':>9} "
          f"{'upscale 512->2048 ms':>20} {'upscale MiB':>11}")
    for name in names:
        tr, inf = results[(name, "train")], results[(name, "infer")]
        print(f"{name.split('=')[0]:<52} {tr['weights']:>8,} {1000 * np.median(tr['times']):12.0f} {tr['run_mib']:9.0f} "
              f"{1000 * np.median(inf['times']):20.0f} {inf['run_mib']:11.0f}")
    print("(MiB: the growth of the process's peak RSS over loading the libraries, i.e. what the work itself held)")
    for anchor, label in anchors.items():
        theirs = 1000 * np.median(results[(anchor, "opencv")]["times"])
        print(f"{label}: upscale 512->2048 {theirs:.0f} ms, {results[(anchor, 'opencv')]['run_mib']:.0f} MiB")
        for name in names:
            ours = 1000 * np.median(results[(name, "infer")]["times"])
            print(f"  srlib {name.split('=')[0]} / {label}: {ours / theirs:.2f}x the time")


if __name__ == "__main__":
    main()
