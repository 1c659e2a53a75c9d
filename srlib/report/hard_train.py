"""Notebook 02: what long ("hard") Adam training of the study's network reaches, and what the study's
resume, which restarted Adam midway, cost.

One long run per seed keeps its midpoint checkpoint; each is continued a second time from there with
Adam's moments and step count forgotten, so the two share everything up to the midpoint and their
difference, paired over the seeds, is what the study's resume cost.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..recipe import RECIPES, Recipe
from ..train import snapshot_path
from .notebook import BICUBIC
from .sweep import Result, Task
from .tables import difference_text, held_out_words

#: How the tables name the runs
THIS_RUN, RESTARTED = "this run", "this run, Adam restarted midway"


def hard_training_tasks(recipe: Recipe, iterations: int, seeds: list[int], validate_every: int) -> list[Task]:
    """One long run per seed, each keeping its checkpoint of the midpoint (``Task.snapshot_at``): where
    the study stopped and resumed its run, and where a run resumed with Adam restarted branches off."""
    return [Task(f"adam-seed{s}-{iterations}it", recipe, iterations, s, validate_every=validate_every,
                 snapshot_at=iterations // 2, keep_weights=s == seeds[0]) for s in seeds]


def adam_restart_task(base: Task) -> Task:
    """``base`` continued from its midpoint snapshot with Adam's moments and step count forgotten, as the
    study's resume did: the two runs share everything up to the midpoint, so their difference is what
    that mistake cost."""
    return replace(base, name=f"{base.name}-adam-restarted-at{base.snapshot_at}", snapshot_at=0, keep_weights=True,
                   restart_optimizer_from=snapshot_path(f"{base.name}.npz", base.snapshot_at).name)


def plan(p: dict, folders: Sequence[str | Path] = ()) -> dict[str, list[Task]]:
    """The runs the parameters ``p`` ask for: one long run per seed, and each one's Adam restart."""
    base = hard_training_tasks(RECIPES["study"].with_(images=p["IMAGES"], lr=p["LR"]), p["ITERATIONS"], p["SEEDS"],
                               p["VALIDATE_EVERY"])
    return {"adam": base, "restart": [adam_restart_task(b) for b in base]}


def late_rise(run: Result, share: float = 0.1) -> tuple[int, float]:
    """How much the validation PSNR of ``run`` still rose over the last ``share`` of its iterations:
    (the iteration that stretch starts at, the rise in dB from the check nearest it to the last)."""
    its, psnr = np.array(run.val_iteration), np.array(run.val_psnr)
    start = int(np.argmin(np.abs(its - (1 - share) * its[-1])))
    return int(its[start]), float(psnr[-1] - psnr[start])


def findings(p: dict, runs: list[Result], restarts: list[Result], summary: pd.DataFrame, paired: pd.DataFrame,
             images: int, study: list[str], held_out: pd.DataFrame) -> str:
    """What the run shows, as Markdown bullets written from its tables: ``summary`` and ``paired`` on
    ``images`` images of ``p["EVAL_SPLIT"]``; ``study``: the labels of the study's models scored;
    ``held_out``: ``tables.held_out_table`` on the test split (empty: not scored)."""
    def diff(a: str, b: str) -> str:
        return difference_text(paired, a, b)

    split = p["EVAL_SPLIT"]
    lines = [f"- {p['ITERATIONS']:,} iterations of Adam (lr {p['LR']:g}), {len(p['SEEDS'])} seed(s); final training MSE "
             + ", ".join(f"{r.final_loss:.1f}" for r in runs) + " (the study: ~84 after 43,114 iterations).",
             f"- **What long Adam training reaches**: on {images} {split} images, {summary.loc[THIS_RUN, 'psnr_rgb']:.2f} dB "
             f"(mean per-image PSNR, RGB, seed {p['SEEDS'][0]}; {summary.loc[THIS_RUN, 'study_psnr']:.2f} dB by the study's "
             f"own metric, which reported 28.6 dB on 10 random test images of full CelebA), against "
             f"{summary.loc[BICUBIC, 'psnr_rgb']:.2f} dB for the aligned bicubic; this run minus bicubic over the seeds "
             f"{diff(THIS_RUN, BICUBIC)}."]
    if runs[0].val_iteration:
        rises = [late_rise(r) for r in runs]
        lines.append(f"- Still rising at the end: over the last 10% of the iterations (from iteration {rises[0][0]:,}) "
                     "the validation PSNR rose " + ", ".join(f"{d:+.2f}" for _, d in rises) + " dB (per seed).")
    lines += ["- The study's resume, which restarted Adam: each seed's run continued from its midpoint with Adam "
              "restarted ends at training MSE " + ", ".join(f"{r.final_loss:.1f}" for r in restarts) + " against "
              + ", ".join(f"{r.final_loss:.1f}" for r in runs[:len(restarts)]) + " with Adam's state restored; the "
              f"restored runs minus the restarted ones, paired over {len(restarts)} seed(s): {diff(THIS_RUN, RESTARTED)}"
              + (" (one seed: the interval covers the choice of images only)." if len(restarts) == 1 else "."),
              f"- The shipped model (improved recipe, longer training) minus this run: {diff('shipped model', THIS_RUN)}."]
    lines += [f"- {k}: {summary.loc[k, 'psnr_rgb']:.2f} dB; this run minus it {diff(THIS_RUN, k)}; it minus bicubic "
              f"{diff(k, BICUBIC)}." for k in study]
    if not held_out.empty:
        lines.append(held_out_words(held_out, BICUBIC))
    return "\n".join(lines)


#: CelebA's train partition, which the study drew its training images from
STUDY_TRAIN_IMAGES = 162_770


def limitations(p: dict, images: int, val_images: int, data_label: str, train_images: int) -> str:
    """What the run's length, seeds and images leave open, as Markdown bullets (``train_images``: the
    train split's size here)."""
    development = p["EVAL_SPLIT"] == "validation"
    drawn = p["ITERATIONS"] * p["IMAGES"]
    return (f"- {p['ITERATIONS']:,} iterations against the study's 43,114; {len(p['SEEDS'])} seed(s): with one seed the "
            "intervals cover the choice of images, not the luck of the initialisation.\n"
            f"- The study's length holds in iterations, not in data: {drawn:,} images drawn are about "
            f"{drawn / train_images:.1f} passes over the {train_images:,} training images here, against about "
            f"{43_114 * 10 / STUDY_TRAIN_IMAGES:.1f} over CelebA's {STUDY_TRAIN_IMAGES:,} for the study.\n"
            f"- {images} {p['EVAL_SPLIT']} images and a {val_images}-image validation curve from `{data_label}`"
            + (" (a development set: its validation split was also used to choose recipes)." if development else "."))
