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
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..checkpoint import load_checkpoint, model_only, save_checkpoint
from ..files import atomic_write
from .sweep import final_loss

_SNAPSHOT = re.compile(r".+\.at\d+\.npz")


def _copy(data: bytes, dst: Path) -> bool:
    """Write ``data`` over ``dst`` atomically unless ``dst`` already holds the same bytes."""
    if dst.is_file() and dst.read_bytes() == data:
        return False
    atomic_write(dst, lambda f: f.write(data), "run record")
    return True


def store(run_folder: str | Path, records: str | Path) -> int:
    """Copy what ``run_folder`` holds of finished and unfinished runs into the store ``records``;
    returns how many records were new or changed."""
    run_folder, records = Path(run_folder), Path(records)
    if not run_folder.is_dir():
        return 0
    changed = 0
    for rec in sorted(run_folder.glob("*.json")):
        data = rec.read_bytes()  # read once: copied, and asked whether its weights are kept
        changed += _copy(data, records / rec.name)
        (records / "partial" / f"{rec.stem}.npz").unlink(missing_ok=True)
        weights, kept = run_folder / f"{rec.stem}.npz", records / f"{rec.stem}.npz"
        if json.loads(data).get("keep_weights") and weights.is_file() and not kept.is_file():
            save_checkpoint(kept, model_only(load_checkpoint(weights)))
    for ck in sorted(run_folder.glob("*.npz")):
        if _SNAPSHOT.fullmatch(ck.name):
            if not (records / ck.name).is_file():
                _copy(ck.read_bytes(), records / ck.name)
        elif not (run_folder / f"{ck.stem}.json").is_file():
            _copy(ck.read_bytes(), records / "partial" / ck.name)
    if (records / "partial").is_dir() and not any((records / "partial").iterdir()):
        (records / "partial").rmdir()
    return changed


def restore(records: str | Path, run_folder: str | Path) -> int:
    """Lay the store ``records`` into ``run_folder``, leaving whatever the run folder already holds;
    returns how many finished runs were restored."""
    records, run_folder = Path(records), Path(run_folder)
    if not records.is_dir():
        return 0
    run_folder.mkdir(parents=True, exist_ok=True)
    restored = 0
    for rec in sorted(records.glob("*.json")):
        if not (run_folder / rec.name).is_file():
            shutil.copyfile(rec, run_folder / rec.name)
            restored += 1
    for ck in sorted(records.glob("*.npz")):
        if not (run_folder / ck.name).is_file():
            shutil.copyfile(ck, run_folder / ck.name)
    for ck in sorted(records.glob("partial/*.npz")):
        if not (run_folder / ck.name).is_file() and not (run_folder / f"{ck.stem}.json").is_file():
            shutil.copyfile(ck, run_folder / ck.name)
    return restored


def table(records: str | Path) -> pd.DataFrame:
    """One row per record in ``records``: name, digest, optimizer, learning rate, seed, iterations,
    mean PSNR on the evaluation images, final training loss, training seconds over all sittings (counted from
    iteration ``timed_from``: 0, unless the run began before srlib kept its time), threads, srlib version."""
    rows = []
    for path in sorted(Path(records).glob("*.json")):
        r = json.loads(path.read_text())
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
