"""Where things are: the checkout srlib runs from and the user's cache folder (the data a run reads when
it is given none: ``data.default``). One module, so that a path is decided in one place."""
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
