"""Notebook 01: which optimizers learn in the study's set-up, and at which learning rate.

A successive-halving sweep over half-decade learning-rate grids, for each optimizer, in the study's
set-up and in the set-ups that change what might have stopped plain SGD (``SETUPS``); the finalists
run more seeds, and every comparison pairs them on seeds and images (``tables.paired_table``).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.celeba import Pairs
from ..evaluation.evaluate import BASELINES
from ..evaluation.metrics import seed_interval, welch_interval
from ..model import SRModel
from ..nn.optimizers import OPTIMIZERS
from ..recipe import RECIPES, Recipe
from .notebook import BICUBIC, slug
from .sweep import Data, Result, Task, clear, load_result, psnr_matrix, recorded, run_tasks
from .tables import baseline_scores, difference_words, fmt_db, paired_table, with_holm

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
#: The optimizers whose every rate dropped early in the study set-up is run to the final length: the
#: report's claim that no rate rescues them there rests on those runs.
RECHECKED = RESCUED

#: The learning rate each library uses by default: the optimizers' own defaults.
DEFAULT_LR = {name: inspect.signature(cls).parameters["lr"].default for name, cls in OPTIMIZERS.items()}
#: The rate the study ran every optimizer at in its comparison, run to the final length as a row of its own
#: (the study's fact sheet, mistake 2: "one learning rate for all", at which SGD and Momentum diverged;
#: its long Adam runs used Adam's own default, 0.001, as notebook 02 does).
STUDY_LR = 0.01

#: Learning rates are 10^(k/2): half-decade steps, k an integer ("step"), so grids never drift.
LR_LIMITS = (-16, 0)  # 1e-8 .. 1


#: below this validation PSNR an output is essentially black: the run never learned
BLANK_PSNR_DB = 10.0
#: runs of one rate whose validation PSNRs leave a gap this wide with no run in it ended in two places
#: (seeds of 0..1-target Momentum end at 27.2 or 17.5 dB): the rate's seeds split, and a mean with a
#: t interval over both places describes neither
MODE_GAP_DB = 3.0


def top_mode(values: np.ndarray) -> np.ndarray:
    """Which runs of one rate (their validation PSNRs) ended in its best place: not diverged (NaN), not
    black (``BLANK_PSNR_DB``) and above the widest gap between the others' sorted PSNRs when that gap
    exceeds ``MODE_GAP_DB``. The rest failed: they diverged, stayed black, or got stuck lower."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v) & (v >= BLANK_PSNR_DB)
    if ok.sum() < 2:
        return ok
    ranked = np.sort(v[ok])
    gaps = np.diff(ranked)
    cut = int(np.argmax(gaps))
    return ok & (v > ranked[cut]) if gaps[cut] > MODE_GAP_DB else ok


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
    results: dict[str, Result]          # by task name (the checks' runs too)
    seeds: list[int]                    # the finalists' seeds
    # the rates dropped at an early rung, run to the final length on the search seeds (``RECHECKED``)
    rechecks: pd.DataFrame = field(default_factory=pd.DataFrame)
    # each optimizer at its best rate again, on seeds that chose nothing, scored on the test split
    held_out: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def final_length(self) -> int:
        return int(self.runs.iterations.max())

    def summary(self, runs: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per setup, optimizer, learning rate and run length of ``runs`` (default: the sweep's): mean
        validation PSNR over the seeds that did not diverge, with its 95% t-interval (NaN when every seed
        diverged), how many seeds diverged, and what the runs did (``outcome``: each kind with its count,
        the most common first). Where the seeds split (``top_mode``), ``top`` counts the runs in the best
        place, ``top_psnr`` [``top_low``, ``top_high``] is their mean with its t interval, ``stuck_psnr``
        the others' mean, and ``failed_low``..``failed_high`` the 95% Clopper-Pearson interval of the
        share of runs that fail: a split rate is counts plus the level its good runs reach, not a mean."""
        from scipy.stats import beta

        runs = self.runs if runs is None else runs
        rows = []
        for (setup, opt, lr, its), g in runs.groupby(["setup", "optimizer", "lr", "iterations"], sort=False):
            m, low, high = seed_interval(g.val_psnr[~g.diverged].to_numpy())
            kinds = g.outcome.value_counts()
            top = g.top_mode.to_numpy(bool)
            n, failed = len(g), int((~top).sum())
            top_m, top_low, top_high = seed_interval(g.val_psnr[top].to_numpy())
            stuck = g.val_psnr[~top & ~g.diverged]
            rows.append({"setup": setup, "optimizer": opt, "lr": lr, "iterations": its,
                         "library_default": bool(g.library_default.iloc[0]), "study_lr": bool(g.study_lr.iloc[0]),
                         "val_psnr": m, "ci_low": low, "ci_high": high, "seeds": n,
                         "diverged": int(g.diverged.sum()),
                         "outcome": ", ".join(f"{k} ({c} of {n})" for k, c in kinds.items()),
                         "top": n - failed, "top_psnr": top_m, "top_low": top_low, "top_high": top_high,
                         "stuck_psnr": float(stuck.mean()) if len(stuck) else float("nan"),
                         "failed_low": float(beta.ppf(0.025, failed, n - failed + 1)) if failed else 0.0,
                         "failed_high": float(beta.ppf(0.975, failed + 1, n - failed)) if failed < n else 1.0,
                         "first_loss": g.first_loss.mean(), "max_loss": g.max_loss.max(),
                         "final_loss": g.final_loss.mean()})
        return pd.DataFrame(rows)

    def best(self) -> pd.DataFrame:
        """Per setup and optimizer, the learning rate with the best mean validation PSNR among the
        final-length runs (a rate at which any seed diverged is never best; of rates that tie, the smaller)."""
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

    def best_scores(self, setup: str, optimizer: str, top_only: bool = False) -> np.ndarray:
        """(seeds, images) PSNR of ``optimizer`` at its best rate in ``setup``; ``top_only``: a seed whose
        run failed (``top_mode``) as NaN, so a paired comparison leaves it out."""
        b = self.best().loc[(setup, optimizer)]
        runs = self._runs_of(setup, optimizer, b.lr, b.iterations)
        scores = psnr_matrix([self.results[n] for n in runs.task])
        if top_only:
            scores[~runs.top_mode.to_numpy(bool)] = np.nan
        return scores

    def against(self, reference: str = "adam") -> pd.DataFrame:
        """Per setup that ran ``reference``, each optimizer at its best rate minus ``reference`` at its
        best rate: paired on seeds (same initialisation and batches) and images, over the seeds in which
        both runs ended in their rate's best place (``top_mode``; ``left_out_seeds`` counts the others).
        One family: Holm over every row."""
        tables = []
        for setup in self.runs.setup.unique():
            opts = list(self.runs[self.runs.setup == setup].optimizer.unique())
            if reference not in opts:
                continue
            scores = {o: self.best_scores(setup, o, top_only=True) for o in opts}
            t = paired_table(scores, [(o, reference) for o in opts if o != reference])
            t.insert(0, "setup", setup)
            tables.append(t)
        return with_holm(pd.concat(tables, ignore_index=True))

    def against_bicubic(self, pairs: Pairs) -> pd.DataFrame:
        """Per setup, each optimizer at its best rate minus the aligned bicubic on the same images
        (``pairs``: the evaluation images the runs were scored on, in order), paired on images and
        taken per seed over the seeds whose run ended in the rate's best place; ``bicubic_db`` is the
        bicubic's own mean PSNR. One family: Holm over every row."""
        bicubic = baseline_scores(pairs, {BICUBIC: BASELINES["bicubic_aligned"]})
        tables = []
        for setup, opt in self.best().index:
            t = paired_table({opt: self.best_scores(setup, opt, top_only=True), **bicubic}, [(opt, BICUBIC)])
            t.insert(0, "setup", setup)
            tables.append(t)
        t = with_holm(pd.concat(tables, ignore_index=True))
        t["bicubic_db"] = float(np.mean(bicubic[BICUBIC]))
        return t

    def held_out_table(self, val_pairs: Pairs, test_pairs: Pairs) -> pd.DataFrame:
        """Per (set-up, optimizer) at its best rate: the runs that chose it (final seeds, ``val_pairs``)
        beside the same rate on held-out seeds scored on the test split (``test_pairs``): seeds in the
        best place (``top_mode``) and mean PSNR [t interval] on each split, the gain over the aligned
        bicubic on each (the two splits' images differ in difficulty; the gain does not carry that),
        and ``optimism_db``: the validation gain minus the test gain with its 95% Welch interval over the
        two groups of runs (independent seeds and images: nothing to pair). Empty without held-out runs."""
        if self.held_out.empty:
            return pd.DataFrame()
        bicubic = {split: float(np.mean(baseline_scores(pairs, {BICUBIC: BASELINES["bicubic_aligned"]})[BICUBIC]))
                   for split, pairs in (("val", val_pairs), ("test", test_pairs))}
        rows = []
        for (setup, opt), b in self.best().iterrows():
            groups = {"val": self._runs_of(setup, opt, b.lr, b.iterations),
                      "test": self.held_out[(self.held_out.setup == setup) & (self.held_out.optimizer == opt)]}
            row = {"setup": setup, "optimizer": opt, "lr": b.lr, "iterations": b.iterations}
            for split, g in groups.items():
                m, low, high = seed_interval(g.val_psnr[~g.diverged].to_numpy())
                row.update({f"{split}_seeds": len(g), f"{split}_top": int(g.top_mode.sum()), f"{split}_psnr": m,
                            f"{split}_low": low, f"{split}_high": high, f"{split}_bicubic_db": bicubic[split],
                            f"{split}_gain_db": m - bicubic[split]})
            d, low, high = welch_interval(groups["val"].val_psnr - bicubic["val"], groups["test"].val_psnr - bicubic["test"])
            rows.append({**row, "optimism_db": d, "optimism_low": low, "optimism_high": high})
        return pd.DataFrame(rows)

    def recheck_table(self) -> pd.DataFrame:
        """The rates the halving dropped early, run to the final length (``rechecks``): per rate its
        summary at that length (``summary``) beside what its runs did at the rung that dropped it."""
        if self.rechecks.empty:
            return pd.DataFrame()
        t = self.summary(self.rechecks)
        dropped = self.summary().set_index(["setup", "optimizer", "lr", "iterations"])
        at = self.runs.groupby(["setup", "optimizer", "lr"]).iterations.max()
        t.insert(4, "dropped_at", [int(at.loc[(r.setup, r.optimizer, r.lr)]) for r in t.itertuples()])
        t.insert(5, "outcome_when_dropped", [dropped.loc[(r.setup, r.optimizer, r.lr, r.dropped_at)].outcome
                                             for r in t.itertuples()])
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
    """A summary row in words: what its runs did and, when they learned, their PSNR; where its seeds
    split (``top_mode``), how many did not reach the best place (diverged, black, or stuck lower; with
    the 95% interval of that share) and the level of the others, not a mean over both."""
    if not r.val_psnr >= BLANK_PSNR_DB:
        return r.outcome
    if r.top < r.seeds:
        stuck = f" (mean {r.stuck_psnr:.1f} dB)" if np.isfinite(r.stuck_psnr) else ""
        return (f"{r.outcome}; seeds split: {r.seeds - r.top} of {r.seeds} did not reach the best place{stuck}, a share "
                f"of {r.failed_low:.0%}..{r.failed_high:.0%}; the other {r.top}: {fmt_db(r.top_psnr, r.top_low, r.top_high)}")
    return f"{r.outcome}, {fmt_db(r.val_psnr, r.ci_low, r.ci_high)}"  # every seed learned (a diverged one failed)


def _against_adam(d) -> str:
    """A row of ``LRSweep.against`` in words, saying which seeds it leaves out."""
    kept = len(d.per_seed_db.split()) - d.left_out_seeds
    if not kept:
        return ", no seed learned: nothing to pair against Adam"
    left_out = (f" (over the {kept} seed{'' if kept == 1 else 's'} in which both learned)" if d.left_out_seeds else "")
    return f", {difference_words(d.a_minus_b_db, d.ci_low, d.ci_high, d.measurable)} against Adam{left_out}"


def findings(sweep: LRSweep, vs_adam: pd.DataFrame, images: int, vs_bicubic: pd.DataFrame | None = None,
             held_out: pd.DataFrame | None = None, test_images: int = 0) -> str:
    """What a learning-rate sweep found, as Markdown bullets written from its numbers: per set-up each
    optimizer at its best rate against Adam; per optimizer the study failed with, what it did at the
    study's rate, which set-up rescues it (``LRSweep.rescue``) and what its dropped rates did when run to
    the end (``LRSweep.recheck_table``), or at which length alone they were seen; per set-up its best
    optimizer against the aligned bicubic (``LRSweep.against_bicubic``), when given; the best rates on
    held-out seeds and test images (``LRSweep.held_out_table``), when given."""
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
                                      else ".") + f" Best rate per set-up: {where}. So: {r.verdict}"
                     + _dropped_words(sweep, opt) + ".")
    if vs_bicubic is not None and len(vs_bicubic):
        scored = vs_bicubic.dropna(subset=["a_minus_b_db"])
        top = scored.loc[scored.groupby("setup", sort=False).a_minus_b_db.idxmax()]
        lines.append(f"- **Against the aligned bicubic** ({vs_bicubic.bicubic_db.iloc[0]:.2f} dB on the same images), the "
                     f"best optimizer of each set-up after {rungs[-1]:,} iterations: " + "; ".join(
                         f"{r.setup}: {r.a} {difference_words(r.a_minus_b_db, r.ci_low, r.ci_high, r.measurable)}"
                         for r in top.itertuples()) + ".")
    if held_out is not None and len(held_out):
        lines.append(_held_out_words(held_out, images, test_images))
    return "\n".join(lines)


