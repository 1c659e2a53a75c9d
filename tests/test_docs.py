"""The README's tables are the committed CSVs, number for number."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_tables(which: str = "TABLES"):
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, which)


@pytest.mark.parametrize("name", list(readme_tables()))
def test_result_tables_are_the_committed_csvs(name):
    """Each table ``tools/readme_tables.py`` prints from conclusion/ and docs/ CSVs stands in the README as printed."""
    assert readme_tables()[name]() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("card", list(readme_tables("CARD_TABLES")))
def test_model_card_tables_are_the_committed_csv(card):
    assert readme_tables("CARD_TABLES")[card]() in (ROOT / "srlib" / "models" / card).read_text()
