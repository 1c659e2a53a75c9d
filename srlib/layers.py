"""Layers of the sub-pixel network, each with ``forward`` and a hand-written ``backward``.

Activations are channels-last, ``(N, H, W, C)``: on a CPU that makes the im2col gather copy contiguous
runs of ``C`` values and lets every convolution be one matrix product whose result is already in the
right layout. Weights keep the study's (and PyTorch's) layout ``(C_out, C_in, k, k)`` so published
weights load unchanged. For single-channel images, ``(N, 1, H, W)`` and ``(N, H, W, 1)`` are the same
bytes, so the network's NCHW interface costs nothing (see ``network.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import winograd
from .parallel import N_THREADS, map_blocks, scratch

# Aim for im2col blocks of about this many bytes: small enough to stay in cache, where the gather and
# the matrix product that reads it are faster than through main memory, large enough that per-block
# overhead stays small (16 MiB measured best on the 2-core machine; 2 MiB was 30% slower).
_BLOCK_BYTES = 16 << 20


@dataclass
class Param:
    """A trainable array and the gradient the last ``backward`` left for it (same shape, same dtype)."""

    name: str
    value: np.ndarray
    grad: np.ndarray


class Conv2d:
    """2-D convolution, stride 1, "same" zero padding, odd square kernel, optional bias.

    forward:  x (N, H, W, C_in)  -> y (N, H, W, C_out)
    backward: dy (N, H, W, C_out) -> dx (N, H, W, C_in), or None when ``needs_input_grad`` is False
              (the first layer's input is the image: its gradient is never used, and skipping it saves
              the costliest scatter of the step).
    Like PyTorch's Conv2d this is a cross-correlation: y[n,h,w,o] = sum W[o,c,i,j] x[n,h+i-p,w+j-p,c] + b[o].
    """

    def __init__(self, name: str, weight: np.ndarray, bias: np.ndarray | None = None,
                 needs_input_grad: bool = True, path: str = "auto"):
        c_out, _, k, k2 = weight.shape
        if k != k2 or k % 2 == 0:
            raise ValueError(f"{name}: kernel must be square and odd, got {k}x{k2}")
        if path not in ("auto", "im2col", "winograd") or (path == "winograd" and k != 3):
            raise ValueError(f"{name}: path must be 'auto', 'im2col' or (3x3 only) 'winograd', got {path!r}")
        self.name = name
        self.k = k
        self.pad = k // 2
        self.weight = Param(f"{name}.weight", weight, np.zeros_like(weight))
        self.bias = None if bias is None else Param(f"{name}.bias", bias, np.zeros_like(bias))
        self.needs_input_grad = needs_input_grad
        self.path = path
        self._x: np.ndarray | None = None

    def params(self) -> list[Param]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def _winograd(self, c_from: int, c_to: int) -> bool:
        """Use Winograd (``winograd.py``) for a 3x3 correlation from c_from to c_to channels?

        "auto" chooses it where it was measured faster on the 2-core machine: when it reads at least
        twice the channels it writes (its input transform grows with c_from, its output transform with
        c_to, while im2col's gather grows with 9 c_from). The network's 64 -> 32 and 32 -> 16 layers.
        """
        if self.path == "auto":
            return self.k == 3 and c_from >= 2 * c_to
        return self.path == "winograd"

    def _correlate_with(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """x (N, H, W, C) and weights w (C', C, k, k) -> the "same"-padded cross-correlation (N, H, W, C')."""
        c_to, c_from = w.shape[:2]
        if self._winograd(c_from, c_to):
            return winograd.correlate3x3(x, winograd.weight_transform(w))
        # Weight matrix (k*k*C, C'): rows ordered (i, j, c) to match the columns ``_im2col`` builds.
        return self._correlate(self._pad(x), w.transpose(2, 3, 1, 0).reshape(-1, c_to))

    def _blocks(self, n: int, h: int, w: int, c_in: int, itemsize: int) -> list[tuple[int, int]]:
        per_image = h * w * self.k * self.k * c_in * itemsize
        step = max(1, min(_BLOCK_BYTES // per_image, -(-n // N_THREADS)))  # >= one block per thread
        return [(s, min(s + step, n)) for s in range(0, n, step)]

    def _im2col(self, xp: np.ndarray) -> np.ndarray:
        """xp (n, H+2p, W+2p, C) padded input -> (n*H*W, k*k*C) patches, in this thread's scratch buffer."""
        n, hp, wp, c = xp.shape
        k = self.k
        h, w = hp - k + 1, wp - k + 1
        cols = scratch(n * h * w * k * k * c, xp.dtype).reshape(n, h, w, k, k, c)
        for i in range(k):
            # One strided window view per kernel row copies k shifted slices at once.
            win = np.lib.stride_tricks.sliding_window_view(xp[:, i:i + h], k, axis=2)  # (n,h,w,c,k)
            cols[:, :, :, i] = win.transpose(0, 1, 2, 4, 3)
        return cols.reshape(n * h * w, k * k * c)

    def _correlate(self, xp: np.ndarray, wm: np.ndarray) -> np.ndarray:
        """Padded input xp (N, H+2p, W+2p, C) and weight matrix wm (k*k*C, C') -> (N, H, W, C')."""
        n, hp, wp, c = xp.shape
        h, w = hp - self.k + 1, wp - self.k + 1
        c_out = wm.shape[1]
        y = np.empty((n, h, w, c_out), dtype=xp.dtype)

        def block(s: int, e: int) -> None:
            np.matmul(self._im2col(xp[s:e]), wm, out=y[s:e].reshape(-1, c_out))

        map_blocks(block, self._blocks(n, h, w, c, xp.itemsize))
        return y

    def _pad(self, x: np.ndarray) -> np.ndarray:
        p = self.pad
        return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[3] != self.weight.value.shape[1]:
            raise ValueError(f"{self.name}: expected (N, H, W, {self.weight.value.shape[1]}) input, "
                             f"got {x.shape}")
        self._x = x
        y = self._correlate_with(x, self.weight.value)
        if self.bias is not None:
            y += self.bias.value
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x, self._x = self._x, None
        n, h, w, c_out = dy.shape
        c_in, k = x.shape[3], self.k
        if self._winograd(c_in, c_out):
            self.weight.grad[...] = winograd.weight_grad3x3(x, dy)
        else:
            xp = self._pad(x)

            def block(s: int, e: int) -> np.ndarray:
                # Rebuilding the patches block by block (in cache) is cheaper than keeping them from forward.
                return self._im2col(xp[s:e]).T @ dy[s:e].reshape(-1, c_out)

            dwm = np.sum(map_blocks(block, self._blocks(n, h, w, c_in, xp.itemsize)), axis=0)
            self.weight.grad[...] = dwm.reshape(k, k, c_in, c_out).transpose(3, 2, 0, 1)
        if self.bias is not None:
            self.bias.grad[...] = dy.sum(axis=(0, 1, 2))
        if not self.needs_input_grad:
            return None
        # dx is the correlation of the padded dy with the kernel flipped in space and transposed in
        # channels: a gather over k*k*C_out columns, cheaper than scattering k*k*C_in back (col2im).
        return self._correlate_with(dy, self.weight.value[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


class ReLU:
    """max(x, 0), elementwise. forward/backward: any shape -> same shape.

    Works in place: its input is the previous convolution's fresh output, which nothing else reads,
    and the gradient it receives is likewise its own to overwrite. That saves two full passes per step.
    """

    def __init__(self):
        self._y: np.ndarray | None = None

    def params(self) -> list[Param]:
        return []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.maximum(x, 0, out=x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y, self._y = self._y, None
        return np.multiply(dy, y > 0, out=dy if dy.flags.writeable else None)


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """(N, H, W, C*r*r) -> (N, H*r, W*r, C), PyTorch's channel order: input channel c*r*r + i*r + j
    becomes output channel c at sub-pixel (i, j) of each r x r block."""
    n, h, w, crr = x.shape
    if crr % (r * r):
        raise ValueError(f"pixel_shuffle: {crr} channels is not a multiple of r*r = {r * r}")
    c = crr // (r * r)
    return x.reshape(n, h, w, c, r, r).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c)


def pixel_unshuffle(y: np.ndarray, r: int) -> np.ndarray:
    """The exact inverse of ``pixel_shuffle``: (N, H*r, W*r, C) -> (N, H, W, C*r*r)."""
    n, hr, wr, c = y.shape
    if hr % r or wr % r:
        raise ValueError(f"pixel_unshuffle: size {hr}x{wr} is not a multiple of r = {r}")
    h, w = hr // r, wr // r
    return y.reshape(n, h, r, w, r, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h, w, c * r * r)


class PixelShuffle:
    """Sub-pixel upsampling by ``r``. forward: (N, H, W, C*r*r) -> (N, H*r, W*r, C); backward: the inverse."""

    def __init__(self, r: int):
        self.r = r

    def params(self) -> list[Param]:
        return []

    def forward(self, x: np.ndarray) -> np.ndarray:
        return pixel_shuffle(x, self.r)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return pixel_unshuffle(dy, self.r)


class MSELoss:
    """Mean squared error over every element of the batch, as the study used.

    forward(y, t) -> scalar loss; backward() -> dL/dy, same shape as y.
    """

    def __init__(self):
        self._diff: np.ndarray | None = None

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        if y.shape != t.shape:
            raise ValueError(f"MSELoss: output {y.shape} and target {t.shape} differ in shape")
        self._diff = y - t
        return float(np.vdot(self._diff, self._diff) / self._diff.size)

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)
