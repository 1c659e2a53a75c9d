"""The report's experiments as functions, so each notebook is a few short calls (and tests can call them).

Every experiment is a list of ``sweep.Task``s (one training run each) and a few tables built from their
per-image scores. Runs that are compared share their seeds, hence their initialisation and minibatches,
and are scored on the same images, so every comparison is paired (``paired_table``).
This module computes numbers only: the notebooks say in words what the numbers show.
"""
from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.celeba import Pairs
from ..data.default import resolve_data_dir
from ..data.degrade import to_uint8
from ..evaluation.evaluate import BASELINES
from ..evaluation.metrics import paired_difference, psnr_each, psnr_per_image, seed_interval
from ..model import SRModel
from ..nn.optimizers import OPTIMIZERS
from ..paths import in_checkout, project_root
from ..recipe import RECIPES, Recipe
from ..train import snapshot_path
from .sweep import Data, Result, Task, clear, load_result, load_split, psnr_matrix, recorded, run_tasks, stream_split  # noqa: F401  (the notebooks call them as ex.load_split, ex.stream_split)


def notebook_path(path: str | Path) -> Path:
    """A notebook parameter's path: relative paths are relative to ``notebooks/`` of the checkout
    (where the notebooks' defaults point from), whatever folder papermill or JupyterLab was started in."""
    path = Path(path)
    if path.is_absolute() or not in_checkout():
        return path
    return project_root() / "notebooks" / path


def output_folder(path: str | Path) -> Path:
    """A notebook's ``OUT_DIR`` (see ``notebook_path``), created if needed."""
    folder = notebook_path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def data_label(data: Data) -> str:
    """How a report names its data folder: relative to the project when inside it, else by its name
    (a published notebook holds no absolute paths of the machine that ran it)."""
    root = Path(data.root).resolve()
    try:
        return str(root.relative_to(project_root().resolve()))
    except ValueError:
        return root.name


def difference_words(mean: float, low: float, high: float, measurable: bool) -> str:
    """A paired difference in words: "+0.42 dB [+0.31, +0.53]", marked when its interval holds 0."""
    return fmt_db(mean, low, high, True) + ("" if measurable or not np.isfinite(mean) else " (no measurable difference)")


def difference_text(paired: pd.DataFrame, a: str, b: str) -> str:
    """The row (a, b) of a ``paired_table`` in words (``difference_words``)."""
    r = paired.set_index(["a", "b"]).loc[(a, b)]
    return difference_words(r.a_minus_b_db, r.ci_low, r.ci_high, r.measurable)


def fmt_db(mean: float, low: float, high: float, signed: bool = False) -> str:
    """"27.31 dB [27.10, 27.52]": a value with its 95% interval (the interval left out when unknown)."""
    sign = "+" if signed else ""
    if not np.isfinite(mean):
        return "n/a (diverged)"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:{sign}.2f} dB"
    return f"{mean:{sign}.2f} dB [{low:{sign}.2f}, {high:{sign}.2f}]"


def readable(table: pd.DataFrame, decimals: int | dict[str, int] = 3) -> pd.DataFrame:
    """``table`` as a notebook shows it: rounded, and a value that does not exist (no interval from a
    single seed, no difference where every seed diverged) shown as "–" rather than NaN. The CSV beside
    it keeps the NaN."""
    shown = table.round(decimals)
    for column in shown.columns[shown.isna().any()]:  # only these: an object column loses pandas' number format
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "–")
    return shown


def data_source(data: str, eval_split: str = "validation", eval_images: int | None = None,
                val_images: int | None = None) -> Data:
    """A notebook's ``DATA`` parameter ("auto" or a path) as the tasks' data description."""
    root = resolve_data_dir(None if data in ("", "auto") else notebook_path(data))
    return Data(str(root), eval_split, eval_images, val_images)


