"""Experiments, the image browser and the papermill runner (success and a failing notebook)."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from srlib.errors import SrlibError
from srlib.evaluation.metrics import paired_difference
from srlib.paths import project_root
from srlib.recipe import RECIPES
from srlib.report import experiments as ex
from srlib.report import runner, sweep
from srlib.report.browser import ImageBrowser
from srlib.report.sweep import Result, Task, run_tasks
from srlib.train import Trainer


def test_ablation_ladder_ends_at_the_improved_recipe():
    ladder = ex.ablation_recipes(iterations=5000)
    assert ladder[0][1].with_(name="study") == RECIPES["study"]
    last_label, last = ladder[-1]
    assert last == RECIPES["improved"].with_(name=last_label)
    assert len({r for _, r in ladder}) == len(ladder)  # every step changes something


def small_data(celeba):
    return ex.data_source(str(celeba), "validation", 2)


@pytest.mark.slow
def test_lr_sweep_halves_over_rungs_and_runs_the_studys_rate_to_the_end(celeba, tmp_path):
    args = dict(grids={"sgd": [1e-3], "adam": [1e-3]}, search_seeds=[0, 1], rungs=[1, 2, 3], keep=[2, 1],
                final_seeds=[0, 1, 2], folder=tmp_path / "runs", data=small_data(celeba), images=2, widen=1,
                scheduler="serial")
    sweep = ex.lr_sweep(**args)
    runs = sweep.runs
    assert {"setup", "optimizer", "lr", "seed", "val_psnr", "outcome"} <= set(runs.columns)
    assert list(dict.fromkeys(runs.setup)) == list(ex.SETUPS)  # in the set-ups' own order
    assert set(runs[runs.setup.isin(ex.RESCUE_SETUPS)].optimizer) == {"sgd"}  # rescue set-ups: SGD and kin only
    for (setup, opt), g in runs[runs.iterations == 1].groupby(["setup", "optimizer"]):
        steps = sorted(ex.step_of(lr) for lr in g.lr.unique())
        assert {ex.step_of(ex.DEFAULT_LR[opt]), ex.step_of(1e-3), ex.step_of(ex.STUDY_LR)} <= set(steps)
        assert steps == list(range(steps[0], steps[-1] + 1))  # half-decade steps, no gaps
        assert set(g.seed) == {0, 1}
    pairs = runs[["setup", "optimizer"]].drop_duplicates()
    assert len(runs[runs.iterations == 2]) == len(pairs) * 2 * 2  # 2 rates x 2 search seeds
    final = runs[runs.iterations == 3]
    assert set(final.seed) == {0, 1, 2}
    for _, g in final.groupby(["setup", "optimizer"]):
        assert ex.STUDY_LR in set(g.lr) and g.lr.nunique() in (1, 2)  # the best rate, and the study's
    assert (sweep.at_study_lr().lr == ex.STUDY_LR).all() and len(sweep.at_study_lr()) == len(pairs)
    best = sweep.best()
    assert (best.iterations == 3).all() and len(best) == len(pairs)
    vs = sweep.against("adam")
    assert set(vs.setup) == {"study", "0..1 targets + He init"} and (vs.a == "sgd").all()
    assert sweep.best_scores("study", "adam").shape == (3, 2)  # final seeds x images
    assert list(sweep.rescue().index) == ["sgd"] and "verdict" in sweep.rescue()
    assert "**sgd**" in ex.sweep_findings(sweep, vs, 2)
    # the plan the progress lines and --dry-run price: exact once the runs are recorded, never short before
    params = {"LEARNING_RATES": args["grids"], "SEARCH_SEEDS": [0, 1], "RUNGS": [1, 2, 3], "KEEP": [2, 1],
              "FINAL_SEEDS": [0, 1, 2], "IMAGES": 2, "WIDEN": 1}
    assert sorted(t.name for t in ex.planned_tasks("01_optimizer_comparison", params, [tmp_path / "runs"])) == \
        sorted(runs.task)
    partly = tmp_path / "partly"  # the second rung not run yet: its rates are known, the last rung's are not
    partly.mkdir()
    for name in runs[runs.iterations == 1].task:
        (partly / f"{name}.json").write_bytes((tmp_path / "runs" / f"{name}.json").read_bytes())
    plan = ex.planned_tasks("01_optimizer_comparison", params, [partly])
    assert {t.name for t in plan if t.iterations < 3} == set(runs[runs.iterations < 3].task)
    assert len([t for t in plan if t.iterations == 3]) == len(pairs) * 2 * 3 >= len(final)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    again = ex.lr_sweep(**args)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == files  # nothing re-run
    pd.testing.assert_frame_equal(again.runs, runs)
    with pytest.raises(ValueError, match="unknown optimizer"):
        ex.lr_sweep({"lbfgs": [1.0]}, [0], [1], [], [0], tmp_path / "x", small_data(celeba), scheduler="serial")


def _synthetic_sweep(psnr: dict[str, list[float]]) -> ex.LRSweep:
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
                         "outcome": ex.outcome(2e4, 2e16 if v < 10 else 2e4, 2e4 if v < 10 else 300, v, dead)})
    return ex.LRSweep(pd.DataFrame(rows), results, list(range(len(next(iter(psnr.values()))))))


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
    text = ex.sweep_findings(sweep, sweep.against("adam"), 4)
    assert "against Adam (over the other 4 seeds: 1 diverged)" in text and "no measurable" not in text
    learned = _synthetic_sweep({"sgd": [20.0, np.nan, 21.0], "adam": [27.0, 27.5, 26.8]}).summary()
    assert "over the 2 seeds that did not diverge" in ex._state(learned.set_index("optimizer").loc["sgd"])
    everything = ex.paired_table({"a": np.full((3, 4), np.nan), "b": np.ones((3, 4))}, [("a", "b")]).iloc[0]
    assert np.isnan(everything.a_minus_b_db) and everything.diverged_seeds == 3
    assert ex.difference_words(everything.a_minus_b_db, everything.ci_low, everything.ci_high,
                               everything.measurable) == "n/a (diverged)"


def test_validation_spread_measures_the_late_checks_of_every_seed():
    """Only the checks in the last half count: the early climb is no instability."""
    def run(seed: int, val: list[float]) -> Result:
        return Result(Task(f"r{seed}", RECIPES["study"], 8, seed, validate_every=2), np.zeros(2), np.zeros(8), None,
                      [2, 4, 6, 8], val)
    t = ex.validation_spread({"steady": [run(0, [5.0, 20.0, 21.0, 22.0]), run(1, [1.0, 20.0, 20.0, 20.0])],
                              "jumpy": [run(0, [5.0, 20.0, 23.0, 20.0])]})
    assert (t.loc["steady", "from_iteration"], t.loc["steady", "checks"], t.loc["steady", "seeds"]) == (4, 3, 2)
    assert t.loc["steady", "std_db_min"] == 0.0 and t.loc["steady", "std_db_max"] == pytest.approx(np.std([20, 21, 22]))
    assert t.loc["steady", "largest_fall_db_max"] == 0.0 and t.loc["jumpy", "largest_fall_db_max"] == 3.0
    assert ex.validation_spread({"none": [Result(Task("n", RECIPES["study"], 8, 0), np.zeros(2), np.zeros(8), None)]}).empty


def test_colour_set_ups_are_also_compared_at_equal_optimizer_steps_per_network():
    """The shared network takes 3 steps per iteration: 6 iterations of a per-channel network (6 steps each)
    meet the shared network's validation point nearest 6 steps, iteration 2, not its last one."""
    def run(label: str, seed: int, val: list[float]) -> Result:
        task = Task(f"{label}-{seed}", RECIPES["study"], 6, seed, validate_every=2, **ex.COLOUR_SETUPS[label])
        return Result(task, np.zeros(4), np.zeros(6), None, [2, 4, 6], val)
    shared, own = "shared network", "three networks"
    runs = {shared: [run(shared, 0, [10.0, 20.0, 30.0]), run(shared, 1, [11.0, 21.0, 31.0])],
            own: [run(own, 0, [5.0, 9.0, 14.0]), run(own, 1, [5.0, 9.0, 13.0])]}
    t = ex.at_equal_steps(runs).set_index("a").loc[own]
    assert (t.a_steps_per_network, t.b_iterations, t.b_steps_per_network) == (6, 2, 6)
    assert t.a_minus_b_db == pytest.approx(3.0) and t.per_seed_db == "+4.00 +2.00"
    assert t.ci_low < 3.0 < t.ci_high and t.interval == "t over 2 seeds"
    no_curves = {k: [Result(r.task, r.psnr, r.loss, None) for r in rs] for k, rs in runs.items()}
    assert ex.at_equal_steps(no_curves).empty


