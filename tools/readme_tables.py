"""The documents' result tables, made from the committed CSVs (``conclusion/``, ``docs/evaluation/``,
``docs/photo_benchmark/``, ``docs/benchmark/``), by the document each stands in (``DOCUMENTS``).

    python tools/readme_tables.py      # prints every table as Markdown, under the document it belongs to

``tests/test_docs.py`` checks that each table printed here stands in its document as it is, so no number
in the README, the report's front page, the docs or a model card can drift from the CSV it comes from.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CONCLUSION = Path(os.environ.get("SRLIB_CONCLUSION", ROOT / "conclusion"))


def _db(mean: float, low: float | None = None, high: float | None = None, signed: bool = False) -> str:
    f = "{:+.2f}" if signed else "{:.2f}"
    if not np.isfinite(mean):
        return "diverged"
    if low is None or not (np.isfinite(low) and np.isfinite(high)):
        return f.format(mean)
    return f"{f.format(mean)} [{f.format(low)}, {f.format(high)}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def evaluation() -> str:
    """Every method on celeba-mini's 780 validation images (``srlib evaluate``)."""
    from srlib.evaluation.metrics import paired_difference

    s = pd.read_csv(ROOT / "docs" / "evaluation" / "summary_validation.csv", index_col=0)
    scores = pd.read_csv(ROOT / "docs" / "evaluation" / "scores_validation.csv")
    per_image = {m: g.psnr_rgb.to_numpy() for m, g in scores.groupby("method", sort=False)}
    names = {"nearest": "nearest", "bicubic_centred": "bicubic, `cv2.resize` (centre grid: 1.5 px off here)",
             "bicubic_aligned": "bicubic, phase-aligned (the baseline)",
             "2022 study (many_adam)": "2022 study, published `many_adam` weights",
             "srlib_study": "**shipped study model (improved recipe, 12k iterations)**"}
    rows = []
    for method, r in s.iterrows():
        minus = [_db(*paired_difference(per_image[method], per_image[ref]), signed=True) if method != ref else ""
                 for ref in ("bicubic_aligned", "2022 study (many_adam)")]
        rows.append([names[method], f"{r.psnr_rgb:.2f}", f"{r.psnr_y:.2f}", f"{r.ssim_y:.3f}", f"{r.study_psnr:.2f}",
                     *minus])
    return _table(["method", "PSNR RGB", "PSNR Y", "SSIM Y", "study metric", "minus aligned bicubic",
                   "minus 2022 model"], rows)


def optimizers() -> str:
    """Notebook 01: each optimizer at its best learning rate, and against Adam."""
    folder = CONCLUSION / "optimizer_compare"
    best = pd.read_csv(folder / "best_per_optimizer.csv")
    vs = pd.read_csv(folder / "paired_vs_adam.csv").set_index(["setup", "a"])
    tried = pd.read_csv(folder / "sweep_summary.csv").groupby(["setup", "optimizer"]).lr.agg(["min", "max"])
    rows = []
    for _, r in best.iterrows():
        key = (r.setup, r.optimizer)
        against = _db(*vs.loc[key, ["a_minus_b_db", "ci_low", "ci_high"]], signed=True) if key in vs.index else ""
        edge = "yes" if r.lr in (tried.loc[key, "min"], tried.loc[key, "max"]) else ""
        rows.append([r.setup, r.optimizer, f"{r.lr:.3g}", edge, _db(r.val_psnr, r.ci_low, r.ci_high), against,
                     r.outcome])
    return _table(["set-up", "optimizer", "best lr", "at the grid's end", "validation PSNR, dB", "minus Adam, dB",
                   "what the seeds did"], rows)


def study_rate() -> str:
    """Notebook 01: the study's own experiment, every optimizer at lr 0.01 in the study's set-up."""
    t = pd.read_csv(CONCLUSION / "optimizer_compare" / "at_study_lr.csv")
    rows = [[r.optimizer, _db(r.val_psnr, r.ci_low, r.ci_high), f"{r.max_loss:.2g}", f"{r.final_loss:,.0f}", r.outcome]
            for _, r in t[t.setup == "study"].iterrows()]
    return _table(["optimizer", "validation PSNR, dB", "largest training loss", "final training loss",
                   "what the seeds did"], rows)


def _measurable(r) -> str:
    """"yes" or "no", and for a difference whose own interval leaves out 0 but that Holm's correction over
    its table does not keep, both p-values (a table published before the correction has no ``p_holm``)."""
    if r.measurable:
        return "yes"
    held = "p_holm" not in r or not (r.ci_low > 0 or r.ci_high < 0)
    return "no" if held else f"no (p {r.p:.3f}, {r.p_holm:.3f} after Holm)"


