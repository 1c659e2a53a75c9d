"""What every notebook of the report does the same way: resolve its paths and data, read its
parameters, run its tasks, load the study's published models, show sample outputs.

Each notebook's own experiment (its plan of runs and its findings) lives in its module (``registry``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..data.celeba import Pairs
from ..data.default import resolve_data_dir
from ..data.degrade import to_uint8
from ..evaluation.evaluate import BASELINES
from ..evaluation.metrics import psnr_each
from ..model import SRModel
from ..paths import in_checkout, project_root
from . import plots
from .sweep import Data, load_split, psnr_matrix, run_tasks, stream_split  # noqa: F401  (the notebooks call them from here)

#: How the report names the phase-aligned bicubic (``BASELINES["bicubic_aligned"]``), its baseline.
BICUBIC = "bicubic (aligned)"


def parameters(notebook: str, namespace: dict) -> dict:
    """The values of ``notebook``'s parameters as they are in ``namespace`` (a notebook passes its
    ``globals()``): its defaults, or what papermill or a report preset injected. What the notebook runs
    and what ``report --dry-run`` plans are both ``plan(parameters)`` of its module."""
    from .runner import notebook_defaults

    return {name: namespace[name] for name in notebook_defaults(notebook)}


def slug(label: str) -> str:
    """A label as part of a file or task name: "warm-up & cosine decay" -> "warm-up-cosine-decay"."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def notebook_path(path: str | Path) -> Path:
    """A notebook parameter's path: relative paths are relative to ``notebooks/`` of the checkout
    (where the notebooks' defaults point from), whatever folder papermill or JupyterLab was started in."""
    path = Path(path)
    if path.is_absolute() or not in_checkout():
        return path
    return project_root() / "notebooks" / path


def output_folder(path: str | Path) -> Path:
    """A notebook's ``OUT_DIR`` (see ``notebook_path``), created if needed."""
    folder = notebook_path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def data_label(data: Data) -> str:
    """How a report names its data folder: relative to the project when inside it, else by its name
    (a published notebook holds no absolute paths of the machine that ran it)."""
    root = Path(data.root).resolve()
    try:
        return str(root.relative_to(project_root().resolve()))
    except ValueError:
        return root.name


def data_source(data: str, eval_split: str = "validation", eval_images: int | None = None,
                val_images: int | None = None) -> Data:
    """A notebook's ``DATA`` parameter ("auto" or a path) as the tasks' data description."""
    root = resolve_data_dir(None if data in ("", "auto") else notebook_path(data))
    return Data(str(root), eval_split, eval_images, val_images)


def outputs_psnr(outputs: dict[str, np.ndarray], hr: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image PSNR of each method's uint8 outputs (``sample_outputs``) against ``hr``."""
    return {k: psnr_each(v, hr) for k, v in outputs.items()}


def sample_outputs(models: dict[str, SRModel], pairs: Pairs, n: int = 3) -> dict[str, np.ndarray]:
    """uint8 outputs of the aligned bicubic, each model and the ANSWER (HR) on the first n pairs."""
    lr = pairs.lr[:n]
    out = {BICUBIC: to_uint8(BASELINES["bicubic_aligned"](lr))}
    out.update({k: to_uint8(m.predict(lr)) for k, m in models.items()})
    out["ANSWER (HR)"] = pairs.hr[:n]
    return out


#: The study's published weight folders (under its ``weights/``) and how the report names their models.
STUDY_WEIGHT_FOLDERS = {"train": "2022 model (43,114 iterations)", "many_adam": "2022 model, trained longer (many_adam)",
                        "color_weight": "2022 colour networks"}


def study_models(path: str | Path) -> dict[str, SRModel]:
    """The study's published models: ``path`` is its ``weights/`` folder (each of ``STUDY_WEIGHT_FOLDERS``
    found there is imported) or one network's folder of W1..W4.pickle ("2022 model")."""
    from ..legacy import import_study_weights

    path = notebook_path(path)
    found = {label: path / sub for sub, label in STUDY_WEIGHT_FOLDERS.items() if (path / sub).is_dir()}
    return {label: SRModel.from_checkpoint(import_study_weights(folder))
            for label, folder in (found or {"2022 model": path}).items()}


def run_grouped(tasks: dict, folder: str | Path, data: Data, scheduler: str = "local", workers: int | None = None,
                desc: str = "runs", fresh: bool = False) -> dict:
    """Run the tasks of several groups (e.g. one group per set-up, a task per seed) together, on
    ``scheduler`` (``fresh``: train them anew, see ``sweep.run_tasks``); returns the results in the same
    grouping."""
    flat = [t for group in tasks.values() for t in group]
    results = run_tasks(flat, folder, data, scheduler, workers, desc=desc, fresh=fresh)
    return {key: [results[t.name] for t in group] for key, group in tasks.items()}


def sample_grid(models: dict[str, SRModel], pairs: Pairs, n: int, title: str, path: str | Path) -> dict[str, np.ndarray]:
    """The sample figure: the first ``n`` LR images, the aligned bicubic, each model and the ground
    truth side by side, each output with its PSNR; returns the outputs (``sample_outputs``)."""
    outputs = sample_outputs(models, pairs, n)
    plots.comparison_grid(list(pairs.lr[:n]), outputs, title, path, psnrs=outputs_psnr(outputs, pairs.hr[:n]))
    return outputs
