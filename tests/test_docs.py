"""The documents: every result table is the committed CSV it comes from, every relative link leads to a
file, and the README stays a front door (the findings live in conclusion/README.md, references in docs/)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the front door's size limit: what a newcomer reads before the first command
README_BYTES = 12_000


def documents():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DOCUMENTS


@pytest.mark.parametrize("document,name", [(d, n) for d, tables in documents().items() for n in tables])
def test_result_tables_are_the_committed_csvs(document, name):
    """Each table ``tools/readme_tables.py`` prints stands in its document as printed."""
    assert documents()[document][name]() in (ROOT / document).read_text()


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "conclusion").glob("*.md")),
            *sorted((ROOT / "srlib" / "models").glob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file(path):
    text = re.sub(r"(?s)```.*?```", "", path.read_text())
    missing = [target for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
               if not re.match(r"[a-z]+:", target) and not (path.parent / target).exists()]
    assert not missing, missing


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_bytes()) <= README_BYTES