def paired(folder: str) -> str:
    """A notebook's paired comparisons (``paired.csv``)."""
    t = pd.read_csv(CONCLUSION / folder / "paired.csv")
    rows = [[f"{r.a} minus {r.b}", _db(r.a_minus_b_db, r.ci_low, r.ci_high, signed=True), _measurable(r)]
            for _, r in t.iterrows()]
    holm = f" (Holm over the {len(t)} rows)" if "p_holm" in t else ""
    return _table(["comparison", "dB, mean [95% interval]", f"measurable{holm}"], rows)


def colours() -> str:
    """Notebook 03: each set-up's PSNR over seeds, with its iterations and optimizer steps per network."""
    t = pd.read_csv(CONCLUSION / "3_colors_network" / "summary.csv")
    rows = [[r.run, f"{r.iterations:,}", f"{r.optimizer_steps_per_network:,}", _db(r.psnr_rgb, r.ci_low, r.ci_high),
             str(int(r.seeds))] for _, r in t.iterrows()]
    return _table(["set-up", "iterations", "optimizer steps per network", "PSNR RGB, dB [95% interval over seeds]",
                   "seeds"], rows)


def colour_steps() -> str:
    """Notebook 03: each per-channel set-up against the shared network at equal optimizer steps per network."""
    t = pd.read_csv(CONCLUSION / "3_colors_network" / "paired_equal_steps.csv")
    rows = [[f"{r.a}, {r.a_iterations:,} it. minus {r.b}, {r.b_iterations:,} it.",
             f"{r.a_steps_per_network:,} vs {r.b_steps_per_network:,}",
             _db(r.a_minus_b_db, r.ci_low, r.ci_high, signed=True), "yes" if r.measurable else "no"]
            for _, r in t.iterrows()]
    return _table(["comparison", "optimizer steps per network", "dB, mean [95% interval]", "measurable"], rows)


def colour_spread() -> str:
    """Notebook 03: how steadily each set-up trains over the second half of its runs (range over seeds)."""
    t = pd.read_csv(CONCLUSION / "3_colors_network" / "validation_spread.csv")
    rows = [[r.run, f"{r.std_db_min:.2f}-{r.std_db_max:.2f}", f"{r.largest_fall_db_min:.2f}-{r.largest_fall_db_max:.2f}"]
            for _, r in t.iterrows()]
    return _table(["set-up", "std of validation PSNR, dB", "largest fall between two checks, dB"], rows)


def _per_length(t: pd.DataFrame, label: str, cells) -> list[list[str]]:
    """One row per value of column ``label`` (in the CSV's order) and, per run length (``iterations``, in
    the CSV's order), the cells ``cells(row)`` gives, or two empty ones where that length was not run."""
    by = t.set_index([label, "iterations"])
    lengths = list(dict.fromkeys(t.iterations))
    return [[name] + [c for n in lengths for c in (cells(by.loc[(name, n)]) if (name, n) in by.index else ["", ""])]
            for name in dict.fromkeys(t[label])]


def leave_one_out() -> str:
    """Notebook 04: what each change is worth with all the others in place, per run length, with its
    interval over seeds (* where it survives Holm's correction over the table) and each seed's own paired
    difference."""
    t = pd.read_csv(CONCLUSION / "beyond_the_study" / "leave_one_out.csv")
    seeds = {n: int(g.seeds.iloc[0]) for n, g in t.groupby("iterations", sort=False)}
    header = ["change left out"] + [h for n, s in seeds.items() for h in (f"worth, {n:,} it. x {s} seeds", "per seed")]
    return _table(header, _per_length(t, "change", lambda r: [
        _db(r.worth_db, r.ci_low, r.ci_high, signed=True) + (" *" if "p_holm" in r and r.measurable else ""),
        r.per_seed_db]))


def ladder() -> str:
    """Notebook 04: the build-up ladder, each step at every length, with its paired gain over the step before."""
    t = pd.read_csv(CONCLUSION / "beyond_the_study" / "ladder.csv")
    header = ["step"] + [h for n in dict.fromkeys(t.iterations) for h in (f"PSNR, {n:,} it.", f"gain, {n:,} it.")]
    return _table(header, _per_length(t, "step", lambda r: [
        _db(r.psnr_rgb, r.ci_low, r.ci_high),
        "" if pd.isna(r.gain_db) else _db(r.gain_db, r.gain_low, r.gain_high, signed=True)]))


