"""Which convolution path is fastest for each layer and operation on this machine: measured, then cached.

im2col, shifted products and Winograd (``layers.py``) trade memory passes for multiplies differently,
so the fastest one depends on the layer's shape, the operation (forward, weight gradient, input
gradient), the CPU, its BLAS kernel and the number of threads. One CPU's answer does not carry to
another: on the 2-core AMD EPYC development machine (AVX2 OpenBLAS kernel) Winograd is the fastest path
for most 3x3 operations, which the fixed rule that srlib used before never picks.

So each layer shape is timed once per machine and thread count, on the training batch (30 images of
44x44), every path for every operation, and the fastest kept in a JSON file in the user's cache folder
(``cache_file``; ``srlib tune`` measures again). ``SRLIB_CONV_PATHS`` overrides the choice:
``tuned`` (the default), ``fixed`` (``layers.fixed_paths``: what the tests use, the same on every
machine) or ``im2col`` (the reference path everywhere).

Paths round differently, so a choice is part of a run: a training checkpoint records the paths it
trained with and a resumed run keeps them (``Trainer``), whatever this machine would choose; with the
same paths a run gives the same bits on any number of threads or workers.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from ..errors import SrlibError
from ..files import atomic_write, read_regular
from ..paths import cache_dir
from ..settings import env_choice
from .layers import OPS, PATHS, Conv2d, check_paths
from .parallel import serial, single_threaded_blas, threads

SETTINGS = ("tuned", "fixed", "im2col")
# The shape the paths are timed on: one training batch of the study (and of the photo recipe's crops).
BATCH = (30, 44, 44)
_ROUNDS = 3
_memo: dict[str, dict[str, str]] = {}


def setting() -> str:
    """``$SRLIB_CONV_PATHS``: tuned (default), fixed or im2col."""
    return env_choice("SRLIB_CONV_PATHS", "tuned", SETTINGS)


def cache_file() -> Path:
    """Where measured choices are kept: ``conv_paths.json`` in ``paths.cache_dir()``."""
    return cache_dir() / "conv_paths.json"


@lru_cache(maxsize=None)
def machine() -> str:
    """What a choice holds for: the CPU's model, its cores, NumPy's BLAS (kernel and version), NumPy.
    Read once per process: every layer's lookup asks, and threadpoolctl's scan of the loaded libraries
    is not free."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    kernel = ", ".join(f"{i['internal_api']} {i['version']} {i.get('architecture')}" for i in _numpy_blas())
    return f"{model}; {os.cpu_count()} cores; {kernel}; numpy {np.__version__}"


def _numpy_blas() -> list[dict]:
    """threadpoolctl's description of NumPy's BLAS. Other packages load BLAS libraries of their own
    (SciPy, PyTorch): NumPy's alone is named where it can be told apart, so the answer does not depend on
    what else was imported."""
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return [i for i in blas if "numpy" in i["filepath"]] or blas


@lru_cache(maxsize=None)
def blas_kernel() -> str:
    """The kernel NumPy's BLAS runs on this CPU ("openblas Haswell"): another kernel rounds a matrix
    product's sums in another order, so a run reproduces bit for bit only on the kernel it ran on (with
    OpenBLAS, ``OPENBLAS_CORETYPE`` chooses it when the library loads)."""
    return ", ".join(f"{i['internal_api']} {i.get('architecture')}" for i in _numpy_blas())


def _key(c_in: int, c_out: int, k: int, dtype: str, n_threads: int) -> str:
    return f"{machine()} | {n_threads} threads | {c_in}->{c_out} {k}x{k} {dtype}"


