"""Training: recipes, one training step, and a resumable, seeded training loop.

One *iteration* is the study's unit of work: ``images`` images (10) drawn with replacement from the
train split, all three colour channels, i.e. 30 single-channel 44x44 -> 176x176 examples.
- shared model, study recipe: three optimizer steps per iteration, one per channel (batch 10 each);
- shared model, ``stack_channels``: one step on all 30 examples at once;
- per-channel model (three networks): each network takes one step on its own channel;
- a network that sees colour (``image_channels`` 3): one step on the 10 colour images.
The loss is the one the step's forward pass computed (no extra forward pass for logging, unlike the
study), recorded as MSE on the 0..255 scale whatever the recipe's target scale.
"""
from __future__ import annotations

import hashlib
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import photo
from .data.celeba import ImageSet, Pairs
from .data.degrade import blur_decimate
from .data.folders import PhotoPatches
from .display import progress as progress_bar
from .errors import BudgetSpent, Interrupted, SrlibError, TrainingDiverged
from .evaluation.metrics import mean_psnr
from .model import SRModel
from .nn.layers import MSELoss
from .nn.network import SRNet, network_paths
from .nn.optimizers import Optimizer, make_optimizer
from .nn.parallel import run_shards, single_threaded_blas
from .nn.shared_adam import SharedAdam
from .recipe import Recipe, check_shards


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Split n examples into ``shards`` contiguous parts, as even as can be (the first ones larger)."""
    shards = max(1, min(shards, n))
    edges = [i * n // shards for i in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:]))


def train_step(net: SRNet, optimizer: Optimizer, x: np.ndarray, t: np.ndarray,
               jpeg_strength: np.ndarray | None = None, replicas: Sequence[SRNet] = ()) -> float:
    """One optimizer step on x (N, C, h, w) and targets t (N, C, 4h, 4w) (``jpeg_strength``: see
    ``SRNet.forward``); returns the batch loss computed by this step's forward pass (before the update).

    ``replicas`` (``SRNet.replica`` of ``net``): the batch is split into 1 + len(replicas) shards, ``net``
    taking the first; each shard's forward and backward run on a worker thread of their own
    (``parallel.run_shards``) and the gradients are summed in shard order. The shards, not the threads,
    decide the bits: the same shards give the same result on any number of threads."""
    nets = [net, *replicas]
    t = t.astype(net.config.dtype, copy=False)
    strength = np.zeros(len(x)) if jpeg_strength is None else np.asarray(jpeg_strength)
    bounds = shard_bounds(len(x), len(nets))

    def shard(i: int) -> float:
        s, e = bounds[i]
        loss = MSELoss(batch_size=t.size)
        value = loss.forward(nets[i].forward(x[s:e], strength[s:e]), t[s:e])
        nets[i].backward(loss.backward())
        return value

    with single_threaded_blas():
        values = run_shards(shard, len(bounds))
    grads = [p.grad for p in net.params()]
    for other in nets[1:len(bounds)]:
        for g, g_other in zip(grads, (p.grad for p in other.params())):
            g += g_other
    optimizer.step()
    return float(np.sum(values))


@contextmanager
def stop_requests() -> Iterator[Callable[[], int | None]]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM (``kill``, a batch scheduler) do not kill training in
    the middle of an update: they are recorded, and the returned function gives the signal's number
    (else None) for ``Trainer.run`` to check between iterations. A second signal stops at once."""
    received: list[int] = []

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class History:
    """Per-iteration training loss (0..255 MSE) and periodic validation PSNR (RGB, dB)."""

    loss: list[float] = field(default_factory=list)
    val_iteration: list[int] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"loss": np.array(self.loss, np.float64), "val_iteration": np.array(self.val_iteration, np.int64),
                "val_psnr": np.array(self.val_psnr, np.float64)}

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> "History":
        return cls(*(list(np.asarray(d.get(k, [])).tolist()) for k in ("loss", "val_iteration", "val_psnr")))


