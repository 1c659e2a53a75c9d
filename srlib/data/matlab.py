"""MATLAB's ``imresize`` with its default bicubic kernel, the resize every super-resolution paper since
SRCNN made its low-resolution test images with (and upscaled its "bicubic" row with).

MATLAB's bicubic is Keys' cubic with a = -0.5 (OpenCV's is a = -0.75), sampled on centred grids; when it
shrinks an image it widens the kernel by the factor (antialiasing), and at the borders it mirrors the
image (symmetric padding). Each dimension is resized in turn, rows first, and for a uint8 image each
pass is rounded back to uint8, as MATLAB's ``imresizemex`` returns the input's class. Pillow's
antialiased bicubic is the same kernel but renormalises at the borders instead of mirroring: it agrees
away from the borders only.
"""
from __future__ import annotations

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, MATLAB's ``cubic``."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out_len, taps) and the 0-based input index of each tap, as MATLAB's ``contributions``."""
    width = 4.0 / scale if scale < 1 else 4.0  # antialiasing: the kernel stretched when shrinking
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel x's centre in input coordinates (1-based)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    index = left[:, None] + np.arange(taps)[None, :]  # 1-based
    distance = u[:, None] - index
    weights = scale * _cubic(scale * distance) if scale < 1 else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirrored = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])  # symmetric padding
    index = mirrored[np.mod(index.astype(np.int64) - 1, 2 * in_len)]
    used = np.any(weights != 0, axis=0)
    return weights[:, used], index[:, used]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    weights, index = _contributions(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img.astype(np.float64), axis, 0)  # (in_len, ...)
    out = np.einsum("ot,ot...->o...", weights, moved[index])
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """``imresize(img, scale)`` of MATLAB (bicubic, antialiased when shrinking) for a uint8 or float
    image (H, W[, C]); the output is ceil(H * scale) x ceil(W * scale), uint8 in (rounded half away from
    zero after each pass, clipped) gives uint8 out."""
    if img.ndim not in (2, 3) or not scale > 0:
        raise ValueError(f"imresize expects an (H, W[, C]) image and a positive scale, got {img.shape}, {scale}")
    out = img
    for axis in (0, 1):
        out = _resize_axis(out, axis, int(np.ceil(img.shape[axis] * scale)), scale)
        if img.dtype == np.uint8:
            out = np.clip(np.sign(out) * np.floor(np.abs(out) + 0.5), 0, 255).astype(np.uint8)
    return out
