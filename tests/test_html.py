"""``report-html``: a report folder as web pages, readable without Jupyter, its links intact."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from srlib.errors import SrlibError
from srlib.report.html import render


def test_a_report_renders_as_a_front_page_and_one_page_per_notebook(tmp_path):
    report = tmp_path / "conclusion"
    (report / "hard_train").mkdir(parents=True)
    (report / "README.md").write_text("# The report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                                      "[02](hard_train/02_hard_training.ipynb) ![loss](hard_train/loss.png) "
                                      "[how](../docs/report.md)\n")
    (report / "hard_train" / "loss.png").write_bytes(b"png")
    nb = new_notebook(cells=[new_markdown_cell("# 02"), new_code_cell("1 + 1", outputs=[
        new_output("execute_result", {"text/plain": "2"}, execution_count=1)])])
    nbformat.write(nb, report / "hard_train" / "02_hard_training.ipynb")
    index = render(report, tmp_path / "site" / "html")
    page = index.read_text()
    assert "<title>The report</title>" in page and "<table>" in page
    assert 'href="hard_train/02_hard_training.html"' in page and 'src="hard_train/loss.png"' in page
    assert 'href="../../docs/report.md"' in page  # out of the report folder: the file in the checkout
    assert (tmp_path / "site" / "html" / "hard_train" / "loss.png").read_bytes() == b"png"
    rendered = (tmp_path / "site" / "html" / "hard_train" / "02_hard_training.html").read_text()
    assert "jp-InputArea" in rendered and "<pre>2</pre>" in rendered  # the code and its output
    with pytest.raises(SrlibError, match="no README.md"):
        render(tmp_path / "site" / "html" / "hard_train", tmp_path / "elsewhere")
    with pytest.raises(SrlibError, match="inside the report"):
        render(report, report / "html")