# -- comparisons ------------------------------------------------------------------------------------
def paired_table(scores: dict[str, np.ndarray], comparisons: list[tuple[str, str]]) -> pd.DataFrame:
    """For each (a, b): the mean per-image PSNR difference a - b on the same images (and seeds, when
    the scores are (seeds, images)), with its 95% interval (``metrics.paired_difference``: Student's t
    over the seeds' own differences, or a bootstrap over images for a single run), each seed's
    difference (``per_seed_db``) and which interval it is. ``measurable`` is False when the interval
    contains 0: no measurable difference, whatever the sign of the mean.

    A seed in which either run diverged (NaN scores: it has no output to compare) is left out of the
    mean and the interval (``diverged_seeds`` counts them); it stays in ``per_seed_db`` as nan."""
    rows = []
    for a, b in comparisons:
        # a method without a seed (a baseline) is paired with every seed of the other
        x, y = np.broadcast_arrays(np.atleast_2d(scores[a]), np.atleast_2d(scores[b]))
        per_seed = (x - y).mean(axis=1)
        kept = np.isfinite(per_seed)
        mean, low, high = paired_difference(x[kept], y[kept]) if kept.any() else (np.nan,) * 3
        interval = f"t over {kept.sum()} seeds" if kept.sum() > 1 else f"bootstrap over {x.shape[1]} images"
        rows.append({"a": a, "b": b, **_difference_columns(mean, low, high, interval),
                     "diverged_seeds": int((~kept).sum()), "per_seed_db": _per_seed_text(per_seed)})
    return pd.DataFrame(rows)


def _difference_columns(mean: float, low: float, high: float, interval: str) -> dict:
    """A paired difference's columns in the report's tables; ``measurable``: its interval leaves out 0."""
    return {"a_minus_b_db": mean, "ci_low": low, "ci_high": high, "measurable": bool(low > 0 or high < 0),
            "interval": interval}


def _per_seed_text(differences: np.ndarray) -> str:
    """Each seed's difference, as the tables' ``per_seed_db`` column: "+0.41 +0.38 +nan"."""
    return " ".join(f"{v:+.2f}" for v in differences)


def baseline_scores(pairs: Pairs, methods: dict) -> dict[str, np.ndarray]:
    """Per-image PSNR (RGB) of fixed methods (no seed): a baseline, a shipped or imported model."""
    return {k: psnr_per_image(m, pairs) for k, m in methods.items()}


