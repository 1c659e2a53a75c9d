"""Notebook 01's learning-rate sweep: successive halving, outcomes, its plan, its findings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srlib.recipe import RECIPES
from srlib.report import optimizer_compare as oc
from srlib.report import tables
from srlib.report.sweep import Result, Task


@pytest.mark.slow
def test_lr_sweep_halves_over_rungs_and_runs_the_studys_rate_to_the_end(celeba, tmp_path, celeba_data):
    args = dict(grids={"sgd": [1e-3], "adam": [1e-3]}, search_seeds=[0, 1], rungs=[1, 2, 3], keep=[2, 1],
                final_seeds=[0, 1, 2], folder=tmp_path / "runs", data=celeba_data, images=2, widen=1,
                scheduler="serial")
    sweep = oc.lr_sweep(**args)
    runs = sweep.runs
    assert {"setup", "optimizer", "lr", "seed", "val_psnr", "outcome"} <= set(runs.columns)
    assert list(dict.fromkeys(runs.setup)) == list(oc.SETUPS)  # in the set-ups' own order
    assert set(runs[runs.setup.isin(oc.RESCUE_SETUPS)].optimizer) == {"sgd"}  # rescue set-ups: SGD and kin only
    for (setup, opt), g in runs[runs.iterations == 1].groupby(["setup", "optimizer"]):
        steps = sorted(oc.step_of(lr) for lr in g.lr.unique())
        assert {oc.step_of(oc.DEFAULT_LR[opt]), oc.step_of(1e-3), oc.step_of(oc.STUDY_LR)} <= set(steps)
        assert steps == list(range(steps[0], steps[-1] + 1))  # half-decade steps, no gaps
        assert set(g.seed) == {0, 1}
    pairs = runs[["setup", "optimizer"]].drop_duplicates()
    assert len(runs[runs.iterations == 2]) == len(pairs) * 2 * 2  # 2 rates x 2 search seeds
    final = runs[runs.iterations == 3]
    assert set(final.seed) == {0, 1, 2}
    for _, g in final.groupby(["setup", "optimizer"]):
        assert oc.STUDY_LR in set(g.lr) and g.lr.nunique() in (1, 2)  # the best rate, and the study's
    assert (sweep.at_study_lr().lr == oc.STUDY_LR).all() and len(sweep.at_study_lr()) == len(pairs)
    best = sweep.best()
    assert (best.iterations == 3).all() and len(best) == len(pairs)
    vs = sweep.against("adam")
    assert set(vs.setup) == {"study", "0..1 targets + He init"} and (vs.a == "sgd").all()
    assert sweep.best_scores("study", "adam").shape == (3, 2)  # final seeds x images
    assert list(sweep.rescue().index) == ["sgd"] and "verdict" in sweep.rescue()
    assert "**sgd**" in oc.findings(sweep, vs, 2)
    # the plan the progress lines and --dry-run price: exact once the runs are recorded, never short before
    params = {"LEARNING_RATES": args["grids"], "SEARCH_SEEDS": [0, 1], "RUNGS": [1, 2, 3], "KEEP": [2, 1],
              "FINAL_SEEDS": [0, 1, 2], "IMAGES": 2, "WIDEN": 1}
    assert sorted(t.name for t in oc.plan(params, [tmp_path / "runs"])["learning-rate sweep"]) == \
        sorted(runs.task)
    partly = tmp_path / "partly"  # the second rung not run yet: its rates are known, the last rung's are not
    partly.mkdir()
    for name in runs[runs.iterations == 1].task:
        (partly / f"{name}.json").write_bytes((tmp_path / "runs" / f"{name}.json").read_bytes())
    plan = oc.plan(params, [partly])["learning-rate sweep"]
    assert {t.name for t in plan if t.iterations < 3} == set(runs[runs.iterations < 3].task)
    assert len([t for t in plan if t.iterations == 3]) == len(pairs) * 2 * 3 >= len(final)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    again = oc.lr_sweep(**args)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == files  # nothing re-run
    pd.testing.assert_frame_equal(again.runs, runs)
    with pytest.raises(ValueError, match="unknown optimizer"):
        oc.lr_sweep({"lbfgs": [1.0]}, [0], [1], [], [0], tmp_path / "x", celeba_data, scheduler="serial")


def _synthetic_sweep(psnr: dict[str, list[float]]) -> oc.LRSweep:
    """A finished 1-rate sweep in the study set-up: per optimizer, each seed's mean PSNR (NaN: diverged)
    over 4 images."""
    rows, results = [], {}
    for opt, per_seed in psnr.items():
        for seed, v in enumerate(per_seed):
            task = Task(f"{opt}-{seed}", RECIPES["study"].with_(optimizer=opt), 10, seed)
            dead = bool(np.isnan(v))
            results[task.name] = Result(task, np.full(4, v) + np.arange(4) * 0.01, np.full(10, 2e4), 7 if dead else None)
            rows.append({"setup": "study", "optimizer": opt, "lr": 0.01, "seed": seed, "iterations": 10, "val_psnr": v,
                         "first_loss": 2e4, "max_loss": 2e16 if v < 10 else 2e4, "final_loss": 2e4 if v < 10 else 300,
                         "diverged": dead, "diverged_at": 7 if dead else None, "library_default": False, "study_lr": True,
                         "task": task.name,
                         "outcome": oc.outcome(2e4, 2e16 if v < 10 else 2e4, 2e4 if v < 10 else 300, v, dead)})
    return oc.LRSweep(pd.DataFrame(rows), results, list(range(len(next(iter(psnr.values()))))))


def test_a_seed_that_diverged_is_left_out_and_said_not_made_a_nan_or_a_tie():
    """SGD: 4 seeds ended black (6 dB), one diverged; Adam learned. The table keeps the 4 black seeds'
    PSNR and says a seed diverged; the comparison is over the other 4 seeds, a measurable loss."""
    sweep = _synthetic_sweep({"sgd": [6.0, 6.1, np.nan, 6.0, 6.2], "adam": [27.0, 27.5, 26.8, 27.2, 27.1]})
    s = sweep.summary().set_index("optimizer")
    assert s.loc["sgd"].val_psnr == pytest.approx(np.mean([6.0, 6.1, 6.0, 6.2]))
    assert s.loc["sgd"].diverged == 1 and s.loc["sgd"].outcome == "blew up, then dead (4 of 5), diverged (1 of 5)"
    vs = sweep.against("adam").set_index("a").loc["sgd"]
    assert vs.measurable and vs.a_minus_b_db < -20 and vs.interval == "t over 4 seeds" and vs.diverged_seeds == 1
    assert vs.per_seed_db.split()[2] == "+nan"
    text = oc.findings(sweep, sweep.against("adam"), 4)
    assert "against Adam (over the other 4 seeds: 1 diverged)" in text and "no measurable" not in text
    learned = _synthetic_sweep({"sgd": [20.0, np.nan, 21.0], "adam": [27.0, 27.5, 26.8]}).summary()
    assert "over the 2 seeds that did not diverge" in oc._state(learned.set_index("optimizer").loc["sgd"])
    everything = tables.paired_table({"a": np.full((3, 4), np.nan), "b": np.ones((3, 4))}, [("a", "b")]).iloc[0]
    assert np.isnan(everything.a_minus_b_db) and everything.diverged_seeds == 3
    assert tables.difference_words(everything.a_minus_b_db, everything.ci_low, everything.ci_high,
                               everything.measurable) == "n/a (diverged)"


@pytest.mark.parametrize("losses,psnr,diverged,expected", [
    ((2e4, 2e4, 2e4), 5.0, False, "never moved"), ((2e4, 2e16, 2e4), 5.0, False, "blew up, then dead"),
    ((2e4, 2e16, 100), 25.0, False, "blew up, recovered"), ((2e4, 2e4, 1e4), 5.0, False, "loss fell, output black"),
    ((2e4, 2e4, 300), 26.0, False, "learned"), ((2e4, 2e4, 2e4), float("nan"), True, "diverged")])
def test_run_outcomes_tell_never_moved_from_blew_up(losses, psnr, diverged, expected):
    assert oc.outcome(*losses, psnr, diverged) == expected
