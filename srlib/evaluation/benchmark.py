"""The field's x4 benchmark, measured as the papers measure it (SRCNN onwards; BasicSR, EDSR, CARN):

- HR: each image of a test set (Set5, Set14, B100 or its BSD68 subset, ...), cropped to a multiple of 4;
- LR: MATLAB's ``imresize(HR, 1/4)``, bicubic, antialiased (``data.matlab.imresize``);
- score: PSNR and SSIM on BT.601 luma Y (16..235, unrounded, as BasicSR), 4 pixels cut from each border,
  of the output rounded to uint8; the "bicubic" row upscales with MATLAB's ``imresize(LR, 4)``.

It reproduces the published bicubic rows (Set5 28.43 against 28.42), so srlib's rows stand beside the
published numbers of the papers in ``PUBLISHED``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..data.celeba import read_image
from ..data.degrade import SCALE, to_uint8
from ..data.folders import list_photos, split_photos
from ..data.matlab import imresize
from ..data.photo import matlab_bicubic
from ..errors import SrlibError
from .evaluate import PhotoMethod
from .metrics import image_metrics, paired_difference

#: pixels cut from each border before scoring, as the papers do at x4
BORDER = SCALE
#: a method: uint8 LR (h, w, 3) BGR -> uint8 HR (4h, 4w, 3)
Upscaler = Callable[[np.ndarray], np.ndarray]


def bicubic(lr: np.ndarray) -> np.ndarray:
    """The papers' "bicubic" row: MATLAB's imresize x4."""
    return imresize(lr, SCALE)


def one_image(method: PhotoMethod) -> Upscaler:
    """A photo method (a batch of images and their JPEG quality -> float HR) as an Upscaler of one clean image."""
    return lambda lr: to_uint8(method(lr[None], None)[0])


@dataclass(frozen=True)
class Published:
    """A published x4 result: PSNR-Y (dB) on Set5, Set14 and B100, and the network's parameters."""

    paper: str
    parameters: int | None
    set5: float
    set14: float
    b100: float


#: The published x4 rows (the papers' own tables), for the sets they report. BSD68 is a 68-image subset of
#: B100: compare a margin over bicubic there, not a level.
PUBLISHED: dict[str, Published] = {
    "bicubic": Published("", None, 28.42, 26.00, 25.96),
    "SRCNN": Published("Dong et al., TPAMI 2016", 57_184, 30.48, 27.50, 26.90),
    "FSRCNN": Published("Dong et al., ECCV 2016", 12_464, 30.72, 27.61, 26.98),
    "VDSR": Published("Kim et al., CVPR 2016", 665_000, 31.35, 28.02, 27.29),
    "LapSRN": Published("Lai et al., CVPR 2017", 812_000, 31.54, 28.19, 27.32),
    "CARN-M": Published("Ahn et al., ECCV 2018", 412_000, 31.92, 28.42, 27.44),
    "EDSR": Published("Lim et al., CVPRW 2017", 43_000_000, 32.46, 28.80, 27.71),
}
#: which published column a test set's folder name stands beside (BSD68: B100's subset)
PUBLISHED_COLUMN = {"set5": "set5", "set14": "set14", "b100": "b100", "bsd100": "b100", "bsd68": "b100"}


def set_images(folder: str | Path, split: str = "all") -> list[Path]:
    """The images of a test set's folder, sorted by name; with ``split`` "train" or "validation", those
    of that split of a training folder (``folders.split_photos``: where models are compared and chosen)."""
    if split == "all":
        return [path for path, _ in list_photos([folder])]
    return split_photos([folder], split)


def benchmark_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) of a test image under the papers' protocol."""
    hr = read_image(path)
    h, w = hr.shape[0] // SCALE * SCALE, hr.shape[1] // SCALE * SCALE
    if not h or not w:
        raise SrlibError(f"{path}: smaller than {SCALE}x{SCALE} pixels; remove it from the test set")
    hr = np.ascontiguousarray(hr[:h, :w])
    return matlab_bicubic(hr), hr


def run_benchmark(sets: dict[str, str | Path], methods: dict[str, Upscaler], progress=None,
                  split: str = "all") -> pd.DataFrame:
    """Every method on every image of every set (``split``: see ``set_images``): one row per (set, image,
    method) with psnr_y, ssim_y and the seconds the method took on that image. ``progress``: called
    once per image."""
    for method in methods.values():  # untimed: a model's first call tunes its convolutions to the machine
        method(np.zeros((16, 16, 3), np.uint8))
    rows = []
    for set_name, folder in sets.items():
        for path in set_images(folder, split):
            lr, hr = benchmark_pair(path)
            for name, method in methods.items():
                start = time.perf_counter()
                sr = method(lr)
                seconds = time.perf_counter() - start
                if sr.shape != hr.shape or sr.dtype != np.uint8:
                    raise SrlibError(f"{name} gave a {sr.dtype} {sr.shape} image for {path} ({hr.shape} expected)")
                scores = image_metrics(sr, hr, crop_border=BORDER)
                rows.append({"set": set_name, "image": path.name, "method": name, "psnr_y": scores["psnr_y"],
                             "ssim_y": scores["ssim_y"], "seconds": seconds})
            if progress is not None:
                progress()
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame, reference: str = "bicubic") -> pd.DataFrame:
    """One row per set and method: mean PSNR-Y and SSIM-Y, the paired difference in PSNR-Y to
    ``reference`` on the same images with its 95% bootstrap interval, the share of images where the
    method beats it, and the mean seconds per image; then the published rows of the set's column."""
    rows = []
    for (set_name, name), g in scores.groupby(["set", "method"], sort=False):
        ref = scores[(scores.set == set_name) & (scores.method == reference)].set_index("image").psnr_y
        own = g.set_index("image").psnr_y.loc[ref.index].to_numpy()
        mean, low, high = paired_difference(own, ref.to_numpy())
        rows.append({"set": set_name, "method": name, "source": "measured", "psnr_y": g.psnr_y.mean(),
                     "ssim_y": g.ssim_y.mean(), f"minus_{reference}": mean, "ci_low": low, "ci_high": high,
                     f"above_{reference}": float(np.mean(own > ref.to_numpy())), "seconds": g.seconds.mean(),
                     "images": len(g)})
    for set_name in scores.set.unique():
        column = PUBLISHED_COLUMN.get(set_name.lower())
        if column is None:
            continue
        base = getattr(PUBLISHED["bicubic"], column)
        for name, row in PUBLISHED.items():
            value = getattr(row, column)
            label = f"{name}, published" + (f" ({row.paper})" if row.paper else "")
            rows.append({"set": set_name, "method": label, "source": "published", "psnr_y": value,
                         f"minus_{reference}": value - base})
    return pd.DataFrame(rows)