def _dropped_words(sweep: LRSweep, optimizer: str) -> str:
    """How far the study set-up's rates of ``optimizer`` that were not finalists were seen: run to the
    final length (``LRSweep.rechecks``: which of them learned), or only at the rungs that dropped them."""
    ran = sweep.runs[(sweep.runs.setup == "study") & (sweep.runs.optimizer == optimizer)]
    dropped = ran.groupby("lr").iterations.max()
    dropped = dropped[dropped < sweep.final_length]
    if dropped.empty:
        return ""
    checked = sweep.recheck_table()
    checked = checked[checked.optimizer == optimizer] if len(checked) else checked
    if len(checked) < len(dropped):
        lengths = ", ".join(f"{n:,}" for n in sorted(dropped.unique()))
        return (f" (in the study set-up, its {len(dropped)} rates dropped early, {dropped.index.min():.2g} to "
                f"{dropped.index.max():.2g}, were seen at {lengths} iterations only)")
    learned = checked[checked.top > 0]
    seeds = int(checked.seeds.max())
    return (f" (its {len(checked)} rates dropped early in the study set-up, {checked.lr.min():.2g} to {checked.lr.max():.2g}, "
            f"each run to {sweep.final_length:,} iterations on {seeds} seeds: "
            + ("none learned" if learned.empty else "learned at " + ", ".join(
                f"lr {r.lr:.3g} ({r.top} of {r.seeds} seeds, {r.top_psnr:.2f} dB)" for r in learned.itertuples()))
            + ")")


