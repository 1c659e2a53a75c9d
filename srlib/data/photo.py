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

import warnings
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from .degrade import SCALE, to_uint8, upscale_bicubic, upscale_bicubic_centred
from .matlab import imresize

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
    (bilinear between its four central pixels: ``cv2.INTER_LINEAR`` samples exactly there at 1/4). The
    shipped photo model's training mix; ``blur_sample_at`` samples anywhere (its fixed-point rounding
    differs by 1 grey level at some pixels)."""
    blurred = cv2.GaussianBlur(hr, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(blurred, _size(hr), interpolation=cv2.INTER_LINEAR)


def pillow_resize(hr: np.ndarray, kernel: Image.Resampling) -> np.ndarray:
    """Pillow's resize with ``kernel`` (bilinear, bicubic, Lanczos), which widens the kernel 4x when
    reducing (antialiased), samples centred."""
    img = Image.fromarray(hr[..., ::-1] if hr.ndim == 3 else hr)
    small = np.asarray(img.resize(_size(hr), kernel))
    return np.ascontiguousarray(small[..., ::-1] if hr.ndim == 3 else small)


def opencv_resize(hr: np.ndarray, interpolation: int) -> np.ndarray:
    """``cv2.resize`` down by 4 with a kernel that does not widen (``INTER_LINEAR``, ``INTER_CUBIC``,
    ``INTER_LANCZOS4``): each LR pixel interpolated from the few HR pixels at its block's centre, so fine
    detail aliases."""
    return cv2.resize(hr, _size(hr), interpolation=interpolation)


def blur_sample_at(hr: np.ndarray, sigma: float, dy: float, dx: float) -> np.ndarray:
    """As ``blur_sample``, each sample taken (dy, dx) HR pixels away from its block's centre (bilinear):
    a camera or a resize whose grid is not exactly centred."""
    blurred = cv2.GaussianBlur(hr, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    w, h = _size(hr)
    xs = np.broadcast_to(SCALE * np.arange(w) + 1.5 + float(dx), (h, w)).astype(np.float32)
    ys = np.broadcast_to((SCALE * np.arange(h) + 1.5 + float(dy))[:, None], (h, w)).astype(np.float32)
    return cv2.remap(blurred, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def sharpen(lr: np.ndarray, amount: float) -> np.ndarray:
    """Unsharp masking, as cameras and image editors apply before saving: lr + amount (lr - blurred),
    blurred with sigma 1 LR pixel; rounded and clipped."""
    blurred = cv2.GaussianBlur(lr.astype(np.float32), (0, 0), 1.0, borderType=cv2.BORDER_REFLECT_101)
    return to_uint8(lr + amount * (lr - blurred))


def add_noise(lr: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``sigma`` grey levels (sensor noise), rounded and clipped."""
    return to_uint8(lr + rng.normal(0.0, sigma, lr.shape))