def outputs_psnr(outputs: dict[str, np.ndarray], hr: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image PSNR of each method's uint8 outputs (``sample_outputs``) against ``hr``."""
    return {k: psnr_each(v, hr) for k, v in outputs.items()}


def sample_outputs(models: dict[str, SRModel], pairs: Pairs, n: int = 3) -> dict[str, np.ndarray]:
    """uint8 outputs of the aligned bicubic, each model and the ANSWER (HR) on the first n pairs."""
    lr = pairs.lr[:n]
    out = {"bicubic (aligned)": to_uint8(BASELINES["bicubic_aligned"](lr))}
    out.update({k: to_uint8(m.predict(lr)) for k, m in models.items()})
    out["ANSWER (HR)"] = pairs.hr[:n]
    return out


def seed_summary(results: dict[str, list[Result]]) -> pd.DataFrame:
    """One row per named group of runs (one run per seed): mean validation PSNR over images and seeds,
    its 95% t-interval across seeds, final training MSE, and how many seeds diverged."""
    rows = []
    for name, runs in results.items():
        m, low, high = seed_interval(np.array([r.mean_psnr for r in runs]))
        rows.append({"run": name, "psnr_rgb": m, "ci_low": low, "ci_high": high, "seeds": len(runs),
                     "final_train_mse": float(np.mean([r.final_loss for r in runs])),
                     "diverged": sum(r.diverged_at is not None for r in runs)})
    return pd.DataFrame(rows).set_index("run")


# -- 01: learning-rate sweeps -----------------------------------------------------------------------
#: The set-ups in which the optimizers are compared: the study's (0..255 targets, uniform +-0.01
#: initialisation, final ReLU, no biases), each of the two changes that might rescue plain SGD alone,
#: and both together.
SETUPS: dict[str, Recipe] = {
    "study": RECIPES["study"],
    "0..1 targets": RECIPES["study"].with_(name="0..1 targets", output_scale=255.0),
    "He init": RECIPES["study"].with_(name="He init", init="he"),
    "0..1 targets + He init": RECIPES["study"].with_(name="0..1 targets + He init", init="he", output_scale=255.0),
}
#: The set-ups that only tell which change rescues the optimizers that failed in the study.
RESCUE_SETUPS, RESCUED = ("0..1 targets", "He init"), ("sgd", "momentum", "nesterov")

#: The learning rate each library uses by default: the optimizers' own defaults.
DEFAULT_LR = {name: inspect.signature(cls).parameters["lr"].default for name, cls in OPTIMIZERS.items()}
#: The rate the study ran every optimizer at, run to the final length as a row of its own.
STUDY_LR = 0.01

#: Learning rates are 10^(k/2): half-decade steps, k an integer ("step"), so grids never drift.
LR_LIMITS = (-16, 0)  # 1e-8 .. 1


#: below this validation PSNR an output is essentially black: the run never learned
BLANK_PSNR_DB = 10.0


def outcome(first_loss: float, max_loss: float, final_loss: float, val_psnr: float, diverged: bool) -> str:
    """What a run did, in words: "diverged" (its loss stopped being finite), "blew up, then dead" (its
    loss rose a hundredfold and its output ended black), "blew up, recovered", "never moved" (its final
    loss within 0.1% of its first), "loss fell, output black" (still under ``BLANK_PSNR_DB``) or
    "learned"."""
    if diverged:
        return "diverged"
    if max_loss > 100 * first_loss:
        return "blew up, then dead" if val_psnr < BLANK_PSNR_DB else "blew up, recovered"
    if abs(final_loss - first_loss) <= 1e-3 * first_loss:
        return "never moved"
    return "loss fell, output black" if val_psnr < BLANK_PSNR_DB else "learned"


def lr_of(step: int) -> float:
    return float(10 ** (step / 2))


def step_of(lr: float) -> int:
    return int(round(2 * math.log10(lr)))


@dataclass
class LRSweep:
    """The runs of a successive-halving learning-rate sweep and the tables built from them."""

    runs: pd.DataFrame                  # one row per run: setup, optimizer, lr, seed, iterations, outcome, ...
    results: dict[str, Result]          # by task name
    seeds: list[int]                    # the finalists' seeds

    @property
    def final_length(self) -> int:
        return int(self.runs.iterations.max())

    def summary(self) -> pd.DataFrame:
        """Per setup, optimizer, learning rate and run length: mean validation PSNR over the seeds that
        did not diverge, with its 95% t-interval (NaN when every seed diverged), how many seeds diverged,
        and what the runs did (``outcome``: each kind with its count, the most common first)."""
        g = self.runs.groupby(["setup", "optimizer", "lr", "iterations"], sort=False)
        rows = []
        for (setup, opt, lr, its), runs in g:
            m, low, high = seed_interval(runs.val_psnr[~runs.diverged].to_numpy())
            kinds = runs.outcome.value_counts()
            rows.append({"setup": setup, "optimizer": opt, "lr": lr, "iterations": its,
                         "library_default": bool(runs.library_default.iloc[0]), "study_lr": bool(runs.study_lr.iloc[0]),
                         "val_psnr": m, "ci_low": low, "ci_high": high, "seeds": len(runs),
                         "diverged": int(runs.diverged.sum()),
                         "outcome": ", ".join(f"{k} ({n} of {len(runs)})" for k, n in kinds.items()),
                         "first_loss": runs.first_loss.mean(), "max_loss": runs.max_loss.max(),
                         "final_loss": runs.final_loss.mean()})
        return pd.DataFrame(rows)

    def best(self) -> pd.DataFrame:
        """Per setup and optimizer, the learning rate with the best mean validation PSNR among the
        final-length runs (a rate at which any seed diverged is never best)."""
        s = self.summary()
        full = s[s.iterations == self.final_length].copy()
        full["rank"] = full.val_psnr.where(full.diverged == 0, -np.inf)
        idx = full.groupby(["setup", "optimizer"], sort=False)["rank"].idxmax()
        return full.loc[idx].drop(columns="rank").set_index(["setup", "optimizer"])

    def at_study_lr(self) -> pd.DataFrame:
        """Per setup and optimizer, the final-length runs at the study's learning rate (``STUDY_LR``)."""
        s = self.summary()
        return s[(s.iterations == self.final_length) & s.study_lr].set_index(["setup", "optimizer"])

    def _runs_of(self, setup: str, optimizer: str, lr: float, iterations: int | None = None) -> pd.DataFrame:
        """The runs (one per seed, in seed order) of ``optimizer`` at ``lr`` in ``setup``, of length
        ``iterations`` (default: the longest there is at that rate)."""
        r = self.runs[(self.runs.setup == setup) & (self.runs.optimizer == optimizer) & (self.runs.lr == lr)]
        return r[r.iterations == (r.iterations.max() if iterations is None else iterations)]

    def best_scores(self, setup: str, optimizer: str) -> np.ndarray:
        """(seeds, images) PSNR of ``optimizer`` at its best rate in ``setup``."""
        b = self.best().loc[(setup, optimizer)]
        return psnr_matrix([self.results[n] for n in self._runs_of(setup, optimizer, b.lr, b.iterations).task])

    def against(self, reference: str = "adam") -> pd.DataFrame:
        """Per setup that ran ``reference``, each optimizer at its best rate minus ``reference`` at its
        best rate: paired on seeds (same initialisation and batches) and images."""
        tables = []
        for setup in self.runs.setup.unique():
            opts = list(self.runs[self.runs.setup == setup].optimizer.unique())
            if reference not in opts:
                continue
            scores = {o: self.best_scores(setup, o) for o in opts}
            t = paired_table(scores, [(o, reference) for o in opts if o != reference])
            t.insert(0, "setup", setup)
            tables.append(t)
        return pd.concat(tables, ignore_index=True)

    def against_bicubic(self, pairs: Pairs) -> pd.DataFrame:
        """Per setup, each optimizer at its best rate minus the aligned bicubic on the same images
        (``pairs``: the evaluation images the runs were scored on, in order), paired on images and
        taken per seed; ``bicubic_db`` is the bicubic's own mean PSNR."""
        bicubic = baseline_scores(pairs, {"bicubic (aligned)": BASELINES["bicubic_aligned"]})
        tables = []
        for setup, opt in self.best().index:
            t = paired_table({opt: self.best_scores(setup, opt), **bicubic}, [(opt, "bicubic (aligned)")])
            t.insert(0, "setup", setup)
            tables.append(t)
        t = pd.concat(tables, ignore_index=True)
        t["bicubic_db"] = float(np.mean(bicubic["bicubic (aligned)"]))
        return t

    def best_models(self, setup: str) -> dict[str, SRModel]:
        """Each optimizer's model at its best rate in ``setup``, from the first seed (diverged ones left out)."""
        models = {}
        for opt, b in self.best().loc[setup].iterrows():
            runs = self._runs_of(setup, opt, b.lr, b.iterations)
            r = self.results[runs[runs.seed == self.seeds[0]].task.iloc[0]]
            if r.checkpoint is not None:
                models[opt] = r.model()
        return models

    def curves(self, setup: str, optimizer: str, lr: float) -> list[np.ndarray]:
        """Training-loss curves (one per seed) of the longest runs of ``optimizer`` at ``lr``."""
        return [self.results[n].loss for n in self._runs_of(setup, optimizer, lr).task]

    def rescue(self) -> pd.DataFrame:
        """For the optimizers that failed in the study (``RESCUED``): whether each set-up lets them learn
        at their best rate, and which change does it (both alone, one alone, only together, neither)."""
        best, rows = self.best(), []
        for opt in [o for o in RESCUED if ("study", o) in best.index]:
            learns = {s: bool(best.loc[(s, opt)].val_psnr >= BLANK_PSNR_DB) if (s, opt) in best.index else None
                      for s in SETUPS}
            alone = [s for s in RESCUE_SETUPS if learns.get(s)]
            verdict = ("learns in the study's own set-up at another rate" if learns["study"] else
                       f"rescued by {' and by '.join(alone)} alone" if alone else
                       "rescued only by both changes together" if learns.get("0..1 targets + He init") else
                       "learns in no set-up tried")
            rows.append({"optimizer": opt, **{f"learns: {s}": v for s, v in learns.items()}, "verdict": verdict})
        return pd.DataFrame(rows).set_index("optimizer") if rows else pd.DataFrame()


def _state(r) -> str:
    """A summary row in words: what its runs did and, when they learned, their PSNR."""
    if not r.val_psnr >= BLANK_PSNR_DB:
        return r.outcome
    over = f" over the {r.seeds - r.diverged} seeds that did not diverge" if r.diverged else ""
    return f"{r.outcome}, {fmt_db(r.val_psnr, r.ci_low, r.ci_high)}{over}"


def _against_adam(d) -> str:
    """A row of ``LRSweep.against`` in words, saying which seeds it leaves out."""
    kept = len(d.per_seed_db.split()) - d.diverged_seeds
    left_out = f" (over the other {kept} seed{'' if kept == 1 else 's'}: {d.diverged_seeds} diverged)" if d.diverged_seeds else ""
    return f", {difference_words(d.a_minus_b_db, d.ci_low, d.ci_high, d.measurable)} against Adam{left_out}"


def sweep_findings(sweep: LRSweep, vs_adam: pd.DataFrame, images: int, vs_bicubic: pd.DataFrame | None = None) -> str:
    """What a learning-rate sweep found, as Markdown bullets written from its numbers: per set-up each
    optimizer at its best rate against Adam; per optimizer the study failed with, what it did at the
    study's rate and which set-up rescues it (``LRSweep.rescue``); per set-up its best optimizer against
    the aligned bicubic (``LRSweep.against_bicubic``), when given."""
    best, at_study, rescue = sweep.best(), sweep.at_study_lr(), sweep.rescue()
    rungs = sorted(sweep.runs.iterations.unique())
    lines = [f"Rates ran {', '.join(f'{n:,}' for n in rungs)} iterations rung by rung; the finalists and the study's rate "
             f"{len(sweep.seeds)} seeds at {rungs[-1]:,}, scored on {images} validation images; intervals are 95%.", ""]
    for setup in [s for s in SETUPS if s in best.index.get_level_values(0)]:
        v = vs_adam[vs_adam.setup == setup].set_index("a")
        lines.append(f"- **{setup} set-up**, each optimizer at its best rate: " + "; ".join(
            f"{o} (lr {r.lr:.3g}) {_state(r)}" + (_against_adam(v.loc[o]) if o in v.index else "")
            for o, r in best.loc[setup].iterrows()) + ".")
    for opt, r in rescue.iterrows():
        at = at_study.loc[("study", opt)] if ("study", opt) in at_study.index else None
        where = "; ".join(f"{s} lr {best.loc[(s, opt)].lr:.3g}: {_state(best.loc[(s, opt)])}"
                          for s in SETUPS if (s, opt) in best.index)
        lines.append(f"- **{opt}**" + (f" at the study's lr {STUDY_LR:g} in the study set-up: {_state(at)}." if at is not None
                                      else ".") + f" Best rate per set-up: {where}. So: {r.verdict}.")
    if vs_bicubic is not None and len(vs_bicubic):
        scored = vs_bicubic.dropna(subset=["a_minus_b_db"])
        top = scored.loc[scored.groupby("setup", sort=False).a_minus_b_db.idxmax()]
        lines.append(f"- **Against the aligned bicubic** ({vs_bicubic.bicubic_db.iloc[0]:.2f} dB on the same images), the "
                     f"best optimizer of each set-up after {rungs[-1]:,} iterations: " + "; ".join(
                         f"{r.setup}: {r.a} {difference_words(r.a_minus_b_db, r.ci_low, r.ci_high, r.measurable)}"
                         for r in top.itertuples()) + ".")
    return "\n".join(lines)


def _sweep_task(setup: str, recipe: Recipe, optimizer: str, step: int, seed: int, iterations: int,
                keep_weights: bool = False) -> Task:
    lr = lr_of(step)
    return Task(f"{_slug(setup)}-{optimizer}-lr{lr:.3g}-seed{seed}-{iterations}it",
                recipe.with_(name=f"{setup} {optimizer} lr {lr:.3g}", optimizer=optimizer, lr=lr), iterations, seed,
                keep_weights=keep_weights)


def initial_grids(grids: dict[str, list[float]], setups: dict[str, Recipe]) -> dict[tuple[str, str], set[int]]:
    """(set-up, optimizer) -> the steps of its first grid: half-decade steps from the smallest to the
    largest of its rates in ``grids``, its library default and the study's rate, no gaps."""
    def grid(lrs: list[float]) -> set[int]:
        ks = [step_of(lr) for lr in lrs]
        return set(range(min(ks), max(ks) + 1))

    return {(s, o): grid([*grids[o], DEFAULT_LR[o], STUDY_LR])
            for s in setups for o in grids if s not in RESCUE_SETUPS or o in RESCUED}


def _ranked(means: dict[int, float]) -> list[int]:
    """Steps best first; ties (e.g. none moved at all) larger first: a rate too small to move in a short
    run is the one most likely to move in a longer one."""
    return sorted(means, key=lambda k: (means[k], k), reverse=True)


Means = dict[tuple[str, str], dict[int, float]]  # mean PSNR per (set-up, optimizer) and learning-rate step


def halving(steps: dict[tuple[str, str], set[int]], rungs: list[int], keep: list[int], widen: int,
            run: Callable[[int, dict[tuple[str, str], list[int]]], Means | None]) -> None:
    """Walk the rungs of ``lr_sweep``: ``run(rung, chosen)`` is called with the steps each (set-up,
    optimizer) runs at that rung; it runs (or looks up) them and gives their mean PSNR per pair and step,
    or None when they are not known (a plan made before they ran, ``planned_tasks``: each later rung then
    keeps the largest rates other than the study's, as many as it will keep, so the plan is never short)."""
    steps = {key: set(ks) for key, ks in steps.items()}
    final = len(rungs) - 1
    for round_ in range(widen + 1):
        means = run(0, {key: sorted(ks) for key, ks in steps.items()})
        if means is None or round_ == widen:
            break
        grown = False
        for key, m in means.items():
            best = _ranked(m)[0]
            ends = [min(m) - 1, max(m) + 1] if m[best] < BLANK_PSNR_DB else \
                [best - 1] * (best == min(m)) + [best + 1] * (best == max(m))
            for k in ends:
                if LR_LIMITS[0] <= k <= LR_LIMITS[1] and k not in steps[key]:
                    steps[key].add(k)
                    grown = True
        if not grown:
            break
    chosen = {key: sorted(ks) for key, ks in steps.items()}
    for rung in range(1, len(rungs)):
        if means is None:
            chosen = {key: [k for k in sorted(ks, reverse=True) if k != step_of(STUDY_LR)][:keep[rung - 1]]
                      for key, ks in chosen.items()}
        else:
            chosen = {key: _ranked(m)[:keep[rung - 1]] for key, m in means.items()}
        if rung == final:
            chosen = {key: sorted({*ks, step_of(STUDY_LR)}) for key, ks in chosen.items()}
        known = run(rung, chosen)
        means = None if means is None else known  # rates chosen by that estimate: the rest is one too


def _rung_tasks(setups: dict[str, Recipe], images: int, rungs: list[int], final_seeds: list[int],
                search_seeds: list[int], rung: int, chosen: dict[tuple[str, str], list[int]]
                ) -> list[tuple[tuple[str, str, int], Task]]:
    """The runs of one rung of ``lr_sweep``, each with its (set-up, optimizer, step): every chosen rate of
    every pair, for each seed of the rung (the first final seed keeps its weights, for the figures)."""
    final = rung == len(rungs) - 1
    seeds = final_seeds if final else search_seeds
    return [((s, o, k), _sweep_task(s, setups[s].with_(images=images), o, k, seed, rungs[rung],
                                    keep_weights=final and seed == final_seeds[0]))
            for (s, o), ks in chosen.items() for k in ks for seed in seeds]


def _rung_means(runs: dict[str, tuple[str, str, int]], psnr: dict[str, float]) -> Means:
    """Mean PSNR over seeds per (set-up, optimizer) and step of the runs named in ``runs``; a run that
    diverged (NaN) counts as worst."""
    out: dict[tuple[str, str], dict[int, list[float]]] = {}
    for name, (s, o, k) in runs.items():
        v = psnr[name]
        out.setdefault((s, o), {}).setdefault(k, []).append(-np.inf if math.isnan(v) else v)
    return {key: {k: float(np.mean(v)) for k, v in ks.items()} for key, ks in out.items()}


def lr_sweep(grids: dict[str, list[float]], search_seeds: list[int], rungs: list[int], keep: list[int],
             final_seeds: list[int], folder: str | Path, data: Data, setups: dict[str, Recipe] | None = None,
             images: int = 10, widen: int = 3, scheduler: str = "local", workers: int | None = None,
             fresh: bool = False) -> LRSweep:
    """Successive halving over half-decade learning-rate grids, in every set-up.

    1. Every rate of each optimizer's grid (half-decade steps spanning ``grids``' rates, the library
       default and the study's rate) runs ``rungs[0]`` iterations for every seed of ``search_seeds``.
    2. While an optimizer's best rate (highest mean PSNR over seeds) sits at an end of its grid, the
       grid grows by one step beyond that end, at most ``widen`` times and within ``LR_LIMITS``
       (a run that diverged counts as worst). When no rate learned anything, it grows at both ends.
    3. At each later rung the ``keep[i]`` best rates of the rung before run ``rungs[i + 1]`` iterations;
       the last rung runs ``final_seeds``, and the study's rate (``STUDY_LR``) runs it too, as a row of
       its own. Rates that tie (e.g. none moved at all) are ranked larger first: a rate too small to
       move in a short run is the one most likely to move in a longer one.
    The set-ups of ``RESCUE_SETUPS`` run only the optimizers of ``RESCUED``. ``fresh``: each run is
    trained anew, its earlier results removed (``sweep.clear``), instead of taken as done.
    """
    setups = SETUPS if setups is None else setups
    if len(keep) != len(rungs) - 1 or not rungs:
        raise ValueError(f"lr_sweep: {len(rungs)} rungs need {len(rungs) - 1} keep counts, got {keep}")
    for name in grids:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r} in LEARNING_RATES; choose from {', '.join(OPTIMIZERS)}")

    tasks: dict[str, tuple[str, str, int, Task]] = {}
    cleared: set[str] = set()
    results: dict[str, Result] = {}

    def run(rung: int, chosen: dict[tuple[str, str], list[int]]) -> Means:
        for where, t in _rung_tasks(setups, images, rungs, final_seeds, search_seeds, rung, chosen):
            tasks[t.name] = (*where, t)
        if fresh:  # once per run: the rungs after the first list the earlier runs again
            clear([t for name, (*_, t) in tasks.items() if name not in cleared], folder)
            cleared.update(tasks)
        results.update(run_tasks([t for *_, t in tasks.values()], folder, data, scheduler, workers,
                                 desc=f"learning-rate sweep ({rungs[rung]} iterations)"))
        return _rung_means({name: (s, o, k) for name, (s, o, k, t) in tasks.items() if t.iterations == rungs[rung]},
                           {name: r.mean_psnr for name, r in results.items()})

    halving(initial_grids(grids, setups), rungs, keep, widen, run)
    rows = []
    for name, (s, o, k, t) in tasks.items():
        r = results[name]
        first, worst, diverged = float(r.loss[0]), float(np.max(r.loss)), r.diverged_at is not None
        rows.append({"setup": s, "optimizer": o, "lr": lr_of(k), "seed": t.seed, "iterations": t.iterations,
                     "val_psnr": r.mean_psnr, "first_loss": first, "max_loss": worst, "final_loss": r.final_loss,
                     "diverged": diverged, "diverged_at": r.diverged_at,
                     "library_default": k == step_of(DEFAULT_LR[o]), "study_lr": k == step_of(STUDY_LR), "task": name,
                     "outcome": outcome(first, worst, r.final_loss, r.mean_psnr, diverged)})
    order = {name: i for i, name in enumerate(setups)}  # set-ups in their own order, the rest sorted
    runs = pd.DataFrame(rows).sort_values(["setup", "optimizer", "iterations", "lr", "seed"], ignore_index=True,
                                          key=lambda c: c.map(order) if c.name == "setup" else c)
    return LRSweep(runs, results, list(final_seeds))


