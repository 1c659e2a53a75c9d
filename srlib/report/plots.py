"""Figures for the report: every one has a title, labelled axes with units, and is saved as PNG.

The study's figures were screenshots at arbitrary sizes, and showed the LR input at the size of the
outputs without saying it is 4x smaller. Here LR is drawn at its true size.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


# Six dash patterns a reader can tell apart, so no two reference lines of a figure look the same.
_REFERENCE_STYLES = ["--", ":", "-.", (0, (8, 2, 1, 2, 1, 2)), (0, (1, 4)), (0, (12, 4))]


def _reference_lines(ax, levels: dict[str, float] | None) -> None:
    """Fixed methods (bicubic, the 2022 model, ...) as grey horizontal lines at their PSNR."""
    if len(levels or {}) > len(_REFERENCE_STYLES):
        raise ValueError(f"at most {len(_REFERENCE_STYLES)} reference lines, got {len(levels or {})}")
    for (name, level), style in zip((levels or {}).items(), _REFERENCE_STYLES):
        ax.axhline(level, color="grey", ls=style, label=f"{name} ({level:.2f} dB)")


def _labelled(ax, xlabel: str, ylabel: str, title: str, legend_outside: bool = False) -> Figure:
    """Axis labels, title, a light grid and the legend (``legend_outside``: right of the axes, where it
    hides no data); returns the axes' figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend(ax, legend_outside)
    return ax.figure


def _legend(ax, outside: bool) -> None:
    if outside:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8)


def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average (window >= 1); keeps the curve readable for noisy minibatch losses."""
    v = np.asarray(values, np.float64)
    if window <= 1 or len(v) < window:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    head = c[1:window] / np.arange(1, window)
    return np.concatenate([head, (c[window:] - c[:-window]) / window])


def loss_curves(curves: dict[str, list[float]], title: str, path: str | Path | None = None,
                window: int = 1) -> Figure:
    """Training loss per iteration (MSE on the 0..255 scale), log y-axis, one line per run. Runs whose
    curves are the same (e.g. networks whose output died, which all score the targets' mean square) are
    drawn once and named together, rather than one hiding the others."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    lines: list[tuple[np.ndarray, list[str]]] = []
    for name, values in curves.items():
        v = smooth(values, window)
        same = [names for w, names in lines if len(w) == len(v) and np.allclose(w, v, rtol=1e-6, equal_nan=True)]
        if same:
            same[0].append(name)
        else:
            lines.append((v, [name]))
    for v, names in lines:
        label = " = ".join(names) + (" (the same curve)" if len(names) > 1 else "")
        ax.plot(np.arange(1, len(v) + 1), v, label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (10 images x 3 channels)")
    ax.set_ylabel("training MSE (0..255 scale)" + (f", {window}-iteration mean" if window > 1 else ""))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


#: How the members of one group of curves (the seeds of one set-up) are told apart within its colour
_MEMBER_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "v"), ((0, (5, 1, 1, 1)), "D")]


