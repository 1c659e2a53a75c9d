"""Image-quality metrics as super-resolution papers compute them, plus the study's own figure.

All per-image metrics compare uint8 images (the model's float output rounded and clipped, as a user
would save it), BGR channel order, optionally with ``crop_border`` pixels removed from every side
(0 here by default, for comparability with the study; 4 is the field's convention for x4).
Averages over a set are means of per-image values. The study instead reported
10 log10(255^2 / MSE) with MSE the mean over all images of the unclipped float output (``study_psnr``).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ..data.degrade import to_uint8

# SSIM's Gaussian window (sigma 1.5, truncated at 3.5 sigma) spans 11 pixels; half of it is cut from
# each border of the SSIM map.
SSIM_WINDOW = 11

# ITU-R BT.601 luma from [0, 1] RGB: Y = 16 + 65.481 R + 128.553 G + 24.966 B (range 16..235).
_Y_FROM_BGR = np.array([24.966, 128.553, 65.481]) / 255.0


def crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:img.shape[0] - border, border:img.shape[1] - border] if border else img


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """10 log10(range^2 / MSE) over all pixels and channels; inf for identical images."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def luma(bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) -> float64 BT.601 Y (H, W) on 16..235, unrounded (as BasicSR)."""
    return 16.0 + np.asarray(bgr, np.float64) @ _Y_FROM_BGR


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of Wang et al. (2004) on a 2-D image: Gaussian window sigma 1.5 (truncated at 3.5
    sigma = 11x11), K1 = 0.01, K2 = 0.03, population covariances, borders of half a window excluded
    from the mean. Same definition as ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=...)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=1.5, truncate=3.5, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    pad = SSIM_WINDOW // 2
    return float(s[pad:-pad, pad:-pad].mean())


def image_metrics(output: np.ndarray, target: np.ndarray, crop_border: int = 0) -> dict[str, float]:
    """uint8 BGR (H, W, 3) output and target -> psnr_rgb, psnr_y, ssim_y (SSIM on luma, as SR papers),
    ssim_rgb (mean over channels)."""
    if output.shape != target.shape or output.dtype != np.uint8 or target.dtype != np.uint8:
        raise ValueError(f"image_metrics needs two uint8 images of one shape, got {output.dtype}{output.shape} "
                         f"and {target.dtype}{target.shape}")
    o, t = crop(output, crop_border), crop(target, crop_border)
    yo, yt = luma(o), luma(t)
    return {
        "psnr_rgb": psnr(o, t),
        "psnr_y": psnr(yo, yt),
        "ssim_y": ssim(yo, yt),
        "ssim_rgb": float(np.mean([ssim(o[..., c], t[..., c]) for c in range(3)])),
    }


