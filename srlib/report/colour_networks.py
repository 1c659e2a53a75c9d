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

from ..evaluation.metrics import seed_interval
from ..recipe import RECIPES, Recipe
from .notebook import BICUBIC
from .sweep import Result, Task
from .tables import difference_columns, difference_text, difference_words, fmt_db, per_seed_text

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
        mean, low, high = seed_interval(d)
        rows.append({"a": label, "a_iterations": rs[0].val_iteration[-1], "a_steps_per_network": steps,
                     "b": reference, "b_iterations": at, "b_steps_per_network": at * COLOUR_STEPS[reference],
                     **difference_columns(mean, low, high, f"t over {len(d)} seeds"), "per_seed_db": per_seed_text(d)})
    return pd.DataFrame(rows)


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
             images: int) -> str:
    """What the runs show, as Markdown bullets written from the notebook's tables (``table``: the seed
    summary, ``paired``: ``comparisons``, ``steps``: ``at_equal_steps``, ``spread``:
    ``validation_spread``), on ``images`` images of ``p["EVAL_SPLIT"]``."""
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
    if (bug, STUDY_COLOUR) in set(zip(paired.a, paired.b)):
        lines.append(f"- The study's shared-Adam set-up here minus the study's own colour networks: "
                     f"{diff(bug, STUDY_COLOUR)}; the study's colour networks minus bicubic: {diff(STUDY_COLOUR, BICUBIC)}.")
    lines.append("- The study compared 25,000 iterations of three networks with its shared Adam against 43,114 of one "
                 "network; the rows above compare equal lengths.")
    return "\n".join(lines)


def limitations(p: dict, images: int, data_label: str) -> str:
    """What the runs' length, seeds and images leave open, as Markdown bullets."""
    return (f"- {p['ITERATIONS']:,} iterations per run against the study's 25,000; {len(p['SEEDS'])} seeds; {images} "
            f"images from `{data_label}`.\n"
            "- A per-channel model runs three networks: three times the weights and the inference time of the shared one.")
