"""Reading files only when they are what they claim, and writing the files a user keeps (checkpoints,
upscaled images, tables): all or nothing.

Reads open regular files only: a FIFO would block forever, a device (``/dev/zero``) never ends.

A file is written to a temporary file beside its target, flushed to disk, then renamed over the target
in one step. A run killed mid-write, or a write that fails (a full disk), leaves the previous file
intact; the temporary file is removed on failure, and one left by a killed run (SIGKILL cannot be
caught) is removed by the next write to the same target.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .errors import SrlibError


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def open_regular(path: str | os.PathLike, what: str = "file", follow_links: bool = True) -> BinaryIO:
    """``path`` opened for reading in binary, refused in one line unless it is a regular file. Opened
    without blocking first, so a FIFO is refused rather than waited on. A symbolic link to a regular file
    is followed (a user's input), or with ``follow_links=False`` refused unread (files srlib keeps for
    itself, such as the record store, where a link could lead a reader anywhere)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_links:
            raise SrlibError(f"{path}: a symbolic link, where a {what} must be a plain file") from None
        raise SrlibError(f"{path}: cannot read the {what} ({e.strerror}); check the path") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise SrlibError(f"{path}: {kind}, not a regular file; give the {what} file itself")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: str | os.PathLike, max_bytes: int, what: str = "file", follow_links: bool = True) -> bytes:
    """The bytes of the regular file ``path`` (``open_regular``), refused unread when it holds more than
    ``max_bytes``, and refused when it grows past them while being read."""
    with open_regular(path, what, follow_links) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise SrlibError(f"{path}: refused, {size:,} bytes is more than any {what} srlib reads "
                             f"({max_bytes:,}); check the file")
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise SrlibError(f"{path}: cannot read the {what} ({e.strerror})") from None
    if len(data) > max_bytes:
        raise SrlibError(f"{path}: refused, it grew past the {max_bytes:,} bytes any {what} srlib reads while "
                         "being read; check the file")
    return data


def check_new_file(path: str | os.PathLike, force: bool, option: str) -> Path:
    """Refuse, before any work, an output path that cannot take a new file: a folder, a device or other
    non-regular file, a name longer than the file system allows, or an existing file unless ``force``."""
    path = Path(path)
    try:
        name_max = os.pathconf(path.parent if path.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(path.name)) > name_max:
        raise SrlibError(f"{option} {path}: the file name is longer than the {name_max} bytes the file system "
                         f"allows; choose a shorter name")
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # a folder that is not there is made, or refused, later
        return path
    except OSError as e:
        raise SrlibError(f"{option} {path}: cannot use this path ({e.strerror}); choose another") from None
    if stat.S_ISDIR(st.st_mode):
        raise SrlibError(f"{option} {path} is a folder; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise SrlibError(f"{option} {path} is a device, FIFO or socket, not a file; choose a file name")
    if not force:
        raise SrlibError(f"{path} exists; pass --force to replace it, or choose another {option}")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], what: str = "file") -> Path:
    """Write ``path`` through ``write(f)`` atomically; any OS error becomes one ``SrlibError`` line."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise SrlibError(f"{path} is a folder; give a file name for the {what}")
    if mode is not None and not stat.S_ISREG(mode):
        raise SrlibError(f"{path} is a device, FIFO or socket; give a file name for the {what}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{_temp_prefix(path)}*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SrlibError(f"cannot write {what} {path}: {e.strerror}; choose a writable folder") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; these are ordinary files
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


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only read by setting, a race
    with other threads creating files): from /proc where Linux has it, else from a probe file's mode."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as d:
        probe = Path(d) / "probe"
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o777))
        return 0o777 & ~probe.stat().st_mode


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


@contextmanager
def exclusive_claim(path: str | os.PathLike, option: str) -> Iterator[None]:
    """While inside, this process alone writes ``path``: a second srlib command claiming it is refused in
    one line naming ``option``, instead of both running and one run's file silently replacing the
    other's. The claim is an exclusive lock on ``.NAME.lock`` beside the file, removed on the way out."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise SrlibError(f"{option} {path}: cannot claim it ({e.strerror} on {lock.name}); choose another folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SrlibError(f"{option} {path}: another srlib command is writing it now; wait for it to finish, or "
                             f"choose another {option}") from None
        try:  # the lock file may have been removed by its last holder between our open and our lock
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
