"""Time one training step (30 single-channel 44x44 images -> 176x176, MSE, backward) three ways:

  srlib       float32, this package as a training run uses it: the batch split into one shard per
              thread, convolution paths tuned to this machine (``srlib tune``)
  srlib-fixed the same in one piece with the fixed path rule srlib used before (SRLIB_CONV_PATHS=fixed)
  study-like  float64 im2col/col2im in NCHW, shaped like the 2022 study's code (deep-learning-from-scratch)
  pytorch     float32, CPU (only when torch is installed: pip install torch==2.13.0)

All three start from the same weights and data; the script checks that their losses and gradients
agree, then prints ms/step (median of interleaved rounds), GFLOP/s and peak memory with all cores, and
srlib against PyTorch again with one thread each (what a single-threaded Dask worker of the report
pays). Each method runs in its own process so its peak RSS is its own. (The gradient error can read ~1e-5 when one of the ~1M
final-ReLU inputs lies within float32 rounding of 0 and so switches off in one method only.)

Then inference: the shipped model upscales a 512x512 RGB image to 2048x2048 (``SRModel.upscale``:
tiles, the network on each colour channel, the bicubic base, rounding to uint8) against the same
network in PyTorch (one piece, the same bicubic base and rounding), with all cores and with one thread
on each side (SRLIB_THREADS=1, torch.set_num_threads(1)).

The first lines name the CPU and the BLAS kernel: the ratios hold for that machine only. Where the
environment sets ``OPENBLAS_CORETYPE`` (which holds OpenBLAS to one kernel, e.g. AVX2 "Haswell" on an
AVX-512 CPU), the training comparison with PyTorch runs once more with it unset for the workers alone: what
a user's machine without the override runs, beside the forced kernel.

Run by hand, on a quiet machine:  python benchmarks/train_step.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srlib.nn.tuning import blas_kernel, machine  # noqa: E402

N, H, W, SCALE = 30, 44, 44, 4
LAYERS = [(1, 64, 5), (64, 32, 3), (32, 32, 3), (32, 16, 3)]


def flops_per_step() -> float:
    """Multiply-adds x 2 of forward (all layers) + backward (dW for all, dx for layers 2-4)."""
    per_layer = [2 * N * H * W * c_in * c_out * k * k for c_in, c_out, k in LAYERS]
    return sum(per_layer) * 2 + sum(per_layer[1:])


def problem():
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, np.sqrt(2 / (ci * k * k)), (co, ci, k, k)) for ci, co, k in LAYERS]
    x = rng.random((N, 1, H, W))
    t = rng.random((N, 1, H * SCALE, W * SCALE)) * 255
    return weights, x, t


# -- the study-like reference: NCHW, float64, im2col + col2im, written as the study's lineage does ----
def im2col(x, k, pad):
    n, c, h, w = x.shape
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    col = np.zeros((n, c, k, k, h, w))
    for y in range(k):
        for z in range(k):
            col[:, :, y, z] = img[:, :, y:y + h, z:z + w]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * w, -1)


def col2im(col, shape, k, pad):
    n, c, h, w = shape
    col = col.reshape(n, h, w, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for y in range(k):
        for z in range(k):
            img[:, :, y:y + h, z:z + w] += col[:, :, y, z]
    return img[:, :, pad:pad + h, pad:pad + w]


def study_like_step(weights, x, t):
    acts = []
    h = x
    for w in weights:
        k = w.shape[-1]
        col = im2col(h, k, k // 2)
        out = (col @ w.reshape(w.shape[0], -1).T).reshape(h.shape[0], h.shape[2], h.shape[3], -1).transpose(0, 3, 1, 2)
        acts.append((h.shape, col, out > 0))
        h = np.maximum(out, 0)
    n, c, hh, ww = h.shape
    y = h.reshape(n, c // 16, 4, 4, hh, ww).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // 16, hh * 4, ww * 4)
    loss = np.mean((y - t) ** 2)
    dy = 2 * (y - t) / y.size
    g = dy.reshape(n, c // 16, hh, 4, ww, 4).transpose(0, 1, 3, 5, 2, 4).reshape(n, c, hh, ww)
    grads = [None] * len(weights)
    for i in reversed(range(len(weights))):
        shape, col, mask = acts[i]
        w = weights[i]
        g = g * mask
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
        grads[i] = (col.T @ g2).T.reshape(w.shape)
        if i:
            g = col2im(g2 @ w.reshape(w.shape[0], -1), shape, w.shape[-1], w.shape[-1] // 2)
    return loss, grads


INFER_SIZE = 512


def measure(fn, rounds: int):
    """fn() once (warm-up; its result is returned), then ``rounds`` timed calls:
    (result, seconds per call, peak RSS MiB before, peak RSS MiB after)."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return result, times, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inference_worker(method: str, rounds: int, threads: int) -> None:
    """Upscale one INFER_SIZE^2 RGB image with the shipped model; print times and peak RSS as JSON."""
    from srlib.data.degrade import to_uint8, upscale_bicubic
    from srlib.model import SRModel

    model = SRModel.shipped("study")
    image = np.random.default_rng(0).integers(0, 256, (INFER_SIZE, INFER_SIZE, 3), dtype=np.uint8)
    if method == "srlib":
        def run():
            return model.upscale(image)
    else:
        import torch

        torch.set_num_threads(threads)
        net = model.nets[0]
        layers = [(torch.tensor(c.weight.value), torch.tensor(c.bias.value), i < len(net.config.channels) - 1
                   or net.config.final_relu) for i, c in enumerate(layer for layer in net.layers if hasattr(layer, "weight"))]

        def run():
            with torch.inference_mode():
                h = torch.from_numpy(image.transpose(2, 0, 1)[:, None].astype(np.float32) / 255)
                for w, b, relu in layers:
                    h = torch.nn.functional.conv2d(h, w, b, padding=w.shape[-1] // 2)
                    if relu:
                        h = torch.relu(h)
                y = torch.nn.functional.pixel_shuffle(h, 4)[:, 0].numpy() * model.output_scale
            return to_uint8(y.transpose(1, 2, 0) + upscale_bicubic(image))
    out, times, base, peak = measure(run, rounds)
    print(json.dumps({"times": times, "peak_mib": peak, "run_mib": peak - base,
                      "checksum": int(out.astype(np.int64).sum())}))


def worker(method: str, rounds: int, out: Path, threads: int) -> None:
    weights, x, t = problem()
    if method.startswith("srlib"):
        from srlib.nn.network import NetConfig, SRNet, network_paths
        from srlib.train import train_step

        # As a Trainer does by default: one shard per thread, paths tuned for one shard's share; or, for
        # "srlib-fixed", what srlib did before paths were tuned and steps split (one shard, the fixed rule).
        shards = threads if method == "srlib" else 1
        net = SRNet(NetConfig(), weights={f"conv{i + 1}.weight": w for i, w in enumerate(weights)},
                    paths=network_paths(NetConfig(), n_threads=1 if shards > 1 else None))
        replicas = [net.replica() for _ in range(shards - 1)]
        x32, t32 = x.astype(np.float32), t.astype(np.float32)

        class NoUpdate:  # the step without the optimizer's update, as the other methods time it
            def step(self):
                pass

        def step():
            value = train_step(net, NoUpdate(), x32, t32, replicas=replicas)
            return value, [p.grad.copy() for p in net.params()]
    elif method == "study-like":
        def step():
            return study_like_step(weights, x, t)
    else:
        import torch

        torch.set_num_threads(threads)
        ws = [torch.tensor(w, dtype=torch.float32, requires_grad=True) for w in weights]
        xt, tt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)

        def step():
            h = xt
            for w in ws:
                h = torch.relu(torch.nn.functional.conv2d(h, w, padding=w.shape[-1] // 2))
            loss = torch.mean((torch.nn.functional.pixel_shuffle(h, 4) - tt) ** 2)
            for w in ws:
                w.grad = None
            loss.backward()
            return float(loss), [w.grad.numpy() for w in ws]

    (loss, grads), times, base, peak = measure(step, rounds)  # the warm-up's values are compared across methods
    np.savez(out, *[np.asarray(g, np.float64) for g in grads])
    print(json.dumps({"times": times, "loss": float(loss), "peak_mib": peak, "step_mib": peak - base,
                      "blas": blas_kernel()}))


def run_worker(*args: str, env: dict | None = None, unset: tuple[str, ...] = ()) -> dict:
    """One measurement in a process of its own, with ``env`` added to this one's environment and the
    variables ``unset`` left out of it."""
    base = {k: v for k, v in os.environ.items() if k not in unset}
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True,
                       env={**base, **(env or {})})
    return json.loads(r.stdout.strip().splitlines()[-1])


def training(methods: list[str], threads: int, rounds: int, passes: int, tmp: str, unset: tuple[str, ...] = ()) -> dict:
    """Interleaved passes of each method's worker at ``threads`` threads (``unset``: environment variables
    its workers run without): times, losses, peaks, gradients, and the BLAS kernel each ran on."""
    results = {m: {"times": []} for m in methods}
    for _ in range(passes):
        for m in methods:
            out = Path(tmp) / f"{m}.npz"
            paths = "fixed" if m == "srlib-fixed" else "tuned"
            rec = run_worker("--worker", m, "--rounds", str(2 if m == "study-like" else rounds), "--out", str(out),
                             "--threads", str(threads), env={"SRLIB_THREADS": str(threads), "SRLIB_CONV_PATHS": paths},
                             unset=unset)
            results[m]["times"] += rec["times"]
            results[m].update(loss=rec["loss"], blas=rec["blas"], peak_mib=max(rec["peak_mib"], results[m].get("peak_mib", 0)),
                              step_mib=max(rec["step_mib"], results[m].get("step_mib", 0)))
            with np.load(out) as z:
                results[m]["grads"] = [z[k] for k in z.files]
    for r in results.values():
        r["ms"] = 1000 * float(np.median(r["times"]))
    return results


def inference(rounds: int, passes: int, have_torch: bool) -> None:
    for threads in (os.cpu_count() or 1, 1):
        res = {m: {"times": [], "peak_mib": 0.0} for m in (["srlib", "pytorch"] if have_torch else ["srlib"])}
        for _ in range(passes):
            for m in res:
                rec = run_worker("--infer", m, "--rounds", str(rounds), "--threads", str(threads),
                                 env={"SRLIB_THREADS": str(threads)})
                res[m]["times"] += rec["times"]
                res[m]["peak_mib"] = max(res[m]["peak_mib"], rec["peak_mib"])
        ms = {m: 1000 * float(np.median(r["times"])) for m, r in res.items()}
        line = f"inference {INFER_SIZE}x{INFER_SIZE} RGB -> {4 * INFER_SIZE}x{4 * INFER_SIZE}: srlib {ms['srlib']:.0f} ms"
        peaks = f"peak RSS srlib {res['srlib']['peak_mib']:.0f} MiB"
        if have_torch:
            line += f", pytorch {ms['pytorch']:.0f} ms, srlib / pytorch: {ms['srlib'] / ms['pytorch']:.2f}x the time"
            peaks += f", pytorch {res['pytorch']['peak_mib']:.0f} MiB"
        line += f" ({threads} thread{'s' if threads > 1 else ''}; {peaks})"
        print(line)


def _step_line(threads: int, res: dict) -> str:
    """One training-step comparison in words: srlib, its fixed-path rule and PyTorch at ``threads``."""
    s, f = res["srlib"]["ms"], res["srlib-fixed"]["ms"]
    line = (f"training step, {threads} thread{'s' if threads > 1 else ''}, BLAS {res['srlib']['blas']}: srlib {s:.1f} ms "
            f"(one shard, fixed paths: {f:.1f} ms, {f / s:.2f}x)")
    if "pytorch" in res:
        t = res["pytorch"]["ms"]
        line += f", pytorch {t:.1f} ms, srlib / pytorch: {s / t:.2f}x the time"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="timed steps per method per pass (default 7)")
    ap.add_argument("--passes", type=int, default=3, help="interleaved passes over the methods (default 3)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--infer", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.rounds, Path(args.out), args.threads)
        return
    if args.infer:
        inference_worker(args.infer, args.rounds, args.threads)
        return
    print(f"CPU and BLAS: {machine()}")
    methods = ["srlib", "srlib-fixed", "study-like"]
    try:
        import torch  # noqa: F401
        methods.append("pytorch")
    except ImportError:
        print("torch not installed: skipping the PyTorch comparison (pip install torch==2.13.0)")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        results = training(methods, cores, args.rounds, args.passes, tmp)
        single = training([m for m in methods if m != "study-like"], 1, args.rounds, args.passes, tmp)
    ref = results["study-like"]
    gflop = flops_per_step() / 1e9
    print(f"one training step: {N} single-channel {H}x{W} images -> {H * SCALE}x{W * SCALE}, "
          f"{gflop:.2f} GFLOP (forward + backward), {cores} threads")
    print(f"{'method':<11} {'ms/step':>8} {'GFLOP/s':>8} {'peak RSS MiB':>12} {'step MiB':>9} "
          f"{'loss rel.err':>12} {'grad rel.err':>12}")
    for m in methods:
        r = results[m]
        loss_err = abs(r["loss"] - ref["loss"]) / ref["loss"]
        grad_err = max(float(np.max(np.abs(g - gr)) / np.max(np.abs(gr))) for g, gr in zip(r["grads"], ref["grads"]))
        print(f"{m:<11} {r['ms']:8.1f} {gflop / r['ms'] * 1000:8.1f} {r['peak_mib']:12.0f} {r['step_mib']:9.0f} "
              f"{loss_err:12.2e} {grad_err:12.2e}")
    print(f"srlib / study-like: {results['srlib']['ms'] / ref['ms']:.2f}x the time")
    for n, res in ((cores, results), (1, single)):
        print(_step_line(n, res))
    if "OPENBLAS_CORETYPE" in os.environ:
        print(f"the same with OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} unset for the workers (what a machine "
              "without the override runs):")
        with tempfile.TemporaryDirectory() as tmp:
            for n in dict.fromkeys((cores, 1)):
                native = training([m for m in methods if m != "study-like"], n, args.rounds, args.passes, tmp,
                                  unset=("OPENBLAS_CORETYPE",))
                print(_step_line(n, native))
    inference(max(2, args.rounds // 3), args.passes, "pytorch" in methods)


if __name__ == "__main__":
    main()