def psnr_curves(curves: dict[str, tuple[list[int], list[float]]], title: str, path: str | Path | None = None,
                levels: dict[str, float] | None = None, log_x: bool = False,
                marks: dict[str, int] | None = None, x_label: str = "iteration (10 images x 3 channels)",
                groups: dict[str, str] | None = None) -> Figure:
    """Validation PSNR (dB) against iteration (or what ``x_label`` names), with fixed methods (bicubic,
    the 2022 model, ...) as horizontal lines at their level on the same images, and ``marks`` (name ->
    iteration, e.g. the study's run length) as vertical lines. ``log_x``: a long run's early and late
    progress both show. ``groups`` (curve name -> group, e.g. its set-up): the curves of one group share a
    colour and differ in line and marker, so three set-ups of three seeds read as three colours."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colour_of: dict[str, str] = {}
    members: dict[str, int] = {}
    for name, (its, values) in curves.items():
        group = (groups or {}).get(name, name)
        colour = colour_of.setdefault(group, f"C{len(colour_of)}")
        line, marker = _MEMBER_STYLES[members.get(group, 0) % len(_MEMBER_STYLES)]
        members[group] = members.get(group, 0) + 1
        ax.plot(its, values, marker=marker, ms=3, ls=line, color=colour, label=name)
    _reference_lines(ax, levels)
    for (name, iteration), style in zip((marks or {}).items(), [":", "--"] * 3):
        ax.axvline(iteration, color="k", lw=0.8, ls=style, label=f"{name} ({iteration:,} iterations)")
    if log_x:
        ax.set_xscale("log")
    return _save(_labelled(ax, x_label + (", log scale" if log_x else ""),
                           "validation PSNR, RGB (dB)", title, legend_outside=True), path)


def psnr_vs_lr(summary, title: str, path: str | Path | None = None, blank: float | None = None) -> Figure:
    """Validation PSNR against learning rate, one panel per set-up (two per row) and one colour per
    optimizer: the first rung's runs of every rate as a line (means over seeds; a band, clipped to the
    plot, gives the 95% interval where they ran 3 seeds or more), the final-length runs as diamonds with
    error bars. How the first rung's runs failed is marked: an open circle where they never moved, a
    cross where they blew up or diverged (drawn at the black-output line, their PSNR meaning nothing).
    ``summary``: ``LRSweep.summary()``."""
    setups = list(dict.fromkeys(summary.setup))
    cols = min(2, len(setups))
    rows = -(-len(setups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False, sharey=True)
    short, long = summary.iterations.min(), summary.iterations.max()
    # the axis fits the means and the final runs' intervals, not a first rung's (a band that would
    # flatten everything else is cut off)
    finite = np.concatenate([summary.val_psnr.to_numpy(float),
                             summary.ci_high[summary.iterations == long].to_numpy(float)])
    finite = finite[np.isfinite(finite)]
    low_y = min(0.0, float(finite.min())) if finite.size else 0.0
    high_y = max([*finite, blank or 0.0, 1.0]) + 1.0
    for ax, setup in zip(axes.flat, setups):
        s = summary[summary.setup == setup]
        for i, opt in enumerate(dict.fromkeys(s.optimizer)):
            colour = f"C{i}"
            a = s[(s.optimizer == opt) & (s.iterations == short)].sort_values("lr")
            ax.plot(a.lr, a.val_psnr, color=colour, marker="o", ms=3, label=opt)
            if (a.seeds >= 3).all():  # over 2 seeds a t-interval spans +-12.7 standard errors: no band
                ax.fill_between(a.lr, a.ci_low.clip(lower=low_y), a.ci_high, color=colour, alpha=0.15, lw=0)
            still = a[a.outcome.str.startswith("never moved")]
            ax.plot(still.lr, still.val_psnr, ls="none", marker="o", ms=9, mfc="none", color=colour)
            failed = a[a.outcome.str.startswith(("blew up, then dead", "diverged"))]
            ax.plot(failed.lr, np.full(len(failed), blank if blank is not None else low_y), ls="none", marker="x",
                    ms=8, mew=2, color=colour)
            b = s[(s.optimizer == opt) & (s.iterations == long)]
            if long != short and len(b):
                ax.errorbar(b.lr, b.val_psnr, yerr=[(b.val_psnr - b.ci_low).clip(lower=0), b.ci_high - b.val_psnr],
                            color=colour, marker="D", ms=6, ls="none", capsize=3)
        if blank is not None:
            ax.axhline(blank, color="k", lw=0.8, ls=":", label=f"black output (< {blank:g} dB)")
        ax.plot([], [], ls="none", marker="o", ms=9, mfc="none", color="grey", label="never moved")
        ax.plot([], [], ls="none", marker="x", ms=8, mew=2, color="grey", label="blew up or diverged")
        ax.set_xscale("log")
        ax.set_ylim(low_y, high_y)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("validation PSNR, RGB (dB)")
        seeds = s[s.iterations == short].seeds.max()
        ax.set_title(f"{setup} set-up (line: {short:,} iterations, mean of {seeds} seeds; diamonds: {long:,})",
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(setups):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def interval_bars(table, title: str, ylabel: str, path: str | Path | None = None,
                  levels: dict[str, float] | None = None, group: str = "iterations", label: str = "step",
                  value: str = "psnr_rgb", low: str = "ci_low", high: str = "ci_high",
                  points: str | None = None, symlog: float | None = None) -> Figure:
    """95% intervals side by side: one colour per value of column ``group``, one x position per value of
    ``label``; the estimate from ``value``, the interval ``low`` .. ``high``. Differences (values either
    side of 0) are bars from 0; levels (PSNR, all above 0) are points, so the axis can start near the
    data without a truncated bar overstating a gap. ``levels`` draws reference lines (e.g. the bicubic's
    PSNR); ``points``: a column of space-separated values (each seed's, as ``experiments.paired_table``
    writes them) drawn as dots at their estimate. The legend sits outside the axes, clear of the data.
    ``symlog``: differences on a symmetric log axis, linear within +-``symlog`` dB, so effects of a few
    hundredths of a dB show beside one of several dB."""
    groups = list(dict.fromkeys(table[group]))
    labels = list(dict.fromkeys(table[label]))
    width = 0.8 / len(groups)
    values = np.concatenate([table[low].dropna(), table[high].dropna(), table[value].dropna(),
                             list((levels or {}).values())])
    as_levels = not symlog and bool(len(values)) and values.min() > 0  # symlog: differences, whatever their sign
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(labels)), 4.5))
    for i, g in enumerate(groups):
        t = table[table[group] == g].set_index(label).reindex(labels)
        x = np.arange(len(labels)) + (i - (len(groups) - 1) / 2) * width
        err = np.nan_to_num(np.array([t[value] - t[low], t[high] - t[value]]))
        name = f"{g:,} {group}" if isinstance(g, (int, np.integer)) else str(g)
        if as_levels:
            ax.errorbar(x, t[value], yerr=err, fmt="D", ms=6, capsize=4, label=name, color=f"C{i}")
        else:
            ax.bar(x, t[value], width, yerr=err, capsize=3, label=name, color=f"C{i}")
        if points is not None:
            for xi, text in zip(x, t[points]):
                seeds = [float(v) for v in str(text).split()] if isinstance(text, str) else []
                ax.plot([xi] * len(seeds), seeds, ls="none", marker="o", ms=4, color="k", alpha=0.6,
                        label="each seed" if i == 0 and xi == x[0] else None)
    _reference_lines(ax, levels)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, outside=True)
    if as_levels:  # PSNR levels: start the axis near the data, not at 0 dB
        span = values.max() - values.min()
        ax.set_ylim(values.min() - 0.3 * span - 0.1, values.max() + 0.15 * span + 0.1)
    elif symlog:
        ax.set_yscale("symlog", linthresh=symlog)
        ax.axhline(0, color="k", lw=0.8)
    return _save(fig, path)


def gain_histogram(gains: dict[str, np.ndarray], title: str, path: str | Path | None = None) -> Figure:
    """Histogram of per-image PSNR gains (dB) over a reference, one outline per method."""
    fig, ax = plt.subplots(figsize=(8, 4))
    all_values = np.concatenate([np.asarray(g, np.float64) for g in gains.values()])
    bins = np.linspace(all_values.min(), all_values.max(), 31).tolist() if len(all_values) > 1 else 10
    for name, g in gains.items():
        g = np.asarray(g, np.float64)
        ax.hist(g, bins=bins, histtype="step", lw=1.5,
                label=f"{name}: mean {g.mean():+.2f} dB, {np.mean(g > 0):.0%} of images above 0")
    ax.axvline(0, color="k", lw=0.8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of images: no 2.5 ticks
    return _save(_labelled(ax, "PSNR gain per image (dB, RGB)", "images", title, legend_outside=True), path)


#: Where CelebA's alignment puts the eyes and the mouth in a 176x176 HR crop (rows, columns)
FACE_REGIONS = {"eyes": (slice(64, 108), slice(34, 142)), "mouth": (slice(118, 154), slice(58, 118))}


def zoom_and_error(hr: np.ndarray, outputs: dict[str, np.ndarray], title: str, path: str | Path | None = None,
                   regions: dict[str, tuple[slice, slice]] = FACE_REGIONS, error_range: float = 48.0) -> Figure:
    """One row per method for one image: each region of ``regions`` enlarged (nearest neighbour, so
    pixels stay visible), then the absolute error against ``hr`` (mean over channels, 0..``error_range``
    grey levels, brighter = worse). ``outputs``: name -> uint8 BGR (176, 176, 3)."""
    names = list(outputs)
    # Every panel fills a cell of the same height, so the rows line up: a column is as wide as its
    # panel's aspect ratio, and constrained layout leaves no blank bands.
    aspects = [(c.stop - c.start) / (r.stop - r.start) for r, c in regions.values()] + [hr.shape[1] / hr.shape[0]]
    row_inches = 1.8
    fig, axes = plt.subplots(len(names) + 1, len(aspects), squeeze=False, layout="constrained",
                             figsize=(row_inches * sum(aspects) + 1.5, (row_inches + 0.3) * (len(names) + 1) + 0.5),
                             gridspec_kw={"width_ratios": aspects})
    for r, name in enumerate(["ANSWER (HR)", *names]):
        img = hr if r == 0 else outputs[name]
        for c, (region, (rows, columns)) in enumerate(regions.items()):
            ax = axes[r, c]
            ax.imshow(img[rows, columns, ::-1], interpolation="nearest")
            ax.set_title(f"{name}: {region}" if c == 0 else region, fontsize=9)
            ax.axis("off")
        ax = axes[r, -1]
        if r == 0:
            ax.imshow(hr[..., ::-1], interpolation="nearest")
            ax.set_title("whole image", fontsize=9)
        else:
            err = np.abs(img.astype(np.float32) - hr).mean(axis=2)
            im = ax.imshow(err, cmap="magma", vmin=0, vmax=error_range)
            ax.set_title(f"|error|, mean {err.mean():.1f} grey levels", fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.canvas.draw()  # constrained layout places the panels; the colour bar then spans every error map
    fig.set_layout_engine("none")
    top, bottom = axes[1, -1].get_position(), axes[-1, -1].get_position()
    cax = fig.add_axes((top.x1 + 0.012, bottom.y0, 0.015, top.y1 - bottom.y0))
    fig.colorbar(im, cax=cax, label="absolute error (grey levels, 0..255)")
    return _save(fig, path)


def comparison_grid(lr: Sequence[np.ndarray], columns: Mapping[str, Sequence[np.ndarray] | np.ndarray], title: str,
                    path: str | Path | None = None, psnrs: Mapping[str, Sequence[float] | np.ndarray] | None = None) -> Figure:
    """One column per image: its LR input on top at its true size (44x44, 4x smaller), then one row per
    method with its 176x176 output (uint8 BGR) and, when given, its PSNR on that image. Methods run down
    the page, so however many there are the figure stays narrow enough to be shown at full size in a
    notebook, its labels readable."""
    names = list(columns)
    n = len(lr)
    fig, axes = plt.subplots(len(names) + 1, n, figsize=(2.7 * n + 0.3, 2.45 * len(names) + 1.3), squeeze=False,
                             gridspec_kw={"height_ratios": [1] + [4] * len(names)}, layout="constrained")
    for c in range(n):
        ax = axes[0, c]
        ax.imshow(lr[c][..., ::-1], interpolation="nearest")
        ax.set_title("LR input (44x44, 4x smaller)", fontsize=8)
        ax.axis("off")
        for r, name in enumerate(names, start=1):
            ax = axes[r, c]
            ax.imshow(columns[name][c][..., ::-1], interpolation="nearest")
            score = psnrs[name][c] if psnrs and name in psnrs else float("nan")
            # 34 characters fit a panel; longer labels wrap, never between a score and its unit (a no-break space)
            label = f"{name}: {score:.2f}\u00a0dB" if np.isfinite(score) else name
            ax.set_title(textwrap.fill(label, 34), fontsize=9)
            ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)


def sampling_grids(path: str | Path | None = None) -> Figure:
    """What the sampling grid is (left: where each grid puts an LR pixel among the HR pixels) and why it
    matters (right: one edge, area-downscaled, then put back by bicubic on either grid)."""
    from ..data.degrade import SCALE, upscale_bicubic, upscale_bicubic_centred
    from ..data.photo import area

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.5]})
    n = 2 * SCALE
    for v in range(n + 1):  # HR pixel edges, thin; LR block edges, thick
        lw = 1.6 if v % SCALE == 0 else 0.4
        left.axhline(v - 0.5, color="black", lw=lw)
        left.axvline(v - 0.5, color="black", lw=lw)
    blocks = np.arange(0, n, SCALE)
    by, bx = np.meshgrid(blocks, blocks, indexing="ij")
    left.plot(bx.ravel(), by.ravel(), "o", color="tab:red", ms=9, label="study: HR (4i, 4j)")
    left.plot(bx.ravel() + 1.5, by.ravel() + 1.5, "X", color="tab:blue", ms=10, label="centre: HR (4i+1.5, 4j+1.5)")
    left.set(xlim=(-0.5, n - 0.5), ylim=(n - 0.5, -0.5), aspect="equal")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    left.set_xlabel("HR pixel x")
    left.set_ylabel("HR pixel y")
    left.set_title("where LR pixel (i, j) is sampled\n(thick lines: one 4x4 block per LR pixel)", fontsize=10)

    x = np.arange(64)
    hr = np.repeat(np.where(x < 30, 40, 210).astype(np.uint8)[None], 16, axis=0)  # a vertical edge
    lr = area(hr)
    right.step(x, hr[8], where="mid", color="black", lw=1.5, label="HR edge")
    right.plot(x, upscale_bicubic_centred(lr)[8], color="tab:blue", label="area LR, bicubic on the centre grid")
    right.plot(x, upscale_bicubic(lr)[8], color="tab:red", ls="--", label="area LR, bicubic on the study grid")
    right.set_xlim(18, 42)
    _labelled(right, "HR pixel x", "grey level (0..255)", "the wrong grid moves every edge by 1.5 HR pixels")
    right.title.set_fontsize(10)
    return _save(fig, path)
