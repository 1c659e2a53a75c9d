"""The record store and time budgets: a report built over several sittings gives the same bits as one
built in one go, never runs a finished task again, and never mistakes another task's record for its own."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from srlib.errors import BudgetSpent, SrlibError
from srlib.recipe import RECIPES
from srlib.report import hard_train, notebook, records, runner
from srlib.report import record as record_file
from srlib.report.sweep import Task, eval_names, finished, reproduce, run_tasks
from srlib.settings import DEADLINE


def small_data(celeba):
    return notebook.data_source(str(celeba), "validation", 2)


def tasks() -> list[Task]:
    recipe = RECIPES["improved"].with_(images=2, warmup=1)
    return [Task("kept", recipe, 4, seed=0, keep_weights=True, snapshot_at=2), Task("other", recipe, 3, seed=1)]


def test_a_record_is_reproduced_bit_for_bit(celeba, tmp_path):
    data = small_data(celeba)
    run_tasks(tasks(), tmp_path / "a", data, scheduler="serial")
    run_tasks(tasks(), tmp_path / "b", data, scheduler="serial")
    for name in ("kept", "other"):
        a, b = (json.loads((tmp_path / f / f"{name}.json").read_text()) for f in "ab")
        for key in ("psnr", "loss", "val_psnr", "task", "task_digest", "eval_images", "keep_weights"):
            assert a[key] == b[key], key
    assert a["task"]["iterations"] == 3 and a["eval_images"] == list(eval_names(data))


def test_reproduce_trains_a_record_again_with_its_paths_and_says_where_it_differs(celeba, tmp_path):
    """A record re-trained from its seed with the convolution paths it names gives the same bits; a record
    whose paths were changed (and resealed) differs, and the report says from which iteration; a record
    of another BLAS kernel is refused before anything trains; a run continued from a snapshot starts
    from the snapshot beside the record."""
    data = small_data(celeba)
    base = hard_train.hard_training_tasks(RECIPES["study"].with_(images=2), 4, [0], 0)[0]
    branch = hard_train.adam_restart_task(base)
    run_tasks([base, *tasks(), branch], tmp_path / "a", data, scheduler="serial")
    for name in ("kept", "other", base.name, branch.name):
        assert reproduce(tmp_path / "a" / f"{name}.json", str(celeba), tmp_path / f"work-{name}", False) == []
    path = tmp_path / "a" / f"{base.name}.json"  # the study's recipe: its output is the network's alone
    r = json.loads(path.read_text())
    paths = r["conv_paths"]
    swapped = {"im2col": "shifted", "shifted": "im2col", "winograd": "im2col"}
    r["conv_paths"] = [{op: swapped[p] for op, p in layer.items()} for layer in paths]
    path.write_text(json.dumps(record_file.seal({k: v for k, v in r.items() if k != record_file.SEAL})))
    differences = reproduce(path, str(celeba), tmp_path / "work-swapped", False)
    assert differences and differences[0].startswith("training loss differs from iteration ")
    r["blas"] = "openblas NotThisKernel"
    path.write_text(json.dumps(record_file.seal({k: v for k, v in r.items() if k != record_file.SEAL})))
    with pytest.raises(SrlibError, match="OPENBLAS_CORETYPE"):
        reproduce(path, str(celeba), tmp_path / "work-kernel", False)


def test_another_tasks_record_under_the_same_name_is_not_taken(celeba, tmp_path):
    data = small_data(celeba)
    t = tasks()[1]
    run_tasks([t], tmp_path, data, scheduler="serial")
    assert finished(t, tmp_path, data)
    longer = Task(t.name, t.recipe, 5, seed=1)
    assert longer.digest() != t.digest() and not finished(longer, tmp_path, data)
    assert Task(t.name, t.recipe, 3, seed=1, keep_weights=True).digest() == t.digest()  # storage, not the task
    assert not finished(t, tmp_path, notebook.data_source(str(celeba), "validation", 1))  # other evaluation images
    assert len(run_tasks([longer], tmp_path, data, scheduler="serial")[t.name].loss) == 5


def test_a_budget_stops_runs_and_the_store_carries_them_to_another_sitting(celeba, tmp_path, monkeypatch):
    data = small_data(celeba)
    whole = run_tasks(tasks(), tmp_path / "whole", data, scheduler="serial")
    # sitting 1: "kept" finishes, then the budget ends before "other" starts
    monkeypatch.setenv(DEADLINE, repr(time.time() + 3600))
    run_tasks(tasks()[:1], tmp_path / "sitting1", data, scheduler="serial")
    monkeypatch.setenv(DEADLINE, repr(time.time() - 1))
    with pytest.raises(BudgetSpent, match="1 of 2 runs"):
        run_tasks(tasks(), tmp_path / "sitting1", data, scheduler="serial")
    store = tmp_path / "store"
    assert records.store(tmp_path / "sitting1", store) == 1
    assert {p.name for p in store.iterdir()} == {"kept.json", "kept.npz", "kept.at2.npz"}
    assert "optim/0/t.npy" not in np.load(store / "kept.npz").files  # the model alone
    # sitting 2, on a fresh folder (another machine): the finished run is taken as done
    monkeypatch.delenv(DEADLINE)
    assert records.restore(store, tmp_path / "sitting2") == 1
    before = (tmp_path / "sitting2" / "kept.json").stat().st_mtime_ns
    again = run_tasks(tasks(), tmp_path / "sitting2", data, scheduler="serial")
    assert (tmp_path / "sitting2" / "kept.json").stat().st_mtime_ns == before
    for name in whole:
        assert np.array_equal(again[name].loss, whole[name].loss) and np.array_equal(again[name].psnr, whole[name].psnr)
    assert np.array_equal(again["kept"].model().nets[0].weights()["conv1.weight"],
                          whole["kept"].model().nets[0].weights()["conv1.weight"])
    assert list(records.table(store).name) == ["kept"]


def test_an_unfinished_run_is_stored_and_resumed_bit_for_bit(celeba, tmp_path, monkeypatch):
    data = small_data(celeba)
    t = Task("long", RECIPES["study"].with_(images=2), 6, seed=2)
    whole = run_tasks([t], tmp_path / "whole", data, scheduler="serial")["long"]
    from srlib.report.sweep import _images
    from srlib.train import Trainer

    partial = Trainer(t.recipe, _images(data)[0], total=6, seed=2)
    with pytest.raises(BudgetSpent):
        partial.run(checkpoint=tmp_path / "sitting1" / "long.npz", progress=False, deadline=0.0)
    assert partial.iteration == 1
    records.store(tmp_path / "sitting1", tmp_path / "store")
    assert (tmp_path / "store" / "partial" / "long.npz").is_file()
    records.restore(tmp_path / "store", tmp_path / "sitting2")
    resumed = run_tasks([t], tmp_path / "sitting2", data, scheduler="serial")["long"]
    assert np.array_equal(resumed.loss, whole.loss) and np.array_equal(resumed.psnr, whole.psnr)
    records.store(tmp_path / "sitting2", tmp_path / "store")
    assert not (tmp_path / "store" / "partial").exists()  # finished: its partial checkpoint is gone


def test_report_budget_keeps_records_and_leaves_the_report_unchanged(celeba, tmp_path, monkeypatch):
    """The runner stores the records of a notebook stopped by its budget and says so (exit 75)."""
    import papermill as pm

    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    (tmp_path / "notebooks").mkdir()
    data = small_data(celeba)

    def notebook(source, target, parameters):  # the budget ends after the notebook's first run
        folder = tmp_path / "notebooks" / parameters["CHECKPOINT_DIR"]
        monkeypatch.setenv(DEADLINE, repr(time.time() - 1))
        try:
            run_tasks(tasks(), folder, data, scheduler="serial")
        except BudgetSpent as e:
            raise pm.PapermillExecutionError(3, 3, "", "BudgetSpent", str(e), []) from None

    monkeypatch.setattr(runner, "execute_notebook", notebook)
    run_tasks(tasks()[:1], tmp_path / "runs" / "quick" / "hard_train", data, scheduler="serial")
    with pytest.raises(BudgetSpent, match="--resume"):
        runner.run_report("quick", only=["02_hard_training"], data=str(celeba), budget_minutes=60)
    store = runner.records_folder("quick", False, "02_hard_training")
    assert (store / "kept.json").is_file() and not (tmp_path / "runs" / "quick" / "report" / "hard_train").exists()


def test_adam_restarted_midway_branches_from_the_snapshot(celeba, tmp_path):
    """The study's resume (Adam forgotten) reproduced: the branch shares the base run's first half bit
    for bit, then differs; before the snapshot exists it is one clear error."""
    from srlib.errors import SrlibError

    data = notebook.data_source(str(celeba), "validation", 2, 2)
    base = hard_train.hard_training_tasks(RECIPES["study"].with_(images=2), 6, [0], 2)[0]
    branch = hard_train.adam_restart_task(base)
    with pytest.raises(SrlibError, match="not there yet"):
        run_tasks([branch], tmp_path, data, scheduler="serial")
    a = run_tasks([base], tmp_path, data, scheduler="serial")[base.name]
    b = run_tasks([branch], tmp_path, data, scheduler="serial")[branch.name]
    assert np.array_equal(a.loss[:3], b.loss[:3]) and not np.array_equal(a.loss[3:], b.loss[3:])
    assert a.val_iteration == b.val_iteration == [2, 4, 6] and a.val_psnr[0] == b.val_psnr[0]
    assert branch.digest() != base.digest() and branch.keep_weights and b.checkpoint is not None


def test_dry_run_counts_what_is_left_from_records_and_checkpoints(celeba, tmp_path, monkeypatch):
    """report --dry-run: the preset's runs, minus finished records, minus the iterations an unfinished
    run's checkpoint has reached, priced at a measured step time."""
    entry = runner.NOTEBOOKS["02_hard_training"]
    params = {**runner.notebook_defaults("02_hard_training"), **entry.presets["quick"],
              "ITERATIONS": 4, "VALIDATE_EVERY": 2}
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    monkeypatch.setattr(runner, "notebook_defaults", lambda name: params)
    monkeypatch.setitem(entry.presets, "quick", params)
    monkeypatch.setattr(runner, "step_seconds", lambda: 0.5)
    planned = [t for group in hard_train.plan(params).values() for t in group]
    assert [t.name for t in planned[:1]] == [f"adam-seed0-{params['ITERATIONS']}it"] and planned[-1].restart_optimizer_from
    before = runner.dry_run("quick", ["02_hard_training"]).loc["02_hard_training"]
    total = params["ITERATIONS"] * len(params["SEEDS"]) + params["ITERATIONS"] // 2
    assert before.iterations == total and before.iterations_done == 0
    assert before.hours_left == pytest.approx(total * 0.5 / 3600)
    folder = tmp_path / "runs" / "quick" / "hard_train"
    data = notebook.data_source(str(celeba), "test", 2, 2)
    small = planned[0]
    run_tasks([small], folder, data, scheduler="serial")  # finished: its record
    after = runner.dry_run("quick", ["02_hard_training"]).loc["02_hard_training"]
    assert after.runs_done == 1 and after.iterations_done == params["ITERATIONS"]


