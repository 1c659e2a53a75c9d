"""The report's tables in numbers and words: paired differences with their intervals, seed summaries,
and the formatting every notebook shares ("+0.42 dB [+0.31, +0.53]", rounded tables with "–" for what
does not exist)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.celeba import Pairs
from ..evaluation.metrics import holm, paired_test, psnr_per_image, seed_interval, seed_p_value, welch_interval
from .sweep import Result


def difference_words(mean: float, low: float, high: float, measurable: bool) -> str:
    """A paired difference in words: "+0.42 dB [+0.31, +0.53]", marked when its interval holds 0, or
    when it leaves 0 out but does not survive Holm's correction over its table (``with_holm``)."""
    if measurable or not np.isfinite(mean):
        return fmt_db(mean, low, high, True)
    held = not (low > 0 or high < 0)
    return fmt_db(mean, low, high, True) + (" (no measurable difference)" if held else
                                            " (not measurable after Holm's correction over its table)")


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
    the scores are (seeds, images)), with its 95% interval and p-value (``metrics.paired_test``:
    Student's t over the seeds' own differences, or a bootstrap over images for a single run), each
    seed's difference (``per_seed_db``) and which interval it is. The rows are one family of
    comparisons: ``measurable`` is True only where the difference survives Holm's correction over them
    (``with_holm``); an interval that holds 0 is never measurable, whatever the sign of the mean.

    A seed in which either run has no score (NaN: it diverged, or the caller left it out as a failed
    run) is left out of the mean and the interval (``left_out_seeds`` counts them); it stays in
    ``per_seed_db`` as nan."""
    rows = []
    for a, b in comparisons:
        # a method without a seed (a baseline) is paired with every seed of the other
        x, y = np.broadcast_arrays(np.atleast_2d(scores[a]), np.atleast_2d(scores[b]))
        per_seed = (x - y).mean(axis=1)
        kept = np.isfinite(per_seed)
        mean, low, high, p = paired_test(x[kept], y[kept]) if kept.any() else (np.nan,) * 4
        interval = f"t over {kept.sum()} seeds" if kept.sum() > 1 else f"bootstrap over {x.shape[1]} images"
        rows.append({"a": a, "b": b, **difference_columns(mean, low, high, interval, p),
                     "left_out_seeds": int((~kept).sum()), "per_seed_db": per_seed_text(per_seed)})
    return with_holm(pd.DataFrame(rows))


def difference_columns(mean: float, low: float, high: float, interval: str, p: float) -> dict:
    """A paired difference's columns in the report's tables: the 95% interval, the test's p-value, and
    ``measurable`` before any correction (its interval leaves out 0; ``with_holm`` corrects it)."""
    return {"a_minus_b_db": mean, "ci_low": low, "ci_high": high, "p": p, "measurable": bool(low > 0 or high < 0),
            "interval": interval}


#: the chance of any false "measurable" a table of comparisons allows (Holm's family-wise error rate)
FAMILY_ALPHA = 0.05


def with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (rows of ``difference_columns``: one family of comparisons) with ``p_holm``, Holm's
    adjusted p-value over its rows, and ``measurable`` True only where p_holm < FAMILY_ALPHA. A table
    built by joining several is corrected over all of its rows."""
    table = table.copy()
    if len(table):
        table["p_holm"] = holm(table.p.to_numpy(np.float64))
        table["measurable"] = table.p_holm < FAMILY_ALPHA
    return table


def seed_difference(differences: np.ndarray) -> dict:
    """The columns of a difference measured once per seed (``differences``: one value each): its mean,
    95% Student's t interval and p-value over the seeds, and each seed's value."""
    d = np.asarray(differences, np.float64)
    return {**difference_columns(*seed_interval(d), f"t over {len(d)} seeds", seed_p_value(d)), "per_seed_db": per_seed_text(d)}


def per_seed_text(differences: np.ndarray) -> str:
    """Each seed's difference, as the tables' ``per_seed_db`` column: "+0.41 +0.38 +nan"."""
    return " ".join(f"{v:+.2f}" for v in differences)


def baseline_scores(pairs: Pairs, methods: dict) -> dict[str, np.ndarray]:
    """Per-image PSNR (RGB) of fixed methods (no seed): a baseline, a shipped or imported model."""
    return {k: psnr_per_image(m, pairs) for k, m in methods.items()}


def per_image(scores: dict[str, np.ndarray], pairs: Pairs) -> pd.DataFrame:
    """Per-image PSNR of fixed methods (``baseline_scores``) as a table by image name: the record of the
    reference numbers a notebook quotes, written beside its tables."""
    return pd.DataFrame({k: np.asarray(v, np.float64) for k, v in scores.items()},
                        index=pd.Index([p.name for p in pairs.paths], name="image"))


def held_out_table(val: dict[str, np.ndarray], test: dict[str, np.ndarray], reference: str) -> pd.DataFrame:
    """Each method's per-image PSNR on the images that chose it (``val``) beside the held-out test split
    (``test``; the same methods, ``reference`` among them): the mean on each, the gain over ``reference``
    on each (the two splits differ in difficulty, which the gain leaves out), and ``optimism_db``, the
    validation gain minus the test gain, with a 95% Welch interval over the two splits' images (different
    images: nothing to pair). A method with a validation curve only (no per-image scores) is left out."""
    rows = []
    for name in [k for k in test if k in val and k != reference]:
        gains = {split: np.asarray(scores[name], np.float64) - np.asarray(scores[reference], np.float64)
                 for split, scores in (("val", val), ("test", test))}
        d, low, high = welch_interval(gains["val"], gains["test"])
        rows.append({"method": name, "val_images": len(gains["val"]), "val_psnr": float(np.mean(val[name])),
                     "test_images": len(gains["test"]), "test_psnr": float(np.mean(test[name])),
                     "val_gain_db": float(np.mean(gains["val"])), "test_gain_db": float(np.mean(gains["test"])),
                     "optimism_db": d, "optimism_low": low, "optimism_high": high})
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()


def held_out_words(table: pd.DataFrame, reference: str) -> str:
    """A ``held_out_table`` as one Markdown bullet: each method's gain over ``reference``, validation ->
    test, and the optimism with its interval."""
    if table.empty:
        return ""
    return (f"- **Held out** ({int(table.test_images.iloc[0])} test images, scored once; the gain over {reference}, "
            "validation -> test, and the optimism, validation gain minus test gain): "
            + "; ".join(f"{k} {r.val_gain_db:+.2f} -> {r.test_gain_db:+.2f} dB, optimism "
                        f"{fmt_db(r.optimism_db, r.optimism_low, r.optimism_high, True)}" for k, r in table.iterrows()) + ".")


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