def _read_cache() -> dict:
    """The cached entries; an unreadable, damaged or foreign file counts as empty (it is measured again)."""
    try:
        data = json.loads(read_regular(cache_file(), 1 << 20, "tuning cache"))
    except (SrlibError, ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return {}
    return data if isinstance(data, dict) else {}


def measure(c_in: int, c_out: int, k: int, dtype: str = "float32", rounds: int = _ROUNDS
            ) -> dict[str, dict[str, float]]:
    """Median milliseconds of each path (``layers.PATHS``; Winograd for 3x3 only) for each operation of a
    k x k convolution from c_in to c_out channels, on ``BATCH`` with this process's threads. A path
    whose first call takes over 3x the best median so far is not timed further (its one time is kept)."""
    rng = np.random.default_rng(0)
    n, h, w = BATCH
    x = np.maximum(rng.standard_normal((n, h, w, c_in)), 0).astype(dtype)
    dy = rng.standard_normal((n, h, w, c_out)).astype(dtype)
    weight = rng.normal(0, np.sqrt(2 / (c_in * k * k)), (c_out, c_in, k, k)).astype(dtype)
    w_flip = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    conv = Conv2d("tuning", weight)
    ops: dict[str, Callable[[str], object]] = {
        "forward": lambda p: conv.correlate(p, x, weight),
        "weight_grad": lambda p: conv.weight_grad(p, x, dy),
        "input_grad": lambda p: conv.correlate(p, dy, w_flip)}
    result: dict[str, dict[str, float]] = {}
    with single_threaded_blas():
        for op, run in ops.items():
            times: dict[str, float] = {}
            for path in PATHS:
                if path == "winograd" and k != 3:
                    continue
                samples = []
                for _ in range(rounds + 1):
                    t0 = time.perf_counter()
                    run(path)
                    samples.append(1000 * (time.perf_counter() - t0))
                    if len(samples) == 1 and times and samples[0] > 3 * min(times.values()):
                        break
                times[path] = float(np.median(samples[1:] or samples))
            result[op] = times
    return result


_noted: list[bool] = []


def _note_first_tuning() -> None:
    """One line on a terminal's stderr, once per process, when a layer shape must be timed before it runs:
    on a new machine the first command waits several seconds for it, and should say why. (Not into a
    pipe, a log or a notebook, where stderr reads as an error.)"""
    if not _noted and sys.stderr is not None and sys.stderr.isatty():
        _noted.append(True)
        print("srlib: timing the convolution paths of this machine for these layers (once; `srlib tune` does all "
              "ahead)", file=sys.stderr, flush=True)


def layer_paths(c_in: int, c_out: int, k: int, dtype: str = "float32", retune: bool = False,
                n_threads: int | None = None) -> dict[str, str]:
    """The fastest path of each operation of this layer shape on this machine with ``n_threads`` of this
    process's threads (default: all; 1: one shard of a data-parallel step): from the cache, else
    measured (about a second for the study's largest layer) and cached."""
    n_threads = threads() if n_threads is None else max(1, min(n_threads, threads()))
    key = _key(c_in, c_out, k, dtype, n_threads)
    if not retune and key in _memo:
        return dict(_memo[key])
    cache = _read_cache()
    entry = cache.get(key)
    try:
        if retune or not isinstance(entry, dict):
            raise ValueError("not measured yet")
        paths = check_paths(entry.get("paths"), k)
    except ValueError:
        _note_first_tuning()
        with serial() if n_threads == 1 else nullcontext():
            ms = measure(c_in, c_out, k, dtype)
        paths = {op: min(ms[op], key=ms[op].__getitem__) for op in OPS}
        cache = _read_cache()  # another process may have added entries meanwhile
        cache[key] = {"paths": paths, "ms": ms, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
        payload = json.dumps(cache, indent=1).encode()
        try:
            atomic_write(cache_file(), lambda f: f.write(payload), "tuning cache")
        except SrlibError:
            pass  # a read-only home: the choice holds for this process only
    _memo[key] = paths
    return dict(paths)


def cached_times(c_in: int, c_out: int, k: int, dtype: str = "float32", n_threads: int | None = None
                 ) -> dict[str, dict[str, float]] | None:
    """The times behind this machine's cached choice for a layer shape (``n_threads``: as ``layer_paths``)."""
    entry = _read_cache().get(_key(c_in, c_out, k, dtype, threads() if n_threads is None else n_threads))
    return entry.get("ms") if isinstance(entry, dict) and isinstance(entry.get("ms"), dict) else None


def tune(shapes: list[tuple[int, int, int, str]]) -> "pd.DataFrame":
    """Measure every (c_in, c_out, k, dtype) layer shape again, with one thread (a report worker, a shard of
    a step) and with all of this process's, cache the choices, and return the table: one row per thread
    count, layer shape and operation, milliseconds per path, and the path chosen."""
    rows = []
    for n_threads in sorted({1, threads()}):
        for c_in, c_out, k, dtype in shapes:
            paths = layer_paths(c_in, c_out, k, dtype, retune=True, n_threads=n_threads)
            ms = cached_times(c_in, c_out, k, dtype, n_threads) or {}
            for op in OPS:
                rows.append({"threads": n_threads, "layer": f"{c_in}->{c_out} {k}x{k} {dtype}", "operation": op,
                             **{f"{p} ms": ms.get(op, {}).get(p) for p in PATHS}, "chosen": paths[op]})
    import pandas as pd  # here: the engine needs pandas only for this table

    return pd.DataFrame(rows)
