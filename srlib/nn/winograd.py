"""3x3 convolution by Winograd minimal filtering, F(2x2, 3x3): a path with 2.25x fewer multiplies.

Whether it pays depends on the machine: its matrix products take fewer multiplies, but in NumPy the
transforms are separate passes over arrays 4x the size of the input, so it wins where multiplies cost
more than memory traffic. On the first development machine it was no faster than the other paths; on
the 2-core AMD EPYC (AVX2 OpenBLAS kernel) it is the fastest path for most 3x3 operations (one thread:
17 ms against 26 for the shifted products on the 64 -> 32 layer's forward pass). ``tuning.py`` measures
which path each layer and operation should take on the machine at hand.

Direct convolution spends 9 multiply-adds per output pixel, input channel and output channel. Winograd's
algorithm computes a 2x2 block of outputs from the 4x4 block of inputs around it with 16 instead of 36
(2.25x fewer), by moving into a domain where convolution is elementwise. In one dimension, two outputs
of a 3-tap correlation of inputs d0..d3 with taps g0..g2 are

    m0 = (d0 - d2) g0         m1 = (d1 + d2) (g0 + g1 + g2) / 2
    m3 = (d3 - d1) g2         m2 = (d2 - d1) (g0 - g1 + g2) / 2
    y0 = m0 + m1 + m2         y1 = m1 - m2 + m3

i.e. y = A^T [(G g) * (B^T d)] with the matrices below; in two dimensions, for a 4x4 input tile d and a
3x3 kernel g, Y = A^T [(G g G^T) * (B^T d B)] A. Summing over input channels commutes with A^T . A, so
each of the 16 tile positions (a, b) becomes one matrix product over channels:

    V[ab] (tiles, C_in) = B^T d B      input transform: additions of shifted, strided slices
    U[ab] (C_in, C_out) = G g G^T      weight transform: once per step, tiny
    M[ab] = V[ab] @ U[ab]              16 matrix products: where the time goes
    Y     = A^T M A                    output transform: additions again, written into y

Tiles start every 2 pixels, so neighbouring 4x4 input tiles overlap by 2; "same" zero padding of 1 is
built in. Odd image sizes are padded up to whole tiles and the extra outputs dropped.

The backward pass needs no new algorithm:
- the input gradient is the correlation of dy with the kernel flipped in space and transposed in
  channels (see ``layers.Conv2d``): the same function with other weights;
- the weight gradient is the adjoint of the forward pass: with dM = A dY A^T for each 2x2 tile of dy,
  dU[ab] = V[ab]^T @ dM[ab] summed over tiles, and dW = G^T dU G.

Speed in NumPy comes from the layout of the input transform: its column combinations read every other
column, and channels-last rows would give NumPy runs of only C values. So each block of images is
first copied (with its zero padding) into a buffer whose columns are split by parity, (rows, 2, cols/2,
C); every later slice is then a contiguous run of cols/2 * C values. Work is split into blocks of a
few images (or of tile rows for large images) that stay in cache, run on all cores by ``parallel.py``.
The block list does not depend on the number of threads, and weight gradients are summed in block
order, so results are the same bits for any ``SRLIB_THREADS``.

fp32 accuracy: the transforms only add, subtract and halve, so the error stays at a few ulps of the
direct sum (measured in the tests against a float64 reference).
"""
from __future__ import annotations

import numpy as np

from .parallel import map_blocks, scratch

# The transforms. Their rows are listed in the order (0, 3, 1, 2) of the usual statement of the
# algorithm, and the last row of A (and of G) has its sign flipped; both give the same convolution.
# The order puts the two combinations of the form "one minus another" (B^T) or "a copy" (A) next to each
# other, so that each transform below is a handful of whole-array NumPy calls instead of sixteen.
B_T = np.array([[1, 0, -1, 0], [0, 1, 0, -1], [0, 1, 1, 0], [0, -1, 1, 0]], dtype=np.float64)
G = np.array([[1, 0, 0], [0, 0, -1], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5]], dtype=np.float64)
A_T = np.array([[1, 0, 1, 1], [0, 1, 1, -1]], dtype=np.float64)

# Aim for blocks whose transformed tiles V take about this many bytes (measured on the 2-core machine:
# 1-2 images of the 64-channel layer per block, so that V, M and the input stay in L2/L3 cache).
_BLOCK_BYTES = 2 << 20


def weight_transform(w: np.ndarray) -> np.ndarray:
    """w (C_out, C_in, 3, 3) -> U (16, C_in, C_out) = G g G^T for each channel pair, in w's dtype."""
    u = np.einsum("ai,ocij,bj->abco", G, w.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(16, w.shape[1], w.shape[0]), dtype=w.dtype)


