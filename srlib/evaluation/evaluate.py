"""Score upscaling methods on a set of LR/HR pairs: one DataFrame row per (image, method)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from ..data import photo
from ..data.celeba import ImageSet, Pairs
from ..data.degrade import HR_SIZE, SCALE, to_uint8, upscale_bicubic, upscale_bicubic_centred, upscale_nearest
from ..data.photo import estimate_jpeg_quality
from ..display import progress
from ..errors import SrlibError
from ..model import SRModel
from .metrics import SSIM_WINDOW, as_method, image_metrics, paired_difference, psnr_each, study_psnr

#: method: uint8 LR (N, h, w, 3) -> float HR estimate (N, 4h, 4w, 3) on 0..255
Method = Callable[[np.ndarray], np.ndarray]


def _per_image(fn: Callable[[np.ndarray], np.ndarray]) -> Method:
    return lambda lr: np.stack([fn(img) for img in lr]).astype(np.float32)


#: The baselines. "bicubic_centred" is OpenCV's bicubic resize, which takes LR pixels for block centres
#: (right for photographs, 1.5 HR pixels off for the study's degradation); "bicubic_aligned" puts LR
#: pixel i at HR pixel 4i, as the study's degradation does, and is the report's baseline.
BASELINES: dict[str, Method] = {
    "nearest": _per_image(upscale_nearest),
    "bicubic_centred": _per_image(upscale_bicubic_centred),
    "bicubic_aligned": _per_image(upscale_bicubic),
}

#: photo method: (uint8 LR (N, h, w, 3), the JPEG quality it was saved at or None) -> float HR estimate.
#: The quality is what a JPEG file states (``upscale`` reads it); interpolation ignores it.
PhotoMethod = Callable[[np.ndarray, "int | None"], np.ndarray]


def _blind(method: Method) -> PhotoMethod:
    return lambda lr, jpeg_quality: method(lr)


def model_method(model: SRModel, ensemble: bool = False, jpeg: str = "told") -> PhotoMethod:
    """A model as a photo method. ``jpeg``: how it learns the inputs' JPEG quality: "told" (as a JPEG
    file states it), "withheld" (never), or "estimated" from each image's pixels
    (``photo.estimate_jpeg_quality``, as ``upscale`` does for a file that does not say)."""
    if jpeg not in ("told", "withheld", "estimated"):
        raise ValueError(f"model_method: jpeg must be told, withheld or estimated, got {jpeg!r}")
    if jpeg != "estimated":
        return lambda lr, jpeg_quality: model.predict(lr, ensemble=ensemble,
                                                      jpeg_quality=jpeg_quality if jpeg == "told" else None)

    def estimated(lr: np.ndarray, jpeg_quality: int | None) -> np.ndarray:
        qualities = [estimate_jpeg_quality(image) for image in lr]
        out = np.empty((len(lr), lr.shape[1] * SCALE, lr.shape[2] * SCALE, 3), np.float32)
        for q in dict.fromkeys(qualities):  # one batch per quality read
            idx = [i for i, e in enumerate(qualities) if e == q]
            out[idx] = model.predict(lr[idx], ensemble=ensemble, jpeg_quality=q)
        return out
    return estimated


#: Interpolation for LR images on the centre grid (data/photo.py): OpenCV's bicubic and Lanczos as they are.
PHOTO_BASELINES: dict[str, PhotoMethod] = {
    "bicubic": _blind(BASELINES["bicubic_centred"]),
    "lanczos": _blind(_per_image(lambda lr: cv2.resize(np.asarray(lr, np.float32), (lr.shape[1] * 4, lr.shape[0] * 4),
                                                       interpolation=cv2.INTER_LANCZOS4))),
}

METRICS = ["psnr_rgb", "psnr_y", "ssim_y", "ssim_rgb"]


def evaluate(pairs: Pairs | ImageSet, methods: dict[str, Method | SRModel], crop_border: int = 0) -> pd.DataFrame:
    """Rows: image, method, psnr_rgb, psnr_y, ssim_y, ssim_rgb (uint8 outputs) and mse_float (the
    unclipped output over the whole image, for the study's metric, which ``crop_border`` does not change).
    An ``ImageSet`` is scored batch by batch as it streams from disk, so memory does not grow with it.
    ``summarize`` turns the table into one row per method, in ``methods``' order."""
    largest = (HR_SIZE - SSIM_WINDOW) // 2
    if not 0 <= crop_border <= largest:
        raise SrlibError(f"crop border {crop_border} must be 0..{largest} for {HR_SIZE}x{HR_SIZE} images "
                         f"(SSIM needs {SSIM_WINDOW} pixels left); choose another")
    rows = [row for batch in pairs.batches(desc="scoring") for row in _score(batch, methods, crop_border)]
    return pd.DataFrame(rows).sort_values("method", key=lambda m: m.map(list(methods).index), kind="stable",
                                          ignore_index=True)


def _score(pairs: Pairs, methods: dict[str, Method | SRModel], crop_border: int) -> list[dict]:
    rows = []
    for name, method in methods.items():
        out = as_method(method)(pairs.lr)
        for path, y, hr in progress(list(zip(pairs.paths, out, pairs.hr)), desc=f"scoring {name}", leave=False,
                                disable=len(pairs) < 100):
            row = {"image": path.name, "method": name}
            row.update(image_metrics(to_uint8(y), hr, crop_border))
            row["mse_float"] = float(np.mean((y.astype(np.float64) - hr) ** 2))
            rows.append(row)
    return rows


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per method (in first-seen order): means of the per-image metrics, the study's PSNR of
    the mean float MSE, and the number of images."""
    order = list(dict.fromkeys(scores["method"]))
    g = scores.groupby("method", sort=False)
    out = g[METRICS].mean()
    out["study_psnr"] = g["mse_float"].apply(lambda m: study_psnr(m.to_numpy()))
    out["images"] = g.size()
    return out.loc[order]


#: OpenCV's dnn_superres models by the name their file starts with, and the algorithm dnn_superres knows them as.
OPENCV_ALGORITHMS = {"ESPCN": "espcn", "FSRCNN": "fsrcnn", "FSRCNN-small": "fsrcnn", "LapSRN": "lapsrn", "EDSR": "edsr"}


def _require_dnn_superres(folder: Path) -> None:
    if not hasattr(cv2, "dnn_superres"):
        raise SrlibError(f"scoring the models in {folder} needs OpenCV's contrib modules, version 4 (cv2.dnn_superres), "
                         f"and this OpenCV {cv2.__version__} has none: pip uninstall -y opencv-python-headless && "
                         f"pip install 'opencv-contrib-python-headless>=4.8,<5'")


def opencv_models(folder: str | Path) -> dict[str, Path]:
    """The x4 models of OpenCV's dnn_superres in ``folder``, by name: ``NAME_x4.pb`` with NAME in
    ``OPENCV_ALGORITHMS``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SrlibError(f"{folder} is not a folder; give the folder that holds the dnn_superres models (ESPCN_x4.pb, ...)")
    found = {path.name[:-len("_x4.pb")]: path for path in sorted(folder.glob("*_x4.pb")) if path.is_file()}
    models = {name: path for name, path in found.items() if name in OPENCV_ALGORITHMS}
    if not models:
        raise SrlibError(f"{folder} holds no x4 model of OpenCV's dnn_superres ({', '.join(f'{n}_x4.pb' for n in OPENCV_ALGORITHMS)})")
    return models


def opencv_method(path: Path) -> PhotoMethod:
    """One dnn_superres x4 model (from ``opencv_models``) as a photo method: each image on its own (it
    ignores the JPEG quality). Needs OpenCV's contrib modules of version 4 (``cv2.dnn_superres``;
    OpenCV 5's dnn cannot read these TensorFlow graphs)."""
    _require_dnn_superres(path.parent)
    sr = getattr(cv2, "dnn_superres").DnnSuperResImpl_create()  # contrib only: checked just above
    try:
        sr.readModel(str(path))
    except cv2.error:
        raise SrlibError(f"{path}: OpenCV cannot read this model; download it again") from None
    sr.setModel(OPENCV_ALGORITHMS[path.name[:-len("_x4.pb")]], SCALE)

    def method(lr: np.ndarray, jpeg_quality: int | None) -> np.ndarray:
        return np.stack([sr.upsample(np.ascontiguousarray(image)) for image in lr]).astype(np.float32)
    return method


def opencv_methods(folder: str | Path) -> dict[str, PhotoMethod]:
    """Every x4 model of OpenCV's dnn_superres in ``folder`` as a photo method named "OpenCV NAME": what
    many people use to upscale on a CPU."""
    _require_dnn_superres(Path(folder))  # before looking at the folder: the fix a user needs first
    return {f"OpenCV {name}": opencv_method(path) for name, path in opencv_models(folder).items()}


def photo_benchmark(pairs: Pairs | ImageSet, methods: dict[str, PhotoMethod], reference: str = "bicubic",
                    degradations: dict[str, photo.Degradation] | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each method on each photo degradation (``photo.BENCHMARK``) of the same HR images; a method is
    given the JPEG quality of the degradations saved as JPEG (``Degradation.jpeg_quality``).

    Returns (per-image scores: degradation, image, method, psnr_rgb; summary: one row per degradation
    and method with its mean PSNR, the paired difference to ``reference`` on the same images with a 95%
    bootstrap interval, and the share of images on which it scores below ``reference``)."""
    degradations = photo.BENCHMARK if degradations is None else degradations
    rows = []
    for batch in pairs.batches(desc="photo benchmark"):
        for deg, degradation in degradations.items():
            lr = np.stack([degradation(h) for h in batch.hr])
            quality = degradation.jpeg_quality
            for name, method in methods.items():
                rows += [{"degradation": deg, "image": p.name, "method": name, "psnr_rgb": v}
                         for p, v in zip(batch.paths, psnr_each(to_uint8(method(lr, quality)), batch.hr))]
    scores = pd.DataFrame(rows)
    summary = []
    for (deg, name), g in scores.groupby(["degradation", "method"], sort=False):
        ref = scores[(scores.degradation == deg) & (scores.method == reference)]
        mean, low, high = paired_difference(g.psnr_rgb.to_numpy(), ref.psnr_rgb.to_numpy())
        summary.append({"degradation": deg, "method": name, "psnr_rgb": g.psnr_rgb.mean(),
                        f"minus_{reference}": mean, "ci_low": low, "ci_high": high,
                        f"below_{reference}": float(np.mean(g.psnr_rgb.to_numpy() < ref.psnr_rgb.to_numpy())),
                        "images": len(g)})
    return scores, pd.DataFrame(summary)
