"""Import the 2022 study's published weights (``W1.pickle`` .. ``W4.pickle``) into srlib checkpoints.

The files are pickles, and unpickling runs whatever code a file names. They are read here with a
restricted unpickler that resolves only the few NumPy names a pickled array needs and refuses every
other global (os.system, builtins.eval, ...) before anything is called.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, save_checkpoint
from .errors import SrlibError
from .network import NetConfig, SRNet

# (module, name) pairs a pickled float ndarray refers to, under NumPy 1.x and 2.x module names.
_ALLOWED = {
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only NumPy arrays are admitted")
        module = module.replace("numpy.core.", "numpy._core.")  # NumPy 2 renamed numpy.core
        return super().find_class(module, name)


def load_array_pickle(path: str | os.PathLike) -> np.ndarray:
    """Read one pickled NumPy float array through the restricted unpickler; anything else is refused."""
    path = Path(path)
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except OSError as e:
        raise SrlibError(f"{path}: cannot read ({e.strerror})") from None
    except Exception as e:  # any malformed or hostile pickle ends here, before a refused call can run
        raise SrlibError(f"{path}: refused, not a plain pickled NumPy array ({e})") from None
    if not isinstance(obj, np.ndarray) or not np.issubdtype(obj.dtype, np.floating):
        raise SrlibError(f"{path}: refused, holds {type(obj).__name__} rather than a float NumPy array")
    return obj


def _read_study_network(folder: Path, expected: list) -> dict[str, np.ndarray]:
    weights = {}
    for i, p in enumerate(expected, start=1):
        f = folder / f"W{i}.pickle"
        if not f.is_file():
            raise SrlibError(f"{f} is missing; point at a folder holding the study's W1..W4.pickle "
                             f"(or B/, G/, R/ folders of them)")
        w = load_array_pickle(f)
        if w.shape != p.value.shape:
            raise SrlibError(f"{f}: shape {w.shape}, the study's network needs {p.value.shape}")
        weights[p.name] = w
    return weights


def import_study_weights(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> Checkpoint:
    """``folder/W1.pickle`` .. ``W4.pickle`` (one shared network) or ``folder/{B,G,R}/W*.pickle`` (the
    3-colour networks) -> an srlib checkpoint (float64 weights as published; no biases, final ReLU,
    output already on 0..255), saved to ``out`` when given."""
    folder = Path(folder)
    config = NetConfig(dtype="float64")
    expected = SRNet(config).params()
    subdirs = [folder / c for c in "BGR"] if (folder / "B").is_dir() else [folder]
    weights = [_read_study_network(d, expected) for d in subdirs]
    ckpt = Checkpoint(config=config, weights=weights,
                      meta={"model": {"residual": False, "output_scale": 1.0}, "recipe": "study",
                            "source": f"imported from the study's published weights in {folder}"})
    if out is not None:
        save_checkpoint(out, ckpt)
    return ckpt
