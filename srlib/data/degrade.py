"""The study's degradation (HR 176x176 -> LR 44x44) and the upscaling baselines.

degrade(image):
  1. HR = cv2.resize(image, (176, 176)), bilinear: the 178x218 CelebA crop is squashed, not cropped.
  2. blurred = cv2.filter2D(HR, -1, K) with K the 9x9 kernel below (border reflect-101, uint8 result).
  3. LR = blurred[::4, ::4]: LR pixel (i, j) is HR pixel (4i, 4j), the top-left of each 4x4 block.

Because of step 3 a fair interpolation maps HR pixel x to LR coordinate x / 4 (``upscale_bicubic``).
OpenCV's ``resize`` assumes block-centred samples, x / 4 - 0.375, and so lands 1.5 HR pixels off
(``upscale_bicubic_centred``): kept only to show how much the phase costs.
"""
from __future__ import annotations

import cv2
import numpy as np

SCALE = 4
HR_SIZE = 176
LR_SIZE = HR_SIZE // SCALE


def study_kernel() -> np.ndarray:
    """9x9 float64 kernel: centre 7x7 = exp(-(x^2 + y^2) / 2) / (2 pi) for offsets -3..3, zero ring,
    not renormalised (sum 0.99946), exactly as the study built it."""
    k = np.zeros((9, 9))
    r = np.arange(-3, 4)
    xx, yy = np.meshgrid(r, r)
    k[1:8, 1:8] = np.exp(-(xx ** 2 + yy ** 2) / 2) / (2 * np.pi)
    return k


_KERNEL = study_kernel()


def degrade(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 image (H, W, 3) or (H, W) of any size -> (LR (44, 44[, 3]) uint8, HR (176, 176[, 3]) uint8)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"degrade expects a uint8 (H, W) or (H, W, 3) image, got {image.dtype} {image.shape}")
    hr = cv2.resize(image, (HR_SIZE, HR_SIZE), interpolation=cv2.INTER_LINEAR)
    return blur_decimate(hr), hr


def blur_decimate(hr: np.ndarray) -> np.ndarray:
    """Steps 2 and 3 of ``degrade``: uint8 HR (H, W[, C]) -> uint8 LR (H/4, W/4[, C]).

    Also how augmentation makes a flipped pair: flipping the LR too would move its samples to the
    *right* end of each 4x4 block (x = 4j + 3), a different phase than every real LR image; blurring
    and decimating the flipped HR keeps the phase."""
    return cv2.filter2D(hr, -1, _KERNEL)[::SCALE, ::SCALE].copy()


def upscale_nearest(lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Each LR pixel repeated into a scale x scale block (LR pixel (i, j) covers HR pixels 4i..4i+3)."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


def upscale_bicubic(lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Phase-aligned bicubic (the report's baseline): HR pixel x samples LR coordinate x / 4.
    uint8 or float (h, w[, c]) -> float32 (h*4, w*4[, c]), unclipped, edge pixels replicated."""
    lr = np.asarray(lr, dtype=np.float32)
    m = np.array([[1.0 / scale, 0.0, 0.0], [0.0, 1.0 / scale, 0.0]])
    return cv2.warpAffine(lr, m, (lr.shape[1] * scale, lr.shape[0] * scale),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def upscale_bicubic_centred(lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Plain ``cv2.resize(lr, INTER_CUBIC)``: assumes block-centred LR samples (the "centre" grid of
    photographs, see ``photo.py``), so for the study's degradation it is 1.5 HR pixels off. Float32
    output, unclipped."""
    lr = np.asarray(lr, dtype=np.float32)
    return cv2.resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale), interpolation=cv2.INTER_CUBIC)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip a float image on the 0..255 scale to uint8 (the study cast without clipping, so
    bright pixels wrapped around to dark ones)."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