@pytest.mark.parametrize("losses,psnr,diverged,expected", [
    ((2e4, 2e4, 2e4), 5.0, False, "never moved"), ((2e4, 2e16, 2e4), 5.0, False, "blew up, then dead"),
    ((2e4, 2e16, 100), 25.0, False, "blew up, recovered"), ((2e4, 2e4, 1e4), 5.0, False, "loss fell, output black"),
    ((2e4, 2e4, 300), 26.0, False, "learned"), ((2e4, 2e4, 2e4), float("nan"), True, "diverged")])
def test_run_outcomes_tell_never_moved_from_blew_up(losses, psnr, diverged, expected):
    assert ex.outcome(*losses, psnr, diverged) == expected


@pytest.mark.slow
def test_tasks_give_the_same_bits_on_a_two_worker_dask_cluster(celeba, tmp_path):
    from dask.distributed import LocalCluster

    tasks = [Task(f"t{s}", RECIPES["improved"].with_(images=2, warmup=1), 3, seed=s) for s in (0, 1, 2)]
    serial = run_tasks(tasks, tmp_path / "serial", small_data(celeba), scheduler="serial")
    # worker processes, as run_tasks starts them: threads of one process would share BLAS's thread setting
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"SRLIB_THREADS": "1"}) as cluster:
        dask = run_tasks(tasks, tmp_path / "dask", small_data(celeba), scheduler=cluster.scheduler_address)
    for name in serial:
        assert np.array_equal(serial[name].psnr, dask[name].psnr)
        assert np.array_equal(serial[name].loss, dask[name].loss)
        a, b = serial[name].model().nets[0].weights(), dask[name].model().nets[0].weights()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_killed_task_resumes_from_its_checkpoint(celeba, tmp_path):
    data = small_data(celeba)
    task = Task("run", RECIPES["study"].with_(images=2), 4, seed=3)
    whole = run_tasks([task], tmp_path / "whole", data, scheduler="serial")["run"]
    train, ev, val = sweep._images(data)
    partial = Trainer(task.recipe, train, total=4, seed=3)
    partial.run(until=2, checkpoint=tmp_path / "killed" / "run.npz", progress=False)  # then "killed"
    resumed = run_tasks([task], tmp_path / "killed", data, scheduler="serial")["run"]
    assert np.array_equal(resumed.loss, whole.loss) and np.array_equal(resumed.psnr, whole.psnr)


