"""Notebook 01's learning-rate sweep: successive halving, outcomes, its plan, its findings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srlib.recipe import RECIPES
from srlib.report import notebook, tables
from srlib.report import optimizer_compare as oc
from srlib.report.sweep import Data, Result, Task


@pytest.mark.slow
def test_lr_sweep_halves_over_rungs_and_runs_the_studys_rate_to_the_end(celeba, tmp_path, celeba_data):
    test_data = Data(celeba_data.root, "test", 3)
    args = dict(grids={"sgd": [1e-3], "adam": [1e-3]}, search_seeds=[0, 1], rungs=[1, 2, 3], keep=[2, 1],
                final_seeds=[0, 1, 2], folder=tmp_path / "runs", data=celeba_data, images=2, widen=1,
                scheduler="serial", recheck=True, held_out_seeds=[5], held_out_data=test_data)
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
    # every study-set-up rate of SGD the halving dropped ran to the end on the search seeds; no other
    checks = sweep.rechecks
    dropped = set(runs[(runs.setup == "study") & (runs.optimizer == "sgd")].groupby("lr").iterations.max().loc[
        lambda its: its < 3].index)
    assert dropped and set(checks.lr) == dropped and set(checks.seed) == {0, 1} and (checks.iterations == 3).all()
    assert set(checks.setup) == {"study"} and set(checks.optimizer) == {"sgd"}
    table = sweep.recheck_table()
    assert set(table.lr) == dropped and (table.dropped_at < 3).all() and table.outcome_when_dropped.str.len().min() > 0
    # the best rates again on a seed that chose nothing, scored on the test split's 3 images
    held = sweep.held_out
    assert len(held) == len(best) and set(held.seed) == {5} and all(t.startswith("test-") for t in held.task)
    assert all(len(sweep.results[t].psnr) == 3 for t in held.task)
    h = sweep.held_out_table(notebook.load_split(celeba_data), notebook.load_split(test_data))
    assert len(h) == len(best) and (h.test_seeds == 1).all() and (h.val_seeds == 3).all()
    assert np.allclose(h.optimism_db, h.val_gain_db - h.test_gain_db)
    text = oc.findings(sweep, vs, 2, held_out=h, test_images=3)
    assert "**sgd**" in text and "each run to 3 iterations on 2 seeds" in text and "**Held out**" in text
    # the plan the progress lines and --dry-run price: exact once the runs are recorded, never short before
    params = {"LEARNING_RATES": args["grids"], "SEARCH_SEEDS": [0, 1], "RUNGS": [1, 2, 3], "KEEP": [2, 1],
              "FINAL_SEEDS": [0, 1, 2], "IMAGES": 2, "WIDEN": 1, "RECHECK": True, "HELD_OUT_SEEDS": [5]}
    planned = oc.plan(params, [tmp_path / "runs"])
    assert sorted(t.name for t in planned["learning-rate sweep"]) == sorted(runs.task)
    assert sorted(t.name for t in planned["dropped rates run to the end"]) == sorted(checks.task)
    assert sorted(t.name for t in planned["best rates on held-out seeds"]) == sorted(held.task)
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
    pd.testing.assert_frame_equal(again.held_out, held)
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
                         "outcome": oc.outcome(2e4, 2e16 if v < 10 else 2e4, 2e4 if v < 10 else 300, v, dead),
                         "top_mode": bool(oc.top_mode(np.array(per_seed))[seed])})
    return oc.LRSweep(pd.DataFrame(rows), results, list(range(len(next(iter(psnr.values()))))))


def test_a_seed_that_diverged_is_left_out_and_said_not_made_a_nan_or_a_tie():
    """SGD: 4 seeds ended black (6 dB), one diverged; Adam learned. The table keeps the 4 black seeds'
    PSNR and says a seed diverged; no seed of SGD learned, so there is nothing to pair against Adam."""
    sweep = _synthetic_sweep({"sgd": [6.0, 6.1, np.nan, 6.0, 6.2], "adam": [27.0, 27.5, 26.8, 27.2, 27.1]})
    s = sweep.summary().set_index("optimizer")
    assert s.loc["sgd"].val_psnr == pytest.approx(np.mean([6.0, 6.1, 6.0, 6.2]))
    assert s.loc["sgd"].diverged == 1 and s.loc["sgd"].outcome == "blew up, then dead (4 of 5), diverged (1 of 5)"
    assert s.loc["sgd"].top == 0 and s.loc["adam"].top == 5 and s.loc["adam"].failed_low == 0
    vs = sweep.against("adam").set_index("a").loc["sgd"]
    assert np.isnan(vs.a_minus_b_db) and not vs.measurable and vs.left_out_seeds == 5
    text = oc.findings(sweep, sweep.against("adam"), 4)
    assert "sgd (lr 0.01) blew up, then dead (4 of 5), diverged (1 of 5), no seed learned" in text
    learned = _synthetic_sweep({"sgd": [20.0, np.nan, 21.0], "adam": [27.0, 27.5, 26.8]}).summary()
    assert "diverged (1 of 3); seeds split: 1 of 3 did not reach the best place, a share of 1%..91%; the other 2: 20.50 dB" in \
        oc._state(learned.set_index("optimizer").loc["sgd"])  # a seed that diverged failed
    everything = tables.paired_table({"a": np.full((3, 4), np.nan), "b": np.ones((3, 4))}, [("a", "b")]).iloc[0]
    assert np.isnan(everything.a_minus_b_db) and everything.left_out_seeds == 3
    assert tables.difference_words(everything.a_minus_b_db, everything.ci_low, everything.ci_high,
                               everything.measurable) == "n/a (diverged)"


def test_seeds_that_split_are_counted_and_the_others_level_given_not_a_mean_over_both():
    """Momentum: 4 seeds at 27.2 dB, one stuck at 17.5 (the study set-up's 0..1-target Momentum). A mean
    with a t interval over both places (25.3 [19.9, 30.7]) reaches above every run; the summary gives
    the count that failed with its interval and the level of the others, and the comparison with Adam
    pairs the seeds in which both learned."""
    sweep = _synthetic_sweep({"momentum": [27.2, 27.25, 27.2, 17.5, 27.15], "adam": [27.0, 27.5, 26.8, 27.2, 27.1]})
    m = sweep.summary().set_index("optimizer").loc["momentum"]
    assert m.top == 4 and m.stuck_psnr == pytest.approx(17.5) and m.top_psnr == pytest.approx(27.2)
    assert m.top_high < 27.3 and 0 < m.failed_low < 0.2 < 0.7 < m.failed_high < 0.8  # Clopper-Pearson, 1 of 5
    assert "seeds split: 1 of 5 did not reach the best place (mean 17.5 dB), a share of 1%..72%; the other 4: 27.20 dB" \
        in oc._state(m)
    vs = sweep.against("adam").set_index("a").loc["momentum"]
    assert vs.left_out_seeds == 1 and vs.interval == "t over 4 seeds" and abs(vs.a_minus_b_db) < 0.2
    assert "(over the 4 seeds in which both learned)" in oc.findings(sweep, sweep.against("adam"), 4)


@pytest.mark.parametrize("values,expected", [
    ([27.2, 27.2, 27.2, 17.5, 27.2], [1, 1, 1, 0, 1]), ([14.3, 14.3, 22.4, 14.3, 22.3], [0, 0, 1, 0, 1]),
    ([24.0, 23.7, 23.0, 23.4, 22.5], [1, 1, 1, 1, 1]), ([6.0, 6.0, np.nan, 6.0], [0, 0, 0, 0]),
    ([25.0, np.nan, 6.0, 24.0], [1, 0, 0, 1]), ([27.0], [1])])
def test_top_mode_splits_seeds_at_a_gap_of_more_than_3_db(values, expected):
    assert oc.top_mode(np.array(values)).astype(int).tolist() == expected


@pytest.mark.parametrize("losses,psnr,diverged,expected", [
    ((2e4, 2e4, 2e4), 5.0, False, "never moved"), ((2e4, 2e16, 2e4), 5.0, False, "blew up, then dead"),
    ((2e4, 2e16, 100), 25.0, False, "blew up, recovered"), ((2e4, 2e4, 1e4), 5.0, False, "loss fell, output black"),
    ((2e4, 2e4, 300), 26.0, False, "learned"), ((2e4, 2e4, 2e4), float("nan"), True, "diverged")])
def test_run_outcomes_tell_never_moved_from_blew_up(losses, psnr, diverged, expected):
    assert oc.outcome(*losses, psnr, diverged) == expected