def weight_grad(du: np.ndarray) -> np.ndarray:
    """dU (16, C_in, C_out) -> dW (C_out, C_in, 3, 3) = G^T dU G: the adjoint of ``weight_transform``."""
    c_in, c_out = du.shape[1:]
    return np.einsum("ai,abco,bj->ocij", G, du.reshape(4, 4, c_in, c_out).astype(np.float64), G).astype(du.dtype)


def _blocks(n: int, h: int, w: int, c: int, itemsize: int) -> list[tuple[int, int, int, int]]:
    """Split n images of h x w (C channels) into blocks (image start, image end, tile-row start, end)."""
    ht, wt = -(-h // 2), -(-w // 2)
    row_bytes = 16 * wt * c * itemsize
    rows = max(1, _BLOCK_BYTES // row_bytes)
    if rows >= ht:  # whole images per block
        per = max(1, rows // ht)
        return [(s, min(s + per, n), 0, ht) for s in range(0, n, per)]
    return [(i, i + 1, r, min(r + rows, ht)) for i in range(n) for r in range(0, ht, rows)]


def _split_columns(x: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """Padded input rows for tile rows r0..r1 of x (n, H, W, C), columns split by parity.

    Returns D (n, 2 (r1 - r0) + 2, 2, wt + 1, C) with D[:, r, p, q] = padded x[:, 2 r0 + r, 2 q + p],
    where padded x has one row/column of zeros before the image and enough after it to fill whole tiles.
    """
    n, h, w, c = x.shape
    wt = -(-w // 2)
    rows = 2 * (r1 - r0) + 2
    d = scratch(n * rows * 2 * (wt + 1) * c, x.dtype, slot="d").reshape(n, rows, 2, wt + 1, c)
    top = 2 * r0 - 1                        # image row held by buffer row 0
    a, b = max(top, 0), min(top + rows, h)  # image rows that exist
    d[:, :a - top] = 0
    d[:, b - top:] = 0
    inside = d[:, a - top:b - top]
    odd, even = x[:, a:b, 1::2], x[:, a:b, 0::2]  # padded column 2q holds image column 2q - 1
    inside[:, :, 0, 0] = 0
    inside[:, :, 0, 1:1 + odd.shape[2]] = odd
    inside[:, :, 0, 1 + odd.shape[2]:] = 0
    inside[:, :, 1, :even.shape[2]] = even
    inside[:, :, 1, even.shape[2]:] = 0
    return d


def _input_transform(d: np.ndarray, v: np.ndarray) -> None:
    """D from ``_split_columns`` -> V (4, 4, n, tile rows, wt, C) = B^T d B for every 4x4 tile.

    Tile t's rows are padded rows 2t..2t+3 (d0..d3); B^T combines them as (d0 - d2, d1 - d3, d1 + d2,
    d2 - d1). The first two are one subtraction of row pairs (2t, 2t+1) and (2t+2, 2t+3). Columns the
    same way, where the parity split makes tile columns 0..3 the slices (0, q), (1, q), (0, q+1), (1, q+1).
    """
    n, rows, _, wq, c = d.shape
    ht, wt = v.shape[3], v.shape[4]
    pairs = d.reshape(n, rows // 2, 2, 2, wq, c)             # (n, row pair, row in pair, parity, q, C)
    first, second = pairs[:, :ht], pairs[:, 1:ht + 1]        # rows (d0, d1) and (d2, d3) of each tile
    u = scratch(4 * n * ht * 2 * wq * c, d.dtype, slot="u").reshape(4, n, ht, 2, wq, c)
    np.subtract(first, second, out=u[:2].transpose(1, 2, 0, 3, 4, 5))
    np.add(first[:, :, 1], second[:, :, 0], out=u[2])
    np.subtract(second[:, :, 0], first[:, :, 1], out=u[3])
    left, right = u[:, :, :, :, :wt], u[:, :, :, :, 1:]       # columns (d0, d1) and (d2, d3) of each tile
    np.subtract(left, right, out=v[:, :2].transpose(0, 2, 3, 1, 4, 5))
    np.add(left[:, :, :, 1], right[:, :, :, 0], out=v[:, 2])
    np.subtract(right[:, :, :, 0], left[:, :, :, 1], out=v[:, 3])


def _output_transform(m: np.ndarray, y: np.ndarray) -> None:
    """M (4, 4, n, tile rows, wt, C_out) -> y (n, 2 tile rows, 2 wt, C_out) = A^T M A for every tile.

    A^T turns (m0, m1, m2, m3) into the two outputs (m0 + m2 + m3, m1 + m2 - m3): rows first, then
    columns, the second stage writing straight into the (row parity, column parity) views of y.
    """
    _, _, n, ht, wt, c = m.shape
    p = scratch(2 * 4 * n * ht * wt * c, m.dtype, slot="p").reshape(2, 4, n, ht, wt, c)
    np.add(m[2], m[3], out=p[0])
    np.subtract(m[2], m[3], out=p[1])
    p += m[:2]
    q = scratch(2 * 2 * n * ht * wt * c, m.dtype, slot="q").reshape(2, 2, n, ht, wt, c)
    np.add(p[:, 2], p[:, 3], out=q[0])
    np.subtract(p[:, 2], p[:, 3], out=q[1])
    out = y.reshape(n, ht, 2, wt, 2, c).transpose(4, 2, 0, 1, 3, 5)  # (column parity, row parity, ...)
    np.add(p[:, :2].transpose(1, 0, 2, 3, 4, 5), q, out=out)


def _grad_transform(dy: np.ndarray, dm: np.ndarray) -> None:
    """dy (n, 2 tile rows, 2 wt, C_out) -> dM (4, 4, n, tile rows, wt, C_out) = A dY A^T per 2x2 tile.

    A turns the tile's two values (e0, e1) into (e0, e1, e0 + e1, e0 - e1).
    """
    _, _, n, ht, wt, c = dm.shape
    tiles = dy.reshape(n, ht, 2, wt, 2, c).transpose(2, 0, 1, 3, 4, 5)  # (row in tile, n, ht, wt, column, C)
    rows = scratch(4 * n * ht * wt * 2 * c, dy.dtype, slot="q").reshape(4, n, ht, wt, 2, c)
    rows[:2] = tiles
    np.add(tiles[0], tiles[1], out=rows[2])
    np.subtract(tiles[0], tiles[1], out=rows[3])
    dm[:, :2] = rows.transpose(0, 4, 1, 2, 3, 5)
    np.add(rows[..., 0, :], rows[..., 1, :], out=dm[:, 2])
    np.subtract(rows[..., 0, :], rows[..., 1, :], out=dm[:, 3])


def _tiles(x: np.ndarray, i0: int, i1: int, r0: int, r1: int) -> np.ndarray:
    """V (16, tiles, C) of tile rows r0..r1 of images i0..i1 of x (N, H, W, C), in scratch."""
    n, c, wt = i1 - i0, x.shape[3], -(-x.shape[2] // 2)
    d = _split_columns(x[i0:i1], r0, r1)
    v = scratch(16 * n * (r1 - r0) * wt * c, x.dtype, slot="v").reshape(4, 4, n, r1 - r0, wt, c)
    _input_transform(d, v)
    return v.reshape(16, -1, c)


def correlate3x3(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """x (N, H, W, C_in), U (16, C_in, C_out) from ``weight_transform`` -> y (N, H, W, C_out): the
    "same"-padded 3x3 cross-correlation, as ``Conv2d``'s im2col path computes it."""
    n, h, w, c = x.shape
    c_out = u.shape[2]
    ht, wt = -(-h // 2), -(-w // 2)
    y = np.empty((n, 2 * ht, 2 * wt, c_out), dtype=x.dtype)

    def block(i0: int, i1: int, r0: int, r1: int) -> None:
        v = _tiles(x, i0, i1, r0, r1)
        m = scratch(16 * v.shape[1] * c_out, x.dtype, slot="m").reshape(16, v.shape[1], c_out)
        np.matmul(v, u, out=m)
        _output_transform(m.reshape(4, 4, i1 - i0, r1 - r0, wt, c_out), y[i0:i1, 2 * r0:2 * r1])

    map_blocks(block, _blocks(n, h, w, c, x.itemsize))
    return y if (2 * ht, 2 * wt) == (h, w) else np.ascontiguousarray(y[:, :h, :w])


def weight_grad3x3(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """x (N, H, W, C_in) the layer's input, dy (N, H, W, C_out) -> dW (C_out, C_in, 3, 3)."""
    n, h, w, c = x.shape
    c_out = dy.shape[3]
    ht, wt = -(-h // 2), -(-w // 2)
    if (2 * ht, 2 * wt) != (h, w):  # whole tiles: the outputs past the image have zero gradient
        dy = np.pad(dy, ((0, 0), (0, 2 * ht - h), (0, 2 * wt - w), (0, 0)))

    def block(i0: int, i1: int, r0: int, r1: int) -> np.ndarray:
        v = _tiles(x, i0, i1, r0, r1)
        dm = scratch(16 * v.shape[1] * c_out, x.dtype, slot="m").reshape(4, 4, i1 - i0, r1 - r0, wt, c_out)
        _grad_transform(dy[i0:i1, 2 * r0:2 * r1], dm)
        return np.matmul(v.transpose(0, 2, 1), dm.reshape(16, -1, c_out))

    du = np.sum(map_blocks(block, _blocks(n, h, w, c, x.itemsize)), axis=0)
    return weight_grad(du)
