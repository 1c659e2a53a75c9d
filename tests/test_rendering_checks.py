"""The static half of tools/check_rendering.py: what a reader trips over in a stored notebook."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pandas as pd
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from check_rendering import static_problems  # noqa: E402


def write(path: Path, cells) -> Path:
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_a_clean_notebook_passes(tmp_path):
    (tmp_path / "loss.png").write_bytes(b"png")
    table = pd.DataFrame({"run": ["a"], "psnr": [30.1]}).to_html()
    nb = write(tmp_path / "clean.ipynb", [
        new_markdown_cell("See [the figure](loss.png), [the web](https://example.org) and [below](#results)."),
        new_code_cell("x", outputs=[new_output("stream", name="stdout", text="training: 100%\n"),
                                    new_output("execute_result", data={"text/html": table}, execution_count=1)])])
    assert static_problems(nb) == []


def test_stderr_nan_cells_and_dead_links_are_named_with_their_cell(tmp_path):
    table = pd.DataFrame({"run": ["a", "base"], "seeds": [3, None]}).to_html()
    nb = write(tmp_path / "bad.ipynb", [
        new_markdown_cell("Open [the table](tables/missing.csv)."),
        new_code_cell("x", outputs=[new_output("stream", name="stderr", text="sweep:  50%|#####\n")]),
        new_code_cell("y", outputs=[new_output("execute_result", data={"text/html": table}, execution_count=2)])])
    assert static_problems(nb) == ["cell 1: link 'tables/missing.csv' leads nowhere",
                                   "cell 2: output on stderr (shown in a red box)",
                                   "cell 3: a table cell shows NaN or None"]
