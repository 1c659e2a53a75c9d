"""Notebook 04: what each change of the improved recipe is worth, with all the others in place (leave
one out), and how fast the recipe converges as the changes are added one by one (the build-up ladder).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.celeba import Pairs
from ..data.degrade import to_uint8
from ..evaluation.metrics import as_method
from ..recipe import RECIPES, Recipe
from .notebook import BICUBIC, slug
from .sweep import Result, Task, psnr_matrix
from .tables import difference_words, fmt_db, held_out_words, paired_table, seed_summary, with_holm

#: The improved recipe's changes to the study's, each a step of its own (the learning rate apart from
#: the schedule that comes with it).
RECIPE_CHANGES: list[tuple[str, dict]] = [
    ("He init", {"init": "he"}),
    ("biases", {"bias": True}),
    ("0..1 targets", {"output_scale": 255.0}),
    ("residual over aligned bicubic", {"residual": True, "final_relu": False, "final_init_scale": 0.01}),
    ("learning rate 2e-3", {"lr": 2e-3}),
    ("warm-up & cosine decay", {"warmup": 200, "cosine": True}),
    ("one batch of 30", {"stack_channels": True}),
    ("flips", {"flips": True}),
]
#: Changes whose worth short runs left in doubt: also measured at the shipped model's length.
CONTESTED = ["biases", "warm-up & cosine decay", "one batch of 30", "flips"]
#: The build-up ladder: the study recipe, then each change on top of the ones before.
ABLATION_STEPS: list[tuple[str, dict]] = [("study recipe", {})] + [(f"+ {label}", c) for label, c in RECIPE_CHANGES]


def _applied(recipe: Recipe, changes: list[dict], iterations: int) -> Recipe:
    """``recipe`` with ``changes`` applied in turn (warm-up shortened to a tenth of a short run)."""
    for change in changes:
        change = dict(change)
        if "warmup" in change:
            change["warmup"] = min(change["warmup"], max(1, iterations // 10))
        recipe = recipe.with_(**change)
    return recipe


def ablation_recipes(iterations: int) -> list[tuple[str, Recipe]]:
    """The cumulative ladder from the study recipe to the improved one."""
    return [(label, _applied(RECIPES["study"], [c for _, c in ABLATION_STEPS[:i + 1]], iterations).with_(name=label))
            for i, (label, _) in enumerate(ABLATION_STEPS)]


def leave_one_out_recipes(iterations: int, only: list[str] | None = None) -> list[tuple[str, Recipe]]:
    """The improved recipe, then the improved recipe without each change (``only``: these changes): what
    a change is worth when all the others are there, whatever order they were found in."""
    full = [("improved recipe", [c for _, c in RECIPE_CHANGES])]
    without = [(f"without {label}", [c for other, c in RECIPE_CHANGES if other != label])
               for label, _ in RECIPE_CHANGES if only is None or label in only]
    return [(label, _applied(RECIPES["study"], changes, iterations).with_(name=label)) for label, changes in full + without]


def ablation_tasks(lengths: list[int], seeds: list[int]) -> dict[tuple[int, str], list[Task]]:
    """(length, step label) -> one task per seed, for every step of the ladder at every length."""
    return {(n, label): [Task(f"ablation-{slug(label)}-seed{s}-{n}it", recipe, n, s, keep_weights=s == seeds[0])
                         for s in seeds]
            for n in lengths for label, recipe in ablation_recipes(n)}


def leave_one_out_tasks(lengths: list[int], seeds: list[int], only: list[str] | None = None
                        ) -> dict[tuple[int, str], list[Task]]:
    """(length, label) -> one task per seed, for the improved recipe and each recipe without one change."""
    return {(n, label): [Task(f"loo-{slug(label)}-seed{s}-{n}it", recipe, n, s, keep_weights=s == seeds[0])
                         for s in seeds]
            for n in lengths for label, recipe in leave_one_out_recipes(n, only)}


def ablation_table(results: dict[tuple[int, str], list[Result]]) -> pd.DataFrame:
    """Per length and step of the ladder: mean validation PSNR with its 95% interval across seeds, and
    the gain over the step before, paired on seeds and images (``paired_table``)."""
    rows = []
    for n in dict.fromkeys(n for n, _ in results):
        labels = [label for m, label in results if m == n]
        summary = seed_summary({label: results[(n, label)] for label in labels})
        scores = {label: psnr_matrix(results[(n, label)]) for label in labels}
        gains = paired_table(scores, list(zip(labels[1:], labels[:-1]))).set_index("a")
        for label in labels:
            row = {"iterations": n, "step": label, **summary.loc[label, ["psnr_rgb", "ci_low", "ci_high", "seeds"]]}
            if label in gains.index:
                g = gains.loc[label]
                row.update(gain_db=g.a_minus_b_db, gain_low=g.ci_low, gain_high=g.ci_high, measurable=g.measurable)
            rows.append(row)
    return pd.DataFrame(rows)


def leave_one_out_table(results: dict[tuple[int, str], list[Result]]) -> pd.DataFrame:
    """Per length and change: the improved recipe minus the recipe without that change (its worth given
    all the others), paired on seeds and images, with each seed's difference and its 95% t interval."""
    tables = []
    for n in dict.fromkeys(n for n, _ in results):
        scores = {label: psnr_matrix(rs) for (m, label), rs in results.items() if m == n}
        changes = [label for label in scores if label.startswith("without ")]
        t = paired_table(scores, [("improved recipe", label) for label in changes])
        t.insert(0, "change", [label.removeprefix("without ") for label in changes])
        t.insert(0, "iterations", n)
        t.insert(2, "seeds", len(scores["improved recipe"]))
        tables.append(t.drop(columns=["a", "b"]).rename(columns={"a_minus_b_db": "worth_db"}))
    return with_holm(pd.concat(tables, ignore_index=True))  # one family: Holm over every length's changes


