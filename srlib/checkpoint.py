"""Checkpoints: one ``.npz`` holding everything needed to resume or to use a trained model.

Contents: the weights of one network (or of three, B/G/R, for per-channel models), their configuration, the optimizer's name and state, the iteration,
the random generator's state, histories (training loss, validation PSNR) and free-form metadata.
Arrays only, read back with ``allow_pickle=False``: loading a checkpoint can never run code (the study
pickled its weights in place). Writes are atomic (``files.py``): a run killed mid-write leaves the
previous checkpoint intact.
"""
from __future__ import annotations

import json
import lzma
import os
import re
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .data.photo import GRIDS
from .errors import SrlibError
from .files import atomic_write, open_regular
from .nn.layers import PARAM_NAME, check_paths
from .nn.network import NetConfig, SRNet
from .recipe import MAX_ITERATION, Recipe, check_shards

FORMAT = "srlib-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns. ``weights`` and ``optimizer_state`` hold one name -> array
    mapping per network (one network, or three for B, G, R)."""

    config: NetConfig
    weights: list[dict[str, np.ndarray]]
    iteration: int = 0
    optimizer: str | None = None
    optimizer_state: list[dict[str, np.ndarray]] = field(default_factory=list)
    rng_state: Mapping[str, Any] | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def networks(self, dtype: str | None = None) -> list[SRNet]:
        """New networks holding these weights (optionally in another dtype)."""
        config = self.config if dtype is None else NetConfig.from_dict({**self.config.to_dict(), "dtype": dtype})
        return [SRNet(config, weights=w) for w in self.weights]


def model_only(ckpt: Checkpoint) -> Checkpoint:
    """The weights, configuration and validation history alone — no optimizer or random state, no
    per-iteration losses: what a shipped model needs (a sixth of a training checkpoint)."""
    history = {k: v for k, v in ckpt.history.items() if k.startswith("val_")}
    return Checkpoint(config=ckpt.config, weights=ckpt.weights, iteration=ckpt.iteration,
                      history=history, meta={**ckpt.meta, "model_only": True})


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (``files.atomic_write``)."""
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "config": ckpt.config.to_dict(),
        "iteration": int(ckpt.iteration), "optimizer": ckpt.optimizer, "rng_state": ckpt.rng_state,
        "meta": ckpt.meta,
    }
    arrays: dict[str, Any] = {"meta_json": np.array(json.dumps(meta))}
    for i, w in enumerate(ckpt.weights):
        arrays.update({f"weight/{i}/{k}": v for k, v in w.items()})
    for i, o in enumerate(ckpt.optimizer_state):
        arrays.update({f"optim/{i}/{k}": v for k, v in o.items()})
    arrays.update({f"history/{k}": np.asarray(v) for k, v in ckpt.history.items()})
    return atomic_write(path, lambda f: np.savez(f, **arrays), "checkpoint")


# What a checkpoint may hold, checked from the zip directory and each array's header before any array is
# read: member names, then each array's dtype and shape against what the stored configuration needs.
MAX_MEMBERS = 256                  # a 3-network Adam checkpoint with history has about 80
MAX_META_CHARS = 1 << 20           # the metadata JSON (a few kB in practice)
MAX_HISTORY = 1_000_000            # values per history array (the study's longest run: 43,114 iterations)
# The central directory holds 46 bytes and the name of each member (at most about 40 characters here)
# plus its zip64 extra field.
MAX_DIRECTORY_BYTES = MAX_MEMBERS * (46 + 128 + 32)
_END = struct.Struct("<4s4H2LH")            # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")    # zip64 end of central directory locator
_END64 = struct.Struct("<4sQ2H2L4Q")        # zip64 end of central directory record


