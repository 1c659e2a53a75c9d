"""Notebook 04's recipes: the build-up ladder and leave-one-out, their tables."""
from __future__ import annotations

import pytest

from srlib.recipe import RECIPES
from srlib.report import beyond_the_study, notebook


def test_ablation_ladder_ends_at_the_improved_recipe():
    ladder = beyond_the_study.ablation_recipes(iterations=5000)
    assert ladder[0][1].with_(name="study") == RECIPES["study"]
    last_label, last = ladder[-1]
    assert last == RECIPES["improved"].with_(name=last_label)
    assert len({r for _, r in ladder}) == len(ladder)  # every step changes something


@pytest.mark.slow
def test_ablation_table_has_intervals_and_paired_gains(celeba, tmp_path, celeba_data):
    runs = notebook.run_grouped(beyond_the_study.ablation_tasks([1, 2], [0, 1]), tmp_path, celeba_data, scheduler="serial")
    table = beyond_the_study.ablation_table(runs)
    assert len(table) == 2 * len(beyond_the_study.ABLATION_STEPS)
    assert table.gain_db.isna().sum() == 2  # the first step of each length has nothing before it
    steps = table[table.iterations == 2].set_index("step")
    assert steps.gain_db.iloc[1] == pytest.approx(steps.psnr_rgb.iloc[1] - steps.psnr_rgb.iloc[0])
    assert (table.seeds == 2).all() and (table.ci_low <= table.psnr_rgb).all()


def test_leave_one_out_undoes_exactly_one_change_and_pairs_it_with_the_full_recipe(celeba, tmp_path, celeba_data):
    recipes = dict(beyond_the_study.leave_one_out_recipes(5000))
    assert recipes["improved recipe"] == RECIPES["improved"].with_(name="improved recipe")
    study, full = RECIPES["study"], recipes["improved recipe"]
    for label, change in beyond_the_study.RECIPE_CHANGES:
        without = recipes[f"without {label}"]
        for key in change:  # that change back at the study's value, every other as in the full recipe
            owner = (lambda r: r.net) if key in without.net.__dataclass_fields__ else (lambda r: r)
            assert getattr(owner(without), key) == getattr(owner(study), key) != getattr(owner(full), key)
        assert without.with_(**change, name="improved recipe") == full
    runs = notebook.run_grouped(beyond_the_study.leave_one_out_tasks([2], [0, 1], only=["flips", "biases"]), tmp_path, celeba_data,
                          scheduler="serial")
    table = beyond_the_study.leave_one_out_table(runs)
    assert list(table.change) == ["biases", "flips"] and (table.seeds == 2).all()
    diff = notebook.psnr_matrix(runs[(2, "improved recipe")]) - notebook.psnr_matrix(runs[(2, "without flips")])
    assert table.worth_db[1] == pytest.approx(diff.mean()) and table.interval[1] == "t over 2 seeds"
