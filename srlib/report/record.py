"""One run's record (``NAME.json``): what it holds, the seal over it, and how it is read.

A record is input like a checkpoint: the record store is committed, shared and merged, so a record may
come back damaged, edited or replaced by something that is no record at all. ``read`` takes it only when
it is a plain file (no link followed) of bounded size and depth holding JSON of the record's shape:
the digest of the task that made it, one score per evaluation image, finite unless the run diverged, a
loss per iteration of the task's length, a validation curve inside the run, and a seal (``seal``: the
SHA-256 of everything else in it) that still matches, so an edited score or a record cut short by a
merge is told from a run's own. Anything else raises ``BadRecord`` with one line naming the file: the
caller sets it aside and the run is trained again.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import TypeGuard

from ..errors import SrlibError
from ..files import read_regular

#: the largest record srlib reads (a 43,114-iteration run's record is about 1.5 MB)
MAX_RECORD_BYTES = 32 << 20
#: the deepest nesting of lists and objects a record may have (a record has 3 levels; a recipe 2 more)
MAX_DEPTH = 16
SEAL = "record_sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BadRecord(ValueError):
    """A file in a record's place that is not a usable record; the message is one line naming it."""


def _canonical(record: dict) -> bytes:
    return json.dumps({k: v for k, v in record.items() if k != SEAL}, sort_keys=True, separators=(",", ":")).encode()


def seal(record: dict) -> dict:
    """``record`` with its seal: the SHA-256 of its canonical JSON without the seal."""
    return {**record, SEAL: hashlib.sha256(_canonical(record)).hexdigest()}


def _depth_ok(data: bytes) -> bool:
    """Whether the JSON text nests lists and objects at most MAX_DEPTH deep (brackets inside strings
    skipped): checked before parsing, since Python's parser recurses once per level."""
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def read_plain(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of the plain file ``path`` (``files.read_regular``: a symbolic link, folder, FIFO or
    device is refused unread), at most ``max_bytes``; raises BadRecord with one line naming the file."""
    try:
        return read_regular(path, max_bytes, what, follow_links=False)
    except SrlibError as e:
        raise BadRecord(str(e)) from None


def read_json(path: Path, max_bytes: int, what: str) -> object:
    """The JSON in the plain file ``path`` (``read_plain``), at most MAX_DEPTH deep; raises BadRecord
    with one line naming the file."""
    data = read_plain(path, max_bytes, what)
    if not _depth_ok(data):
        raise BadRecord(f"{path}: larger or more deeply nested than any {what}")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise BadRecord(f"{path}: not JSON ({' '.join(str(e).split())[:80]}), e.g. a merge conflict's markers") from None


def _numbers(value: object, finite: bool) -> TypeGuard[list]:
    return isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and (not finite or math.isfinite(v)) for v in value)


def check(record: object, path: Path, digest: str | None = None, iterations: int | None = None) -> dict:
    """``record`` (parsed from ``path``) if it has a record's shape and its seal matches; ``digest`` and
    ``iterations``: the task it must be of. Raises BadRecord naming what is wrong."""
    def bad(why: str) -> BadRecord:
        return BadRecord(f"{path}: {why}; not a record srlib wrote (damaged, edited or merged): it is set aside "
                         f"and the run trains again (delete the file, or restore it from git)")

    if not isinstance(record, dict):
        raise bad(f"holds a JSON {type(record).__name__}, not an object")
    if not isinstance(record.get("task"), dict) or not isinstance(record.get("task_digest"), str):
        raise bad("no task, or no task digest")
    if digest is not None and record["task_digest"] != digest:
        raise bad("its task digest is another task's")
    diverged = record.get("diverged_at")
    if diverged is not None and (not isinstance(diverged, int) or isinstance(diverged, bool) or diverged < 0):
        raise bad(f"diverged_at {diverged!r:.20} is not an iteration")
    names, psnr = record.get("eval_images"), record.get("psnr")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise bad("no list of evaluation images")
    if not _numbers(psnr, finite=diverged is None) or len(psnr) != len(names):
        raise bad(f"not one {'finite ' if diverged is None else ''}score per evaluation image ({len(names)})")
    loss = record.get("loss")
    expected = diverged if diverged is not None else iterations
    if not _numbers(loss, finite=False) or (expected is not None and len(loss) != expected):
        raise bad(f"not one training loss per iteration{f' ({expected})' if expected is not None else ''}")
    steps, curve = record.get("val_iteration"), record.get("val_psnr")
    if not (_numbers(steps, finite=True) and _numbers(curve, finite=False) and len(steps) == len(curve)
            and all(isinstance(s, int) and 1 <= s <= len(loss) for s in steps)
            and all(a < b for a, b in zip(steps, steps[1:]))):
        raise bad("a validation curve that is not one score per validation iteration of the run")
    if not isinstance(record.get(SEAL), str) or not _HEX64.fullmatch(record[SEAL]):
        raise bad("no seal")
    if hashlib.sha256(_canonical(record)).hexdigest() != record[SEAL]:
        raise bad("its seal does not match what it holds")
    return record


def read(path: Path, digest: str | None = None, iterations: int | None = None) -> dict:
    """The record at ``path`` (``check``), read as ``read_json`` reads."""
    return check(read_json(path, MAX_RECORD_BYTES, "run record"), path, digest, iterations)
