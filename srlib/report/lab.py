"""JupyterLab on the report's notebooks: running them never rewrites the files the repository tracks.

The notebooks in ``notebooks/`` keep the outputs that ``pytest`` (nbval) compares. Run live, their cells
make new outputs (progress widgets, figures, the image browser) that JupyterLab's autosave would write
over those, so exploring a notebook would leave ``git status`` dirty. ``srlib lab`` starts JupyterLab with
``ReportContentsManager``: saving one of the report's notebooks whose cells are as on disk, only their
outputs or metadata new, leaves the file as it is (the server log says so once per notebook); a notebook
whose cells were edited is saved as usual, as is every other file. File > Save As keeps a session's outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from ..paths import in_checkout, project_root
from .registry import NOTEBOOKS


def _cells(cells: list) -> list[tuple[str, str]]:
    """Each cell's type and source (a source may come as one string or as a list of lines)."""
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in cells]


def report_notebook(os_path: str | Path) -> bool:
    """Whether ``os_path`` is one of the report's notebooks in this checkout."""
    if not in_checkout():
        return False
    path = Path(os_path).resolve()
    return path.parent == (project_root() / "notebooks").resolve() and path.stem in NOTEBOOKS


def only_outputs_changed(model: dict, os_path: str | Path) -> bool:
    """Whether saving ``model`` (a Jupyter contents model) over the report notebook at ``os_path`` would
    change nothing but outputs and metadata."""
    if model.get("type") != "notebook" or "content" not in model or not report_notebook(os_path):
        return False
    try:
        on_disk = nbformat.read(os_path, as_version=4)
    except (OSError, ValueError):
        return False
    return _cells(model["content"].get("cells", [])) == _cells(on_disk.cells)


class ReportContentsManager(AsyncLargeFileManager):
    """Jupyter's file manager, except that a report notebook whose cells did not change is not rewritten."""

    _told: set[str] = set()

    async def save(self, model, path=""):
        path = path.strip("/")
        if only_outputs_changed(model, self._get_os_path(path)):
            if path not in self._told:
                self._told.add(path)
                self.log.info("srlib: %s keeps its committed outputs (only outputs changed); File > Save As keeps "
                              "this session's", path)
            return await self.get(path, content=False)
        return await super().save(model, path)
