"""The README's tables are the committed CSVs, number for number."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["lanczos", "study model", "photo model", "photo model, 8-fold ensemble"]


@pytest.mark.parametrize("doc", ["README.md", "srlib/models/MODEL_CARD_photo.md"])
def test_photo_tables_match_the_committed_csv(doc):
    summary = pd.read_csv(ROOT / "docs" / "photo_benchmark" / "photo_summary_validation.csv")
    text = (ROOT / doc).read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in set(summary.degradation):
            rows[cells[0]] = cells[1:]
    assert set(rows) == set(summary.degradation)
    for deg, cells in rows.items():
        got = summary[summary.degradation == deg].set_index("method")
        assert float(cells[0]) == round(got.loc["bicubic", "psnr_rgb"], 2)
        for method, cell in zip(COLUMNS, cells[1:]):
            mean, low, high = map(float, re.findall(r"[+-]\d+\.\d+", cell))
            assert (mean, low, high) == tuple(round(got.loc[method, k], 2) for k in ("minus_bicubic", "ci_low", "ci_high"))


def readme_tables():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TABLES


@pytest.mark.parametrize("name", list(readme_tables()))
def test_result_tables_are_the_committed_csvs(name):
    """Each table ``tools/readme_tables.py`` prints from conclusion/ and docs/ CSVs stands in the README as printed."""
    assert readme_tables()[name]() in (ROOT / "README.md").read_text()
