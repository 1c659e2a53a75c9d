"""Notebook 01: which optimizers learn in the study's set-up, and at which learning rate.

A successive-halving sweep over half-decade learning-rate grids, for each optimizer, in the study's
set-up and in the set-ups that change what might have stopped plain SGD (``SETUPS``); the finalists
run more seeds, and every comparison pairs them on seeds and images (``tables.paired_table``).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.celeba import Pairs
from ..evaluation.evaluate import BASELINES
from ..evaluation.metrics import seed_interval
from ..model import SRModel
from ..nn.optimizers import OPTIMIZERS
from ..recipe import RECIPES, Recipe
from .notebook import BICUBIC, slug
from .sweep import Data, Result, Task, clear, load_result, psnr_matrix, recorded, run_tasks
from .tables import baseline_scores, difference_words, fmt_db, paired_table

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
        bicubic = baseline_scores(pairs, {BICUBIC: BASELINES["bicubic_aligned"]})
        tables = []
        for setup, opt in self.best().index:
            t = paired_table({opt: self.best_scores(setup, opt), **bicubic}, [(opt, BICUBIC)])
            t.insert(0, "setup", setup)
            tables.append(t)
        t = pd.concat(tables, ignore_index=True)
        t["bicubic_db"] = float(np.mean(bicubic[BICUBIC]))
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


def findings(sweep: LRSweep, vs_adam: pd.DataFrame, images: int, vs_bicubic: pd.DataFrame | None = None) -> str:
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
    return Task(f"{slug(setup)}-{optimizer}-lr{lr:.3g}-seed{seed}-{iterations}it",
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


def run(p: dict, folder: str | Path, data: Data, scheduler: str = "local", workers: int | None = None,
        fresh: bool = False) -> LRSweep:
    """The sweep the notebook's parameters ``p`` ask for (``lr_sweep``)."""
    return lr_sweep(p["LEARNING_RATES"], p["SEARCH_SEEDS"], p["RUNGS"], p["KEEP"], p["FINAL_SEEDS"], folder, data,
                    images=p["IMAGES"], widen=p["WIDEN"], scheduler=scheduler, workers=workers, fresh=fresh)


def _recorded_psnr(task: Task, folders: Sequence[str | Path]) -> float | None:
    """The mean PSNR a record of ``task`` in one of ``folders`` holds (NaN: it diverged), else None."""
    for folder in folders:
        r = recorded(task, folder)
        if r is not None:
            return load_result(task, folder, r).mean_psnr
    return None


def plan(p: dict, folders: Sequence[str | Path] = ()) -> dict[str, list[Task]]:
    """The training runs the parameters ``p`` ask for, for ``report --dry-run`` and the progress lines.
    Each rung's rates depend on the rung before: the rungs whose runs all have records in ``folders``
    are replayed exactly (with any widening of the first grid), the ones after are estimated
    (``halving``; a first grid that will still widen adds a few short runs)."""
    tasks: dict[str, Task] = {}

    def look_up(rung: int, chosen: dict[tuple[str, str], list[int]]) -> Means | None:
        runs = _rung_tasks(SETUPS, p["IMAGES"], p["RUNGS"], p["FINAL_SEEDS"], p["SEARCH_SEEDS"], rung, chosen)
        tasks.update((t.name, t) for _, t in runs)
        psnr = {t.name: _recorded_psnr(t, folders) for _, t in runs}
        known = {name: v for name, v in psnr.items() if v is not None}
        return _rung_means({t.name: where for where, t in runs}, known) if len(known) == len(psnr) else None

    halving(initial_grids(p["LEARNING_RATES"], SETUPS), p["RUNGS"], p["KEEP"], p["WIDEN"], look_up)
    return {"learning-rate sweep": list(tasks.values())}


def limitations(p: dict, images: int, data_label: str) -> str:
    """What the sweep's design leaves open, as Markdown bullets."""
    return (f"- Rungs of {', '.join(f'{n:,}' for n in p['RUNGS'])} iterations (the study: 1,000, one run each); "
            f"{len(p['SEARCH_SEEDS'])} seeds per rate in the early rungs, {len(p['FINAL_SEEDS'])} in the last.\n"
            f"- {images} validation images from `{data_label}`'s validation split; with the embedded sample these are not faces.\n"
            f"- Grids grow at most {p['WIDEN']} half-decade steps past their start, within 1e-8..1; an optimizer whose best "
            "rate still sits at an end of its grid may do better beyond it.\n"
            "- A rate dropped at an early rung is never run longer: one that starts slowly but would end well can be lost.\n"
            "- The same validation images choose the rates and score the finalists, so a finalist's PSNR is slightly "
            "optimistic; the rates it is compared with were chosen the same way.")
