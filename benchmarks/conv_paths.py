"""Time each convolution algorithm on each layer of the network, per operation, on the benchmark
problem (30 images of 44x44, float32): forward, weight gradient (dW) and input gradient (dx).

This is the measurement behind ``Conv2d``'s "auto" choice. Run by hand on a quiet machine:
    python benchmarks/conv_paths.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srlib.layers import PATHS, Conv2d  # noqa: E402
from srlib.parallel import single_threaded_blas, threads  # noqa: E402

LAYERS = [(1, 64, 5), (64, 32, 3), (32, 32, 3), (32, 16, 3)]


def median_ms(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"ms per operation, 30 x 44x44, float32, {threads()} threads (median of {args.rounds})")
    print(f"{'layer':<14} {'path':<9} {'forward':>8} {'dW':>8} {'dx':>8} {'total':>8}")
    for c_in, c_out, k in LAYERS:
        w = rng.normal(0, np.sqrt(2 / (c_in * k * k)), (c_out, c_in, k, k)).astype(np.float32)
        x = np.maximum(rng.standard_normal((30, 44, 44, c_in)), 0).astype(np.float32)
        dy = rng.standard_normal((30, 44, 44, c_out)).astype(np.float32)
        for path in PATHS[1:]:
            if path == "winograd" and k != 3:
                continue
            conv = Conv2d("c", w, path=path, needs_input_grad=False)

            def forward_dw():
                conv.forward(x)
                conv.backward(dy)

            def forward_dw_dx():
                conv.needs_input_grad = True
                forward_dw()
                conv.needs_input_grad = False

            with single_threaded_blas():
                fwd = median_ms(lambda: conv.forward(x), args.rounds)
                dw = median_ms(forward_dw, args.rounds) - fwd
                dx = median_ms(forward_dw_dx, args.rounds) - fwd - dw
            print(f"{c_in:>3} -> {c_out:<3} {k}x{k}  {path:<9} {fwd:8.1f} {dw:8.1f} {dx:8.1f} {fwd + dw + dx:8.1f}")


if __name__ == "__main__":
    main()
