"""Experiments, the image browser and the papermill runner (success and a failing notebook)."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from srlib import experiments as ex
from srlib import report
from srlib.browser import ImageBrowser
from srlib.errors import SrlibError
from srlib.train import RECIPES


def test_ablation_ladder_ends_at_the_improved_recipe():
    ladder = ex.ablation_recipes(iterations=5000)
    assert ladder[0][1].with_(name="study") == RECIPES["study"]
    last_label, last = ladder[-1]
    assert last == RECIPES["improved"].with_(name=last_label)
    assert len({r for _, r in ladder}) == len(ladder)  # every step changes something


def test_optimizer_sweep_same_batches_for_all(pairs):
    sweep = ex.optimizer_sweep(pairs, pairs, {"sgd": [0.01], "adam": [1e-3, 1e-2]}, iterations=2, seed=0)
    t = sweep.table
    assert list(t.columns[:3]) == ["optimizer", "lr", "study_default"]
    assert list(t.study_default) == [True, True, False]
    # same seed -> every run drew the same minibatches: their generators end in the same state
    states = [r.trainer.rng.bit_generator.state["state"]["state"] for r in sweep.runs.values()]
    assert len(set(states)) == 1
    assert set(sweep.best().index) == {"sgd", "adam"}
    with pytest.raises(ValueError, match="unknown optimizer"):
        ex.optimizer_sweep(pairs, pairs, {"lbfgs": [1.0]}, iterations=1, seed=0)


def test_browser_shows_lr_at_true_size_and_psnr(pairs):
    trainer_model = ex.train_run("x", RECIPES["study"].with_(images=2), pairs, pairs, 1, 0).trainer.model
    b = ImageBrowser(pairs, {"model": trainer_model}, shipped=False)
    assert b.slider.max == len(pairs) - 1
    panels = b.row.children
    assert len(panels) == 4  # LR, bicubic, model, ANSWER
    assert "4x smaller" in panels[0].children[2].value and panels[0].children[1].width == "44"
    assert "PSNR" in panels[2].children[2].value
    first = panels[3].children[2].value
    assert b.position.value.startswith(f"image 1 of {len(pairs)}")
    b.slider.value = 2
    assert b.row.children[3].children[2].value != first
    assert b.position.value == f"image 3 of {len(pairs)} &mdash; {pairs.paths[2].name}"
    with_shipped = ImageBrowser(pairs, {"model": trainer_model})
    titles = [p.children[0].value for p in with_shipped.row.children]
    assert titles[1:3] == ["<b>bicubic (aligned)</b>", "<b>shipped model</b>"]
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
    monkeypatch.setattr(report, "project_root", lambda: tmp_path)
    times = report.run_report("quick", only=["01_optimizer_comparison"], publish=True)
    assert set(times) == {"01_optimizer_comparison"}
    assert sorted(p.name for p in old.iterdir()) == ["01_optimizer_comparison.ipynb", "fig.png"]
    assert [p.name for p in (tmp_path / "conclusion").iterdir()] == ["optimizer_compare"]


def test_published_notebooks_hold_relative_paths_and_static_output(tmp_path, monkeypatch):
    fake_project(tmp_path, ["import os\nprint('static', os.environ.get('SRLIB_STATIC_OUTPUT'))",
                            "from srlib.display import progress\nfor _ in progress(range(3), desc='work'): pass"])
    monkeypatch.setattr(report, "project_root", lambda: tmp_path)
    report.run_report("quick", only=["01_optimizer_comparison"], publish=True, data=str(tmp_path / "celeba"))
    executed = tmp_path / "conclusion" / "optimizer_compare" / "01_optimizer_comparison.ipynb"
    text = executed.read_text()
    assert str(tmp_path) not in text and ".partial-" not in text
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata.papermill.output_path == "../conclusion/optimizer_compare/01_optimizer_comparison.ipynb"
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'OUT_DIR = "../conclusion/optimizer_compare"' in injected and 'DATA = "../celeba"' in injected
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("static 1" in o.get("text", "") for o in outputs)
    assert any("work: 100%" in o.get("text", "") for o in outputs)  # plain text, not a widget
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_static_output_progress_and_browser(pairs, monkeypatch):
    import IPython.display
    from tqdm import tqdm as text_tqdm

    from srlib import display

    monkeypatch.setenv(display.STATIC_OUTPUT, "1")
    assert type(display.progress(range(2))) is text_tqdm
    model = ex.train_run("x", RECIPES["study"].with_(images=2), pairs, pairs, 1, 0).trainer.model
    shown = ImageBrowser(pairs, {"model": model}, shipped=False).widget
    assert isinstance(shown, IPython.display.Image) and shown.data[:4] == b"\x89PNG"


def test_runs_without_publish_leave_the_published_report_alone(tmp_path, monkeypatch):
    old = fake_project(tmp_path, ["from pathlib import Path\n(Path(OUT_DIR) / 'fig.png').write_bytes(b'x')"])
    monkeypatch.setattr(report, "project_root", lambda: tmp_path)
    report.run_report("quick", only=["01_optimizer_comparison"])
    assert [p.name for p in old.iterdir()] == ["old.png"]
    assert [p.name for p in (tmp_path / "conclusion").iterdir()] == ["optimizer_compare"]
    run = tmp_path / "runs" / "quick" / "report" / "optimizer_compare"
    assert sorted(p.name for p in run.iterdir()) == ["01_optimizer_comparison.ipynb", "fig.png"]


def test_runner_failure_names_notebook_and_cell_and_keeps_old_results(tmp_path, monkeypatch):
    old = fake_project(tmp_path, ["from pathlib import Path\n(Path(OUT_DIR) / 'half.png').write_bytes(b'x')",
                                  "1 / 0"])
    monkeypatch.setattr(report, "project_root", lambda: tmp_path)
    with pytest.raises(SrlibError) as e:
        report.run_report("quick", only=["01_optimizer_comparison"], publish=True)
    msg = str(e.value)
    assert "01_optimizer_comparison.ipynb failed in cell" in msg and "ZeroDivisionError" in msg
    assert [p.name for p in old.iterdir()] == ["old.png"]  # no half-written figures
    assert [p.name for p in (tmp_path / "conclusion").iterdir()] == ["optimizer_compare"]
    assert (tmp_path / "runs" / "quick" / "failed" / "01_optimizer_comparison.ipynb").is_file()


def test_runner_rejects_unknown_names():
    with pytest.raises(SrlibError, match="unknown preset"):
        report.run_report("huge")
    with pytest.raises(SrlibError, match="unknown notebook"):
        report.run_report("quick", only=["05_nope"])
