"""The embedded default dataset: real photographs that scikit-image ships inside its package, cut into
CelebA-sized 178x218 crops and written in CelebA's layout, so that everything runs on a fresh machine
without a download. Built once, deterministically, into ``data/sample/`` (git-ignored), or into the user's
cache folder when srlib is installed rather than run from its checkout.

It is a smoke-test set, not a face benchmark: one portrait (the test split's astronaut) among other
photographs. Use real CelebA for numbers worth reporting (README: "Using real CelebA").
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .celeba import IMAGE_DIR, SPLITS

CROP_W, CROP_H = 178, 218

#: (skimage.data function, split, source and licence as scikit-image documents them)
SOURCES = [
    ("astronaut", "test", "Eileen Collins, NASA astronaut portrait; NASA, public domain"),
    ("coffee", "test", "Cup of coffee, photograph by Rachel Michetti; CC0"),
    ("chelsea", "validation", "Chelsea the cat, photograph by Stefan van der Walt; CC0"),
    ("immunohistochemistry", "validation", "Immunohistochemical staining, Wikimedia Commons; public domain"),
    ("rocket", "train", "Falcon 9 launch, SpaceX; CC0 (public domain dedication)"),
    ("hubble_deep_field", "train", "Hubble eXtreme Deep Field, NASA; public domain"),
]
SCALES = (1.0, 0.75)


def _crops(image_rgb: np.ndarray) -> list[np.ndarray]:
    """Non-overlapping 178x218 tiles of the image at each of ``SCALES``, as BGR."""
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    out = []
    for s in SCALES:
        img = bgr if s == 1.0 else cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        for y in range(0, img.shape[0] - CROP_H + 1, CROP_H):
            for x in range(0, img.shape[1] - CROP_W + 1, CROP_W):
                out.append(img[y:y + CROP_H, x:x + CROP_W])
    return out


def build_sample(root: str | os.PathLike) -> Path:
    """Write the sample (PNG crops, ``list_eval_partition.csv``, ``SOURCES.md``) under ``root``."""
    import skimage.data

    root = Path(root)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rows, notes, n = [], [], 0
    for name, split, licence in SOURCES:
        crops = _crops(getattr(skimage.data, name)())
        first = n + 1
        for crop in crops:
            n += 1
            fname = f"{n:06d}.png"
            cv2.imwrite(str(root / IMAGE_DIR / fname), crop)
            rows.append(f"{fname},{SPLITS[split]}")
        notes.append(f"| {first:06d}-{n:06d} | {split} | `skimage.data.{name}()` | {licence} |")
    (root / "SOURCES.md").write_text(
        "# Embedded sample: where each picture comes from\n\n"
        "Built by `srlib.data.sample.build_sample` from images bundled with scikit-image; 178x218 crops at "
        f"scales {SCALES}.\n\n| files | split | source | licence |\n|---|---|---|---|\n" + "\n".join(notes) + "\n")
    tmp = root / "list_eval_partition.csv.tmp"
    tmp.write_text("image_id,partition\n" + "\n".join(rows) + "\n")
    os.replace(tmp, root / "list_eval_partition.csv")  # written last: its presence marks a complete sample
    return root