def test_a_table_shows_a_missing_value_as_a_dash_and_keeps_the_number_formats():
    """One seed has no interval; a notebook shows "–" there, not NaN, and leaves the other columns numbers."""
    t = pd.DataFrame({"val_psnr": [23.3421, 6.0381], "ci_low": [22.6147, np.nan], "max_loss": [2.1e4, 8.6e13]})
    shown = ex.readable(t, {"val_psnr": 2, "ci_low": 2})
    assert shown.ci_low.tolist() == [22.61, "–"] and shown.val_psnr.tolist() == [23.34, 6.04]
    assert shown.max_loss.dtype == float and np.isnan(t.ci_low[1])  # the table itself is left as it is


def test_paired_table_pairs_seeds_and_broadcasts_baselines():
    rng = np.random.default_rng(0)
    a = rng.normal(30, 1, (3, 50))
    t = ex.paired_table({"a": a, "b": a - 0.5, "c": a[0] + rng.normal(0, 0.01, 50), "base": a[0]},
                        [("a", "b"), ("c", "base")])
    assert t.a_minus_b_db[0] == pytest.approx(0.5) and t.measurable[0]
    assert t.ci_low[1] < 0.01 and t.ci_high[1] > -0.01
    assert t.ci_low[1] <= t.a_minus_b_db[1] <= t.ci_high[1]
    nan = ex.paired_table({"a": a, "b": np.full_like(a, np.nan)}, [("a", "b")])
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