def _check_zip_container(f) -> None:
    """Check a zip file's end records before ``zipfile`` reads its central directory (which it reads
    whole, however many entries it claims): one disk, at most MAX_MEMBERS entries, a directory of
    plausible size. The end record is found the way ``zipfile`` finds it, so both read the same one."""
    size = f.seek(0, os.SEEK_END)
    tail_start = max(0, size - _END.size - 0xFFFF)
    f.seek(tail_start)
    tail = f.read()
    pos = len(tail) - _END.size if tail[-_END.size:-_END.size + 4] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < _END.size:
        raise zipfile.BadZipFile("no zip end record")
    _, disk, dir_disk, entries_here, entries, dir_size, _, _ = _END.unpack_from(tail, pos)
    if pos >= _END64_LOCATOR.size and tail[pos - _END64_LOCATOR.size:pos - _END64_LOCATOR.size + 4] == b"PK\x06\x07":
        _, disk64, offset, disks = _END64_LOCATOR.unpack_from(tail, pos - _END64_LOCATOR.size)
        if disk64 != 0 or disks > 1 or offset > size - _END64.size:
            raise ValueError("a zip spread over several disks, or a damaged zip64 record")
        f.seek(offset)
        record = f.read(_END64.size)
        if len(record) != _END64.size or record[:4] != b"PK\x06\x06":
            raise ValueError("a damaged zip64 end record")
        _, _, _, _, disk, dir_disk, entries_here, entries, dir_size, _ = _END64.unpack(record)
    if disk != 0 or dir_disk != 0 or entries_here != entries:
        raise ValueError("a zip spread over several disks (srlib writes one file)")
    if entries > MAX_MEMBERS or dir_size > MAX_DIRECTORY_BYTES:
        raise ValueError(f"{entries} members in a {dir_size}-byte directory, at most {MAX_MEMBERS} expected")
    f.seek(0)


def _check_member(info: zipfile.ZipInfo) -> None:
    """Only what NumPy writes: stored or deflated members, not encrypted."""
    if info.flag_bits & 0x1:
        raise ValueError(f"{info.filename}: encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{info.filename}: compression method {info.compress_type}, srlib reads stored or "
                         f"deflated members")
_WEIGHT = re.compile(rf"weight/([0-2])/({PARAM_NAME})")
_OPTIM = re.compile(rf"optim/([0-2])/(t|hp\.\w+|\w+\.({PARAM_NAME}))")
_HISTORY = re.compile(r"history/(loss|val_iteration|val_psnr)")


def _read_member(zf: zipfile.ZipFile, name: str, check) -> np.ndarray:
    """Read one .npy member, calling ``check(shape, dtype)`` on its header before reading its data.
    Reads exactly the bytes the header declares and refuses members with more; ``check`` raises
    ValueError to refuse."""
    info = zf.getinfo(name)
    _check_member(info)
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"{name}: unsupported .npy version {version}")
        try:
            shape, fortran, dtype = readers[version](f)
        except tokenize.TokenError:  # numpy re-reads a header it cannot parse as Python 2 source
            raise ValueError(f"{name}: its .npy header is not readable") from None
        if dtype.hasobject or not dtype.isnative or dtype.names is not None or dtype.subdtype is not None or (
                dtype.kind not in "fiub" or dtype.itemsize > 8) and not (dtype.kind == "U" and name == "meta_json.npy"):
            raise ValueError(f"{name}: dtype {dtype} is not a plain number array")
        check(shape, dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size != f.tell() + nbytes:
            raise ValueError(f"{name}: {info.file_size} bytes, its header declares {f.tell() + nbytes}")
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):  # the read that reaches the end checks the CRC
            raise ValueError(f"{name}: size does not match its header")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def _shape_is(expected: tuple[int, ...], what: str):
    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if tuple(shape) != tuple(expected):
            raise ValueError(f"{what} has shape {shape}, expected {expected}")
    return check


def _meta(zf: zipfile.ZipFile) -> dict:
    def check(shape, dtype):
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_META_CHARS:
            raise ValueError("metadata is not one string of at most 1 MiB")
    meta = json.loads(str(_read_member(zf, "meta_json.npy", check)))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("no srlib metadata")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {meta.get('version')}, this srlib reads version {FORMAT_VERSION}")
    kinds: dict[str, type | tuple[type, ...]] = {"iteration": int, "optimizer": (str, type(None)),
                                                 "rng_state": (dict, type(None)), "meta": dict}
    for key, kind in kinds.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise ValueError(f"metadata field {key!r} is {type(meta[key]).__name__}")
    if not 0 <= meta.get("iteration", 0) <= MAX_ITERATION:
        raise ValueError(f"iteration {meta.get('iteration')} is not 0..{MAX_ITERATION}")
    return meta