def test_report_prints_progress_while_a_notebook_runs(monkeypatch, capsys):
    done = iter(range(0, 10_000, 1000))
    monkeypatch.setattr(runner, "progress_of", lambda preset, name: {"runs": 4, "iterations": 10_000, "runs_done": 1,
                                                                     "iterations_done": next(done)})
    with runner.reporting_progress("study", "02_hard_training", every_s=0.05):
        time.sleep(0.4)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3 and lines[0].startswith("[study] 02_hard_training: 1/4 runs done, 0/10,000 iterations")
    assert "it/s over the last 15 min, about" in lines[-1] and "min left at this rate" in lines[-1]


def test_the_progress_rate_is_the_recent_one():
    """An hour at 1 it/s (the cores shared), then 10 it/s: the rate over the last 15 minutes is the speed
    now, where the rate since the start would still read about 2.5."""
    recent = runner.RecentRate(window_s=900)
    done, rate = 0, 0.0
    for minute in range(0, 81):
        rate = recent.add(60.0 * minute, done)
        done += 60 * (1 if minute < 60 else 10)
    assert rate == pytest.approx(10.0) and len(recent.samples) == 16
    assert runner.RecentRate(900).add(0.0, 500) == 0.0  # one sample: no rate yet


def test_a_checkpoint_of_another_definition_is_not_resumed(celeba, tmp_path):
    data = small_data(celeba)
    old = Task("run", RECIPES["study"].with_(images=2), 4, seed=0)
    run_tasks([old], tmp_path, data, scheduler="serial")
    (tmp_path / "run.json").unlink()  # as if killed before its record: only its checkpoint is left
    new = Task("run", RECIPES["study"].with_(images=2, lr=2e-3), 4, seed=0)
    fresh = run_tasks([new], tmp_path / "fresh", data, scheduler="serial")["run"]
    again = run_tasks([new], tmp_path, data, scheduler="serial")["run"]
    assert np.array_equal(again.loss, fresh.loss)  # trained anew, not continued from the other's weights
    rescored = run_tasks([new], tmp_path, notebook.data_source(str(celeba), "validation", 1), scheduler="serial")["run"]
    assert np.array_equal(rescored.loss, fresh.loss) and len(rescored.psnr) == 1  # other images: scored again


