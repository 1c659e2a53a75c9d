"""Exploring the report's notebooks leaves the tracked files as committed: JupyterLab through
``srlib lab`` does not save outputs over them, and papermill stores text, not widget stubs."""
from __future__ import annotations

import asyncio

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from srlib import cli
from srlib.report import lab


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout whose notebooks/ holds report notebook 02 (committed outputs) and a user's own."""
    (tmp_path / "notebooks").mkdir()
    committed = new_notebook(cells=[new_code_cell("x = 1\nx", outputs=[new_output("execute_result", {"text/plain": "1"},
                                                                                    execution_count=1)])])
    for name in ("02_hard_training", "mine"):
        nbformat.write(committed, tmp_path / "notebooks" / f"{name}.ipynb")
    monkeypatch.setattr(lab, "project_root", lambda: tmp_path)
    monkeypatch.setattr(lab, "in_checkout", lambda: True)
    return tmp_path


def save(manager, path: str, source: str) -> None:
    """What JupyterLab's save sends: the notebook as the browser holds it, its outputs from this session."""
    nb = new_notebook(cells=[new_code_cell(source, outputs=[new_output("stream", name="stdout", text="work: 0%")])],
                      metadata={"widgets": {"state": {"model-1": {}}}})
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": nb}, path))


def test_running_a_report_notebook_in_jupyterlab_leaves_the_tracked_file_as_committed(checkout):
    manager = lab.ReportContentsManager(root_dir=str(checkout))
    tracked = checkout / "notebooks" / "02_hard_training.ipynb"
    before = tracked.read_bytes()
    save(manager, "notebooks/02_hard_training.ipynb", "x = 1\nx")  # run, outputs new: the file stays
    assert tracked.read_bytes() == before
    save(manager, "notebooks/02_hard_training.ipynb", "x = 2\nx")  # an edited cell is saved as usual
    assert nbformat.read(tracked, as_version=4).cells[0].source == "x = 2\nx"
    mine = checkout / "notebooks" / "mine.ipynb"
    save(manager, "notebooks/mine.ipynb", "x = 1\nx")  # a user's own notebook keeps its new outputs
    assert nbformat.read(mine, as_version=4).cells[0].outputs[0].text == "work: 0%"


def test_srlib_lab_starts_jupyterlab_with_that_setting_and_passes_on_its_arguments(monkeypatch):
    started = []
    monkeypatch.setattr(cli.os, "execv", lambda exe, command: started.append(command))
    monkeypatch.setattr(cli.os, "chdir", lambda folder: None)
    assert cli.main(["lab", "--no-browser", "--port", "8890"]) == 0
    assert started[0][1:3] == ["-m", "jupyterlab"]
    assert f"--ServerApp.contents_manager_class={cli.LAB_CONTENTS_MANAGER}" in started[0]
    assert started[0][-3:] == ["--no-browser", "--port", "8890"]
    with pytest.raises(SystemExit):  # any other command still refuses what it does not know
        cli.main(["upscale", "a.png", "-o", "b", "--no-browser"])


def test_a_plain_papermill_run_stores_progress_as_text_not_widget_stubs(tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.delenv("SRLIB_STATIC_OUTPUT", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    source = tmp_path / "progress.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("from srlib.display import progress\n"
                                                     "for _ in progress(range(3), desc='work'): pass")],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
                   source)
    pm.execute_notebook(source, tmp_path / "out.ipynb", progress_bar=False, kernel_name="python3")
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert any("work: 100%" in o.get("text", "") for o in outputs)
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