def jpeg(lr: np.ndarray, quality: int) -> np.ndarray:
    """Encoded and decoded as a JPEG of ``quality`` (OpenCV's libjpeg, 4:2:0 chroma for colour)."""
    ok, buf = cv2.imencode(".jpg", lr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    if decoded is None:
        raise ValueError(f"photo.jpeg: OpenCV could not encode and decode a {lr.shape} image at quality {quality}")
    return decoded


#: The JPEG qualities the photo model's training draws from (inclusive).
JPEG_QUALITIES = (60, 95)


def jpeg_strength(quality: int | None) -> float:
    """What a JPEG-aware network (``NetConfig.jpeg_aware``) is told about its input: 0 for an image
    never JPEG-compressed (None), else (100 - quality) / 25: 0.2 at quality 95, 1 at 75, 1.6 at 60.
    Qualities below 60, which training never drew, are told as 60, the nearest the network knows."""
    if quality is None:
        return 0.0
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    return (100 - max(quality, JPEG_QUALITIES[0])) / 25


# libjpeg's (IJG's) base luminance quantisation table, the JPEG standard's Annex K example, row by row:
# quality q scales it by 5000 / q below 50 and by 200 - 2q from 50 up (in percent).
_IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def ijg_luminance_table(quality: int) -> np.ndarray:
    """The 64 luminance quantisation steps libjpeg writes for ``quality`` 1..100, row by row."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_IJG_LUMINANCE * scale + 50) // 100, 1, 255)


def jpeg_quality(path) -> int | None:
    """The quality the JPEG file at ``path`` was saved at: the libjpeg quality (1..100) whose luminance
    table is closest to the file's (exact for files written by libjpeg, hence OpenCV and Pillow; the
    nearest for other encoders). None for a file that is not a JPEG, or that Pillow cannot open (the
    caller reads the pixels with OpenCV, which decides whether the file is usable)."""
    try:
        with warnings.catch_warnings():  # only the header is read: a large image is no decompression bomb here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                tables = getattr(img, "quantization", None) if img.format == "JPEG" else None
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    table = np.asarray(tables[0], np.int64)
    return min(range(1, 101), key=lambda q: (int(np.abs(ijg_luminance_table(q) - table).sum()), -q))


# The 8x8 DCT-II of JPEG, orthonormal: a block's coefficients are _DCT @ block @ _DCT.T.
_DCT = np.array([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos(np.pi * (2 * i + 1) * k / 16) for i in range(8)]
                 for k in range(8)])
#: How well the luminance DCT coefficients must sit on a quality's quantisation steps to call an image
#: JPEG-compressed: 0 for coefficients spread evenly, 1 for exact multiples. Measured on 44x44 faces of
#: celeba-mini's train split: never-compressed 0.11-0.18 (10th-90th percentile), compressed at quality
#: 40-95 0.74-0.99.
JPEG_FIT_THRESHOLD = 0.5
# Enough 8x8 blocks to read the steps from (a 256x256 region: 1,024 blocks); more would only cost time.
_ESTIMATE_REGION = 256


def estimate_jpeg_quality(image: np.ndarray) -> int | None:
    """The libjpeg quality a uint8 BGR (H, W, 3) image was last JPEG-compressed at, read from its pixels,
    for when the file does not say (a JPEG saved again as PNG): JPEG rounds each 8x8 block's DCT
    coefficients to multiples of its quantisation table, so after decoding they still sit near those
    multiples. Every quality's luminance table (``ijg_luminance_table``) is tried on the coefficients
    that quality would not round to 0, and the one they fit best is taken (exact on celeba-mini's train
    faces at 44x44 from quality 40 to 95). None when no table fits (``JPEG_FIT_THRESHOLD``): never
    compressed, or resized or shifted since, which moves the blocks off JPEG's 8x8 grid."""
    b, g, r = (image[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b - 128  # JPEG's luma, level-shifted as its encoder does
    h0, w0 = ((np.array(y.shape) - _ESTIMATE_REGION) // 2).clip(0) // 8 * 8  # a central region on the block grid
    y = y[h0:h0 + _ESTIMATE_REGION, w0:w0 + _ESTIMATE_REGION]
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    if not h or not w:
        return None
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    coefficients = _DCT @ blocks @ _DCT.T
    best, best_fit = None, JPEG_FIT_THRESHOLD
    for quality in range(1, 100):
        steps = ijg_luminance_table(quality).reshape(8, 8).astype(np.float64)
        ratio = coefficients / steps
        kept = ratio[(np.abs(ratio) >= 0.5) & (steps >= 2)]
        if len(kept) < 20:  # too few coefficients left to tell
            continue
        fit = float(np.abs(np.mean(np.exp(2j * np.pi * kept))))
        if fit > best_fit:
            best, best_fit = quality, fit
    return best


def random_degradation(hr: np.ndarray, rng: np.random.Generator, jpeg_probability: float = 0.5
                       ) -> tuple[np.ndarray, int | None]:
    """The photo model's training degradation, drawn from ``rng``: area averaging or a mild blur
    (sigma 0.6..1.6) sampled at block centres; then, with probability 1/2, light noise (sigma 0.5..3
    grey levels) and, with ``jpeg_probability``, JPEG compression (quality 60..95). Antialiased bicubic
    is never used. Returns the LR image and its JPEG quality (None when it was not compressed)."""
    lr = area(hr) if rng.random() < 0.5 else blur_sample(hr, rng.uniform(0.6, 1.6))
    if rng.random() < 0.5:
        lr = add_noise(lr, rng.uniform(0.5, 3.0), rng)
    quality = None
    if rng.random() < jpeg_probability:
        quality = int(rng.integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1))
        lr = jpeg(lr, quality)
    return lr, quality


#: How the wide training mix (``random_wide_degradation``) makes LR images: one of these, drawn evenly.
#: Antialiased and aliased resizes of both libraries and blur with a sampling phase off the block centre;
#: nearest neighbour is never used (no camera or sensible resize makes it). Held out, to show how a model
#: generalises: Pillow's Lanczos and OpenCV's INTER_LANCZOS4 (``BENCHMARK``).
WIDE_KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "area": lambda hr, rng: area(hr),
    "Pillow bilinear": lambda hr, rng: pillow_resize(hr, Image.Resampling.BILINEAR),
    "Pillow bicubic": lambda hr, rng: pillow_resize(hr, Image.Resampling.BICUBIC),
    "OpenCV linear, aliased": lambda hr, rng: opencv_resize(hr, cv2.INTER_LINEAR),
    "OpenCV cubic, aliased": lambda hr, rng: opencv_resize(hr, cv2.INTER_CUBIC),
    "blur, sampled off centre": lambda hr, rng: blur_sample_at(hr, rng.uniform(0.6, 1.6), *rng.uniform(-0.5, 0.5, 2)),
}


def random_wide_degradation(hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int | None]:
    """The wider training mix for photographs, drawn from ``rng``: one of ``WIDE_KINDS``; then, each with
    probability 1/2, light noise (sigma 0.5..3 grey levels); with 1/4 mild sharpening (amount 0.2..0.8);
    with 1/2 JPEG (quality 60..95). Returns the LR image and its JPEG quality (None when not compressed)."""
    kinds = list(WIDE_KINDS.values())
    lr = kinds[int(rng.integers(len(kinds)))](hr, rng)
    if rng.random() < 0.5:
        lr = add_noise(lr, rng.uniform(0.5, 3.0), rng)
    if rng.random() < 0.25:
        lr = sharpen(lr, rng.uniform(0.2, 0.8))
    quality = None
    if rng.random() < 0.5:
        quality = int(rng.integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1))
        lr = jpeg(lr, quality)
    return lr, quality


