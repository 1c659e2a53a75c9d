"""The report as a web page: ``python -m srlib report-html`` renders a report folder (by default the
published ``conclusion/``) into ``runs/html/``: its front page from its README.md, each executed
notebook as a page of its own, and the figures and tables beside them, to open in any browser without
Jupyter. Nothing is run or trained; the pages are rebuilt from what the folder holds.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import SrlibError
from ..files import atomic_write
from .registry import NOTEBOOKS

#: The front page's style: readable widths and tables, nothing more.
STYLE = """body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .5rem}
img{max-width:100%}code{background:#f4f4f4;padding:0 .2rem}pre{background:#f4f4f4;padding:.5rem;overflow:auto}"""

_LINK = re.compile(r'(href|src)="([^"#:]+)"')


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def front_page(markdown: str, source: Path, out: Path) -> str:
    """The report's README.md as HTML: a notebook link points at its rendered page, a link out of the
    report folder (``../docs/...``) at the file in the checkout, everything else stays (it is copied)."""
    import mistune

    def relink(m: re.Match) -> str:
        attr, link = m.groups()
        if link.endswith(".ipynb"):
            link = link[:-len(".ipynb")] + ".html"
        elif link.startswith("../"):
            link = os.path.relpath(source / link, out)
        return f'{attr}="{link}"'

    return _LINK.sub(relink, str(mistune.html(markdown)))


def render(source: str | Path, out: str | Path) -> Path:
    """Render the report folder ``source`` into ``out``; returns the front page's path."""
    from nbconvert import HTMLExporter

    source, out = Path(source).resolve(), Path(out).resolve()
    readme = source / "README.md"
    if not readme.is_file():
        raise SrlibError(f"{source}: no README.md, so not a report folder; render conclusion/ or a run's "
                         "runs/PRESET/report/")
    if out == source or source in out.parents:
        raise SrlibError(f"--out {out}: inside the report it renders; choose a folder outside {source}")
    exporter = HTMLExporter(template_name="lab")
    for notebook in NOTEBOOKS.values():
        folder = source / notebook.folder
        if not folder.is_dir():
            continue
        shutil.copytree(folder, out / notebook.folder, ignore=shutil.ignore_patterns("*.ipynb", ".*"), dirs_exist_ok=True)
        executed = folder / f"{notebook.name}.ipynb"
        if executed.is_file():
            html, _ = exporter.from_filename(str(executed))
            _write_text(out / notebook.folder / f"{notebook.name}.html", html)
    markdown = readme.read_text()
    title = next((line.lstrip("# ").strip() for line in markdown.splitlines() if line.startswith("#")), "Report")
    index = out / "index.html"
    _write_text(index, _page(title, front_page(markdown, source, out)))
    return index
