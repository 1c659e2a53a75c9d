"""Run the convolution's cache-sized blocks, or the shards of a training batch, on all cores.

NumPy's copies are single-threaded and OpenBLAS's threads only help the matrix products, so the
im2col gather (a third of a training step) would leave one core idle. Instead each worker thread takes
whole blocks (gather + single-threaded GEMM); NumPy releases the GIL in both. Results are written to
disjoint slices or returned per block and summed in block order, so every run gives the same bits.
Set ``SRLIB_THREADS`` to change the number of workers (default: the number of cores).

A training step can instead be split into shards of its batch, one per worker (``run_shards``): each
shard runs forward and backward alone, its blocks one after another, and the shards' gradients are
summed in shard order. That hands work over once per shard instead of once per block of every
operation (one step on the 2-core AMD EPYC: 71 ms, against 90 ms with threaded blocks and 126 on one
thread).

Memory: a training step allocates and frees some 150 MB of activations. By default glibc hands freed
blocks of more than a few MB back to the kernel, so every step faulted 31 MiB of fresh pages back in
(measured: 22 ms of a 152 ms step). ``keep_freed_memory``, run when the engine starts, keeps blocks up to 32 MiB in
the heap for reuse instead (0 page faults per step, 132 ms). It changes only glibc's thresholds; other
C libraries are left as they are.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator, Sequence, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from ..settings import env_int

T = TypeVar("T")


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to 32 MiB (its maximum) for reuse: mmap threshold 32 MiB (fixed,
    instead of adapting), trim threshold 512 MiB. Returns False where that is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError, TypeError):
        return False


def threads() -> int:
    """Worker threads: ``$SRLIB_THREADS`` (1..256), else one per core."""
    return env_int("SRLIB_THREADS", os.cpu_count() or 1, 1, 256)


_UNSET = object()
_pool: ThreadPoolExecutor | None | object = _UNSET  # made on first use: importing srlib starts nothing
_pool_lock = threading.Lock()
_blas = ThreadpoolController()
_local = threading.local()


def _workers() -> ThreadPoolExecutor | None:
    """The worker pool (None for one thread), started with the engine's first block."""
    global _pool
    if _pool is not _UNSET:  # every convolution asks: no lock once the pool is there
        return _pool  # type: ignore[return-value]
    with _pool_lock:
        if _pool is _UNSET:
            keep_freed_memory()
            n = threads()
            _pool = ThreadPoolExecutor(n, thread_name_prefix="srlib") if n > 1 else None
    return _pool  # type: ignore[return-value]


@contextmanager
def _thread_flag(name: str) -> Iterator[None]:
    """Inside, this thread's flag ``name`` is set (``_flag``); outside, it is as it was."""
    before = _flag(name)
    setattr(_local, name, True)
    try:
        yield
    finally:
        setattr(_local, name, before)


def _flag(name: str) -> bool:
    return getattr(_local, name, False)


def serial() -> ContextManager[None]:
    """Inside, this thread's ``map_blocks`` runs its blocks itself, one after another (same bits: the
    blocks do not depend on who runs them). For work that is already parallel at a coarser grain
    (``run_shards``), and for timing one thread's share (``tuning``)."""
    return _thread_flag("serial")


def _with_callers_errstate(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` run with the calling thread's NumPy error state, which is per thread, on a worker."""
    err = np.geterr()

    def run(*args):
        with np.errstate(**err):
            return fn(*args)
    return run


def map_blocks(fn: Callable[..., T], blocks: Sequence[tuple[int, ...]]) -> list[T]:
    """[fn(*block) for each block], run on the worker threads, results in block order."""
    pool = _workers()
    if pool is None or len(blocks) == 1 or _flag("serial"):
        return [fn(*block) for block in blocks]
    run = _with_callers_errstate(fn)
    return list(pool.map(lambda block: run(*block), blocks))


def run_shards(fn: Callable[[int], T], count: int) -> list[T]:
    """[fn(i) for i in range(count)], each call on a worker thread of its own, running its blocks
    ``serial``-ly: data parallelism over the shards of a batch, with one hand-off per shard instead of
    one per block of every operation. One shard runs as ``map_blocks`` always did, on the caller's thread.
    The caller limits BLAS to one thread around the call (``single_threaded_blas``, which a shard skips)."""
    pool = _workers()
    if count == 1:
        return [fn(0)]
    caller = _with_callers_errstate(fn)

    def run(i: int) -> T:
        with _thread_flag("shard"), serial():
            return caller(i)

    if pool is None or _flag("serial"):
        return [run(i) for i in range(count)]
    return list(pool.map(run, range(count)))


def scratch(size: int, dtype: np.dtype, slot: str = "") -> np.ndarray:
    """A per-thread scratch buffer of at least ``size`` elements, reused between calls (no page faults).
    Buffers that are alive at the same time need different ``slot`` names."""
    key = (slot, np.dtype(dtype).str)
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size, dtype=dtype)
    return buf[:size]


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Inside, each BLAS call uses at most ``n`` threads."""
    with _blas.limit(limits=n, user_api="blas"):
        yield


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Inside, BLAS uses one thread per call: parallelism comes from ``map_blocks`` instead (so with
    ``SRLIB_THREADS=1`` srlib uses exactly one core). A shard of ``run_shards`` leaves the setting to
    the thread that started the shards (BLAS's thread count is one setting for the whole process)."""
    if _flag("shard"):
        yield
        return
    with blas_threads(1):
        yield