@pytest.mark.slow
def test_ablation_table_has_intervals_and_paired_gains(celeba, tmp_path):
    runs = ex.run_grouped(ex.ablation_tasks([1, 2], [0, 1]), tmp_path, small_data(celeba), scheduler="serial")
    table = ex.ablation_table(runs)
    assert len(table) == 2 * len(ex.ABLATION_STEPS)
    assert table.gain_db.isna().sum() == 2  # the first step of each length has nothing before it
    steps = table[table.iterations == 2].set_index("step")
    assert steps.gain_db.iloc[1] == pytest.approx(steps.psnr_rgb.iloc[1] - steps.psnr_rgb.iloc[0])
    assert (table.seeds == 2).all() and (table.ci_low <= table.psnr_rgb).all()


def test_leave_one_out_undoes_exactly_one_change_and_pairs_it_with_the_full_recipe(celeba, tmp_path):
    recipes = dict(ex.leave_one_out_recipes(5000))
    assert recipes["improved recipe"] == RECIPES["improved"].with_(name="improved recipe")
    study, full = RECIPES["study"], recipes["improved recipe"]
    for label, change in ex.RECIPE_CHANGES:
        without = recipes[f"without {label}"]
        for key in change:  # that change back at the study's value, every other as in the full recipe
            owner = (lambda r: r.net) if key in without.net.__dataclass_fields__ else (lambda r: r)
            assert getattr(owner(without), key) == getattr(owner(study), key) != getattr(owner(full), key)
        assert without.with_(**change, name="improved recipe") == full
    runs = ex.run_grouped(ex.leave_one_out_tasks([2], [0, 1], only=["flips", "biases"]), tmp_path, small_data(celeba),
                          scheduler="serial")
    table = ex.leave_one_out_table(runs)
    assert list(table.change) == ["biases", "flips"] and (table.seeds == 2).all()
    diff = ex.psnr_matrix(runs[(2, "improved recipe")]) - ex.psnr_matrix(runs[(2, "without flips")])
    assert table.worth_db[1] == pytest.approx(diff.mean()) and table.interval[1] == "t over 2 seeds"


def test_notebook_paths_resolve_against_the_notebooks_folder(tmp_path):
    assert ex.notebook_path("../runs/x") == project_root() / "notebooks" / "../runs/x"
    assert ex.notebook_path(tmp_path) == tmp_path
    assert ex.output_folder(tmp_path / "runs").is_dir()


def test_training_afresh_removes_only_the_tasks_own_files(celeba, tmp_path):
    """``fresh`` (a notebook run without RESUME) retrains its tasks; a user's files, and other runs'
    results in the same folder, stay."""
    task = Task("mine", RECIPES["study"].with_(images=2), 2, seed=0, snapshot_at=1)
    first = run_tasks([task], tmp_path, small_data(celeba), scheduler="serial")["mine"]
    for name in ("user.json", "user.npz", "other-run.json", "mine-else.npz"):
        (tmp_path / name).write_text("kept")
    before = (tmp_path / "mine.json").stat().st_mtime_ns
    again = run_tasks([task], tmp_path, small_data(celeba), scheduler="serial", fresh=True)["mine"]
    assert (tmp_path / "mine.json").stat().st_mtime_ns != before and np.array_equal(again.loss, first.loss)
    assert all((tmp_path / n).read_text() == "kept" for n in ("user.json", "user.npz", "other-run.json", "mine-else.npz"))


