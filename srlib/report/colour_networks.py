"""Notebook 03: one network shared by the three colour channels against three networks, one per
channel, each with its own Adam, and three networks sharing one Adam as the study ran them (its bug,
reproduced on purpose); at equal iterations and at equal optimizer steps per network.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..recipe import RECIPES, Recipe
from .notebook import BICUBIC
from .sweep import Result, Task
from .tables import difference_text, difference_words, fmt_db, held_out_words, seed_difference, with_holm

#: How the tables name the study's own colour networks (``notebook.STUDY_WEIGHT_FOLDERS``)
STUDY_COLOUR = "2022 colour networks"

#: The three set-ups compared: one network shared by B, G and R; three networks each with its own
#: Adam; three networks sharing one Adam, as the study ran them (its bug, reproduced on purpose).
COLOUR_SETUPS: dict[str, dict[str, Any]] = {
    "shared network": {},
    "three networks": {"per_channel": True},
    "three networks, shared Adam (study bug)": {"per_channel": True, "shared_optimizer_bug": True},
}


#: Optimizer steps each network takes per iteration in each set-up: the shared network one per colour
#: channel; each per-channel network one on its own channel (the study's shared Adam also counted three
#: per iteration in its bias correction, but each network's weights moved once).
COLOUR_STEPS = {"shared network": 3, "three networks": 1, "three networks, shared Adam (study bug)": 1}


def colour_tasks(recipe: Recipe, iterations: int, seeds: list[int], validate_every: int = 0) -> dict[str, list[Task]]:
    """Per set-up of ``COLOUR_SETUPS``, one run per seed (the first seed keeps its weights)."""
    return {label: [Task(f"colour{i}-seed{s}-{iterations}it", recipe, iterations, s, keep_weights=s == seeds[0],
                         validate_every=validate_every, **kw) for s in seeds]
            for i, (label, kw) in enumerate(COLOUR_SETUPS.items())}


def at_equal_steps(runs: dict[str, list[Result]], reference: str = "shared network") -> pd.DataFrame:
    """Equal optimizer steps per network instead of equal iterations: each per-channel set-up at the end
    of its runs minus the ``reference`` (shared) network at the point of its validation curve nearest the
    same number of steps (``COLOUR_STEPS``), on the validation curve's images. Per seed the difference
    of the two validation PSNRs, with a t interval over the seeds. Empty without validation curves."""
    ref_runs, rows = runs[reference], []
    points = np.array(ref_runs[0].val_iteration)
    for label, rs in runs.items():
        if label == reference or not len(points) or not rs[0].val_iteration:
            continue
        steps = rs[0].task.iterations * COLOUR_STEPS[label]
        at = int(points[np.argmin(np.abs(points * COLOUR_STEPS[reference] - steps))])
        d = np.array([r.val_psnr[-1] - ref.val_psnr[ref.val_iteration.index(at)] for r, ref in zip(rs, ref_runs)])
        rows.append({"a": label, "a_iterations": rs[0].val_iteration[-1], "a_steps_per_network": steps,
                     "b": reference, "b_iterations": at, "b_steps_per_network": at * COLOUR_STEPS[reference],
                     **seed_difference(d)})
    return with_holm(pd.DataFrame(rows))


#: how many of the last validation checks a time-averaged end point takes (``late_means``)
LATE_CHECKS = 10


def late_means(runs: dict[str, list[Result]], pairs: list[tuple[str, str]], checks: int = LATE_CHECKS) -> pd.DataFrame:
    """Each (a, b) of ``pairs`` compared at time-averaged end points: per seed, the mean validation PSNR of
    a's last ``checks`` checks minus b's, with a t interval over the seeds (Holm over the rows). A run
    whose score swings by whole dB from check to check ends wherever it happened to stop; the mean of
    its last checks does not. Empty without validation curves."""
    rows = []
    for a, b in pairs:
        if a not in runs or b not in runs or not runs[a][0].val_psnr or not runs[b][0].val_psnr:
            continue
        d = np.array([np.mean(ra.val_psnr[-checks:]) - np.mean(rb.val_psnr[-checks:]) for ra, rb in zip(runs[a], runs[b])])
        taken = runs[a][0].val_iteration[-checks:]
        rows.append({"a": a, "b": b, "from_iteration": taken[0], "checks": len(taken), **seed_difference(d)})
    return with_holm(pd.DataFrame(rows)) if rows else pd.DataFrame()


def validation_spread(runs: dict[str, list[Result]], late: float = 0.5) -> pd.DataFrame:
    """How steady each set-up's training is: per group of runs (one per seed), over the validation
    checks in the last ``late`` share of the iterations, the standard deviation of the validation PSNR
    and its largest fall from one check to the next (0 when it never fell), as the range over the seeds.
    A run whose score jumps by whole dB from check to check has a final score that depends on where it
    stopped. Empty without validation curves."""
    rows = []
    for label, rs in runs.items():
        start = (1 - late) * rs[0].task.iterations
        tails = [v[it >= start] for it, v in ((np.array(r.val_iteration), np.array(r.val_psnr)) for r in rs)]
        tails = [t for t in tails if len(t) >= 2]
        if not tails:
            continue
        spread = [float(np.std(t)) for t in tails]
        fall = [max(0.0, float(np.max(t[:-1] - t[1:]))) for t in tails]
        rows.append({"run": label, "from_iteration": int(np.ceil(start)), "checks": len(tails[0]), "seeds": len(tails),
                     "std_db_min": min(spread), "std_db_max": max(spread),
                     "largest_fall_db_min": min(fall), "largest_fall_db_max": max(fall)})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def plan(p: dict, folders: Sequence[str | Path] = ()) -> dict[str, list[Task]]:
    """The runs the parameters ``p`` ask for: every set-up of ``COLOUR_SETUPS`` for every seed."""
    return colour_tasks(RECIPES["study"].with_(images=p["IMAGES"], lr=p["LR"]), p["ITERATIONS"], p["SEEDS"],
                        p["VALIDATE_EVERY"])


def comparisons(study: bool) -> list[tuple[str, str]]:
    """The paired differences the notebook reports (``study``: the study's colour networks are scored)."""
    shared, three, bug = COLOUR_SETUPS
    pairs = [(three, shared), (bug, three), (shared, BICUBIC)]
    return pairs + ([(bug, STUDY_COLOUR), (STUDY_COLOUR, BICUBIC)] if study else [])


def findings(p: dict, table: pd.DataFrame, paired: pd.DataFrame, steps: pd.DataFrame, spread: pd.DataFrame,
             late: pd.DataFrame, held_out: pd.DataFrame, images: int) -> str:
    """What the runs show, as Markdown bullets written from the notebook's tables (``table``: the seed
    summary, ``paired``: ``comparisons``, ``steps``: ``at_equal_steps``, ``spread``:
    ``validation_spread``, ``late``: ``late_means``, ``held_out``: ``tables.held_out_table``), on
    ``images`` images of ``p["EVAL_SPLIT"]``."""
    def diff(a: str, b: str) -> str:
        return difference_text(paired, a, b)

    shared, three, bug = COLOUR_SETUPS
    its = p["ITERATIONS"]
    lines = [f"- After {its:,} iterations each ({len(p['SEEDS'])} seeds, {images} {p['EVAL_SPLIT']} images): "
             + "; ".join(f"{k} {fmt_db(r.psnr_rgb, r.ci_low, r.ci_high)}" for k, r in table.iterrows()) + ".",
             f"- Three networks with their own Adam minus one shared network: {diff(three, shared)}; at these equal "
             f"iterations the shared network took {its * COLOUR_STEPS[shared]:,} optimizer steps, each per-channel "
             f"network {its * COLOUR_STEPS[three]:,}.",
             f"- The study's shared Adam minus three separate Adams: {diff(bug, three)}.",
             f"- The shared network minus the aligned bicubic: {diff(shared, BICUBIC)}."]
    lines += [f"- At equal optimizer steps per network ({len(p['SEEDS'])} seeds, {p['VAL_IMAGES']} validation images), "
              f"{r.a} after {r.a_iterations:,} iterations ({r.a_steps_per_network:,} steps per network) minus the shared "
              f"network after {r.b_iterations:,} ({r.b_steps_per_network:,} steps): "
              f"{difference_words(r.a_minus_b_db, r.ci_low, r.ci_high, r.measurable)}." for r in steps.itertuples()]
    if not spread.empty:
        lines.append("- Over the second half of each run, the standard deviation of the validation PSNR per seed: "
                     + "; ".join(f"{k} {r.std_db_min:.2f}-{r.std_db_max:.2f} dB (falls of up to "
                                 f"{r.largest_fall_db_max:.2f} dB between two checks)" for k, r in spread.iterrows()) + ".")
    if not late.empty:
        lines.append(f"- Time-averaged end points (the mean of each run's last {int(late.checks.iloc[0])} validation "
                     f"checks, from iteration {int(late.from_iteration.iloc[0]):,}; {p['VAL_IMAGES']} validation images): "
                     + "; ".join(f"{r.a} minus {r.b} {difference_words(r.a_minus_b_db, r.ci_low, r.ci_high, r.measurable)}"
                                 for r in late.itertuples()) + ".")
    if not steps.empty and not late.empty:
        lines.append(f"- Equal iterations are equal compute: one iteration is {3 * p['IMAGES']} single-channel examples "
                     "through one network of this size in every set-up, so the rows above compare equal cost; the "
                     "shared network has a third of the weights and a third of the inference time of three networks.")
    if (bug, STUDY_COLOUR) in set(zip(paired.a, paired.b)):
        lines.append(f"- The study's shared-Adam set-up here minus the study's own colour networks: "
                     f"{diff(bug, STUDY_COLOUR)}; the study's colour networks minus bicubic: {diff(STUDY_COLOUR, BICUBIC)}.")
    lines.append("- The study compared 25,000 iterations of three networks with its shared Adam against 43,114 of one "
                 "network; the rows above compare equal lengths.")
    if not held_out.empty:
        lines.append(held_out_words(held_out, BICUBIC))
    return "\n".join(lines)


def limitations(p: dict, images: int, data_label: str) -> str:
    """What the runs' length, seeds and images leave open, as Markdown bullets."""
    return (f"- {p['ITERATIONS']:,} iterations per run against the study's 25,000; {len(p['SEEDS'])} seeds; {images} "
            f"images from `{data_label}`.\n"
            "- A per-channel model runs three networks: three times the weights and the inference time of the shared one.")
