"""Writes the documentation's figures that no command makes: docs/sampling_grid.png (README, "Upscale a photo").

    python tools/docs_figures.py
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from srlib.report import plots  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"

if __name__ == "__main__":
    plots.sampling_grids(DOCS / "sampling_grid.png")
    print(DOCS / "sampling_grid.png")
