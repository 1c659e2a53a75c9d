"""Experiments, the image browser and the papermill runner (success and a failing notebook)."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from srlib.errors import SrlibError
from srlib.paths import project_root
from srlib.recipe import RECIPES
from srlib.report import notebook, runner, sweep
from srlib.report.browser import ImageBrowser
from srlib.report.sweep import Result, Task, run_tasks
from srlib.train import Trainer


@pytest.mark.slow
def test_tasks_give_the_same_bits_on_a_two_worker_dask_cluster(celeba, tmp_path, celeba_data):
    from dask.distributed import LocalCluster

    tasks = [Task(f"t{s}", RECIPES["improved"].with_(images=2, warmup=1), 3, seed=s) for s in (0, 1, 2)]
    serial = run_tasks(tasks, tmp_path / "serial", celeba_data, scheduler="serial")
    # worker processes, as run_tasks starts them: threads of one process would share BLAS's thread setting
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"SRLIB_THREADS": "1"}) as cluster:
        dask = run_tasks(tasks, tmp_path / "dask", celeba_data, scheduler=cluster.scheduler_address)
    for name in serial:
        assert np.array_equal(serial[name].psnr, dask[name].psnr)
        assert np.array_equal(serial[name].loss, dask[name].loss)
        a, b = serial[name].model().nets[0].weights(), dask[name].model().nets[0].weights()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_killed_task_resumes_from_its_checkpoint(celeba, tmp_path, celeba_data):
    data = celeba_data
    task = Task("run", RECIPES["study"].with_(images=2), 4, seed=3)
    whole = run_tasks([task], tmp_path / "whole", data, scheduler="serial")["run"]
    train, ev, val = sweep._images(data)
    partial = Trainer(task.recipe, train, total=4, seed=3)
    partial.run(until=2, checkpoint=tmp_path / "killed" / "run.npz", progress=False)  # then "killed"
    resumed = run_tasks([task], tmp_path / "killed", data, scheduler="serial")["run"]
    assert np.array_equal(resumed.loss, whole.loss) and np.array_equal(resumed.psnr, whole.psnr)


def test_notebook_paths_resolve_against_the_notebooks_folder(tmp_path):
    assert notebook.notebook_path("../runs/x") == project_root() / "notebooks" / "../runs/x"
    assert notebook.notebook_path(tmp_path) == tmp_path
    assert notebook.output_folder(tmp_path / "runs").is_dir()


def test_training_afresh_removes_only_the_tasks_own_files(celeba, tmp_path, celeba_data):
    """``fresh`` (a notebook run without RESUME) retrains its tasks; a user's files, and other runs'
    results in the same folder, stay."""
    task = Task("mine", RECIPES["study"].with_(images=2), 2, seed=0, snapshot_at=1)
    first = run_tasks([task], tmp_path, celeba_data, scheduler="serial")["mine"]
    for name in ("user.json", "user.npz", "other-run.json", "mine-else.npz"):
        (tmp_path / name).write_text("kept")
    before = (tmp_path / "mine.json").stat().st_mtime_ns
    again = run_tasks([task], tmp_path, celeba_data, scheduler="serial", fresh=True)["mine"]
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
    for name, entry in runner.NOTEBOOKS.items():
        p = {**runner.notebook_defaults(name), **entry.presets[preset]}
        if "VALIDATE_EVERY" in p:
            assert 4 <= p["ITERATIONS"] / p["VALIDATE_EVERY"] <= 100, name
            assert p["VAL_IMAGES"] >= 9, name


def test_a_bad_scheduler_is_one_clear_error(celeba, tmp_path, monkeypatch, celeba_data):
    task = [Task("t", RECIPES["study"].with_(images=2), 1, seed=0), Task("u", RECIPES["study"].with_(images=2), 1, seed=1)]
    with pytest.raises(SrlibError, match="not local, serial or a Dask address"):
        run_tasks(task, tmp_path, celeba_data, scheduler="my laptop")
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(SrlibError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_tasks(task, tmp_path, celeba_data, scheduler="tcp://127.0.0.1:9")


def test_a_network_whose_weights_exploded_is_a_diverged_run_not_a_score(pairs):
    from srlib.errors import TrainingDiverged

    model = train_one(pairs)
    for p in model.nets[0].params():
        p.value[...] = 1e30
    with pytest.raises(TrainingDiverged, match="not finite"):
        sweep._scores(model, pairs, 1)
    assert np.isfinite(sweep._scores(train_one(pairs), pairs, 1)).all()


SCRATCH_MODULE = '''
from srlib.recipe import RECIPES
from srlib.report.sweep import Task


def plan(p, folders=()):
    return {"scratch": [Task(f"scratch-seed{s}-{p['ITERATIONS']}it", RECIPES["study"], p["ITERATIONS"], s) for s in p["SEEDS"]]}


def findings(p):
    return f"- {len(p['SEEDS'])} seeds of {p['ITERATIONS']} iterations"


def limitations(p):
    return "- a scratch notebook"
'''


def test_a_fifth_notebook_is_one_notebook_one_module_one_entry(tmp_path, monkeypatch):
    """docs/architecture.md's walk-through, done: a notebook, its module (plan, findings, limitations)
    and one registry entry carrying its presets; the runner, ``--dry-run`` and the progress lines need
    nothing else."""
    from srlib.report import registry

    (tmp_path / "scratch_fifth.py").write_text(SCRATCH_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the notebook's kernel imports it too
    (tmp_path / "notebooks").mkdir()
    cells = [new_code_cell("OUT_DIR = ''\nITERATIONS = 2\nSEEDS = [0]", metadata={"tags": ["parameters"]}),
             new_code_cell("import scratch_fifth as experiment\nfrom pathlib import Path\n"
                           "P = {'ITERATIONS': ITERATIONS, 'SEEDS': SEEDS}\n"
                           "(Path(OUT_DIR) / 'findings.md').write_text(experiment.findings(P))")]
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": runner.kernelspec()}),
                   tmp_path / "notebooks" / "05_scratch.ipynb")
    entry = registry.Notebook("05_scratch", "scratch", "scratch_fifth",
                              {preset: {"SEEDS": [0, 1, 2]} for preset in registry.PRESETS})
    monkeypatch.setitem(registry.NOTEBOOKS, entry.name, entry)
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    monkeypatch.setattr(runner, "step_seconds", lambda: 0.5)
    planned = runner.dry_run("quick", ["05_scratch"]).loc["05_scratch"]
    assert (planned.runs, planned.iterations, planned.runs_done) == (3, 6, 0)
    runner.run_report("quick", only=["05_scratch"], publish=True)
    assert (tmp_path / "conclusion" / "scratch" / "findings.md").read_text() == "- 3 seeds of 2 iterations"


def test_hard_training_restarts_adam_in_every_seed_and_says_how_much_a_run_still_rises():
    """The study's resume (Adam restarted midway) is measured over every seed, each branch from its own
    run's midpoint; ``late_rise`` reads the last 10% of a validation curve."""
    from srlib.report import hard_train

    p = {"IMAGES": 10, "LR": 1e-3, "ITERATIONS": 100, "SEEDS": [0, 1, 2], "VALIDATE_EVERY": 10}
    plan = hard_train.plan(p)
    assert [t.restart_optimizer_from for t in plan["restart"]] == [f"adam-seed{s}-100it.at50.npz" for s in (0, 1, 2)]
    assert [t.seed for t in plan["restart"]] == [0, 1, 2] and all(t.keep_weights for t in plan["restart"])
    run = Result(plan["adam"][0], np.zeros(2), np.zeros(100), None, list(range(10, 101, 10)),
                 [20.0, 24.0, 26.0, 27.0, 27.5, 27.8, 28.0, 28.1, 28.2, 28.25])
    assert hard_train.late_rise(run) == (90, pytest.approx(0.05))
