"""How to spend the cores on a sweep: one task at a time on all cores ("serial", srlib's own threads),
or one single-threaded Dask worker per core, each running its own task ("local"). Prints the wall time
of the same tasks both ways (results are checked to be the same bits).

    python benchmarks/sweep_workers.py [--tasks 4] [--iterations 60] [--data auto]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from srlib.recipe import RECIPES
from srlib.report.notebook import data_source
from srlib.report.sweep import Task, default_workers, run_tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--data", default="auto")
    a = ap.parse_args()
    data = data_source(a.data, "validation", 20)
    tasks = [Task(f"t{i}", RECIPES["improved"], a.iterations, seed=i) for i in range(a.tasks)]
    times, scores = {}, {}
    for scheduler in ("serial", "local"):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            results = run_tasks(tasks, folder, data, scheduler=scheduler)
            times[scheduler] = time.perf_counter() - start
            scores[scheduler] = np.stack([r.psnr for r in results.values()])
    same = np.array_equal(scores["serial"], scores["local"])
    print(f"{a.tasks} tasks x {a.iterations} iterations, {default_workers()} cores")
    print(f"serial (one task at a time, all cores): {times['serial']:.1f} s")
    print(f"local  ({default_workers()} single-threaded Dask workers): {times['local']:.1f} s "
          f"({times['serial'] / times['local']:.2f}x the throughput); same results: {same}")


if __name__ == "__main__":
    main()