def _held_out_words(held_out: pd.DataFrame, images: int, test_images: int) -> str:
    """The held-out table in words: how much of each best rate's gain over bicubic on the validation
    images that chose it is left on fresh seeds and test images."""
    h = held_out.dropna(subset=["optimism_db"])
    rows = "; ".join(f"{r.setup} {r.optimizer} {r.val_gain_db:+.2f} -> {r.test_gain_db:+.2f}" for r in h.itertuples())
    beyond = int(((h.optimism_low > 0) | (h.optimism_high < 0)).sum())
    return (f"- **Held out**: each optimizer's best rate again on {int(held_out.test_seeds.iloc[0])} seed(s) that chose "
            f"nothing, scored on {test_images} test images, against its runs on the {images} validation images that "
            f"chose it. Gain over the aligned bicubic, validation -> test, dB: {rows}. The optimism (validation gain "
            f"minus test gain) has a median of {h.optimism_db.median():+.2f} dB (from {h.optimism_db.min():+.2f} to "
            f"{h.optimism_db.max():+.2f}); its 95% Welch interval leaves out 0 for {beyond} of {len(h)} rows.")


def _sweep_task(setup: str, recipe: Recipe, optimizer: str, step: int, seed: int, iterations: int,
                keep_weights: bool = False, prefix: str = "") -> Task:
    lr = lr_of(step)
    return Task(f"{prefix}{slug(setup)}-{optimizer}-lr{lr:.3g}-seed{seed}-{iterations}it",
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
             fresh: bool = False, recheck: bool = False, held_out_seeds: Sequence[int] = (),
             held_out_data: Data | None = None) -> LRSweep:
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
    4. ``recheck``: the rates of the study set-up's ``RECHECKED`` optimizers that step 3 dropped run
       the final length too, on the search seeds (``recheck_tasks``; ``LRSweep.rechecks``).
    5. ``held_out_seeds``: each optimizer's best rate runs the final length again on these seeds, scored
       on ``held_out_data`` (the test split; ``held_out_tasks``; ``LRSweep.held_out``).
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
    entries = {name: (s, o, k) for name, (s, o, k, _) in tasks.items()}
    by_name = {name: t for name, (*_, t) in tasks.items()}
    sweep = LRSweep(_run_rows(entries, by_name, results, list(setups)), results, list(final_seeds))
    if recheck:
        checks = recheck_tasks(setups, images, rungs, search_seeds, entries, by_name)
        results.update(run_tasks([t for _, t in checks], folder, data, scheduler, workers, fresh=fresh,
                                 desc=f"dropped rates run to {rungs[-1]:,} iterations"))
        sweep.rechecks = _run_rows({t.name: w for w, t in checks}, {t.name: t for _, t in checks}, results, list(setups))
    if held_out_seeds and held_out_data is not None:
        fresh_runs = held_out_tasks(setups, images, rungs[-1], held_out_seeds,
                                    {key: step_of(b.lr) for key, b in sweep.best().iterrows()})
        results.update(run_tasks([t for _, t in fresh_runs], folder, held_out_data, scheduler, workers, fresh=fresh,
                                 desc="best rates on held-out seeds, scored on the test split"))
        sweep.held_out = _run_rows({t.name: w for w, t in fresh_runs}, {t.name: t for _, t in fresh_runs}, results,
                                   list(setups))
    return sweep


