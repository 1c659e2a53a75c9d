"""Any folders of photographs as training and validation data (not only CelebA's layout).

A photo is a training source, not a training image: every draw takes a random square HR patch of it
(``PATCH``, the size of the face crops the recipes were made for), at a random scale (the photo shrunk
by area averaging first, so one photo gives detail at several sizes, as VDSR trained on the "291"),
turned by one of the 8 flips and rotations. A recipe's degradation then makes the patch's LR, so the
same folders serve every degradation.

The validation split is cut by name: a photo is in it when the SHA-256 of its path inside its folder
falls in the first ``VALIDATION_PERCENT`` percent, so the split never depends on the order the files
are listed in, on the other folders given, or on the machine. Everything is chosen on it; benchmark
sets are never training data.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from ..errors import SrlibError
from ..files import open_regular
from .celeba import Pairs, cache_size_mb, image_size, read_image
from .degrade import HR_SIZE

#: the files a photo folder is read for
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
#: the HR patch side drawn for training (LR 44x44), the size of the CelebA crops the recipes were tuned on
PATCH = HR_SIZE
#: each patch is cut from the photo shrunk by a factor drawn uniformly from [MIN_SCALE, 1]
MIN_SCALE = 0.6
VALIDATION_PERCENT = 10


def list_photos(folders: list[str | os.PathLike]) -> list[tuple[Path, str]]:
    """Every image file under ``folders`` (recursively, sorted), with its name inside its folder."""
    found = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise SrlibError(f"{folder}: not a folder of photos; give folders that hold PNG, JPEG, BMP, TIFF or "
                             f"WebP files (or a CelebA-layout folder)")
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix.lower() in SUFFIXES:
                    found.append((path, path.relative_to(folder).as_posix()))
    if not found:
        raise SrlibError(f"{', '.join(map(str, folders))}: no photos found (files ending in "
                         f"{', '.join(sorted(SUFFIXES))}); check the folder")
    return found


def in_validation(name: str) -> bool:
    """Whether the photo of this name (its path inside its folder) belongs to the validation split."""
    return int(hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) % 100 < VALIDATION_PERCENT


def split_photos(folders: list[str | os.PathLike], split: str) -> list[Path]:
    """The photos of ``split`` ("train" or "validation") under ``folders``, too small ones left out:
    a photo needs a PATCH x PATCH crop at full size."""
    if split not in ("train", "validation"):
        raise SrlibError(f"photo folders have a train and a validation split, not {split!r}")
    chosen = []
    for path, name in list_photos(folders):
        if in_validation(name) != (split == "validation"):
            continue
        with open_regular(path, "image") as f:
            size = image_size(f)
        if size is not None and min(size) >= PATCH:
            chosen.append(path)
    if not chosen:
        raise SrlibError(f"{', '.join(map(str, folders))}: no photo of the {split} split is at least {PATCH}x{PATCH}; "
                         f"add larger photos")
    return chosen


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) of the 8 flips and quarter turns of an (H, W, ...) image."""
    img = np.rot90(img, k % 4)
    return img[:, ::-1] if k >= 4 else img


class PhotoPatches:
    """Random training patches of a list of photos; decoded photos are kept in a bounded cache
    (``SRLIB_CACHE_MB``), so memory does not grow with the folders. ``crops(idx, rng)``: one patch of
    each photo in ``idx`` (repeats allowed), drawn from ``rng`` alone, so a seeded run draws the same
    patches whether its photos came from the cache or from disk."""

    def __init__(self, paths: list[Path], cache_mb: int | None = None):
        if not paths:
            raise SrlibError("no photos to train on; check the folders")
        self.paths = list(paths)
        self.capacity = max(0, (cache_size_mb() if cache_mb is None else cache_mb) << 20)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def photo(self, i: int) -> np.ndarray:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        img = read_image(self.paths[i])
        if min(img.shape[:2]) < PATCH:
            raise SrlibError(f"{self.paths[i]}: {img.shape[1]}x{img.shape[0]} is smaller than the {PATCH}x{PATCH} "
                             f"training patch; remove it from the folder")
        with self._lock:
            if img.nbytes <= self.capacity:
                self._cache[i] = img
                self._cached_bytes += img.nbytes
                while self._cached_bytes > self.capacity:
                    self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return img

    def crop(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """A PATCH x PATCH uint8 patch of photo ``i``: a square of PATCH / s pixels at a random place,
        shrunk by s (area averaging; s uniform in [MIN_SCALE, 1], at least what the photo's size allows),
        then one of the 8 flips and rotations."""
        img = self.photo(i)
        h, w = img.shape[:2]
        scale = rng.uniform(max(MIN_SCALE, PATCH / min(h, w)), 1.0)
        side = min(int(round(PATCH / scale)), h, w)
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = img[y:y + side, x:x + side]
        if side != PATCH:
            patch = cv2.resize(patch, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(dihedral(patch, int(rng.integers(8))))

    def crops(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([self.crop(int(i), rng) for i in idx])


def validation_pairs(paths: list[Path]) -> Pairs:
    """The centre PATCH x PATCH of each validation photo as HR (its LR is made by the recipe's
    validation degradation; the area-averaged one here is a placeholder of the right size)."""
    hr = []
    for path in paths:
        img = read_image(path)
        h, w = img.shape[:2]
        y, x = (h - PATCH) // 2, (w - PATCH) // 2
        hr.append(img[y:y + PATCH, x:x + PATCH])
    stacked = np.stack(hr)
    lr = stacked.reshape(len(hr), PATCH // 4, 4, PATCH // 4, 4, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    return Pairs(list(paths), lr, stacked)
