"""Notebook 02: what long ("hard") Adam training of the study's network reaches, and what the study's
resume, which restarted Adam midway, cost.

One long run per seed keeps its midpoint checkpoint; the first seed's run is continued a second time
from there with Adam's moments and step count forgotten, so the two share everything up to the midpoint.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..recipe import RECIPES, Recipe
from ..train import snapshot_path
from .notebook import BICUBIC
from .sweep import Result, Task
from .tables import difference_text

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
    """The runs the parameters ``p`` ask for: one long run per seed, and the first one's Adam restart."""
    base = hard_training_tasks(RECIPES["study"].with_(images=p["IMAGES"], lr=p["LR"]), p["ITERATIONS"], p["SEEDS"],
                               p["VALIDATE_EVERY"])
    return {"adam": base, "restart": [adam_restart_task(base[0])]}


def findings(p: dict, runs: list[Result], restarted: Result, summary: pd.DataFrame, paired: pd.DataFrame,
             images: int, study: list[str]) -> str:
    """What the run shows, as Markdown bullets written from its tables: ``summary`` and ``paired`` on
    ``images`` images of ``p["EVAL_SPLIT"]``; ``study``: the labels of the study's models scored."""
    def diff(a: str, b: str) -> str:
        return difference_text(paired, a, b)

    split, first = p["EVAL_SPLIT"], f"{THIS_RUN}, seed {p['SEEDS'][0]}"
    lines = [f"- {p['ITERATIONS']:,} iterations of Adam (lr {p['LR']:g}), {len(p['SEEDS'])} seed(s); final training MSE "
             + ", ".join(f"{r.final_loss:.1f}" for r in runs) + " (the study: ~84 after 43,114 iterations).",
             f"- On {images} {split} images: this run {summary.loc[THIS_RUN, 'psnr_rgb']:.2f} dB (mean per-image PSNR, "
             f"RGB), aligned bicubic {summary.loc[BICUBIC, 'psnr_rgb']:.2f} dB; this run minus bicubic "
             f"{diff(THIS_RUN, BICUBIC)}.",
             f"- The study's resume, which restarted Adam: continuing seed {p['SEEDS'][0]}'s run from its midpoint with "
             f"Adam restarted ends at training MSE {restarted.final_loss:.1f} against {runs[0].final_loss:.1f} with "
             f"Adam's state restored; the restored run minus the restarted one: {diff(first, RESTARTED)} (one seed: "
             "the interval covers the choice of images only).",
             f"- The shipped model (improved recipe, longer training) minus this run: {diff('shipped model', THIS_RUN)}.",
             f"- The study's own metric for this run: {summary.loc[THIS_RUN, 'study_psnr']:.2f} dB (the study reported "
             "28.6 dB on 10 random test images of full CelebA)."]
    lines += [f"- {k}: {summary.loc[k, 'psnr_rgb']:.2f} dB; this run minus it {diff(THIS_RUN, k)}; it minus bicubic "
              f"{diff(k, BICUBIC)}." for k in study]
    return "\n".join(lines)


def limitations(p: dict, images: int, val_images: int, data_label: str) -> str:
    """What the run's length, seeds and images leave open, as Markdown bullets."""
    development = p["EVAL_SPLIT"] == "validation"
    return (f"- {p['ITERATIONS']:,} iterations against the study's 43,114; {len(p['SEEDS'])} seed(s): with one seed the "
            "intervals cover the choice of images, not the luck of the initialisation.\n"
            f"- {images} {p['EVAL_SPLIT']} images and a {val_images}-image validation curve from `{data_label}`"
            + (" (a development set: its validation split was also used to choose recipes)." if development else "."))