def train_one(pairs):
    trainer = Trainer(RECIPES["study"].with_(images=2), pairs, total=1)
    trainer.run(progress=False)
    return trainer.model


def test_browser_shows_lr_at_true_size_and_psnr(pairs):
    trainer_model = train_one(pairs)
    b = ImageBrowser(pairs, {"model": trainer_model}, shipped=False)
    assert (b.slider.min, b.slider.max) == (1, len(pairs))  # counted as the caption counts
    panels = b.row.children
    assert len(panels) == 4  # LR, bicubic, model, ANSWER
    assert "4x smaller" in panels[0].children[2].value and panels[0].children[1].width == "44"
    assert "PSNR" in panels[2].children[2].value
    first = panels[3].children[2].value
    assert b.position.value.startswith(f"image 1 of {len(pairs)}")
    b.slider.value = 3
    assert b.row.children[3].children[2].value != first
    assert b.position.value == f"image 3 of {len(pairs)} &mdash; {pairs.paths[2].name}"
    with_shipped = ImageBrowser(pairs, {"model": trainer_model})
    titles = [p.children[0].value for p in with_shipped.row.children]
    assert titles[1:4] == ["<b>bicubic (aligned)</b>", "<b>model</b>", "<b>shipped model</b>"]  # the figures' order
    assert {p.layout.flex for p in with_shipped.row.children} == {"none"}


