"""Convolution as k*k matrix products on shifted views of one padded input: the fast path.

im2col (``layers.Conv2d``, the reference path) copies every input pixel k*k times into a patch matrix
so that one matrix product does the whole convolution. This path never builds that matrix. Lay the
zero-padded input out as one long matrix with a row per pixel of the padded grid:

    grid (N * (H + 2p) * (W + 2p), C):  row q = (n, r, c) of the padded images, r < H + 2p, c < W + 2p

Output pixel (n, r, c) needs input (n, r + i, c + j) for each kernel tap (i, j), which is grid row
q + i (W + 2p) + j. So for every tap, the rows it needs are the same block of the grid shifted by a
constant: a contiguous slice, usable by BLAS as it is. Then

    out = sum over taps (i, j) of  grid[q0 + shift(i, j) : ... ] @ W[:, :, i, j].T      (rows q of the grid)

is k*k matrix products summed into one output, computed block by block of rows (in cache) for
every grid row; the rows whose (r, c) fall in the padding (r >= H or c >= W: 9% of them for 44x44
images) are thrown away. The weight gradient is the same sum read the other way: for each tap,
dW[:, :, i, j] = (shifted grid slice)^T @ dy laid on the grid, summed over blocks of rows.

Threads: blocks of rows run on ``parallel.py``'s workers, each with single-threaded BLAS (NumPy's
matmul releases the GIL). Weight-gradient blocks are summed in block order, and the block list does
not depend on the number of threads, so results are the same bits for any count.
"""
from __future__ import annotations

import numpy as np

from .parallel import map_blocks, scratch

# Rows of the grid per block, measured fastest on the first 2-core development machine (blocks of 32-64 channels that stay
# in cache, and few enough calls that the workers rarely wait for each other's GIL).
_FORWARD_ROWS = 4096
_GRAD_ROWS = 8192


def to_grid(x: np.ndarray, p: int, k: int) -> np.ndarray:
    """x (N, H, W, C) -> the flat padded grid (N (H+2p) (W+2p) + slack, C), x at offset (p, p) of each
    padded image, zeros elsewhere. The slack rows (zeros) let every shift of a k x k kernel stay inside."""
    n, h, w, c = x.shape
    hp, wp = h + 2 * p, w + 2 * p
    rows = n * hp * wp
    flat = np.empty((rows + (k - 1) * (wp + 1), c), dtype=x.dtype)
    g = flat[:rows].reshape(n, hp, wp, c)
    g[:, :p] = 0
    g[:, p + h:] = 0
    g[:, p:p + h, :p] = 0
    g[:, p:p + h, p + w:] = 0
    g[:, p:p + h, p:p + w] = x
    flat[rows:] = 0
    return flat


def _shifts(k: int, wp: int) -> list[tuple[int, int, int]]:
    """(i, j, grid row offset) for each tap of a k x k kernel on a grid (W + 2p) columns wide."""
    return [(i, j, i * wp + j) for i in range(k) for j in range(k)]


def correlate(grid: np.ndarray, shape: tuple[int, int, int], w: np.ndarray) -> np.ndarray:
    """"Same" cross-correlation of the input laid out by ``to_grid`` with w (C_out, C_in, k, k).

    shape: (N, H, W) of the input. Returns y (N, H, W, C_out), as ``layers.Conv2d``'s im2col path.
    """
    n, h, wd = shape
    c_out, _, k, _ = w.shape
    p = k // 2
    hp, wp = h + 2 * p, wd + 2 * p
    rows = n * hp * wp
    taps = [(t, np.ascontiguousarray(w[:, :, i, j].T)) for i, j, t in _shifts(k, wp)]  # (C_in, C_out) each
    out = np.empty((rows, c_out), dtype=grid.dtype)

    def block(s: int, e: int) -> None:
        acc, part = out[s:e], scratch((e - s) * c_out, grid.dtype, slot="shifted").reshape(e - s, c_out)
        (t, wt), rest = taps[0], taps[1:]
        np.matmul(grid[s + t:e + t], wt, out=acc)
        for t, wt in rest:
            np.matmul(grid[s + t:e + t], wt, out=part)
            acc += part

    map_blocks(block, _row_blocks(rows, _FORWARD_ROWS))
    return np.ascontiguousarray(out.reshape(n, hp, wp, c_out)[:, :h, :wd])


def _row_blocks(rows: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, rows)) for s in range(0, rows, size)]


def weight_grad(grid: np.ndarray, dy_grid: np.ndarray, shape: tuple[int, int, int], k: int) -> np.ndarray:
    """dW (C_out, C_in, k, k) from the input's grid and dy's grid (``to_grid(dy, p, k)``, the same layout).

    dy's grid holds dy (n, r, c) at row (n, r + p, c + p); output pixel (n, r, c) was computed at grid
    row (n, r, c), p (W + 2p) + p rows earlier, so dy is read with that shift.
    """
    n, h, wd = shape
    c_in, c_out = grid.shape[1], dy_grid.shape[1]
    p = k // 2
    hp, wp = h + 2 * p, wd + 2 * p
    rows = n * hp * wp
    shifts = _shifts(k, wp)
    dy = dy_grid[p * wp + p:]

    def block(s: int, e: int) -> np.ndarray:
        dw = np.empty((k, k, c_in, c_out), dtype=grid.dtype)
        for i, j, t in shifts:
            np.matmul(grid[s + t:e + t].T, dy[s:e], out=dw[i, j])
        return dw

    return np.sum(map_blocks(block, _row_blocks(rows, _GRAD_ROWS)), axis=0).transpose(3, 2, 0, 1)
