"""The report's tables in numbers and words: paired differences with their intervals, seed summaries,
and the formatting every notebook shares ("+0.42 dB [+0.31, +0.53]", rounded tables with "–" for what
does not exist)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.celeba import Pairs
from ..evaluation.metrics import paired_difference, psnr_per_image, seed_interval
from .sweep import Result


def difference_words(mean: float, low: float, high: float, measurable: bool) -> str:
    """A paired difference in words: "+0.42 dB [+0.31, +0.53]", marked when its interval holds 0."""
    return fmt_db(mean, low, high, True) + ("" if measurable or not np.isfinite(mean) else " (no measurable difference)")


def difference_text(paired: pd.DataFrame, a: str, b: str) -> str:
    """The row (a, b) of a ``paired_table`` in words (``difference_words``)."""
    r = paired.set_index(["a", "b"]).loc[(a, b)]
    return difference_words(r.a_minus_b_db, r.ci_low, r.ci_high, r.measurable)


def fmt_db(mean: float, low: float, high: float, signed: bool = False) -> str:
    """"27.31 dB [27.10, 27.52]": a value with its 95% interval (the interval left out when unknown)."""
    sign = "+" if signed else ""
    if not np.isfinite(mean):
        return "n/a (diverged)"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:{sign}.2f} dB"
    return f"{mean:{sign}.2f} dB [{low:{sign}.2f}, {high:{sign}.2f}]"


def readable(table: pd.DataFrame, decimals: int | dict[str, int] = 3) -> pd.DataFrame:
    """``table`` as a notebook shows it: rounded, and a value that does not exist (no interval from a
    single seed, no difference where every seed diverged) shown as "–" rather than NaN. The CSV beside
    it keeps the NaN."""
    shown = table.round(decimals)
    for column in shown.columns[shown.isna().any()]:  # only these: an object column loses pandas' number format
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "–")
    return shown


def paired_table(scores: dict[str, np.ndarray], comparisons: list[tuple[str, str]]) -> pd.DataFrame:
    """For each (a, b): the mean per-image PSNR difference a - b on the same images (and seeds, when
    the scores are (seeds, images)), with its 95% interval (``metrics.paired_difference``: Student's t
    over the seeds' own differences, or a bootstrap over images for a single run), each seed's
    difference (``per_seed_db``) and which interval it is. ``measurable`` is False when the interval
    contains 0: no measurable difference, whatever the sign of the mean.

    A seed in which either run diverged (NaN scores: it has no output to compare) is left out of the
    mean and the interval (``diverged_seeds`` counts them); it stays in ``per_seed_db`` as nan."""
    rows = []
    for a, b in comparisons:
        # a method without a seed (a baseline) is paired with every seed of the other
        x, y = np.broadcast_arrays(np.atleast_2d(scores[a]), np.atleast_2d(scores[b]))
        per_seed = (x - y).mean(axis=1)
        kept = np.isfinite(per_seed)
        mean, low, high = paired_difference(x[kept], y[kept]) if kept.any() else (np.nan,) * 3
        interval = f"t over {kept.sum()} seeds" if kept.sum() > 1 else f"bootstrap over {x.shape[1]} images"
        rows.append({"a": a, "b": b, **difference_columns(mean, low, high, interval),
                     "diverged_seeds": int((~kept).sum()), "per_seed_db": per_seed_text(per_seed)})
    return pd.DataFrame(rows)


def difference_columns(mean: float, low: float, high: float, interval: str) -> dict:
    """A paired difference's columns in the report's tables; ``measurable``: its interval leaves out 0."""
    return {"a_minus_b_db": mean, "ci_low": low, "ci_high": high, "measurable": bool(low > 0 or high < 0),
            "interval": interval}


def per_seed_text(differences: np.ndarray) -> str:
    """Each seed's difference, as the tables' ``per_seed_db`` column: "+0.41 +0.38 +nan"."""
    return " ".join(f"{v:+.2f}" for v in differences)


def baseline_scores(pairs: Pairs, methods: dict) -> dict[str, np.ndarray]:
    """Per-image PSNR (RGB) of fixed methods (no seed): a baseline, a shipped or imported model."""
    return {k: psnr_per_image(m, pairs) for k, m in methods.items()}


def seed_summary(results: dict[str, list[Result]]) -> pd.DataFrame:
    """One row per named group of runs (one run per seed): mean validation PSNR over images and seeds,
    its 95% t-interval across seeds, final training MSE, and how many seeds diverged."""
    rows = []
    for name, runs in results.items():
        m, low, high = seed_interval(np.array([r.mean_psnr for r in runs]))
        rows.append({"run": name, "psnr_rgb": m, "ci_low": low, "ci_high": high, "seeds": len(runs),
                     "final_train_mse": float(np.mean([r.final_loss for r in runs])),
                     "diverged": sum(r.diverged_at is not None for r in runs)})
    return pd.DataFrame(rows).set_index("run")

