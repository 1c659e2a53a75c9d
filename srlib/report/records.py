"""The report's record store: every finished training run as small plain files, kept with the published
report, so a report that takes several sittings (or machines) never loses a finished run, and every
number it prints traces back to the runs behind it.

A store folder (``conclusion/records/<preset>/<experiment>/`` for a published report) holds, per run:
- ``NAME.json``: the run's record, written by ``sweep.run_task``: the task's whole definition and its
  digest, srlib and NumPy versions, threads, the last sitting's wall time and the training time over all
  sittings, the training loss of every iteration, the validation curve, and the PSNR of each evaluation
  image, named (``records.table`` reads them all into one pandas table);
- ``NAME.npz``: the model alone (no optimizer state) of the runs whose images a figure shows
  (``Task.keep_weights``);
- ``NAME.atN.npz``: a snapshot another run branches from (``Task.snapshot_at``);
- ``partial/NAME.npz``: the last checkpoint of a run that has not finished, for the next sitting.
``store`` copies a run folder's work into the store; ``restore`` lays it back into a run folder, where
``sweep.run_tasks`` takes a record of the same task and evaluation images as done.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from ..checkpoint import load_checkpoint, model_only, save_checkpoint
from ..errors import SrlibError, note
from ..files import atomic_write
from . import record
from .sweep import final_loss

_SNAPSHOT = re.compile(r".+\.at\d+\.npz")
#: the largest kept model, snapshot or unfinished checkpoint the store copies (the photo model's training
#: checkpoint is about 4 MB)
MAX_CHECKPOINT_BYTES = 256 << 20


def _check_store(records: Path) -> None:
    """The store and its ``partial/`` must be plain folders: the store is committed and shared, and a link
    there would send srlib's writes and deletions somewhere else."""
    for folder in (records, records / "partial"):
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
            raise SrlibError(f"{folder}: {kind}, where the record store keeps a plain folder; replace it with a "
                             f"folder (git checkout it, or move it away)")


def _plain_files(folder: Path, pattern: str) -> list[Path]:
    """The plain files of ``folder`` matching ``pattern``; anything else there (a link, a folder, a FIFO
    or a device under a record's name) is left alone, with a note."""
    out = []
    for path in sorted(folder.glob(pattern)):
        mode = os.lstat(path).st_mode
        if stat.S_ISREG(mode):
            out.append(path)
        else:
            note(f"{path} is not a plain file (a link, folder or device) and is left out of the record store; remove it")
    return out


def _bytes(path: Path) -> bytes | None:
    """A plain file's bytes, at most MAX_CHECKPOINT_BYTES (else None, with a note)."""
    try:
        return record.read_plain(path, MAX_CHECKPOINT_BYTES, "checkpoint")
    except record.BadRecord as e:
        note(f"{e}; it is left out of the record store")
        return None


def _copy(data: bytes, dst: Path) -> bool:
    """Write ``data`` over ``dst`` atomically unless ``dst`` already holds the same bytes."""
    if dst.is_file() and not dst.is_symlink() and dst.read_bytes() == data:
        return False
    atomic_write(dst, lambda f: f.write(data), "run record")
    return True


def store(run_folder: str | Path, records: str | Path) -> int:
    """Copy what ``run_folder`` holds of finished and unfinished runs into the store ``records``;
    returns how many records were new or changed."""
    run_folder, records = Path(run_folder), Path(records)
    if not run_folder.is_dir():
        return 0
    _check_store(records)
    changed = 0
    for rec in _plain_files(run_folder, "*.json"):
        try:
            r = record.read(rec)
        except record.BadRecord as e:
            note(f"{e}")
            continue
        changed += _copy(json.dumps(r).encode(), records / rec.name)
        (records / "partial" / f"{rec.stem}.npz").unlink(missing_ok=True)
        weights, kept = run_folder / f"{rec.stem}.npz", records / f"{rec.stem}.npz"
        if r.get("keep_weights") and weights.is_file() and not kept.is_file():
            save_checkpoint(kept, model_only(load_checkpoint(weights)))
    for ck in _plain_files(run_folder, "*.npz"):
        if _SNAPSHOT.fullmatch(ck.name):
            if not (records / ck.name).is_file() and (data := _bytes(ck)) is not None:
                _copy(data, records / ck.name)
        elif not (run_folder / f"{ck.stem}.json").is_file() and (data := _bytes(ck)) is not None:
            _copy(data, records / "partial" / ck.name)
    if (records / "partial").is_dir() and not any((records / "partial").iterdir()):
        (records / "partial").rmdir()
    return changed


def restore(records: str | Path, run_folder: str | Path) -> int:
    """Lay the store ``records`` into ``run_folder``, leaving whatever the run folder already holds;
    returns how many finished runs were restored. Only plain files are read, each bounded; a record that
    is not one srlib wrote (``record.read``) is set aside with a note, so its run trains again."""
    records, run_folder = Path(records), Path(run_folder)
    if not records.is_dir():
        return 0
    _check_store(records)
    run_folder.mkdir(parents=True, exist_ok=True)
    restored, good = 0, set()
    for rec in _plain_files(records, "*.json"):
        if (run_folder / rec.name).is_file():
            good.add(rec.stem)
            continue
        try:
            r = record.read(rec)
        except record.BadRecord as e:
            note(f"{e}")
            continue
        _copy(json.dumps(r).encode(), run_folder / rec.name)
        good.add(rec.stem)
        restored += 1
    for ck in [*_plain_files(records, "*.npz"), *_plain_files(records, "partial/*.npz")]:
        partial = ck.parent.name == "partial"
        if (run_folder / ck.name).is_file() or (partial and (run_folder / f"{ck.stem}.json").is_file()):
            continue
        if not partial and not _SNAPSHOT.fullmatch(ck.name) and ck.stem not in good:
            continue  # a kept model whose record was set aside: laid down, it would pose as the run's checkpoint
        if (data := _bytes(ck)) is not None:
            _copy(data, run_folder / ck.name)
    return restored


def table(records: str | Path) -> pd.DataFrame:
    """One row per record in ``records``: name, digest, optimizer, learning rate, seed, iterations,
    mean PSNR on the evaluation images, final training loss, training seconds over all sittings (counted from
    iteration ``timed_from``: 0, unless the run began before srlib kept its time), threads, srlib version."""
    rows = []
    for path in _plain_files(Path(records), "*.json"):
        try:
            r = record.read(path)
        except record.BadRecord as e:
            note(f"{e}")
            continue
        task = r.get("task", {})
        recipe = task.get("recipe", {})
        psnr = np.array(r["psnr"], np.float64)
        rows.append({"name": path.stem, "digest": r.get("task_digest"), "recipe": recipe.get("name"),
                     "optimizer": recipe.get("optimizer"), "lr": recipe.get("lr"), "seed": task.get("seed"),
                     "iterations": task.get("iterations"), "eval_images": len(psnr),
                     "psnr_rgb": float(psnr.mean()) if len(psnr) else float("nan"),
                     "final_loss": final_loss(r["loss"]),
                     "diverged_at": r.get("diverged_at"), "train_s": r.get("train_s"),
                     "timed_from": r.get("timed_from"), "threads": r.get("threads"),
                     "srlib": r.get("srlib")})
    return pd.DataFrame(rows)