@dataclass(frozen=True)
class TrainingDegradation:
    """What a training recipe's ``degradation`` names: the sampling grid a model trained on it works on,
    how each image drawn for training gets its LR (``draw(hr, rng) -> (lr, JPEG quality or None)``;
    None: the split's own LR, the study's degradation, made when the split is read), and how the
    validation images' LR is made (None: the split's own)."""

    grid: str
    draw: Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, int | None]] | None
    validation: Callable[[np.ndarray], np.ndarray] | None


def matlab_bicubic(hr: np.ndarray) -> np.ndarray:
    """MATLAB's antialiased bicubic ``imresize`` by 1/4: how the super-resolution papers make their test
    images (``evaluation.benchmark``), and so what a model is trained on to be measured as they measure."""
    return imresize(hr, 1 / SCALE)


#: Every degradation a recipe can train on, by name.
TRAINING: dict[str, TrainingDegradation] = {
    "study": TrainingDegradation("study", None, None),
    "photo": TrainingDegradation("centre", random_degradation, area),
    "photo-wide": TrainingDegradation("centre", random_wide_degradation, area),
    "bicubic": TrainingDegradation("centre", lambda hr, rng: (matlab_bicubic(hr), None), matlab_bicubic),
}


@dataclass(frozen=True)
class Degradation:
    """A fixed way photo-benchmark makes an LR photo from an HR one: ``base`` (HR -> LR), then, when
    ``jpeg_quality`` is set, saved as a JPEG of that quality, which a JPEG file states (``upscale``
    reads it) and so a JPEG-aware model is told. One home for the quality: the row's name is only a
    label."""

    base: Callable[[np.ndarray], np.ndarray]
    jpeg_quality: int | None = None

    def __call__(self, hr: np.ndarray) -> np.ndarray:
        lr = self.base(hr)
        return jpeg(lr, self.jpeg_quality) if self.jpeg_quality is not None else lr


#: The fixed degradations photo-benchmark scores (name -> degradation, all on the centre grid). The shipped
#: photo model's training mix (``random_wide_degradation``) holds neither Lanczos resize; version 2's
#: (``random_degradation``) held only area averaging and centred blur, with noise and JPEG.
BENCHMARK: dict[str, Degradation] = {
    "area": Degradation(area),
    "blur 1.2, centre samples": Degradation(lambda hr: blur_sample(hr, 1.2)),
    "area, JPEG q75": Degradation(area, jpeg_quality=75),
    "area, noise 2": Degradation(lambda hr: add_noise(area(hr), 2.0, np.random.default_rng(0))),
    "Pillow bicubic": Degradation(lambda hr: pillow_resize(hr, Image.Resampling.BICUBIC)),
    "OpenCV cubic, aliased": Degradation(lambda hr: opencv_resize(hr, cv2.INTER_CUBIC)),
    "blur 1.2, samples half a pixel off": Degradation(lambda hr: blur_sample_at(hr, 1.2, 0.5, 0.5)),
    "Pillow Lanczos": Degradation(lambda hr: pillow_resize(hr, Image.Resampling.LANCZOS)),
    "OpenCV Lanczos, aliased": Degradation(lambda hr: opencv_resize(hr, cv2.INTER_LANCZOS4)),
    "area, sharpened 0.5": Degradation(lambda hr: sharpen(area(hr), 0.5)),
}
