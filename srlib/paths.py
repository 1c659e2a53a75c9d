"""Where things are: the checkout srlib runs from, the user's cache folder, and the data a run reads when
it is given none. One module, so that a path is decided in one place."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout srlib runs from (the folder holding srlib/, notebooks/ and data/)."""
    return Path(__file__).resolve().parent.parent


def in_checkout() -> bool:
    """True when srlib runs from its repository, False when installed (``pip install .``)."""
    return (project_root() / "pyproject.toml").is_file() and (project_root() / "notebooks").is_dir()


def cache_dir() -> Path:
    """Where an installed srlib keeps what it builds: ``$XDG_CACHE_HOME/srlib`` (``~/.cache/srlib``),
    never inside site-packages."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "srlib"


def default_data_dir() -> Path:
    """Where data comes from when the user names none: ``$SRLIB_DATA``; else ``<repo>/data`` if it holds
    CelebA; else the embedded sample in ``<repo>/data/sample``, or in ``cache_dir()/sample`` for an
    installed srlib (built on first use)."""
    from .data.celeba import IMAGE_DIR  # here, not at the top: the engine asks this module for its cache folder

    if os.environ.get("SRLIB_DATA"):
        return Path(os.environ["SRLIB_DATA"])
    data = project_root() / "data"
    if in_checkout() and (data / IMAGE_DIR).is_dir():
        return data
    sample = (data if in_checkout() else cache_dir()) / "sample"
    if not (sample / "list_eval_partition.csv").is_file():
        from .data.sample import build_sample

        build_sample(sample)
    return sample


def resolve_data_dir(data: str | os.PathLike | None) -> Path:
    """A user's ``--data`` / notebook ``DATA`` value: None, "" or "auto" mean ``default_data_dir()``."""
    if data is None or str(data) in ("", "auto"):
        return default_data_dir()
    return Path(data)