def border_frame(methods: dict, pairs: Pairs, border: int = 4) -> pd.DataFrame:
    """How much worse each method is along the image border than inside it: the MSE (0..255, uint8
    outputs, all channels) of the outer ``border`` pixels over the MSE of the rest, on ``pairs``. A
    network padded with zeros sees less of its input near the border; a ratio well above the aligned
    bicubic's (whose last rows and columns are extrapolated on the study's grid) is the bright or dark
    frame some short runs show."""
    rows = []
    for name, method in methods.items():
        err = (to_uint8(as_method(method)(pairs.lr)).astype(np.float64) - pairs.hr.astype(np.float64)) ** 2
        inner = np.zeros(err.shape[1:3], bool)
        inner[border:-border, border:-border] = True
        rows.append({"method": name, "border_mse": float(err[:, ~inner].mean()), "inner_mse": float(err[:, inner].mean())})
    t = pd.DataFrame(rows).set_index("method")
    t["ratio"] = t.border_mse / t.inner_mse
    return t


def plan(p: dict, folders: Sequence[str | Path] = ()) -> dict[tuple[int, str], list[Task]]:
    """The runs the parameters ``p`` ask for, per (length, label): leave-one-out at ``LENGTH`` (and the
    ``CONTESTED`` changes at ``CONTESTED_LENGTH``), then the build-up ladder at each of ``LADDER_LENGTHS``."""
    tasks = leave_one_out_tasks([p["LENGTH"]], p["SEEDS"])
    if p["CONTESTED_LENGTH"]:
        tasks.update(leave_one_out_tasks([p["CONTESTED_LENGTH"]], p["CONTESTED_SEEDS"], CONTESTED))
    return {**tasks, **ablation_tasks(p["LADDER_LENGTHS"], p["LADDER_SEEDS"])}


def split(tasks: dict) -> tuple[dict, dict]:
    """A ``plan`` (or its results) as its two parts: the leave-one-out groups and the ladder's."""
    ladder_labels = {label for label, _ in ABLATION_STEPS}
    return ({k: g for k, g in tasks.items() if k[1] not in ladder_labels},
            {k: g for k, g in tasks.items() if k[1] in ladder_labels})


def findings(table: pd.DataFrame, ladder: pd.DataFrame, reference: dict[str, float], held_out: pd.DataFrame) -> str:
    """What the runs show, as Markdown bullets: the leave-one-out ``table`` per length, the ``ladder``'s
    first and last step per length, the ``reference`` models' mean PSNR on the same images, and the
    models on the test split (``held_out``: ``tables.held_out_table``; empty: not scored)."""
    lines = []
    for n, t in table.groupby("iterations"):
        worth = "; ".join(f"{r.change} {difference_words(r.worth_db, r.ci_low, r.ci_high, r.measurable)}"
                          for r in t.itertuples())
        lines.append(f"- **Leave one out, {n:,} iterations** ({t.seeds.iloc[0]} seeds): the improved recipe minus the "
                     f"recipe without each change: {worth}.")
    for n, t in ladder.groupby("iterations"):
        first, last = t.iloc[0], t.iloc[-1]
        lines.append(f"- Build-up ladder after {n:,} iterations (convergence speed): the study recipe "
                     f"{fmt_db(first.psnr_rgb, first.ci_low, first.ci_high)}, the improved recipe "
                     f"{fmt_db(last.psnr_rgb, last.ci_low, last.ci_high)}.")
    lines.append("- For reference on the same images: " + "; ".join(f"{k} {v:.2f} dB" for k, v in reference.items()) + ".")
    if not held_out.empty:
        lines.append(held_out_words(held_out, BICUBIC))
    return "\n".join(lines)


def limitations(p: dict, images: int, data_label: str) -> str:
    """What the runs' lengths, seeds and images leave open, as Markdown bullets."""
    contested = p["CONTESTED_LENGTH"]
    return (f"- Leave-one-out runs of {p['LENGTH']:,} iterations"
            + (f", and {contested:,} for {', '.join(CONTESTED)}" if contested else "")
            + f" (the shipped model: 12,000); {len(p['SEEDS'])} seeds"
            + (f" ({len(p['CONTESTED_SEEDS'])} at {contested:,})" if contested else "")
            + f"; {images} validation images of `{data_label}`.\n"
            "- Leaving one change out measures it with every other change in place; two changes that do the same work "
            "can each look worthless alone.\n"
            "- The ladder measures convergence speed: its gains shrink as runs get longer. Warm-up is shortened to a "
            "tenth of the run for short runs.\n"
            + "".join(f"- \"{label}\" is {len(change)} settings measured as one change ({', '.join(f'{k} {v}' for k, v in change.items())}): "
                      "their separate worth is not measured.\n" for label, change in RECIPE_CHANGES if len(change) > 1).rstrip("\n"))
