"""CelebA (or any folder in CelebA's layout) from disk to LR/HR pairs.

Layout: ``ROOT/img_align_celeba/<images>`` and a partition file, either Kaggle's
``ROOT/list_eval_partition.csv`` (header ``image_id,partition``) or the original
``ROOT/list_eval_partition.txt`` (``000001.jpg 0`` per line). Partition 0 = train, 1 = validation,
2 = test. Every problem (missing folder, unlisted or unreadable image, empty split) raises one
``SrlibError`` line that names the file and the fix.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from .degrade import HR_SIZE, degrade
from .errors import SrlibError

SPLITS = {"train": 0, "validation": 1, "test": 2}
IMAGE_DIR = "img_align_celeba"
PARTITION_FILES = ("list_eval_partition.csv", "list_eval_partition.txt")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 BGR (H, W, 3), as OpenCV and the study do.

    Greyscale files are repeated into three equal channels and an alpha channel is dropped, so every
    model sees the same layout. Unreadable, truncated or 16-bit files raise ``SrlibError``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SrlibError(f"{path}: cannot read ({e.strerror}); check the path") from None
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-32:]:
        # libjpeg decodes a truncated JPEG with only a warning, filling the rest with grey: refuse it.
        raise SrlibError(f"{path}: truncated JPEG (no end-of-image marker); re-download or remove it")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error:
        img = None
    if img is None:
        raise SrlibError(f"{path}: not a readable image (corrupt, or not an image file); replace or remove it")
    if img.dtype != np.uint8:
        raise SrlibError(f"{path}: {img.dtype} pixels; srlib reads 8-bit images, convert it first")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.shape[2] != 3:
        raise SrlibError(f"{path}: {img.shape[2]} channels; srlib reads grey, BGR or BGRA images")
    return img


def _read_partition(path: Path) -> dict[str, int]:
    """image name -> partition number, from either partition file form."""
    out: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SrlibError(f"{path}: cannot read the partition file ({e}); restore it from CelebA") from None
    sep = "," if path.suffix == ".csv" else None
    for n, line in enumerate(lines, start=1):
        if not line.strip() or (n == 1 and line.replace(" ", "").lower() == "image_id,partition"):
            continue
        fields = line.split(sep)
        if len(fields) != 2 or fields[1].strip() not in ("0", "1", "2"):
            raise SrlibError(f"{path}:{n}: expected 'image_name{sep or ' '}partition' with partition 0, 1 "
                             f"or 2, got {line!r}; fix or restore the partition file")
        out[fields[0].strip()] = int(fields[1])
    if not out:
        raise SrlibError(f"{path}: the partition file lists no images; restore it from CelebA")
    return out


@dataclass(frozen=True)
class CelebA:
    """A CelebA-layout folder: ``split(name)`` gives that split's image paths in partition-file order."""

    root: Path
    partition: dict[str, int]

    @classmethod
    def open(cls, root: str | os.PathLike) -> "CelebA":
        root = Path(root)
        if not root.is_dir():
            raise SrlibError(f"data folder {root} does not exist; put CelebA there ({IMAGE_DIR}/ and "
                             f"list_eval_partition.csv) or leave --data out to use the embedded sample")
        images = root / IMAGE_DIR
        if not images.is_dir():
            raise SrlibError(f"{images} is missing; a data folder needs {IMAGE_DIR}/ beside the partition file")
        found = [root / f for f in PARTITION_FILES if (root / f).is_file()]
        if not found:
            raise SrlibError(f"{root}: no list_eval_partition.csv or .txt; download it with CelebA and put "
                             f"it beside {IMAGE_DIR}/")
        partition = _read_partition(found[0])
        present = set(os.listdir(images))
        missing = [name for name in partition if name not in present]
        if missing:
            raise SrlibError(f"{found[0]} lists {len(missing)} image(s) missing from {images} (first: "
                             f"{missing[0]}); restore them or remove their lines")
        return cls(root, partition)

    def split(self, name: str) -> list[Path]:
        if name not in SPLITS:
            raise SrlibError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        paths = [self.root / IMAGE_DIR / f for f, p in self.partition.items() if p == SPLITS[name]]
        if not paths:
            raise SrlibError(f"{self.root}: the {name} split is empty; the partition file assigns no image "
                             f"to partition {SPLITS[name]}")
        return paths


def evaluation_subset(paths: list[Path], n: int | None) -> list[Path]:
    """A fixed, ordered subset of ``n`` images spread evenly over ``paths`` (all when n is None or
    larger): the same images on every run, so reports are comparable (fact sheet, mistake 6)."""
    if n is None or n >= len(paths):
        return list(paths)
    if n < 1:
        raise SrlibError(f"evaluation subset size must be at least 1, got {n}")
    idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
    return [paths[i] for i in idx]


@dataclass
class Pairs:
    """Degraded pairs for a list of images, held in memory.

    lr: (N, 44, 44, 3) uint8; hr: (N, 176, 176, 3) uint8, BGR, in the order of ``paths``.
    """

    paths: list[Path]
    lr: np.ndarray
    hr: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def load_pairs(paths: list[Path], desc: str = "loading images") -> Pairs:
    """Read and degrade every image (tqdm progress); images smaller than 176x176 are refused because the
    degradation would have to invent pixels to build their HR reference."""
    if not paths:
        raise SrlibError("no images to load; check the data folder and split")
    lr, hr = [], []
    for p in tqdm(paths, desc=desc, leave=False, disable=len(paths) < 200):
        img = read_image(p)
        if min(img.shape[:2]) < HR_SIZE:
            raise SrlibError(f"{p}: {img.shape[1]}x{img.shape[0]} is smaller than the {HR_SIZE}x{HR_SIZE} the "
                             f"degradation needs; remove it from the split")
        low, high = degrade(img)
        lr.append(low)
        hr.append(high)
    return Pairs(list(paths), np.stack(lr), np.stack(hr))
