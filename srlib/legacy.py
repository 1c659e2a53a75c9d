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
from typing import Any, ClassVar

import numpy as np

from .checkpoint import Checkpoint, save_checkpoint
from .errors import SrlibError
from .files import read_regular
from .nn.network import NetConfig, SRNet

# The largest array the study's network has (conv2: 32 x 64 x 3 x 3) is 18,432 values, 147 kB in
# float64; a published weight file is that plus a few hundred bytes. Anything larger is refused unread.
MAX_PICKLE_BYTES = 1 << 20
MAX_ELEMENTS = 1 << 17
# What one file may make the unpickler allocate in all, whatever it repeats: a file can name one
# buffer once and ask for copies of it many times.
MAX_ALLOCATED_BYTES = 4 * 8 * MAX_ELEMENTS


def _is_plain_float(dtype: object) -> bool:
    """A native-order float16/32/64 with no fields, sub-array or flags: the only dtypes admitted."""
    return (isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.isnative and dtype.itemsize in (2, 4, 8)
            and dtype.names is None and dtype.subdtype is None and not dtype.hasobject)


def _size(shape: object) -> int:
    """The number of values of ``shape``, refused unless it is a small tuple of non-negative ints."""
    if not (isinstance(shape, tuple) and len(shape) <= 8
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape)):
        raise pickle.UnpicklingError(f"refused shape {shape!r:.50}")
    size = int(np.prod(shape, dtype=np.int64))
    if size > MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"refused array of shape {shape!r:.50}: at most {MAX_ELEMENTS} values")
    return size


def _ndarray(*args, **kwargs):
    """Stands for ``numpy.ndarray``: NumPy's pickles only pass the class to ``_reconstruct``; calling it
    would allocate whatever shape the file names."""
    raise pickle.UnpicklingError("refused a direct numpy.ndarray call: not how NumPy pickles an array")


class _ArrayOnlyUnpickler(pickle._Unpickler):
    """Python's own unpickler (its opcodes can be overridden, unlike the C one's), admitting only what a
    pickled float array needs. Every name a file refers to resolves to a checked stand-in, every
    ``BUILD`` (which sets an object's state) is checked, and all the memory the stand-ins allocate is
    counted against ``MAX_ALLOCATED_BYTES``."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # the pickle machine's stack, which pickle._Unpickler sets up in load()

    def __init__(self, file: io.BytesIO):
        super().__init__(file)
        self.allocated = 0
        # (module, name) a pickled float ndarray refers to, under NumPy 1.x and 2.x module names
        self.allowed = {
            **{(m, "_frombuffer"): self._frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
            **{(m, "_reconstruct"): self._reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
            ("numpy", "ndarray"): _ndarray,
            ("numpy", "dtype"): self._dtype,
            ("_codecs", "encode"): self._latin1,  # protocols 0-2 carry bytes as latin-1 text
        }

    def _charge(self, nbytes: int) -> None:
        self.allocated += nbytes
        if self.allocated > MAX_ALLOCATED_BYTES:
            raise pickle.UnpicklingError(f"refused: asks for more than {MAX_ALLOCATED_BYTES} bytes in all")

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only NumPy arrays are admitted")
        return self.allowed[module, name]

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent id: not part of a pickled array")

    @staticmethod
    def _dtype(*args):
        """numpy.dtype(name, align, copy), for plain float types only: an object dtype would let a
        55-byte file ask for gigabytes, a sub-array one multiply every allocation."""
        if not (1 <= len(args) <= 3 and isinstance(args[0], str) and all(isinstance(a, bool) for a in args[1:])):
            raise pickle.UnpicklingError(f"refused dtype arguments {args!r:.50}")
        dtype = np.dtype(*args)
        if not _is_plain_float(dtype):
            raise pickle.UnpicklingError(f"refused dtype {dtype}: only native float arrays are admitted")
        return dtype

    def _latin1(self, text, encoding="utf-8"):
        if not isinstance(text, str) or encoding != "latin1":
            raise pickle.UnpicklingError("refused _codecs.encode: only latin-1 text, as NumPy's pickles have")
        self._charge(len(text))
        return text.encode("latin1")

    def _reconstruct(self, cls, shape, dtype):
        """numpy's _reconstruct, only as NumPy's pickles call it: an empty placeholder whose shape, dtype
        and bytes the following BUILD sets (and ``load_build`` checks)."""
        if cls is not _ndarray or shape != (0,) or dtype not in (b"b", "b"):
            raise pickle.UnpicklingError(f"refused _reconstruct of shape {shape!r:.50}, dtype {dtype!r:.20}")
        return np.ndarray.__new__(np.ndarray, (0,), "b")

    def _frombuffer(self, buf, dtype, shape, order):
        """numpy's _frombuffer (protocol 5 pickles), for small float arrays whose bytes are all there."""
        if not (isinstance(buf, (bytes, bytearray)) and _is_plain_float(dtype) and order in ("C", "F")):
            raise pickle.UnpicklingError("refused _frombuffer: not a float array's bytes")
        nbytes = _size(shape) * dtype.itemsize
        if len(buf) != nbytes:
            raise pickle.UnpicklingError(f"refused _frombuffer: {len(buf)} bytes for {nbytes}")
        self._charge(nbytes)
        return np.frombuffer(buf, dtype).reshape(shape, order=order).copy()

    def load_build(self):
        """BUILD: a dtype may only be given the state it already has (NumPy's pickles restate it; another
        could claim object references or fields at any offset, and would change NumPy's shared dtype
        objects), and the placeholder array from ``_reconstruct`` a float array's checked state."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype):
            if not _is_plain_float(inst) or state != np.dtype(inst.str).__reduce__()[2]:
                raise pickle.UnpicklingError(f"refused a changed state for dtype {inst}")
            return  # nothing to set: it already has that state
        if type(inst) is np.ndarray and inst.size == 0 and isinstance(state, tuple) and len(state) == 5:
            version, shape, dtype, fortran, raw = state
            if version == 1 and _is_plain_float(dtype) and isinstance(fortran, bool) and isinstance(raw, bytes):
                nbytes = _size(shape) * dtype.itemsize
                if len(raw) == nbytes:
                    self._charge(nbytes)
                    inst.__setstate__(state)
                    return
        raise pickle.UnpicklingError(f"refused the state given to a {type(inst).__name__}")

    dispatch[pickle.BUILD[0]] = load_build


def load_array_pickle(path: str | os.PathLike) -> np.ndarray:
    """Read one pickled NumPy float array through the restricted unpickler; anything else is refused,
    and so is a file larger than any weight file of the study's network, or one with NaN or infinite values."""
    path = Path(path)
    data = read_regular(path, MAX_PICKLE_BYTES, "study weight file")
    try:
        # Walk the opcodes first: it checks every declared length against the bytes actually present,
        # so a short file cannot make the unpickler reserve a buffer of the size it claims.
        for _ in pickletools.genops(data):
            pass
        obj = _ArrayOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # any malformed or hostile pickle ends here, before a refused call can run
        why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise SrlibError(f"{path}: refused, not a plain pickled NumPy array ({why})") from None
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
