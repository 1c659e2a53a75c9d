"""Checkpoints: one ``.npz`` holding everything needed to resume or to use a trained model.

Contents: the weights of one network (or of three, B/G/R, for per-channel models), their configuration, the optimizer's name and state, the iteration,
the random generator's state, histories (training loss, validation PSNR) and free-form metadata.
Arrays only, read back with ``allow_pickle=False``: loading a checkpoint can never run code (the study
pickled its weights; fact sheet, mistake 5). Writes go to a temporary file in the same folder that is
then renamed over the target, so a run killed mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SrlibError
from .network import NetConfig, SRNet

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
    rng_state: dict | None = None
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
    """Write ``ckpt`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "config": ckpt.config.to_dict(),
        "iteration": int(ckpt.iteration), "optimizer": ckpt.optimizer, "rng_state": ckpt.rng_state,
        "meta": ckpt.meta,
    }
    arrays = {"meta_json": np.array(json.dumps(meta))}
    for i, w in enumerate(ckpt.weights):
        arrays.update({f"weight/{i}/{k}": v for k, v in w.items()})
    for i, o in enumerate(ckpt.optimizer_state):
        arrays.update({f"optim/{i}/{k}": v for k, v in o.items()})
    arrays.update({f"history/{k}": np.asarray(v) for k, v in ckpt.history.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SrlibError(f"cannot write checkpoint {path}: {e.strerror}; choose a writable folder") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; any problem raises ``SrlibError`` with one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SrlibError(f"checkpoint {path} does not exist; check the path or train a model first")

    def bad(why: str) -> SrlibError:
        return SrlibError(f"checkpoint {path} is not usable: {why}; re-create it with srlib (train or "
                          f"import-study-weights)")

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise bad(f"not a readable .npz file ({type(e).__name__}: {e})") from None
    try:
        meta = json.loads(str(arrays.pop("meta_json")))
    except (KeyError, ValueError):
        raise bad("no srlib metadata") from None
    if meta.get("format") != FORMAT:
        raise bad("no srlib metadata")
    if meta.get("version") != FORMAT_VERSION:
        raise bad(f"format version {meta.get('version')}, this srlib reads version {FORMAT_VERSION}")
    try:
        config = NetConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"invalid network configuration ({e})") from None

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    def per_network(prefix: str) -> list[dict[str, np.ndarray]]:
        flat = group(prefix)
        n = 1 + max((int(k.split("/", 1)[0]) for k in flat), default=-1)
        return [{k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{i}/")} for i in range(n)]

    try:
        weights, optimizer_state = per_network("weight/"), per_network("optim/")
    except ValueError:
        raise bad("malformed array names") from None
    if len(weights) not in (1, 3):
        raise bad(f"{len(weights)} networks stored, expected 1 or 3")
    expected = {p.name: p.value.shape for p in SRNet(config).params()}
    for w in weights:
        if set(w) != set(expected):
            raise bad(f"weights {sorted(w)} do not match the network's {sorted(expected)}")
        for name, shape in expected.items():
            if w[name].shape != shape:
                raise bad(f"weight {name} has shape {w[name].shape}, expected {shape}")
            if not np.issubdtype(w[name].dtype, np.floating) or not np.all(np.isfinite(w[name])):
                raise bad(f"weight {name} is not a finite float array")
    return Checkpoint(config=config, weights=weights, iteration=int(meta.get("iteration", 0)),
                      optimizer=meta.get("optimizer"), optimizer_state=optimizer_state,
                      rng_state=meta.get("rng_state"), history=group("history/"), meta=meta.get("meta", {}))