#: The photo benchmark's methods, as the photo model card shows them, in this order (the README: ``PHOTO_BRIEF``).
PHOTO_COLUMNS = {"lanczos": "Lanczos", "study model": "study model",
                 "photo model v1 (one channel at a time)": "photo model v1 (one channel at a time)",
                 "photo model": "**photo model**",
                 "photo model, not told the JPEG quality": "photo model, not told the JPEG quality",
                 "photo model, JPEG quality read from the pixels": "photo model, JPEG quality read from the pixels",
                 "photo model, 8-fold ensemble": "photo model, 8-fold ensemble",
                 "photo model v2 (narrow mix)": "photo model v2 (narrow mix)",
                 "photo model v4 (64 channels)": "photo model v4 (64 channels)", "fast tier": "fast tier",
                 "fast tier v2 (32 channels, 5x5 first layer)": "fast tier v2 (32 channels, 5x5 first layer)"}
PHOTO_BRIEF = ["lanczos", "photo model", "photo model, JPEG quality read from the pixels", "photo model v2 (narrow mix)",
               "fast tier"]
#: OpenCV's dnn_superres models (``photo-benchmark --opencv-models``): one column, the best of them per row
OPENCV = "OpenCV "


def photo(columns: list[str] = PHOTO_BRIEF) -> str:
    """``srlib photo-benchmark``: bicubic's PSNR and each method minus bicubic, per degradation, with the
    share of faces below bicubic where the summary has it; the best OpenCV model of each row."""
    from srlib.data.photo import BENCHMARK

    s = pd.read_csv(ROOT / "docs" / "photo_benchmark" / "photo_summary_validation.csv")
    methods = [m for m in PHOTO_COLUMNS if m in set(s.method) and m in columns]
    anchors = [m for m in dict.fromkeys(s.method) if m.startswith(OPENCV)]
    rows = []
    for deg, g in s.groupby("degradation", sort=False):
        g = g.set_index("method")

        def cell(m: str) -> str:
            text = _db(g.loc[m, "minus_bicubic"], g.loc[m, "ci_low"], g.loc[m, "ci_high"], signed=True)
            if "below_bicubic" in g.columns:
                text += f" ({g.loc[m, 'below_bicubic']:.0%} below)"
            return text
        row = [deg, f"{g.loc['bicubic', 'psnr_rgb']:.2f}"]
        for m in methods:
            text = cell(m)
            if "not told" in m and BENCHMARK[deg].jpeg_quality is None:
                text = "(not a JPEG)"
            row.append(f"**{text}**" if m == "photo model" else text)
        if anchors:
            best = max(anchors, key=lambda m: g.loc[m, "minus_bicubic"])
            row.append(f"{best[len(OPENCV):]}: {cell(best)}")
        rows.append(row)
    header = ["degradation (centre grid)", "bicubic, dB", *(PHOTO_COLUMNS[m] for m in methods)]
    return _table(header + (["best OpenCV x4 model"] if anchors else []), rows)


def benchmark() -> str:
    """``srlib benchmark``: PSNR-Y under the papers' protocol, each measured method and the published rows,
    with the margin over bicubic (BSD68 is a subset of B100, which the papers report: compare margins there)."""
    s = pd.read_csv(ROOT / "docs" / "benchmark" / "benchmark_summary.csv")
    sets = list(dict.fromkeys(s.set))
    rows = []
    for method, g in s.groupby("method", sort=False):
        g = g.set_index("set")
        cells = [f"{g.loc[x, 'psnr_y']:.2f} ({g.loc[x, 'minus_bicubic']:+.2f})" for x in sets]
        rows.append([f"**{method}**" if method == "srlib photo" else method, *cells])
    return _table(["x4, PSNR-Y dB (minus bicubic)", *(f"{x} (published: B100)" if x == "BSD68" else x for x in sets)], rows)


#: each document's tables, by name
DOCUMENTS = {
    "README.md": {"benchmark": benchmark},
    "docs/photos.md": {"photo": photo},
    "conclusion/README.md": {"evaluation": evaluation, "optimizers": optimizers, "study's rate": study_rate,
                             "hard training": lambda: paired("hard_train"),
                             "colour networks": colours, "colour networks, paired": lambda: paired("3_colors_network"),
                             "colour networks, equal steps": colour_steps, "colour networks, steadiness": colour_spread,
                             "leave one out": leave_one_out, "ladder": ladder},
    "srlib/models/MODEL_CARD_photo.md": {"photo": lambda: photo(list(PHOTO_COLUMNS))},
    "srlib/models/MODEL_CARD_fast.md": {"photo": lambda: photo(["lanczos", "photo model", "fast tier",
                                                                "fast tier v2 (32 channels, 5x5 first layer)"])},
}


if __name__ == "__main__":
    for document, tables in DOCUMENTS.items():
        for name, make in tables.items():
            print(f"<!-- {document}: {name} -->\n{make()}\n")
