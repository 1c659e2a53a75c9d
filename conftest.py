"""What every pytest run of this repository shares, whatever folder it starts in."""
from __future__ import annotations

from pathlib import Path


def pytest_configure(config):
    """pyproject.toml's addopts name nbval's sanitize file relative to the repository, and pytest reads it
    relative to the folder it started in: resolved against the repository, ``pytest --nbval-lax NOTEBOOK``
    works from notebooks/ (or anywhere) as from the root."""
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not Path(path).is_absolute() and not Path(path).exists():
        config.option.nbval_sanitize_with = str(config.rootpath / path)


def pytest_report_header(config):
    """pyproject.toml's addopts turn on ``--nbval-lax``, which wins over a ``--nbval`` on the command line:
    said at the top of the run rather than left silent."""
    if getattr(config.option, "nbval", False) and getattr(config.option, "nbval_lax", False):
        return ("srlib: notebooks are checked with --nbval-lax (pyproject.toml): only cells tagged nbval-check-output "
                "are compared (tables and conclusions; progress bars and figures vary by machine); --nbval is ignored")
    return None