def draw_batch(recipe: Recipe, train: Pairs | ImageSet | PhotoPatches, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One iteration's images, drawn with replacement: uint8 LR (n, 44, 44, 3) and HR (n, 176, 176, 3),
    flipped and degraded as ``recipe`` says, and each LR's JPEG strength (n,) (``photo.jpeg_strength``:
    0 where it was not compressed). From photo folders (``PhotoPatches``) each HR is a random patch."""
    idx = rng.integers(0, len(train), size=recipe.images)
    draw = photo.TRAINING[recipe.degradation].draw
    if isinstance(train, PhotoPatches):  # a photo recipe (Trainer checks): the LR is drawn below
        lr, hr = None, train.crops(idx, rng)
    else:
        lr, hr = train.take(idx)
    if recipe.flips:
        flip = rng.random(len(idx)) < 0.5
        if flip.any():
            hr = hr.copy()
            hr[flip] = hr[flip][:, :, ::-1]
            if draw is None and lr is not None:  # the study's LR, made again from the flipped HR
                lr = lr.copy()
                lr[flip] = np.stack([blur_decimate(h) for h in hr[flip]])
    strength = np.zeros(len(idx))
    if draw is not None:
        degraded = [draw(h, rng) for h in hr]
        lr = np.stack([lr_ for lr_, _ in degraded])
        strength = np.array([photo.jpeg_strength(q) for _, q in degraded])
    if lr is None:
        raise SrlibError(f"recipe {recipe.name!r} has no degradation to make photo patches' LR with")
    return lr, hr, strength


def make_optimizers(recipe: Recipe, nets: list[SRNet], shared_optimizer_bug: bool, hp: dict) -> list:
    """One optimizer per network, or the study's one Adam shared by all (``shared_adam``)."""
    if shared_optimizer_bug:
        shared = SharedAdam(nets, **hp)
        return [shared.bound(i) for i in range(len(nets))]
    return [make_optimizer(recipe.optimizer, n.params(), **hp) for n in nets]