@pytest.mark.slow
def test_a_budget_stop_on_dask_is_one_clean_line(celeba, tmp_path, monkeypatch, capfd):
    """Dask workers log every exception a task raises as a failed computation: a budget stop, which
    is no failure, must not put a page of worker tracebacks in the terminal."""
    data = small_data(celeba)
    monkeypatch.setenv(DEADLINE, repr(time.time() - 1))  # the workers inherit it, as the report's do
    with pytest.raises(BudgetSpent, match="0 of 2 runs"):
        run_tasks(tasks(), tmp_path, data, scheduler="local", workers=2)
    out, err = capfd.readouterr()
    assert "Compute Failed" not in out + err and "Traceback" not in out + err


@pytest.mark.slow
def test_a_budget_reaches_the_workers_of_a_cluster_started_elsewhere(celeba, tmp_path, monkeypatch):
    """``--scheduler tcp://...``: workers started before the report, in another environment, never see
    its budget variable; the deadline travels with each task, so their runs stop and checkpoint too."""
    from dask.distributed import LocalCluster

    data = small_data(celeba)
    monkeypatch.delenv(DEADLINE, raising=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        monkeypatch.setenv(DEADLINE, repr(time.time() - 1))  # set after the workers started
        with pytest.raises(BudgetSpent, match="0 of 2 runs"):
            run_tasks(tasks(), tmp_path, data, scheduler=cluster.scheduler_address)
    assert not any(finished(t, tmp_path, data) for t in tasks())


def test_a_terminated_report_keeps_its_records(celeba, tmp_path, monkeypatch, capsys):
    """SIGTERM (``kill``, a batch scheduler's time limit) stops ``srlib report`` as Ctrl-C does: one line,
    exit 143, and the records of the runs finished so far in the store (it used to end on the spot)."""
    import os
    import signal

    from srlib import cli

    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    (tmp_path / "notebooks").mkdir()
    data = small_data(celeba)

    def notebook(source, target, parameters):  # terminated after the notebook's first run
        run_tasks(tasks()[:1], tmp_path / "notebooks" / parameters["CHECKPOINT_DIR"], data, scheduler="serial")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        raise AssertionError("SIGTERM did not stop the report")

    monkeypatch.setattr(runner, "execute_notebook", notebook)
    assert cli.main(["report", "--preset", "quick", "--only", "02_hard_training", "--data", str(celeba)]) == 143
    last = capsys.readouterr().err.splitlines()[-1]  # after the run's progress bar
    assert last.startswith("srlib: terminated (SIGTERM)") and "--resume" in last
    assert (runner.records_folder("quick", False, "02_hard_training") / "kept.json").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