# -- the study's published models -------------------------------------------------------------------
#: The study's published weight folders (under its ``weights/``) and how the report names their models.
STUDY_WEIGHT_FOLDERS = {"train": "2022 model (43,114 iterations)", "many_adam": "2022 model, trained longer (many_adam)",
                        "color_weight": "2022 colour networks"}


def study_models(path: str | Path) -> dict[str, SRModel]:
    """The study's published models: ``path`` is its ``weights/`` folder (each of ``STUDY_WEIGHT_FOLDERS``
    found there is imported) or one network's folder of W1..W4.pickle ("2022 model")."""
    from ..legacy import import_study_weights

    path = notebook_path(path)
    found = {label: path / sub for sub, label in STUDY_WEIGHT_FOLDERS.items() if (path / sub).is_dir()}
    return {label: SRModel.from_checkpoint(import_study_weights(folder))
            for label, folder in (found or {"2022 model": path}).items()}


# -- 02: hard training ------------------------------------------------------------------------------
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


# -- 03: colour networks ----------------------------------------------------------------------------
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
                     **_difference_columns(mean, low, high, f"t over {len(d)} seeds"), "per_seed_db": _per_seed_text(d)})
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


# -- 04: what each change of the improved recipe is worth -------------------------------------------
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


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def ablation_tasks(lengths: list[int], seeds: list[int]) -> dict[tuple[int, str], list[Task]]:
    """(length, step label) -> one task per seed, for every step of the ladder at every length."""
    return {(n, label): [Task(f"ablation-{_slug(label)}-seed{s}-{n}it", recipe, n, s, keep_weights=s == seeds[0])
                         for s in seeds]
            for n in lengths for label, recipe in ablation_recipes(n)}