def _run_rows(entries: dict[str, tuple[str, str, int]], tasks: dict[str, Task], results: dict[str, Result],
              setups: list[str]) -> pd.DataFrame:
    """One row per run of ``entries`` (task name -> set-up, optimizer, step): what it did and scored, and
    whether it ended in its rate's best place (``top_mode``, over the seeds of its rate and length)."""
    rows = []
    for name, (s, o, k) in entries.items():
        r, t = results[name], tasks[name]
        first, worst, diverged = float(r.loss[0]), float(np.max(r.loss)), r.diverged_at is not None
        rows.append({"setup": s, "optimizer": o, "lr": lr_of(k), "seed": t.seed, "iterations": t.iterations,
                     "val_psnr": r.mean_psnr, "first_loss": first, "max_loss": worst, "final_loss": r.final_loss,
                     "diverged": diverged, "diverged_at": r.diverged_at,
                     "library_default": k == step_of(DEFAULT_LR[o]), "study_lr": k == step_of(STUDY_LR), "task": name,
                     "outcome": outcome(first, worst, r.final_loss, r.mean_psnr, diverged)})
    if not rows:
        return pd.DataFrame()
    order = {name: i for i, name in enumerate(setups)}  # set-ups in their own order, the rest sorted
    runs = pd.DataFrame(rows).sort_values(["setup", "optimizer", "iterations", "lr", "seed"], ignore_index=True,
                                          key=lambda c: c.map(order) if c.name == "setup" else c)
    runs["top_mode"] = runs.groupby(["setup", "optimizer", "lr", "iterations"], sort=False).val_psnr.transform(
        lambda v: top_mode(v.to_numpy()))
    return runs