def study_psnr(float_mse: np.ndarray) -> float:
    """The study's figure: PSNR of the mean float MSE over images (unclipped outputs, all channels)."""
    return float(10 * np.log10(255.0 ** 2 / np.mean(float_mse)))


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of the paired differences a - b and its 95% interval: (mean, low, high) of ``paired_test``."""
    return paired_test(a, b, n_boot, seed)[:3]


def paired_test(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float, float]:
    """Mean of the paired differences a - b, its 95% interval and the two-sided p-value of "no
    difference" from the same test: (mean, low, high, p). The interval leaves out 0 exactly when
    p < 0.05, so a correction for many comparisons (``holm``) can act on p.

    a, b: (images,) for one run each (or (1, images)), or (seeds, images) for runs repeated over seeds,
    paired by seed (same initialisation and batches) and by image.
    - Several seeds: each seed's mean difference over the images is one value, and the interval is
      Student's t over those values (``seed_interval``). The luck of the seed is what varies most
      between runs, and a bootstrap over 2 or 3 seeds cannot leave the range of their values (it
      covered the truth ~61% of the time with 2 seeds and ~76% with 3 in a simulation;
      ``tests/test_report.py`` checks this interval's coverage).
    - One run: a bootstrap over images (``n_boot`` resamples, seeded): the interval covers the choice
      of images only, not the luck of a training run; p is twice the share of resampled means on the
      far side of 0 (at least 1 / n_boot).
    A NaN anywhere (a diverged run) gives NaN."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2 or d.size == 0 or np.shape(a) != np.shape(b):
        raise ValueError(f"paired_difference needs two arrays of the same shape (images,) or (seeds, images), "
                         f"got {np.shape(a)} and {np.shape(b)}")
    if not np.all(np.isfinite(d)):
        return (float("nan"),) * 4
    if len(d) > 1:
        return (*seed_interval(d.mean(axis=1)), seed_p_value(d.mean(axis=1)))
    cols = np.random.default_rng(seed).integers(0, d.shape[1], size=(n_boot, d.shape[1]))
    means = d[0][cols].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p = min(1.0, 2 * max(min(np.mean(means <= 0), np.mean(means >= 0)), 1 / n_boot))
    return float(d.mean()), float(low), float(high), float(p)


def seed_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean of one value per seed and its 95% Student's t interval (NaN with fewer than 2 values or a
    NaN among them)."""
    v = np.asarray(values, np.float64)
    m = float(np.mean(v)) if len(v) else float("nan")
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return m, float("nan"), float("nan")
    from scipy.stats import t

    half = float(t.ppf(0.975, len(v) - 1) * np.std(v, ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def seed_p_value(values: np.ndarray) -> float:
    """Two-sided p-value of Student's t test that the values' mean is 0 (``seed_interval``'s test; NaN
    with fewer than 2 values or a NaN among them)."""
    v = np.asarray(values, np.float64)
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return float("nan")
    from scipy.stats import t

    sd = float(np.std(v, ddof=1))
    if sd == 0:
        return 0.0 if np.mean(v) != 0 else 1.0
    return float(2 * t.sf(abs(np.mean(v)) / (sd / np.sqrt(len(v))), len(v) - 1))


def welch_interval(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """mean(x) - mean(y) for two independent groups (e.g. runs of different seeds on different images)
    and its 95% Welch interval: (difference, low, high); NaN bounds unless each group has 2 finite values."""
    x, y = (np.asarray(v, np.float64) for v in (x, y))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    d = float(np.mean(x) - np.mean(y)) if len(x) and len(y) else float("nan")
    if len(x) < 2 or len(y) < 2:
        return d, float("nan"), float("nan")
    from scipy.stats import t

    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    if vx + vy == 0:
        return d, d, d
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    half = float(t.ppf(0.975, df) * np.sqrt(vx + vy))
    return d, d - half, d + half


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values for the comparisons of one table (a family): the i-th
    smallest of m becomes max over j <= i of min(1, (m - j + 1) p_(j)). Keeps the chance of any false
    "measurable" in the family at 5% when adjusted p < 0.05 is the rule. NaN stays NaN and is not counted."""
    p = np.asarray(p, np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def psnr_each(outputs: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """PSNR of each uint8 output (N, H, W, 3) against its HR image, in order (dB)."""
    return np.array([psnr(o, h) for o, h in zip(outputs, hr)])


def as_method(method):
    """A model (anything with ``predict``) or a method (uint8 LR (N, h, w, 3) -> float HR), as a method:
    the one place where scoring code tells the two apart."""
    return method.predict if hasattr(method, "predict") else method


def psnr_per_image(method, pairs) -> np.ndarray:
    """Per-image PSNR (RGB, uint8 outputs, dB) of a model or a method (``as_method``) on ``pairs``, in
    their order."""
    return psnr_each(to_uint8(as_method(method)(pairs.lr)), pairs.hr)


def mean_psnr(method, pairs) -> float:
    """Mean per-image PSNR (RGB, uint8 outputs) on ``pairs``: the quick figure for validation curves
    (``evaluate.evaluate`` gives the full table)."""
    return float(np.mean(psnr_per_image(method, pairs)))
