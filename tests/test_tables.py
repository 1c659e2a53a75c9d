"""The report's tables: paired differences, intervals that hold their coverage, readable rounding."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srlib.evaluation.metrics import holm, paired_difference, paired_test, welch_interval
from srlib.report import tables


def test_a_table_shows_a_missing_value_as_a_dash_and_keeps_the_number_formats():
    """One seed has no interval; a notebook shows "–" there, not NaN, and leaves the other columns numbers."""
    t = pd.DataFrame({"val_psnr": [23.3421, 6.0381], "ci_low": [22.6147, np.nan], "max_loss": [2.1e4, 8.6e13]})
    shown = tables.readable(t, {"val_psnr": 2, "ci_low": 2})
    assert shown.ci_low.tolist() == [22.61, "–"] and shown.val_psnr.tolist() == [23.34, 6.04]
    assert shown.max_loss.dtype == float and np.isnan(t.ci_low[1])  # the table itself is left as it is


def test_paired_table_pairs_seeds_and_broadcasts_baselines():
    rng = np.random.default_rng(0)
    a = rng.normal(30, 1, (3, 50))
    t = tables.paired_table({"a": a, "b": a - 0.5, "c": a[0] + rng.normal(0, 0.01, 50), "base": a[0]},
                        [("a", "b"), ("c", "base")])
    assert t.a_minus_b_db[0] == pytest.approx(0.5) and t.measurable[0]
    assert t.ci_low[1] < 0.01 and t.ci_high[1] > -0.01
    assert t.ci_low[1] <= t.a_minus_b_db[1] <= t.ci_high[1]
    nan = tables.paired_table({"a": a, "b": np.full_like(a, np.nan)}, [("a", "b")])
    assert np.isnan(nan.a_minus_b_db[0]) and not nan.measurable[0]


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_seed_level_intervals_cover_the_true_difference(seeds):
    """Runs that differ by a true 0.2 dB, plus a seed effect (sd 0.3 dB, the luck of initialisation and
    batches, shared by all images of a run) and image noise: the 95% interval must hold 0.2 in about
    95% of repeated experiments. A bootstrap over 2 or 3 seeds held it ~61% and ~76% of the time."""
    rng = np.random.default_rng(seeds)
    covered, trials = 0, 400
    for _ in range(trials):
        seed_effect = rng.normal(0, 0.3, (seeds, 1))
        b = rng.normal(28, 2, (1, 60)) + rng.normal(0, 0.05, (seeds, 60))
        a = b + 0.2 + seed_effect + rng.normal(0, 0.05, (seeds, 60))
        _, low, high = paired_difference(a, b)
        covered += low <= 0.2 <= high
    assert 0.91 <= covered / trials <= 0.99


def test_holm_adjusts_as_the_textbook_does():
    """Holm (1979): the i-th smallest of m p-values times (m - i + 1), made non-decreasing, at most 1."""
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    assert np.allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02]) and np.isnan(holm(p)[4])
    assert np.allclose(holm(np.array([0.5, 0.9])), [1.0, 1.0])


def test_a_difference_that_does_not_survive_holm_over_its_table_is_not_measurable():
    """Twelve comparisons, one of them at p about 0.02: its own 95% interval leaves out 0, but over the
    table Holm asks for p < 0.05 / 12, so it is not measurable, and the words say why."""
    rng = np.random.default_rng(3)
    seeds = rng.normal(0, 1, (5, 30))
    scores = {"ref": seeds, **{f"x{i}": seeds + rng.normal(0, 0.002, (5, 30)) for i in range(11)}}
    scores["edge"] = seeds + np.array([0.20, 0.35, 0.12, 0.28, 0.05])[:, None]
    t = tables.paired_table(scores, [(k, "ref") for k in scores if k != "ref"]).set_index("a")
    edge = t.loc["edge"]
    _, low, high, p = paired_test(scores["edge"], seeds)
    assert edge.ci_low > 0 and 0.01 < p < 0.05 and edge.p_holm == pytest.approx(min(1, 12 * p)) and not edge.measurable
    assert tables.difference_words(edge.a_minus_b_db, edge.ci_low, edge.ci_high, edge.measurable).endswith(
        "(not measurable after Holm's correction over its table)")
    alone = tables.paired_table({"ref": seeds, "edge": scores["edge"]}, [("edge", "ref")]).iloc[0]
    assert alone.measurable  # a family of one: Holm changes nothing


def test_p_values_agree_with_their_intervals():
    """The interval leaves out 0 exactly when p < 0.05, for the t test over seeds and the bootstrap."""
    rng = np.random.default_rng(4)
    for shift in (0.0, 0.05, 0.1, 0.3):
        for shape in ((4, 40), (40,)):
            a = rng.normal(0, 1, shape)
            b = a - shift + rng.normal(0, 0.3, shape)
            m, low, high, p = paired_test(a, b)
            assert (low > 0 or high < 0) == (p < 0.05), (shift, shape, low, high, p)


def test_welch_interval_matches_scipy():
    from scipy import stats

    x, y = np.array([1.2, 1.5, 0.9, 1.1, 1.4]), np.array([0.6, 1.0, 0.7])
    d, low, high = welch_interval(x, y)
    ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(x.mean() - y.mean()) and (low, high) == pytest.approx((ci.low, ci.high))
    assert np.isnan(welch_interval(x, y[:1])[1])