def recheck_tasks(setups: dict[str, Recipe], images: int, rungs: list[int], search_seeds: list[int],
                  entries: dict[str, tuple[str, str, int]], tasks: dict[str, Task]
                  ) -> list[tuple[tuple[str, str, int], Task]]:
    """Every rate of the ``RECHECKED`` optimizers' grids in the study set-up that the halving dropped
    before the last rung, run to the last rung's length on the search seeds: whether a rate that moved
    too slowly to be kept would have learned by the study's length is then seen, not guessed."""
    ran: dict[tuple[str, str], set[int]] = {}
    final: dict[tuple[str, str], set[int]] = {}
    for name, (s, o, k) in entries.items():
        ran.setdefault((s, o), set()).add(k)
        if tasks[name].iterations == rungs[-1]:
            final.setdefault((s, o), set()).add(k)
    return [((s, o, k), _sweep_task(s, setups[s].with_(images=images), o, k, seed, rungs[-1]))
            for (s, o), ks in ran.items() if s == "study" and o in RECHECKED
            for k in sorted(ks - final.get((s, o), set())) for seed in search_seeds]


def held_out_tasks(setups: dict[str, Recipe], images: int, length: int, seeds: Sequence[int],
                   best: dict[tuple[str, str], int]) -> list[tuple[tuple[str, str, int], Task]]:
    """Each (set-up, optimizer) at its best rate step (``best``) again on ``seeds``, which took no part in
    any choice, to be scored on the test split: named apart ("test-...") from the runs scored on
    validation images, so a seed in both lists never overwrites one with the other."""
    return [((s, o, k), _sweep_task(s, setups[s].with_(images=images), o, k, seed, length, prefix="test-"))
            for (s, o), k in best.items() for seed in seeds]


