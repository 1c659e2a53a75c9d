"""Shared fixtures: tiny synthetic pairs and CelebA-layout folders the tests build themselves."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from srlib.data.celeba import Pairs
from srlib.data.degrade import degrade

# The convolutions take the same paths on every machine (not the ones tuned to it): results, and the
# notebooks' stored outputs, are then the same bits wherever the tests run. Notebook kernels inherit it.
os.environ["SRLIB_CONV_PATHS"] = "fixed"


def smooth_image(rng: np.random.Generator, h: int = 218, w: int = 178) -> np.ndarray:
    """A photo-like uint8 BGR image: smooth random colour fields plus a little texture."""
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    img += rng.integers(-8, 9, img.shape).astype(np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_celeba(root: Path, counts=(6, 2, 3), csv: bool = True, seed: int = 0) -> Path:
    """Write a CelebA-layout folder with counts = (train, validation, test) JPEGs."""
    rng = np.random.default_rng(seed)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rows, n = [], 0
    for part, count in enumerate(counts):
        for _ in range(count):
            n += 1
            name = f"{n:06d}.jpg"
            cv2.imwrite(str(root / "img_align_celeba" / name), smooth_image(rng))
            rows.append((name, part))
    if csv:
        (root / "list_eval_partition.csv").write_text(
            "image_id,partition\n" + "".join(f"{a},{b}\n" for a, b in rows))
    else:
        (root / "list_eval_partition.txt").write_text("".join(f"{a} {b}\n" for a, b in rows))
    return root


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    return make_celeba(tmp_path / "celeba")


@pytest.fixture
def celeba_data(celeba: Path):
    """The fake CelebA as a report's data: its validation split, 2 images scored per run."""
    from srlib.report.notebook import data_source

    return data_source(str(celeba), "validation", 2)


@pytest.fixture(scope="session")
def pairs() -> Pairs:
    rng = np.random.default_rng(1)
    lr, hr = zip(*(degrade(smooth_image(rng)) for _ in range(6)))
    return Pairs([Path(f"{i:06d}.png") for i in range(6)], np.stack(lr), np.stack(hr))


#: the helpers that run srlib as a process of its own (tests/test_cli.py, test_hostile_inputs.py)
_PROCESS_HELPERS = {"srlib", "probe", "subprocess"}


def pytest_collection_modifyitems(items):
    """Mark "cli" every test that starts srlib as a process (it calls one of ``_PROCESS_HELPERS``), so
    ``pytest -m "not slow and not cli" tests`` is the quick loop of in-process tests."""
    for item in items:
        code = getattr(getattr(item, "function", None), "__code__", None)
        if code is not None and _PROCESS_HELPERS & set(code.co_names):
            item.add_marker(pytest.mark.cli)
