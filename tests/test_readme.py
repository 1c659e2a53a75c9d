"""The README's tables are the committed CSVs, number for number."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


def test_photo_model_card_table_is_the_committed_csv():
    assert readme_tables()["photo"]() in (ROOT / "srlib" / "models" / "MODEL_CARD_photo.md").read_text()