def run(p: dict, folder: str | Path, data: Data, scheduler: str = "local", workers: int | None = None,
        fresh: bool = False, held_out_data: Data | None = None) -> LRSweep:
    """The sweep the notebook's parameters ``p`` ask for (``lr_sweep``); ``held_out_data``: the test
    split the ``HELD_OUT_SEEDS`` runs are scored on."""
    return lr_sweep(p["LEARNING_RATES"], p["SEARCH_SEEDS"], p["RUNGS"], p["KEEP"], p["FINAL_SEEDS"], folder, data,
                    images=p["IMAGES"], widen=p["WIDEN"], scheduler=scheduler, workers=workers, fresh=fresh,
                    recheck=p["RECHECK"], held_out_seeds=p["HELD_OUT_SEEDS"], held_out_data=held_out_data)


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
    (``halving``; a first grid that will still widen adds a few short runs). The held-out runs take
    each pair's best recorded final rate, or, before the final rung has run, its first kept rate."""
    tasks: dict[str, Task] = {}
    entries: dict[str, tuple[str, str, int]] = {}
    final: dict[tuple[str, str], dict[int, list[float]]] = {}  # the last rung's recorded PSNR (NaN: diverged or not run)
    final_known = False

    def look_up(rung: int, chosen: dict[tuple[str, str], list[int]]) -> Means | None:
        nonlocal final_known
        runs = _rung_tasks(SETUPS, p["IMAGES"], p["RUNGS"], p["FINAL_SEEDS"], p["SEARCH_SEEDS"], rung, chosen)
        tasks.update((t.name, t) for _, t in runs)
        entries.update((t.name, where) for where, t in runs)
        psnr = {t.name: _recorded_psnr(t, folders) for _, t in runs}
        known = {name: v for name, v in psnr.items() if v is not None}
        if rung == len(p["RUNGS"]) - 1:
            final.clear()
            final_known = len(known) == len(psnr)
            for (s, o, k), t in runs:
                final.setdefault((s, o), {}).setdefault(k, []).append(known.get(t.name, math.nan))
        return _rung_means({t.name: where for where, t in runs}, known) if len(known) == len(psnr) else None

    halving(initial_grids(p["LEARNING_RATES"], SETUPS), p["RUNGS"], p["KEEP"], p["WIDEN"], look_up)
    out = {"learning-rate sweep": list(tasks.values())}
    if p["RECHECK"]:
        out["dropped rates run to the end"] = [t for _, t in recheck_tasks(SETUPS, p["IMAGES"], p["RUNGS"], p["SEARCH_SEEDS"],
                                                                           entries, tasks)]
    if p["HELD_OUT_SEEDS"]:
        best = {}
        for key, steps in final.items():
            if final_known:  # as ``LRSweep.best``: a rate at which a seed diverged is never best; ties, the smaller rate
                means = {k: -np.inf if any(math.isnan(v) for v in vs) else float(np.mean(vs)) for k, vs in steps.items()}
                best[key] = max(sorted(means), key=means.__getitem__)
            else:
                best[key] = next((k for k in sorted(steps, reverse=True) if k != step_of(STUDY_LR)), step_of(STUDY_LR))
        out["best rates on held-out seeds"] = [t for _, t in held_out_tasks(SETUPS, p["IMAGES"], p["RUNGS"][-1],
                                                                              p["HELD_OUT_SEEDS"], best)]
    return out


