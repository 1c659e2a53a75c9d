"""Writing the files a user keeps (checkpoints, upscaled images): all or nothing.

A file is written to a temporary file beside its target, flushed to disk, then renamed over the target
in one step. A run killed mid-write, or a write that fails (a full disk), leaves the previous file
intact; the temporary file is removed on failure, and one left by a killed run (SIGKILL cannot be
caught) is removed by the next write to the same target.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import SrlibError


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], what: str = "file") -> Path:
    """Write ``path`` through ``write(f)`` atomically; any OS error becomes one ``SrlibError`` line."""
    path = Path(path)
    if path.is_dir():
        raise SrlibError(f"{path} is a folder; give a file name for the {what}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{_temp_prefix(path)}*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SrlibError(f"cannot write {what} {path}: {e.strerror}; choose a writable folder") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; these are ordinary files
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise SrlibError(f"cannot write {what} {path}: {e.strerror or e}; the previous file, if any, is "
                         f"unchanged; free some space or choose another folder") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable_folder(path: str | os.PathLike, option: str = "-o/--out") -> Path:
    """Create ``path`` if needed and prove it writable now, before any work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".srlib-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SrlibError(f"output folder {path} is not writable ({e.strerror}); choose another with {option}") from None
    return path
