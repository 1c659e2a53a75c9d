"""Notebook 03's comparisons: equal optimizer steps per network, the spread of late validation checks."""
from __future__ import annotations

import numpy as np
import pytest

from srlib.recipe import RECIPES
from srlib.report import colour_networks
from srlib.report.sweep import Result, Task


def test_validation_spread_measures_the_late_checks_of_every_seed():
    """Only the checks in the last half count: the early climb is no instability."""
    def run(seed: int, val: list[float]) -> Result:
        return Result(Task(f"r{seed}", RECIPES["study"], 8, seed, validate_every=2), np.zeros(2), np.zeros(8), None,
                      [2, 4, 6, 8], val)
    t = colour_networks.validation_spread({"steady": [run(0, [5.0, 20.0, 21.0, 22.0]), run(1, [1.0, 20.0, 20.0, 20.0])],
                              "jumpy": [run(0, [5.0, 20.0, 23.0, 20.0])]})
    assert (t.loc["steady", "from_iteration"], t.loc["steady", "checks"], t.loc["steady", "seeds"]) == (4, 3, 2)
    assert t.loc["steady", "std_db_min"] == 0.0 and t.loc["steady", "std_db_max"] == pytest.approx(np.std([20, 21, 22]))
    assert t.loc["steady", "largest_fall_db_max"] == 0.0 and t.loc["jumpy", "largest_fall_db_max"] == 3.0
    assert colour_networks.validation_spread({"none": [Result(Task("n", RECIPES["study"], 8, 0), np.zeros(2), np.zeros(8), None)]}).empty


def test_colour_set_ups_are_also_compared_at_equal_optimizer_steps_per_network():
    """The shared network takes 3 steps per iteration: 6 iterations of a per-channel network (6 steps each)
    meet the shared network's validation point nearest 6 steps, iteration 2, not its last one."""
    def run(label: str, seed: int, val: list[float]) -> Result:
        task = Task(f"{label}-{seed}", RECIPES["study"], 6, seed, validate_every=2, **colour_networks.COLOUR_SETUPS[label])
        return Result(task, np.zeros(4), np.zeros(6), None, [2, 4, 6], val)
    shared, own = "shared network", "three networks"
    runs = {shared: [run(shared, 0, [10.0, 20.0, 30.0]), run(shared, 1, [11.0, 21.0, 31.0])],
            own: [run(own, 0, [5.0, 9.0, 14.0]), run(own, 1, [5.0, 9.0, 13.0])]}
    t = colour_networks.at_equal_steps(runs).set_index("a").loc[own]
    assert (t.a_steps_per_network, t.b_iterations, t.b_steps_per_network) == (6, 2, 6)
    assert t.a_minus_b_db == pytest.approx(3.0) and t.per_seed_db == "+4.00 +2.00"
    assert t.ci_low < 3.0 < t.ci_high and t.interval == "t over 2 seeds"
    no_curves = {k: [Result(r.task, r.psnr, r.loss, None) for r in rs] for k, rs in runs.items()}
    assert colour_networks.at_equal_steps(no_curves).empty


def test_late_means_compare_the_mean_of_the_last_checks_not_where_a_swinging_run_stopped():
    """The shared-Adam run swings by 2 dB from check to check: seed 0's last check alone says -2 dB against
    the steady run; the means of the last 4 checks differ by -0.03 dB over the seeds, not measurably."""
    def run(label: str, seed: int, val: list[float]) -> Result:
        task = Task(f"{label}-{seed}", RECIPES["study"], 12, seed, validate_every=2, **colour_networks.COLOUR_SETUPS[label])
        return Result(task, np.zeros(4), np.zeros(12), None, [2, 4, 6, 8, 10, 12], val)
    own, bug = "three networks", "three networks, shared Adam (study bug)"
    runs = {own: [run(own, s, [20.0, 24.0, 25.0, 25.0, 25.0, 25.0 + s / 10]) for s in range(3)],
            bug: [run(bug, s, [20.0, 22.0, 26.0, 24.0, 26.0, 23.0 + s]) for s in range(3)]}
    t = colour_networks.late_means(runs, [(bug, own)], checks=4).set_index("a").loc[bug]
    assert (t.from_iteration, t.checks) == (6, 4) and t.a_minus_b_db == pytest.approx(-0.025)
    assert t.interval == "t over 3 seeds" and not t.measurable and "p_holm" in t
    assert runs[bug][0].val_psnr[-1] - runs[own][0].val_psnr[-1] == pytest.approx(-2.0)
    assert colour_networks.late_means({own: [Result(r.task, r.psnr, r.loss, None) for r in runs[own]]}, [(own, own)]).empty