def limitations(p: dict, images: int, data_label: str) -> str:
    """What the sweep's design leaves open, as Markdown bullets."""
    return (f"- Rungs of {', '.join(f'{n:,}' for n in p['RUNGS'])} iterations (the study: 1,000, one run each); "
            f"{len(p['SEARCH_SEEDS'])} seeds per rate in the early rungs, {len(p['FINAL_SEEDS'])} in the last.\n"
            f"- {images} validation images from `{data_label}`'s validation split; with the embedded sample these are not faces.\n"
            f"- The study's comparison ran every optimizer, Adam included, at one rate, {STUDY_LR:g}; its long Adam runs used "
            "Adam's default, 0.001. The row at that rate is the study's experiment, the best rates the fair one.\n"
            f"- Grids grow at most {p['WIDEN']} half-decade steps past their start, within 1e-8..1; an optimizer whose best "
            "rate still sits at an end of its grid may do better beyond it.\n"
            + ("- The study set-up's rates of SGD, Momentum and Nesterov dropped at an early rung were run to the end "
               "(the rechecks); other optimizers' and set-ups' dropped rates were not: one that starts slowly but would "
               "end well can be lost.\n" if p["RECHECK"] else
               "- A rate dropped at an early rung is never run longer: one that starts slowly but would end well can be "
               "lost.\n")
            + "- The same validation images and seeds choose the rates and score the finalists, so a finalist's PSNR on "
            "them is optimistic; " + ("the held-out table measures by how much, on seeds and test images that chose "
                                       "nothing." if p["HELD_OUT_SEEDS"] else "by how much is not measured here."))
