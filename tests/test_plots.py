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


def test_identical_loss_curves_are_drawn_once_and_named_together():
    dead = [2000.0, 1900.0, 2100.0]
    fig = plots.loss_curves({"adam": [2000.0, 900.0, 500.0], "momentum": dead, "nesterov": dead, "sgd": list(dead)},
                            "title")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["adam", "momentum = nesterov = sgd (the same curve)"]


def test_interval_plots_levels_as_points_differences_as_bars_legend_clear_of_the_data():
    import pandas as pd

    levels = pd.DataFrame({"iterations": [10, 10, 30, 30], "step": ["a", "b", "a", "b"],
                           "psnr_rgb": [16.0, 28.0, 17.0, 28.1], "ci_low": [13.0, 27.9, 16.5, 28.0],
                           "ci_high": [19.0, 28.1, 17.5, 28.2]})
    fig = plots.interval_bars(levels, "levels", "dB", levels={"bicubic": 28.0})
    ax = fig.axes[0]
    assert not ax.patches  # no bars cut off by an axis that does not start at 0
    assert ax.get_ylim()[0] > 0
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 > ax.get_window_extent().x1  # beside the axes, not over them

    differences = levels.assign(psnr_rgb=[0.2, -0.1, 0.3, 0.0], ci_low=[-0.1, -0.3, 0.1, -0.2],
                                ci_high=[0.5, 0.1, 0.5, 0.2])
    assert len(plots.interval_bars(differences, "differences", "dB").axes[0].patches) == 4  # bars from 0


def test_reference_lines_each_look_different_and_the_legend_hides_no_curve():
    levels = {"bicubic": 28.0, "shipped": 29.7, "2022": 29.1, "2022, longer": 29.4, "other": 27.0, "sixth": 26.0}
    fig = plots.psnr_curves({"run": ([1, 2, 3], [27.0, 28.0, 29.0])}, "title", levels=levels)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() != "run"]
    # get_linestyle() names every custom pattern "--"; the dash pattern itself is what a reader sees
    assert len({repr(line._dash_pattern) for line in lines}) == len(lines) == len(levels)
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 > ax.get_window_extent().x1
    with pytest.raises(ValueError, match="at most 6 reference lines"):
        plots.psnr_curves({}, "title", levels={**levels, "seventh": 25.0})


def test_sample_grid_stays_narrow_however_many_methods():
    rng = np.random.default_rng(0)
    lr = [rng.integers(0, 256, (44, 44, 3), dtype=np.uint8) for _ in range(2)]

    def grid(methods: int):
        columns = {f"method {i}": [rng.integers(0, 256, (176, 176, 3), dtype=np.uint8) for _ in lr] for i in range(methods)}
        return plots.comparison_grid(lr, columns, "title", psnrs={"method 0": [30.0, float("nan")]})

    few, many = grid(2), grid(9)
    assert many.get_figwidth() == few.get_figwidth() < 8  # shown at full size in a notebook: labels readable
    titles = [ax.get_title().replace("\u00a0", " ") for ax in few.axes]
    assert "method 0: 30.00 dB" in titles and "method 0" in titles  # a NaN score is left out, not printed

    long = "2022 model, trained longer (many_adam)"
    fig = plots.comparison_grid(lr, {long: [rng.integers(0, 256, (176, 176, 3), dtype=np.uint8) for _ in lr]},
                                "title", psnrs={long: [29.06, 29.44]})
    fig.canvas.draw()
    left, right = (ax.title.get_window_extent() for ax in fig.axes[2:4])
    assert left.x1 < right.x0  # side by side, the two titles do not run into each other
    assert fig.axes[2].get_title().endswith("\n(many_adam): 29.06\u00a0dB")  # the score stays with its unit


def test_gain_histogram_counts_images_in_whole_numbers():
    fig = plots.gain_histogram({"model": np.array([0.5, 1.0, 1.2, 2.0, -0.3])}, "title")
    ticks = fig.axes[0].get_yticks()
    assert np.all(ticks == np.round(ticks))


def test_curves_of_one_set_up_share_a_colour_and_differ_in_line_style():
    """Three set-ups of two seeds: three colours, not six; the seeds of a set-up differ in line and marker."""
    curves = {f"{k}, seed {s}": ([1, 2], [20.0 + s, 21.0]) for k in ("a", "b", "c") for s in (0, 1)}
    fig = plots.psnr_curves(curves, "title", groups={name: name[0] for name in curves})
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert len({line.get_color() for line in lines.values()}) == 3
    assert lines["a, seed 0"].get_color() == lines["a, seed 1"].get_color()
    assert (lines["a, seed 0"].get_linestyle(), lines["a, seed 0"].get_marker()) != \
        (lines["a, seed 1"].get_linestyle(), lines["a, seed 1"].get_marker())


def test_differences_of_hundredths_and_of_decibels_both_show_on_a_symmetric_log_axis():
    import pandas as pd

    t = pd.DataFrame({"iterations": 3000, "change": ["small", "large"], "worth_db": [0.01, 8.0],
                      "ci_low": [0.003, 7.0], "ci_high": [0.02, 9.0]})
    ax = plots.interval_bars(t, "title", "dB", label="change", value="worth_db", symlog=0.01).axes[0]
    assert ax.get_yscale() == "symlog"
    bars = [p for p in ax.patches if p.get_height()]
    low, high = ax.get_ylim()
    # on a linear axis from 0 to 9 dB the 0.01 dB bar would be 0.1% of the height; here it is a visible share
    to_axis = ax.transData.transform
    assert abs(to_axis((0, bars[0].get_height()))[1] - to_axis((0, 0))[1]) > 0.1 * abs(to_axis((0, high))[1] - to_axis((0, 0))[1])