def _check_meta(meta: dict, config: NetConfig, iteration: int, optimizer: str | None,
                rng_state: Mapping[str, Any] | None) -> None:
    """Every field a model or a resumed run reads, typed and ranged here, at load: how outputs are mapped
    (``model``), and for a training checkpoint its recipe (which must name the stored network and
    optimizer), length, seed, learning rate, convolution paths and random state. Raises ValueError or
    TypeError."""
    model = meta.get("model", {})
    scale = model.get("output_scale", 1.0) if isinstance(model, dict) else None
    if (not isinstance(model, dict) or not isinstance(model.get("grid", "study"), str)
            or model.get("grid", "study") not in GRIDS or not isinstance(model.get("residual", False), bool)
            or not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 1 <= scale <= 255):
        raise ValueError(f"model metadata {model!r:.80} is not usable (output_scale is 1..255, grid "
                         f"{' or '.join(GRIDS)}, residual true or false)")
    recipe = meta.get("recipe")
    if recipe is None or isinstance(recipe, str) and len(recipe) <= 64:
        return  # a model without a training run behind it (imported weights)
    recipe = Recipe.from_dict(recipe)
    kinds: dict[str, type | tuple[type, ...]] = {"total": int, "seed": int, "per_channel": bool,
                                                 "shared_optimizer_bug": bool, "base_lr": (int, float)}
    for key, kind in kinds.items():
        if key not in meta:
            raise KeyError(key)
        if not isinstance(meta[key], kind) or (kind is not bool and isinstance(meta[key], bool)):
            raise TypeError(f"{key} is {type(meta[key]).__name__}")
    if not (1 <= meta["total"] <= MAX_ITERATION and iteration <= meta["total"] and 0 <= meta["seed"] < 2 ** 32
            and np.isfinite(meta["base_lr"]) and 0 < meta["base_lr"] <= 10):
        raise ValueError(f"total {meta['total']}, iteration {iteration}, seed {meta['seed']} or learning rate "
                         f"{meta['base_lr']} out of range")
    if recipe.net != config:
        raise ValueError("its recipe names another network than the one stored")
    check_shards(meta.get("shards", 1))
    train_s, timed_from = meta.get("train_s", 0.0), meta.get("timed_from", 0)
    if (not isinstance(train_s, (int, float)) or isinstance(train_s, bool) or not 0 <= train_s < 1e9
            or not isinstance(timed_from, int) or isinstance(timed_from, bool) or not 0 <= timed_from <= iteration):
        raise ValueError(f"training time {train_s!r:.20} s from iteration {timed_from!r:.20} is out of range")
    start = meta.get("init_from")  # a fine-tuning run's starting point (``train.start_from``)
    if "init_from" in meta and (
            not isinstance(start, dict) or set(start) != {"file", "sha256"} or not isinstance(start["file"], str)
            or len(start["file"]) > 255 or not isinstance(start["sha256"], str)
            or re.fullmatch("[0-9a-f]{64}", start["sha256"]) is None):
        raise ValueError(f"init_from {start!r:.80} is not a file name and its SHA-256")
    paths = meta.get("conv_paths", [])
    shapes = config.conv_shapes()
    if not isinstance(paths, list) or len(paths) not in (0, len(shapes)):
        raise ValueError(f"convolution paths {paths!r:.80} are not one per convolution")
    for layer_paths, (_, _, k) in zip(paths, shapes):
        check_paths(layer_paths, k)
    if meta.get("model_only") is True:
        return  # the weights alone (``model_only``): no optimizer or random state to check
    if recipe.optimizer != optimizer:
        raise ValueError(f"its recipe names optimizer {recipe.optimizer}, the state stored is {optimizer!r:.20}")
    if rng_state is None:
        raise ValueError("a training run without its random state")
    generator = np.random.PCG64()
    if rng_state.get("bit_generator") != type(generator).__name__:
        raise ValueError(f"random state of {rng_state.get('bit_generator')!r:.20}, not {type(generator).__name__}")
    try:
        generator.state = cast(Any, rng_state)  # checked by the generator itself
    except (OverflowError, KeyError) as e:
        raise ValueError(f"random state out of range ({type(e).__name__})") from None
    # A PCG64 stream's increment is fixed by its seed and never moves with draws: a checkpoint whose seed
    # was edited (a finished seed-0 run passed off as seed 1) carries another seed's stream.
    if generator.state["state"]["inc"] != np.random.PCG64(meta["seed"]).state["state"]["inc"]:
        raise ValueError(f"its random state is not seed {meta['seed']}'s: the seed was changed after training")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; any problem raises ``SrlibError`` with one line naming the file.

    Hostile or damaged files are refused before they cost memory or time: the member names, the
    metadata, and each array's dtype and shape (from its header) are checked against what the stored
    network configuration needs before the array is read, and only those bytes are read.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise SrlibError(f"checkpoint {path} does not exist; check the path or train a model first")

    def bad(why: str) -> SrlibError:
        why = " ".join(why.split())
        return SrlibError(f"checkpoint {path} is not usable: {why}; re-create it with srlib (train or "
                          f"import-study-weights)")

    try:
        with open_regular(path, "checkpoint") as file:
            _check_zip_container(file)
            zf = zipfile.ZipFile(file)
            names = zf.namelist()
            if len(names) > MAX_MEMBERS:
                raise ValueError(f"{len(names)} members, at most {MAX_MEMBERS} expected")
            if "meta_json.npy" not in names:
                raise ValueError("no srlib metadata")
            meta = _meta(zf)
            config = NetConfig.from_dict(meta.get("config"))
            shapes = config.param_shapes()
            iteration = int(meta.get("iteration", 0))
            weights: list[dict[str, np.ndarray]] = [{}, {}, {}]
            optim: list[dict[str, np.ndarray]] = [{}, {}, {}]
            history: dict[str, np.ndarray] = {}
            for name in names:
                key = name[:-4] if name.endswith(".npy") else name
                if key == "meta_json":
                    continue
                if m := _WEIGHT.fullmatch(key):
                    if m[2] not in shapes:
                        raise ValueError(f"unexpected weight {m[2]}")
                    weights[int(m[1])][m[2]] = _read_member(zf, name, _shape_is(shapes[m[2]], key))
                elif m := _OPTIM.fullmatch(key):
                    param = m[3]
                    if param is not None and param not in shapes:
                        raise ValueError(f"optimizer state for unknown parameter {param}")
                    expected = shapes[param] if param is not None else ()
                    optim[int(m[1])][m[2]] = _read_member(zf, name, _shape_is(expected, key))
                elif m := _HISTORY.fullmatch(key):
                    def check(shape, dtype, key=key):
                        if len(shape) != 1 or shape[0] > min(MAX_HISTORY, iteration + 1):
                            raise ValueError(f"{key} has shape {shape}; at most one value per iteration")
                    history[m[1]] = _read_member(zf, name, check)
                else:
                    raise ValueError(f"unexpected member {name!r}")
            _check_meta(meta.get("meta", {}), config, iteration, meta.get("optimizer"), meta.get("rng_state"))
    except SrlibError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError, TypeError, ValueError,
            SyntaxError, RecursionError, MemoryError, RuntimeError, NotImplementedError, zlib.error,
            lzma.LZMAError, struct.error) as e:
        raise bad(str(e) if isinstance(e, (ValueError, TypeError)) and str(e) else
                  f"field {e} is missing" if isinstance(e, KeyError) else
                  f"not a readable .npz file ({type(e).__name__}: {e})") from None
    stored = [i for i, w in enumerate(weights) if w]
    if stored not in ([0], [0, 1, 2]):
        raise bad(f"weights of networks {stored} stored, expected network 0, or 0, 1 and 2")
    weights = [w for w in weights if w]
    optim = [o for o in optim if o]
    if optim and len(optim) != len(weights):
        raise bad(f"optimizer state for {len(optim)} networks, weights for {len(weights)}")
    for w in weights:
        if set(w) != set(shapes):
            raise bad(f"weights {sorted(w)} do not match the network's {sorted(shapes)}")
        for name, value in w.items():
            if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
                raise bad(f"weight {name} is not a finite float array")
    for o in optim:
        for name, value in o.items():
            if not np.all(np.isfinite(value)):
                raise bad(f"optimizer state {name} holds NaN or infinite values")
    return Checkpoint(config=config, weights=weights, iteration=iteration, optimizer=meta.get("optimizer"),
                      optimizer_state=optim, rng_state=meta.get("rng_state"), history=history,
                      meta=meta.get("meta", {}))