def fake_project(tmp_path, cells: list[str]):
    (tmp_path / "notebooks").mkdir()
    nb = new_notebook(cells=[new_code_cell("OUT_DIR = ''", metadata={"tags": ["parameters"]})]
                      + [new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "notebooks" / "01_optimizer_comparison.ipynb")
    old = tmp_path / "conclusion" / "optimizer_compare"
    old.mkdir(parents=True)
    (old / "old.png").write_bytes(b"previous figure")
    return old


def test_runner_publishes_outputs_and_executed_copy(tmp_path, monkeypatch):
    old = fake_project(tmp_path, ["from pathlib import Path\n(Path(OUT_DIR) / 'fig.png').write_bytes(b'x')"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "conclusion" / f".optimizer_compare.partial-{dead.stdout.strip()}").mkdir()  # a killed runner's
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    times = runner.run_report("quick", only=["01_optimizer_comparison"], publish=True)
    assert set(times) == {"01_optimizer_comparison"}
    assert sorted(p.name for p in old.iterdir()) == ["01_optimizer_comparison.ipynb", "fig.png"]
    assert [p.name for p in (tmp_path / "conclusion").iterdir()] == ["optimizer_compare"]


def test_published_notebooks_hold_relative_paths_and_static_output(tmp_path, monkeypatch):
    fake_project(tmp_path, ["import os\nprint('static', os.environ.get('SRLIB_STATIC_OUTPUT'))",
                            "from srlib.display import progress\nfor _ in progress(range(3), desc='work'): pass"])
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    runner.run_report("quick", only=["01_optimizer_comparison"], publish=True, data=str(tmp_path / "celeba"))
    executed = tmp_path / "conclusion" / "optimizer_compare" / "01_optimizer_comparison.ipynb"
    text = executed.read_text()
    assert str(tmp_path) not in text and ".partial-" not in text
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata.papermill.output_path == "../conclusion/optimizer_compare/01_optimizer_comparison.ipynb"
    assert nb.metadata.kernelspec == runner.kernelspec()  # what JupyterLab writes: opening it changes nothing
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'OUT_DIR = "../conclusion/optimizer_compare"' in injected and 'DATA = "../celeba"' in injected
    assert injected.startswith(runner.INJECTED_NOTE)  # told apart from the notebook's own parameters
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("static 1" in o.get("text", "") for o in outputs)
    assert any("work: 100%" in o.get("text", "") and o.get("name") == "stdout" for o in outputs)  # plain text
    assert not any(o.get("name") == "stderr" for o in outputs)  # no red boxes
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_static_output_progress_and_browser(pairs, monkeypatch):
    import IPython.display
    from tqdm import tqdm as text_tqdm

    from srlib import display

    monkeypatch.setenv(display.STATIC_OUTPUT, "1")
    assert type(display.progress(range(2))) is text_tqdm
    assert display.progress(range(2), leave=False).disable  # a transient bar would stay as a "0%" line
    model = train_one(pairs)
    shown = ImageBrowser(pairs, {"model": model}, shipped=False).widget
    assert isinstance(shown, IPython.display.Image) and shown.data[:4] == b"\x89PNG"


def test_runs_without_publish_leave_the_published_report_alone(tmp_path, monkeypatch):
    old = fake_project(tmp_path, ["from pathlib import Path\n(Path(OUT_DIR) / 'fig.png').write_bytes(b'x')"])
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    runner.run_report("quick", only=["01_optimizer_comparison"])
    assert [p.name for p in old.iterdir()] == ["old.png"]
    assert [p.name for p in (tmp_path / "conclusion").iterdir()] == ["optimizer_compare"]
    run = tmp_path / "runs" / "quick" / "report" / "optimizer_compare"
    assert sorted(p.name for p in run.iterdir()) == ["01_optimizer_comparison.ipynb", "fig.png"]


def test_runner_failure_names_notebook_and_cell_and_keeps_old_results(tmp_path, monkeypatch):
    old = fake_project(tmp_path, ["from pathlib import Path\n(Path(OUT_DIR) / 'half.png').write_bytes(b'x')",
                                  "1 / 0"])
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    with pytest.raises(SrlibError) as e:
        runner.run_report("quick", only=["01_optimizer_comparison"], publish=True)
    msg = str(e.value)
    assert "01_optimizer_comparison.ipynb failed in cell" in msg and "ZeroDivisionError" in msg
    assert [p.name for p in old.iterdir()] == ["old.png"]  # no half-written figures
    assert [p.name for p in (tmp_path / "conclusion").iterdir()] == ["optimizer_compare"]
    assert (tmp_path / "runs" / "quick" / "failed" / "01_optimizer_comparison.ipynb").is_file()


def test_runner_rejects_unknown_names():
    with pytest.raises(SrlibError, match="unknown preset"):
        runner.run_report("huge")
    with pytest.raises(SrlibError, match="unknown notebook"):
        runner.run_report("quick", only=["05_nope"])


@pytest.mark.parametrize("preset", list(runner.PRESETS))
def test_presets_validate_at_a_cadence_that_fits_their_length(preset):
    """A preset that leaves a notebook's validation at its nbval defaults (every 2 iterations on 3 images)
    would draw a 25,000-iteration curve from 12,500 looks at 3 images."""
    for name, own in runner.PRESETS[preset].items():
        p = {**runner.notebook_defaults(name), **own}
        if "VALIDATE_EVERY" in p:
            assert 4 <= p["ITERATIONS"] / p["VALIDATE_EVERY"] <= 100, name
            assert p["VAL_IMAGES"] >= 9, name


def test_a_bad_scheduler_is_one_clear_error(celeba, tmp_path, monkeypatch):
    task = [Task("t", RECIPES["study"].with_(images=2), 1, seed=0), Task("u", RECIPES["study"].with_(images=2), 1, seed=1)]
    with pytest.raises(SrlibError, match="not local, serial or a Dask address"):
        run_tasks(task, tmp_path, small_data(celeba), scheduler="my laptop")
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(SrlibError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_tasks(task, tmp_path, small_data(celeba), scheduler="tcp://127.0.0.1:9")


def test_a_network_whose_weights_exploded_is_a_diverged_run_not_a_score(pairs):
    from srlib.errors import TrainingDiverged

    model = train_one(pairs)
    for p in model.nets[0].params():
        p.value[...] = 1e30
    with pytest.raises(TrainingDiverged, match="not finite"):
        sweep._scores(model, pairs, 1)
    assert np.isfinite(sweep._scores(train_one(pairs), pairs, 1)).all()
