"""Import the 2022 study's published weights (``W1.pickle`` .. ``W4.pickle``) into srlib checkpoints.

The files are pickles, and unpickling runs whatever code a file names. They are read here with a
restricted unpickler that resolves only the few NumPy names a pickled array needs and refuses every
other global (os.system, builtins.eval, ...) before anything is called.
"""
from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, save_checkpoint
from .errors import SrlibError
from .network import NetConfig, SRNet

# The largest array the study's network has (conv2: 32 x 64 x 3 x 3) is 18,432 values, 147 kB in
# float64; a published weight file is that plus a few hundred bytes. Anything larger is refused unread.
MAX_PICKLE_BYTES = 1 << 20
MAX_ELEMENTS = 1 << 17


def _float_dtype(*args):
    """numpy.dtype, for float types only: an object dtype would let a 55-byte file ask for gigabytes."""
    dtype = np.dtype(*args)
    if dtype.kind != "f":
        raise pickle.UnpicklingError(f"refused dtype {dtype}: only float arrays are admitted")
    return dtype


def _reconstruct(cls, shape, dtype):
    """numpy's _reconstruct, for small plain arrays only (it allocates ``shape`` before any data arrives)."""
    if cls is not np.ndarray or not isinstance(shape, tuple) or int(np.prod(shape, dtype=np.int64)) > MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"refused array of shape {shape!r:.50}: at most {MAX_ELEMENTS} values")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _frombuffer(buf, dtype, shape, order):
    """numpy's _frombuffer (protocol 5 pickles), for float arrays only."""
    return np.frombuffer(buf, _float_dtype(dtype)).reshape(shape, order=order).copy()


# (module, name) a pickled float ndarray refers to, under NumPy 1.x and 2.x module names, and what each
# resolves to here: checked stand-ins for the functions that allocate.
_ALLOWED = {
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _float_dtype,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only NumPy arrays are admitted")
        return _ALLOWED[module, name]


def load_array_pickle(path: str | os.PathLike) -> np.ndarray:
    """Read one pickled NumPy float array through the restricted unpickler; anything else is refused,
    and so is a file larger than any weight file of the study's network, or one with NaN or infinite values."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise SrlibError(f"{path}: refused, {size} bytes is more than any of the study's weight files")
        data = path.read_bytes()
        # Walk the opcodes first: it checks every declared length against the bytes actually present,
        # so a short file cannot make the unpickler reserve a buffer of the size it claims.
        for _ in pickletools.genops(data):
            pass
        obj = _ArrayOnlyUnpickler(io.BytesIO(data)).load()
    except SrlibError:
        raise
    except OSError as e:
        raise SrlibError(f"{path}: cannot read ({e.strerror})") from None
    except Exception as e:  # any malformed or hostile pickle ends here, before a refused call can run
        raise SrlibError(f"{path}: refused, not a plain pickled NumPy array ({type(e).__name__}: {e})") from None
    if not isinstance(obj, np.ndarray) or not np.issubdtype(obj.dtype, np.floating):
        raise SrlibError(f"{path}: refused, holds {type(obj).__name__} rather than a float NumPy array")
    if not np.all(np.isfinite(obj)):
        raise SrlibError(f"{path}: refused, holds NaN or infinite weights; restore the original file")
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
