"""Figures for the report: every one has a title, labelled axes with units, and is saved as PNG.

The study's figures were screenshots at arbitrary sizes, and showed the LR input at the size of the
outputs without saying it is 4x smaller. Here LR is drawn at its true size.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


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
    """Training loss per iteration (MSE on the 0..255 scale), log y-axis, one line per run."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in curves.items():
        v = smooth(values, window)
        ax.plot(np.arange(1, len(v) + 1), v, label=name, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (10 images x 3 channels)")
    ax.set_ylabel("training MSE (0..255 scale)" + (f", {window}-iteration mean" if window > 1 else ""))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def psnr_curves(curves: dict[str, tuple[list[int], list[float]]], title: str, path: str | Path | None = None,
                baseline: float | None = None) -> Figure:
    """Validation PSNR (dB) against iteration, optionally with the aligned-bicubic level as a line."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, (its, values) in curves.items():
        ax.plot(its, values, marker="o", ms=3, label=name)
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", label=f"aligned bicubic ({baseline:.2f} dB)")
    ax.set_xlabel("iteration (10 images x 3 channels)")
    ax.set_ylabel("validation PSNR, RGB (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def bar_gains(labels: list[str], values: list[float], title: str, ylabel: str,
              path: str | Path | None = None) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def comparison_grid(lr: list[np.ndarray], columns: dict[str, list[np.ndarray]], title: str,
                    path: str | Path | None = None, psnrs: dict[str, list[float]] | None = None) -> Figure:
    """One row per image: the LR input at its true size (44x44, 4x smaller), then each method's
    176x176 output (uint8 BGR), with per-image PSNR under each output when given."""
    names = list(columns)
    rows = len(lr)
    widths = [1] + [4] * len(names)
    fig, axes = plt.subplots(rows, len(names) + 1, figsize=(2.2 * len(names) + 1.2, 2.4 * rows),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for r in range(rows):
        ax = axes[r, 0]
        ax.imshow(lr[r][..., ::-1], interpolation="nearest")
        ax.set_title("LR (44x44,\n4x smaller)" if r == 0 else "", fontsize=8)
        ax.axis("off")
        for c, name in enumerate(names, start=1):
            ax = axes[r, c]
            ax.imshow(columns[name][r][..., ::-1], interpolation="nearest")
            ax.set_title(name if r == 0 else "", fontsize=9)
            if psnrs and name in psnrs and np.isfinite(psnrs[name][r]):
                ax.text(0.5, -0.06, f"{psnrs[name][r]:.2f} dB", transform=ax.transAxes, ha="center",
                        va="top", fontsize=8)
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
