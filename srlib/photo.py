"""How real photos get small: degradations on the "centre" sampling grid, for training and scoring a
model meant for photographs rather than for the study's degradation.

The sampling grid is where an LR pixel sits in the HR image. The study's degradation keeps HR pixel
(4i, 4j) as LR pixel (i, j): the top-left of each 4x4 block (grid "study"). Almost everything else that
makes images smaller (area averaging, antialiased resizing, a camera's sensor) gives LR pixel (i, j) the
value around the block's centre, HR (4i + 1.5, 4j + 1.5) (grid "centre"). The two grids are 1.5 HR
pixels apart, and a model trained on one puts every edge 1.5 pixels off on the other: on area-
downscaled faces the study-grid model scored ~5 dB below plain bicubic. Interpolation has the same
choice to make: ``degrade.upscale_bicubic`` assumes the study grid, ``degrade.upscale_bicubic_centred``
(plain ``cv2.resize``) the centre grid.

Each function maps a uint8 HR image (H, W[, 3]), H and W multiples of 4, to a uint8 LR image on the
centre grid.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from PIL import Image

from .degrade import SCALE, upscale_bicubic, upscale_bicubic_centred

#: Each sampling grid and the bicubic interpolation that puts LR samples where that grid has them.
BICUBIC_FOR_GRID: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "study": upscale_bicubic,
    "centre": upscale_bicubic_centred,
}
GRIDS = tuple(BICUBIC_FOR_GRID)


def _size(hr: np.ndarray) -> tuple[int, int]:
    return hr.shape[1] // SCALE, hr.shape[0] // SCALE


def area(hr: np.ndarray) -> np.ndarray:
    """The mean of each 4x4 block (``cv2.INTER_AREA``): what most downscaling for the web does."""
    return cv2.resize(hr, _size(hr), interpolation=cv2.INTER_AREA)


def blur_sample(hr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` HR pixels (a lens, a sensor), then the value at each block's centre
    (bilinear between its four central pixels: ``cv2.INTER_LINEAR`` samples exactly there at 1/4)."""
    blurred = cv2.GaussianBlur(hr, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(blurred, _size(hr), interpolation=cv2.INTER_LINEAR)


def bicubic_antialiased(hr: np.ndarray) -> np.ndarray:
    """Pillow's bicubic resize, whose kernel widens 4x when reducing (antialiasing): what image
    editors and Python scripts do. Kept out of training, to show how the photo model generalises."""
    img = Image.fromarray(hr[..., ::-1] if hr.ndim == 3 else hr)
    small = np.asarray(img.resize(_size(hr), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(small[..., ::-1] if hr.ndim == 3 else small)


def add_noise(lr: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``sigma`` grey levels (sensor noise), rounded and clipped."""
    return np.clip(np.rint(lr + rng.normal(0.0, sigma, lr.shape)), 0, 255).astype(np.uint8)


def jpeg(lr: np.ndarray, quality: int) -> np.ndarray:
    """Encoded and decoded as a JPEG of ``quality`` (OpenCV's libjpeg, 4:2:0 chroma for colour)."""
    ok, buf = cv2.imencode(".jpg", lr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def random_degradation(hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo model's training degradation, drawn from ``rng``: area averaging or a mild blur
    (sigma 0.6..1.6) sampled at block centres; then, each with probability 1/2, light noise (sigma
    0.5..3 grey levels) and JPEG compression (quality 60..95). Antialiased bicubic is never used."""
    lr = area(hr) if rng.random() < 0.5 else blur_sample(hr, rng.uniform(0.6, 1.6))
    if rng.random() < 0.5:
        lr = add_noise(lr, rng.uniform(0.5, 3.0), rng)
    if rng.random() < 0.5:
        lr = jpeg(lr, int(rng.integers(60, 96)))
    return lr


#: The fixed degradations photo-benchmark scores (name -> HR -> LR, all on the centre grid); the last is
#: held out of training.
BENCHMARK: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "area": area,
    "blur 1.2, centre samples": lambda hr: blur_sample(hr, 1.2),
    "area, JPEG q75": lambda hr: jpeg(area(hr), 75),
    "area, noise 2": lambda hr: add_noise(area(hr), 2.0, np.random.default_rng(0)),
    "bicubic antialiased (held out)": bicubic_antialiased,
}
