"""Figure layouts a reader can rely on: panels that line up, a colour bar that spans what it scales."""
from __future__ import annotations

import numpy as np
import pytest

from srlib.report import plots


@pytest.mark.parametrize("methods", [1, 4])
def test_zoom_and_error_rows_line_up_and_one_colour_bar_spans_every_error_map(tmp_path, methods):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (176, 176, 3), dtype=np.uint8)
    outputs = {f"method {i}": rng.integers(0, 256, (176, 176, 3), dtype=np.uint8) for i in range(methods)}
    fig = plots.zoom_and_error(hr, outputs, "title", tmp_path / "zoom.png")
    fig.canvas.draw()
    *panels, cax = fig.axes
    rows = np.array([ax.get_position().bounds for ax in panels]).reshape(methods + 1, -1, 4)
    tops, bottoms = rows[..., 1] + rows[..., 3], rows[..., 1]
    # every panel of a row has the same top and bottom (no panel floats in a taller cell)
    np.testing.assert_allclose(tops, tops[:, :1].repeat(tops.shape[1], 1), atol=1e-3)
    np.testing.assert_allclose(bottoms, bottoms[:, :1].repeat(bottoms.shape[1], 1), atol=1e-3)
    # the colour bar runs from the top of the first error map to the bottom of the last
    bar = cax.get_position()
    assert bar.y1 == pytest.approx(tops[1, -1], abs=1e-3) and bar.y0 == pytest.approx(bottoms[-1, -1], abs=1e-3)
    assert bar.x0 > rows[1, -1, 0] + rows[1, -1, 2]  # beside the error maps, not over them
    # no blank band: the rows fill the figure's height below the title
    assert tops[0, 0] > 0.85 and bottoms[-1, 0] < 0.1
    assert (tmp_path / "zoom.png").stat().st_size > 0
