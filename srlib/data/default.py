"""The data a run reads when it is given none (``--data`` left out, a notebook's ``DATA = "auto"``)."""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import cache_dir, in_checkout, project_root
from .celeba import IMAGE_DIR
from .sample import build_sample


def default_data_dir() -> Path:
    """Where data comes from when the user names none: ``$SRLIB_DATA``; else ``<repo>/data`` if it holds
    CelebA; else the embedded sample in ``<repo>/data/sample``, or in ``cache_dir()/sample`` for an
    installed srlib (built on first use)."""
    if os.environ.get("SRLIB_DATA"):
        return Path(os.environ["SRLIB_DATA"])
    data = project_root() / "data"
    if in_checkout() and (data / IMAGE_DIR).is_dir():
        return data
    sample = (data if in_checkout() else cache_dir()) / "sample"
    if not (sample / "list_eval_partition.csv").is_file():
        build_sample(sample)
    return sample


def resolve_data_dir(data: str | os.PathLike | None) -> Path:
    """A user's ``--data`` / notebook ``DATA`` value: None, "" or "auto" mean ``default_data_dir()``."""
    if data is None or str(data) in ("", "auto"):
        return default_data_dir()
    return Path(data)