def start_from(model: SRModel, path: str | Path) -> dict[str, str]:
    """Load the weights of the model file ``path`` (a shipped model, an exported or a training checkpoint)
    into ``model``, whose networks and output mapping it must match: a fine-tuning run's starting point.
    Returns what the run records of it: the file's name and the SHA-256 of its bytes."""
    path = Path(path)
    start = SRModel.from_checkpoint(str(path))
    theirs, mine = start.model_meta(), model.model_meta()
    mismatch = [f"{key} {theirs[key]!r} (this recipe: {mine[key]!r})" for key in mine if theirs[key] != mine[key]]
    if start.nets[0].config != model.nets[0].config:
        mismatch.insert(0, "another network")
    elif len(start.nets) != len(model.nets):
        mismatch.insert(0, f"{len(start.nets)} networks (this run: {len(model.nets)})")
    if mismatch:
        raise SrlibError(f"--init-from {path}: it holds {', '.join(mismatch)}; start from a model trained with "
                         f"a recipe of the same network and outputs")
    for net, other in zip(model.nets, start.nets):
        net.load_weights(other.weights())
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def snapshot_path(checkpoint: str | Path, iteration: int) -> Path:
    """Where ``Trainer.run`` keeps the snapshot of ``checkpoint`` at ``iteration``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.at{iteration}{checkpoint.suffix}")


class Trainer:
    """Seeded, resumable training of a shared (one network) or per-channel (three networks) model.

    ``total`` is the planned number of iterations (the learning-rate schedule depends on it);
    ``shared_optimizer_bug`` reproduces the study's 3-colour experiment exactly as it was run.
    ``shards``: each optimizer step's batch is split into this many shards, run side by side on the
    worker threads (``train_step``): on two cores 2 shards take 0.86x the time of one (the study's
    batch: 73.9 against 85.5 ms), on one thread 1.04x, so the report's single-threaded workers keep
    the default 1 and ``srlib train`` takes one shard per core. ``conv_paths``: how the convolutions compute (``SRNet``'s
    ``paths``); by default the setting's, tuned for this machine and for one shard's share of its
    threads. The checkpoint records both and ``resume`` keeps them: they are part of the run, since
    they decide how sums are rounded.
    """

    def __init__(self, recipe: Recipe, train: Pairs | ImageSet | PhotoPatches, total: int, seed: int = 0, per_channel: bool = False,
                 shared_optimizer_bug: bool = False, val: Pairs | None = None,
                 conv_paths: str | list[dict[str, str]] | None = None, shards: int | None = None,
                 init_from: str | Path | None = None, **optimizer_overrides: float):
        if total < 1:
            raise SrlibError(f"iterations must be at least 1, got {total}")
        if len(train) == 0:
            raise SrlibError("the train split is empty")
        degradation = photo.TRAINING[recipe.degradation]
        if isinstance(train, PhotoPatches) and degradation.draw is None:
            raise SrlibError(f"recipe {recipe.name!r} trains on the study's degradation, which is made from CelebA "
                             f"faces; train on photo folders with a photo recipe")
        if val is not None and degradation.validation is not None:  # scored on the model's own grid
            val = Pairs(val.paths, np.stack([degradation.validation(h) for h in val.hr]), val.hr)
        self.recipe, self.train, self.val, self.total, self.seed = recipe, train, val, total, seed
        self.per_channel, self.shared_optimizer_bug = per_channel, shared_optimizer_bug
        if per_channel and recipe.net.image_channels != 1:
            raise SrlibError("per-channel networks take one colour channel each: use image_channels 1")
        if shared_optimizer_bug and not (per_channel and recipe.optimizer == "adam"):
            raise SrlibError("shared_optimizer_bug reproduces the study's shared Adam: it needs per_channel "
                             "networks and the adam optimizer")
        try:
            self.shards = check_shards(1 if shards is None else shards)
        except ValueError as e:
            raise SrlibError(str(e)) from None
        if conv_paths is None:
            conv_paths = network_paths(recipe.net, n_threads=1 if self.shards > 1 else None)
        first = SRNet(recipe.net, seed=seed * 10, paths=conv_paths)
        self.conv_paths = first.conv_paths()
        nets = [first] + [SRNet(recipe.net, seed=seed * 10 + i, paths=self.conv_paths) for i in range(1, 3 if per_channel else 1)]
        self.model = SRModel(nets, residual=recipe.residual, output_scale=recipe.output_scale,
                             grid=degradation.grid)
        # where the weights started, when not from the seed: the file's name and content hash, recorded
        self.init_from: dict[str, str] | None = None
        if init_from is not None:
            self.init_from = start_from(self.model, init_from)
        self.replicas = [[net.replica() for _ in range(self.shards - 1)] for net in nets]
        hp = {**dict(recipe.optimizer_args), "lr": recipe.lr, **optimizer_overrides}
        self.base_lr = hp["lr"]
        self.optimizers = make_optimizers(recipe, nets, shared_optimizer_bug, hp)
        self.rng = np.random.default_rng(seed)
        self.iteration = 0
        self.history = History()
        # Training seconds over every sitting of the run, counted from iteration ``timed_from`` (0, or
        # where a run saved before srlib kept its time was resumed); checkpointed, so a run resumed
        # across sittings reports its whole time.
        self.train_s, self.timed_from = 0.0, 0
        self._sitting_start: float | None = None

    # -- one iteration -------------------------------------------------------------------------
    def step(self) -> float:
        """Run one iteration; returns its mean training loss (MSE, 0..255 scale)."""
        lr, hr, strength = draw_batch(self.recipe, self.train, self.rng)
        scale = self.recipe.learning_rate(self.iteration, self.total) / self.recipe.lr
        for opt in self.optimizers:
            opt.lr = self.base_lr * scale
        layout, stack = self.model.layout, self.recipe.stack_channels
        losses = []
        for (k, l_), (_, h_), s_ in zip(layout.split(lr, stack), layout.split(hr, stack),
                                        layout.per_image(strength, stack)):
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported just below
                value = train_step(self.model.nets[k], self.optimizers[k], self.model.inputs(l_),
                                   self.model.targets(l_, h_), s_, self.replicas[k])
                losses.append(value * self.recipe.output_scale ** 2)
        loss = float(np.mean(losses))
        self.iteration += 1
        self.history.loss.append(loss)
        if not math.isfinite(loss) or loss > 1e30:
            raise TrainingDiverged(f"training loss became {loss:.3g} at iteration {self.iteration} with "
                                   f"{self.recipe.optimizer} lr {self.base_lr:g}; lower the learning rate")
        return loss

    def validate(self) -> float:
        """Mean per-image PSNR (RGB, uint8 output) on the validation pairs (the caller picks them:
        ``data.evaluation_subset`` gives a fixed, evenly spread subset)."""
        if self.val is None:
            raise SrlibError("no validation pairs given to the Trainer")
        value = mean_psnr(self.model, self.val)
        self.history.val_iteration.append(self.iteration)
        self.history.val_psnr.append(value)
        return value

    # -- loop, checkpoints, resume ---------------------------------------------------------------
    def run(self, until: int | None = None, checkpoint: str | Path | None = None, checkpoint_every: int = 500,
            validate_every: int = 0, progress: bool = True, stop: Callable[[], int | None] | None = None,
            snapshots: tuple[int, ...] = (), deadline: float | None = None) -> History:
        """Train up to iteration ``until`` (default: ``total``), checkpointing every ``checkpoint_every``
        iterations and at the end, validating every ``validate_every`` (0: never). ``stop`` (from
        ``stop_requests``) is asked after each iteration; when it names a signal, the run checkpoints
        and raises ``Interrupted``. At each iteration in ``snapshots`` a copy of the checkpoint is kept
        beside it as ``NAME.atN.npz`` (``snapshot_path``), e.g. to branch another run from there. Past
        ``deadline`` (``time.time()`` seconds) the run checkpoints and raises ``BudgetSpent``."""
        until = self.total if until is None else min(until, self.total)
        self._sitting_start = time.perf_counter()
        bar = progress_bar(total=until, initial=self.iteration, desc=f"training ({self.recipe.name})",
                         disable=not progress, smoothing=0.1)
        try:
            while self.iteration < until:
                loss = self.step()
                bar.update(1)
                if validate_every and self.val is not None and self.iteration % validate_every == 0:
                    self.validate()
                    bar.set_postfix(loss=f"{loss:.1f}", val_psnr=f"{self.history.val_psnr[-1]:.2f}")
                elif self.iteration % 20 == 0:
                    bar.set_postfix(loss=f"{loss:.1f}")
                signum = stop() if stop is not None else None
                if checkpoint and (self.iteration % checkpoint_every == 0 or self.iteration == until or signum):
                    self.save(checkpoint)
                if checkpoint and self.iteration in snapshots:
                    self.save(snapshot_path(checkpoint, self.iteration))
                if deadline is not None and self.iteration < until and time.time() >= deadline:
                    if checkpoint:
                        self.save(checkpoint)
                    raise BudgetSpent(f"stopped at iteration {self.iteration} of {until}: the time budget is spent")
                if signum:
                    saved = f"; saved to {checkpoint}, continue with --resume" if checkpoint else ""
                    raise Interrupted(f"stopped by {signal.Signals(signum).name} at iteration "
                                      f"{self.iteration}{saved}", signum)
        finally:
            bar.close()
            self.train_s, self._sitting_start = self.elapsed(), None
        return self.history

    def elapsed(self) -> float:
        """Training seconds so far, over every sitting since iteration ``timed_from``."""
        sitting = time.perf_counter() - self._sitting_start if self._sitting_start is not None else 0.0
        return self.train_s + sitting

    def restart_optimizers(self) -> None:
        """Forget the optimizers' state (Adam's moments and step count), keeping the weights: what the
        study's resume did, reproduced to measure what it cost."""
        hp = {**dict(self.recipe.optimizer_args), "lr": self.base_lr}
        self.optimizers = make_optimizers(self.recipe, self.model.nets, self.shared_optimizer_bug, hp)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            config=self.recipe.net, weights=[n.weights() for n in self.model.nets], iteration=self.iteration,
            optimizer=self.recipe.optimizer, optimizer_state=[o.state_dict() for o in self.optimizers],
            rng_state=self.rng.bit_generator.state, history=self.history.arrays(),
            meta={"model": self.model.model_meta(), "recipe": self.recipe.to_dict(), "total": self.total,
                  "seed": self.seed, "per_channel": self.per_channel, "base_lr": self.base_lr,
                  "shared_optimizer_bug": self.shared_optimizer_bug, "conv_paths": self.conv_paths,
                  "shards": self.shards, "train_s": self.elapsed(), "timed_from": self.timed_from,
                  **({"init_from": self.init_from} if self.init_from else {})})

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.checkpoint())

    @classmethod
    def resume(cls, path: str | Path, train: Pairs | ImageSet | PhotoPatches, val: Pairs | None = None) -> "Trainer":
        """Rebuild a Trainer exactly as it was when ``path`` was saved: weights, optimizer state (the
        study restarted Adam on resume), iteration, random state, history, shards and convolution paths
        (a checkpoint saved before srlib recorded them was trained with one shard and the fixed rule)."""
        ckpt = load_checkpoint(path)
        m = ckpt.meta
        if m.get("model_only") or not isinstance(m.get("recipe"), dict):
            raise SrlibError(f"checkpoint {path} holds no training state (an imported model?); train anew")
        if not ckpt.optimizer_state or ckpt.rng_state is None:
            raise SrlibError(f"checkpoint {path} holds no optimizer state: resuming would restart the "
                             f"optimizer mid-run; train anew")
        # load_checkpoint checked every field: the recipe, its match with the stored network and
        # optimizer, the run's length, seed and learning rate, and the random state
        recipe = Recipe.from_dict(m["recipe"])
        self = cls(recipe, train, total=m["total"], seed=m["seed"], per_channel=m["per_channel"],
                   shared_optimizer_bug=m["shared_optimizer_bug"], val=val, lr=float(m["base_lr"]),
                   conv_paths=m.get("conv_paths", "fixed"), shards=m.get("shards", 1))
        try:
            if len(ckpt.weights) != len(self.model.nets):
                raise ValueError(f"{len(ckpt.weights)} networks stored for a run of {len(self.model.nets)}")
            for net, w in zip(self.model.nets, ckpt.weights):
                net.load_weights(w)
            for opt, state in zip(self.optimizers, ckpt.optimizer_state):
                opt.load_state_dict(state)
        except ValueError as e:
            raise SrlibError(f"checkpoint {path}: its weights or optimizer state do not fit its run ({e}); "
                             f"train anew") from None
        self.rng.bit_generator.state = ckpt.rng_state
        self.iteration = ckpt.iteration
        self.history = History.from_arrays(ckpt.history)
        # a checkpoint saved before srlib kept training time: its earlier sittings are not known
        self.train_s, self.timed_from = float(m.get("train_s", 0.0)), int(m.get("timed_from", ckpt.iteration))
        self.init_from = m.get("init_from")
        return self