def leave_one_out_tasks(lengths: list[int], seeds: list[int], only: list[str] | None = None
                        ) -> dict[tuple[int, str], list[Task]]:
    """(length, label) -> one task per seed, for the improved recipe and each recipe without one change."""
    return {(n, label): [Task(f"loo-{_slug(label)}-seed{s}-{n}it", recipe, n, s, keep_weights=s == seeds[0])
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
    return pd.concat(tables, ignore_index=True)


# -- planning: what a notebook's parameters ask to run -------------------------------------------------
def _recorded_psnr(task: Task, folders: Sequence[str | Path]) -> float | None:
    """The mean PSNR a record of ``task`` in one of ``folders`` holds (NaN: it diverged), else None."""
    for folder in folders:
        r = recorded(task, folder)
        if r is not None:
            return load_result(task, folder, r).mean_psnr
    return None


def planned_tasks(notebook: str, p: dict, folders: Sequence[str | Path] = ()) -> list[Task]:
    """The training runs notebook ``notebook`` asks for with parameters ``p`` (a report preset's), for
    ``report --dry-run`` and the progress lines: what is left, and what it will cost. Exact for 02, 03 and
    04. For 01 each rung's rates depend on the rung before: the rungs whose runs all have records in
    ``folders`` are replayed exactly (with any widening of the first grid), the ones after are estimated
    (``halving``; a first grid that will still widen adds a few short runs)."""
    if notebook == "01_optimizer_comparison":
        tasks: dict[str, Task] = {}

        def look_up(rung: int, chosen: dict[tuple[str, str], list[int]]) -> Means | None:
            runs = _rung_tasks(SETUPS, p.get("IMAGES", 10), p["RUNGS"], p["FINAL_SEEDS"], p["SEARCH_SEEDS"], rung,
                               chosen)
            tasks.update((t.name, t) for _, t in runs)
            psnr = {t.name: _recorded_psnr(t, folders) for _, t in runs}
            known = {name: v for name, v in psnr.items() if v is not None}
            return _rung_means({t.name: where for where, t in runs}, known) if len(known) == len(psnr) else None

        halving(initial_grids(p["LEARNING_RATES"], SETUPS), p["RUNGS"], p["KEEP"], p["WIDEN"], look_up)
        return list(tasks.values())
    if notebook == "02_hard_training":
        base = hard_training_tasks(RECIPES["study"].with_(images=p.get("IMAGES", 10), lr=p.get("LR", 1e-3)),
                                   p["ITERATIONS"], p["SEEDS"], p["VALIDATE_EVERY"])
        return base + [adam_restart_task(base[0])]
    if notebook == "03_three_colour_networks":
        groups = colour_tasks(RECIPES["study"].with_(images=p.get("IMAGES", 10), lr=p.get("LR", 1e-3)),
                              p["ITERATIONS"], p["SEEDS"], p.get("VALIDATE_EVERY", 0))
        return [t for g in groups.values() for t in g]
    if notebook == "04_beyond_the_study":
        steps = leave_one_out_tasks([p["LENGTH"]], p["SEEDS"])
        if p.get("CONTESTED_LENGTH"):
            steps.update(leave_one_out_tasks([p["CONTESTED_LENGTH"]], p.get("CONTESTED_SEEDS", [0, 1, 2]), CONTESTED))
        steps.update(ablation_tasks(p["LADDER_LENGTHS"], p.get("LADDER_SEEDS", [0, 1])))
        return [t for g in steps.values() for t in g]
    raise ValueError(f"no plan for notebook {notebook!r}")


def run_grouped(tasks: dict, folder: str | Path, data: Data, scheduler: str = "local", workers: int | None = None,
                desc: str = "runs", fresh: bool = False) -> dict:
    """Run the tasks of several groups (e.g. one group per set-up, a task per seed) together, on
    ``scheduler`` (``fresh``: train them anew, see ``sweep.run_tasks``); returns the results in the same
    grouping."""
    flat = [t for group in tasks.values() for t in group]
    results = run_tasks(flat, folder, data, scheduler, workers, desc=desc, fresh=fresh)
    return {key: [results[t.name] for t in group] for key, group in tasks.items()}
