"""Where one training step of the study's network spends its time: per layer and pass, on one thread
(or on ``SRLIB_THREADS`` threads, to see which passes do not scale).

The report's sweeps run on Dask workers of one thread each, so this is the step the report pays for.
Each layer's forward and backward (and the loss, pixel shuffle and Adam update) is timed inside whole
training steps (30 single-channel 44x44 images -> 176x176, float32). Beside each convolution pass:
its GFLOP/s, the time it would take at this core's single-threaded sgemm rate on one large square
product (a practical ceiling for any GEMM-based path), and, when torch is installed, PyTorch's time for
the same pass (``conv2d`` forward, and its backward for the weight and input gradients).

Run by hand, on a quiet machine:  [SRLIB_THREADS=2] python benchmarks/step_profile.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("SRLIB_THREADS", "1")  # before srlib starts its pool
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from srlib.nn.layers import Conv2d, MSELoss  # noqa: E402
from srlib.nn.network import NetConfig, SRNet  # noqa: E402
from srlib.nn.optimizers import Adam  # noqa: E402
from srlib.nn.parallel import blas_threads, threads  # noqa: E402

N, H, W = 30, 44, 44


def sgemm_rate(size: int = 1024, rounds: int = 5) -> float:
    """GFLOP/s of one single-threaded float32 product of two size x size matrices (best of ``rounds``)."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    best = np.inf
    with blas_threads(1):
        a @ a
        for _ in range(rounds):
            t0 = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def timed(name: str, fn, times: dict):
    def run(*args):
        t0 = time.perf_counter()
        out = fn(*args)
        times[name].append(time.perf_counter() - t0)
        return out
    return run


def srlib_profile(rounds: int) -> tuple[dict[str, float], list]:
    """Median ms per pass over ``rounds`` steps, and the network's convolutions."""
    net = SRNet(NetConfig(init="he"))
    rng = np.random.default_rng(0)
    x = rng.random((N, 1, H, W), dtype=np.float32)
    t = rng.random((N, 1, 4 * H, 4 * W), dtype=np.float32)
    times: dict[str, list[float]] = defaultdict(list)
    for i, layer in enumerate(net.layers):
        name = getattr(layer, "name", f"{type(layer).__name__.lower()}{i}")
        layer.forward = timed(f"{name} forward", layer.forward, times)
        layer.backward = timed(f"{name} backward", layer.backward, times)
    opt = Adam(net.params(), lr=1e-4)
    loss = MSELoss()
    steps = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        loss.forward(net.forward(x), t)
        net.backward(loss.backward())
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        times["adam step"].append(t2 - t1)
        steps.append(t2 - t0)
    ms = {k: 1000 * float(np.median(v[1:])) for k, v in times.items()}
    ms["whole step"] = 1000 * float(np.median(steps[1:]))
    return ms, [layer for layer in net.layers if isinstance(layer, Conv2d)]


def torch_profile(convs: list, rounds: int) -> dict[str, float]:
    """PyTorch's median ms for each convolution's forward and backward, as many threads, same shapes."""
    import torch

    torch.set_num_threads(threads())
    ms = {}
    c_in, rng = 1, np.random.default_rng(1)
    for conv in convs:
        w = torch.tensor(conv.weight.value, requires_grad=True)
        x = torch.tensor(rng.random((N, c_in, H, W), dtype=np.float32), requires_grad=conv.needs_input_grad)
        dy = torch.tensor(rng.random((N, w.shape[0], H, W), dtype=np.float32))
        fwd, bwd = [], []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            y = torch.nn.functional.conv2d(x, w, padding=conv.pad)
            t1 = time.perf_counter()
            y.backward(dy)
            t2 = time.perf_counter()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
        ms[f"{conv.name} forward"] = 1000 * float(np.median(fwd[1:]))
        ms[f"{conv.name} backward"] = 1000 * float(np.median(bwd[1:]))
        c_in = w.shape[0]
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="timed steps (default 15)")
    args = ap.parse_args()
    rate = sgemm_rate()
    ms, convs = srlib_profile(args.rounds)
    try:
        torch_ms = torch_profile(convs, args.rounds)
    except ImportError:
        torch_ms = {}
        print("torch not installed: no PyTorch column (pip install torch==2.13.0)")
    flops = {}
    for conv in convs:
        c_out, c_in, k, _ = conv.weight.value.shape
        one = 2 * N * H * W * c_in * c_out * k * k
        flops[f"{conv.name} forward"] = one
        flops[f"{conv.name} backward"] = one * (2 if conv.needs_input_grad else 1)
    print(f"{threads()} thread(s); single-threaded sgemm on 1024^2 matrices: {rate:.1f} GFLOP/s "
          f"(the 'at sgemm rate' column assumes one core)")
    print(f"{'pass':<22} {'ms':>7} {'share':>6} {'GFLOP/s':>8} {'at sgemm rate':>13} {'pytorch ms':>10}")
    total = ms.pop("whole step")
    for name, t in ms.items():
        f = flops.get(name)
        gf = f"{f / t / 1e6:8.1f}" if f else " " * 8
        ceiling = f"{f / rate / 1e6:13.1f}" if f else " " * 13
        pt = f"{torch_ms[name]:10.1f}" if name in torch_ms else " " * 10
        print(f"{name:<22} {t:7.1f} {t / total:6.1%} {gf} {ceiling} {pt}")
    conv_total = sum(t for n, t in ms.items() if n in flops)
    line = f"{'whole step':<22} {total:7.1f}        convolutions {conv_total:.1f} ms, the rest {total - conv_total:.1f} ms"
    if torch_ms:
        line += f"; pytorch's convolutions {sum(torch_ms.values()):.1f} ms"
    print(line)
    print(f"all convolutions at the sgemm rate: {sum(flops.values()) / rate / 1e6:.1f} ms")


if __name__ == "__main__":
    main()
