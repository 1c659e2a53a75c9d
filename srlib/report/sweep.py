"""Training runs as independent tasks, run one after another or on Dask, resumable and deterministic.

A sweep of the report (optimizer x learning rate x seed, recipe x seed, ...) is a list of ``Task``s.
Each task trains one model from its seed and scores it image by image on the evaluation images, so
the report can pair any two runs on the same images. A task's result depends only on the task and the
data: never on which worker ran it or how many there were (the engine sums its blocks in a fixed
order), so one worker or a cluster of them give the same bits.

Every finished task leaves ``<folder>/<name>.json`` (its scores) and ``<name>.npz`` (its checkpoint);
a killed sweep, run again, skips the finished tasks and resumes the unfinished ones from their last
checkpoint.

Where the tasks run (``scheduler``):
- ``"local"`` (default): a ``dask.distributed.LocalCluster`` of one single-threaded worker per core
  (on 2 cores two workers each running one task finished a sweep faster than one task at a time on
  both cores: see ``benchmarks/sweep_workers.py``);
- ``"serial"``: in this process, one task at a time, on all cores;
- an address such as ``"tcp://10.0.0.5:8786"``: an existing Dask cluster, whose workers must have srlib
  installed and see the data folder and the run folder at the same paths.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.celeba import IMAGE_DIR, CelebA, ImageSet, Pairs, evaluation_subset, load_pairs
from ..data.default import resolve_data_dir
from ..data.degrade import to_uint8
from ..display import progress
from ..errors import BudgetSpent, SrlibError, TrainingDiverged, note
from ..evaluation.metrics import psnr_each
from ..files import atomic_write
from ..model import SRModel
from ..nn.parallel import threads
from ..nn.tuning import blas_kernel
from ..recipe import Recipe
from ..settings import budget_deadline
from ..train import Trainer
from . import record as record_file


@dataclass(frozen=True)
class Task:
    """One training run: ``name`` is unique within its folder (letters, digits, ``-_.=``)."""

    name: str
    recipe: Recipe
    iterations: int
    seed: int
    per_channel: bool = False
    shared_optimizer_bug: bool = False
    validate_every: int = 0
    snapshot_at: int = 0  # keep the checkpoint of this iteration (0: none), see ``Trainer.run``
    # Continue another run's snapshot (a file name in the same folder) with the optimizer restarted, as
    # the study's resume did (its mistake 4): the run trains from there to ``iterations``.
    restart_optimizer_from: str = ""
    # Where the results go, not what they are: the report's record store keeps this run's weights (the
    # runs whose images a figure shows); not part of ``to_dict`` or ``digest``.
    keep_weights: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        """The task as plain JSON values: what its record stores, and what its hash is taken of. Fields
        added after the first records were written appear only when they are not at their default, so
        adding one leaves every earlier task's digest as it was."""
        d = {**asdict(self), "recipe": self.recipe.to_dict()}
        d.pop("keep_weights")
        if not self.restart_optimizer_from:
            d.pop("restart_optimizer_from")
        return d

    def digest(self) -> str:
        """A short hash of the task's definition: two records of one name with different digests come
        from different tasks."""
        return _digest(self)


@lru_cache(maxsize=4096)  # the progress lines look up every run of a report each minute
def _digest(task: Task) -> str:
    return hashlib.sha256(json.dumps(task.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Data:
    """Where a task's images come from: the train split streams from ``root``; the first
    ``eval_images`` of ``eval_split`` (an evenly spread, fixed subset) score the model."""

    root: str
    eval_split: str = "validation"
    eval_images: int | None = None
    val_images: int | None = None  # for the validation curve of tasks with ``validate_every``


def final_loss(loss) -> float:
    """Mean training loss over the last 10% of iterations: a run's "final" MSE."""
    loss = np.asarray(loss, np.float64)
    return float(np.mean(loss[-max(1, len(loss) // 10):])) if len(loss) else float("nan")


@dataclass
class Result:
    """A finished task: per-image PSNR (RGB, dB) on the evaluation images, in their order (NaN when
    the run diverged), the training loss per iteration (0..255 MSE) and the validation curve."""

    task: Task
    psnr: np.ndarray
    loss: np.ndarray
    diverged_at: int | None
    val_iteration: list[int] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)
    checkpoint: Path | None = None

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr)) if self.diverged_at is None else float("nan")

    @property
    def final_loss(self) -> float:
        return final_loss(self.loss)

    def model(self) -> SRModel:
        if self.checkpoint is None:
            raise SrlibError(f"run {self.task.name} diverged at iteration {self.diverged_at}: it has no model")
        return SRModel.from_checkpoint(str(self.checkpoint))


def load_split(data: Data, split: str | None = None, limit: int | None = None) -> Pairs:
    """Degraded pairs of a split (default: the evaluation split and size of ``data``)."""
    split = split or data.eval_split
    limit = data.eval_images if limit is None and split == data.eval_split else limit
    celeba = CelebA.open(resolve_data_dir(data.root))
    return load_pairs(evaluation_subset(celeba.split(split), limit), desc=f"loading {split}")


def stream_split(data: Data, split: str = "train") -> ImageSet:
    """A whole split, read from disk as it is needed (bounded memory, ``data.ImageSet``)."""
    return ImageSet(CelebA.open(resolve_data_dir(data.root)).split(split))


@lru_cache(maxsize=2)
def _images(data: Data) -> tuple[ImageSet, Pairs, Pairs | None]:
    """The train split (streamed), the evaluation pairs and the validation-curve pairs (if any); kept
    per worker process between tasks."""
    val = load_split(data, "validation", data.val_images) if data.val_images else None
    return stream_split(data), load_split(data), val


@lru_cache(maxsize=4)
def eval_names(data: Data) -> tuple[str, ...]:
    """The file names of ``data``'s evaluation images, in order (listed, not read)."""
    celeba = CelebA.open(resolve_data_dir(data.root))
    return tuple(p.name for p in evaluation_subset(celeba.split(data.eval_split), data.eval_images))


def recorded(task: Task, folder: str | Path) -> dict | None:
    """The record ``folder`` holds of this very task (its definition's digest, its length, a seal that
    matches: ``record.read``), else None: a record of an older definition under the same name is not this
    task's, and a damaged or edited one is no record (the run trains again)."""
    path = Path(folder) / f"{task.name}.json"
    if not os.path.lexists(path):
        return None
    try:
        return record_file.read(path, task.digest(), task.iterations)
    except record_file.BadRecord:
        return None


def finished(task: Task, folder: str | Path, data: Data) -> bool:
    """True when ``folder`` holds the record of this very task scored on ``data``'s evaluation images."""
    r = recorded(task, folder)
    return r is not None and tuple(r.get("eval_images", eval_names(data))) == eval_names(data)


def run_task(task: Task, folder: str, data: Data, show_progress: bool = False, deadline: float | None = None) -> str:
    """Train ``task`` (resuming from its checkpoint if one is there), score it and write
    ``<folder>/<name>.json``; returns the name. Finished tasks are not run again; the record and
    checkpoint of another task of the same name are replaced. Past ``deadline`` (``time.time()``
    seconds: the report's time budget) the run checkpoints and raises ``BudgetSpent``."""
    folder_ = Path(folder)
    done, ck = folder_ / f"{task.name}.json", folder_ / f"{task.name}.npz"
    if finished(task, folder_, data):
        return task.name
    if deadline is not None and time.time() >= deadline:
        raise BudgetSpent(f"run {task.name} not started: the time budget is spent")
    done.unlink(missing_ok=True)  # another definition's record, or one scored on other images
    train, ev, val = _images(data)
    start = time.perf_counter()
    trainer = _trainer(task, folder_, train, val)
    diverged_at = None
    try:
        trainer.run(checkpoint=ck, validate_every=task.validate_every, progress=show_progress,
                    snapshots=(task.snapshot_at,) if task.snapshot_at else (), deadline=deadline)
        scores = _scores(trainer.model, ev, trainer.iteration)
    except TrainingDiverged:
        diverged_at = trainer.iteration
        scores = np.full(len(ev), np.nan)
        ck.unlink(missing_ok=True)
    h = trainer.history
    record = {"psnr": scores.tolist(), "loss": h.loss, "diverged_at": diverged_at,
              "wall_s": time.perf_counter() - start, "train_s": trainer.train_s, "timed_from": trainer.timed_from,
              "val_iteration": h.val_iteration, "val_psnr": h.val_psnr,
              "task": task.to_dict(), "task_digest": task.digest(), "eval_images": [p.name for p in ev.paths],
              "keep_weights": task.keep_weights, "conv_paths": trainer.conv_paths, "shards": trainer.shards,
              "srlib": __version__, "numpy": np.__version__, "blas": blas_kernel(), "threads": threads(),
              "finished": time.time()}
    payload = json.dumps(record_file.seal(record)).encode()
    atomic_write(done, lambda f: f.write(payload), what="run result")
    return task.name


def run_until_budget(task: Task, folder: str, data: Data, deadline: float | None) -> str | None:
    """``run_task``, or None when the time budget stopped the run (checkpointed). A value rather than
    ``BudgetSpent``: a Dask worker logs every exception a task raises as a failed computation, a page of
    tracebacks in the terminal for what is a clean stop."""
    try:
        return run_task(task, folder, data, deadline=deadline)
    except BudgetSpent:
        return None


def _trainer(task: Task, folder: Path, train: ImageSet, val: Pairs | None) -> Trainer:
    """The trainer of ``task``: resumed from its checkpoint in ``folder`` when that is this task's (same
    recipe, length, seed and set-up; a finished run's is only scored again), continued from the snapshot
    it branches from, or new."""
    ck = folder / f"{task.name}.npz"
    if ck.is_file():
        try:
            trainer = Trainer.resume(ck, train, val)
        except SrlibError:  # not a training checkpoint (a model alone, damaged): the run starts anew over it
            trainer = None
        if trainer is not None and (trainer.recipe, trainer.total, trainer.seed, trainer.per_channel,
                                    trainer.shared_optimizer_bug) == (task.recipe, task.iterations, task.seed,
                                                                      task.per_channel, task.shared_optimizer_bug):
            return trainer
    if task.restart_optimizer_from:
        source = folder / task.restart_optimizer_from
        if not source.is_file():
            raise SrlibError(f"run {task.name} continues {source}, which is not there yet: run the task that "
                             f"writes that snapshot first")
        trainer = Trainer.resume(source, train, val)
        trainer.restart_optimizers()
        return trainer
    return Trainer(task.recipe, train, total=task.iterations, seed=task.seed, per_channel=task.per_channel,
                   shared_optimizer_bug=task.shared_optimizer_bug, val=val)


def _scores(model: SRModel, pairs: Pairs, iteration: int) -> np.ndarray:
    """Per-image PSNR of ``model`` on ``pairs``. A network whose weights exploded without its loss doing
    so (a final ReLU can hide it) outputs inf or NaN: that run diverged, rather than scoring whatever
    rounding NaN to uint8 gives."""
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below, not as a warning
        out = model.predict(pairs.lr)
    if not np.all(np.isfinite(out)):
        raise TrainingDiverged(f"the network's outputs are not finite after iteration {iteration}")
    return psnr_each(to_uint8(out), pairs.hr)


#: how far a kept model, scored again, may stray from its record on any one image (dB): convolution
#: paths are tuned per machine, and a model run through other paths rounds a few pixels the other way
RESCORE_TOLERANCE_DB = 0.01


def check_kept_models(folder: str | Path, data_root: str | None) -> list[str]:
    """Score again every finished run in ``folder`` whose model is kept beside its record
    (``Task.keep_weights``), on the evaluation images its record names. A record that its model does not
    reproduce within RESCORE_TOLERANCE_DB on every image is removed from ``folder`` with a note (the run
    trains again), so every published number a figure shows traces to a model, not only to a file.
    Returns the names set aside. ``report --publish`` calls it before the notebooks run."""
    folder = Path(folder)
    kept = []
    for path in sorted(folder.glob("*.json")):
        try:
            r = record_file.read(path)
        except record_file.BadRecord:
            continue  # no record: the run trains again anyway
        if r.get("keep_weights") and r["diverged_at"] is None and path.with_suffix(".npz").is_file():
            kept.append((path, r))
    if not kept:
        return []
    celeba = CelebA.open(resolve_data_dir(data_root))
    pairs: dict[tuple[str, ...], Pairs] = {}
    set_aside = []
    for path, r in progress(kept, desc="re-scoring kept models"):
        names = tuple(r.get("eval_images", ()))
        if not names or any(n not in celeba.partition for n in names):
            continue  # scored on other data: not a finished run here (``finished``), so it trains again
        if names not in pairs:
            pairs[names] = load_pairs([celeba.root / IMAGE_DIR / n for n in names], desc="loading evaluation images")
        try:
            model = SRModel.from_checkpoint(str(path.with_suffix(".npz")))
            gap = np.abs(_scores(model, pairs[names], r["task"]["iterations"]) - np.array(r["psnr"]))
            problem = (f"its kept model scores {gap.max():.3f} dB away from it on {names[int(gap.argmax())]}"
                       if gap.max() > RESCORE_TOLERANCE_DB else None)
        except (SrlibError, TrainingDiverged) as e:
            problem = f"its kept model cannot be scored ({e})"
        if problem:
            note(f"{path}: {problem}; the record is set aside and the run trains again")
            path.unlink()
            set_aside.append(path.stem)
    return set_aside


def task_of(record: dict) -> Task:
    """The task a record ran (its ``task`` field), checked against the digest the record carries."""
    d = dict(record["task"])
    try:
        task = Task(**{**d, "recipe": Recipe.from_dict(d["recipe"])})
    except (TypeError, ValueError) as e:
        raise SrlibError(f"the record's task cannot be read ({e})") from None
    if task.digest() != record.get("task_digest"):
        raise SrlibError("the record's task does not match its digest: an edited record")
    return task


def reproduce(path: str | Path, data_root: str | None, workdir: str | Path, show_progress: bool = True) -> list[str]:
    """Train the run of the record at ``path`` again from its seed in ``workdir``, with the convolution
    paths and shards the record names (tuned on the machine that made it: they decide how each sum is
    rounded), score it on the evaluation images the record names, and compare. Returns the differences
    (empty: the same bits, loss at every iteration and every image's score). A run that continues
    another run's snapshot (``Task.restart_optimizer_from``) starts from the snapshot beside the record,
    which carries its own paths. The validation curve is not re-made: it never changes the training.
    The BLAS kernel cannot be changed once NumPy is loaded: a record that names another kernel than this
    process's is refused in one line that says how to start srlib on it."""
    path, workdir = Path(path), Path(workdir)
    try:
        r = record_file.read(path)
    except record_file.BadRecord as e:
        raise SrlibError(f"{e}") from None
    task = task_of(r)
    if "blas" not in r:
        note(f"{path} does not name the BLAS kernel its run used (records before srlib kept it); this process runs "
             f"{blas_kernel()!r}, and another kernel rounds otherwise (docs/report.md says which the published runs used)")
    elif r["blas"] != blas_kernel():
        raise SrlibError(f"{path}: its run used the BLAS kernel {r['blas']!r}, this process runs {blas_kernel()!r}, which "
                         f"rounds otherwise; with OpenBLAS, start srlib with OPENBLAS_CORETYPE set to the record's kernel")
    celeba = CelebA.open(resolve_data_dir(data_root))
    missing = [n for n in r["eval_images"] if n not in celeba.partition]
    if missing:
        raise SrlibError(f"{path}: its evaluation image {missing[0]} is not in {celeba.root}; pass the data it ran on "
                         f"(--data)")
    pairs = load_pairs([celeba.root / IMAGE_DIR / n for n in r["eval_images"]], desc="loading evaluation images")
    train = ImageSet(celeba.split("train"))
    workdir.mkdir(parents=True, exist_ok=True)
    if task.restart_optimizer_from:
        source = path.parent / task.restart_optimizer_from
        if not source.is_file():
            raise SrlibError(f"{path}: the run continues {source.name}, which is not beside the record")
        trainer = Trainer.resume(source, train)
        trainer.restart_optimizers()
    else:
        trainer = Trainer(task.recipe, train, total=task.iterations, seed=task.seed, per_channel=task.per_channel,
                          shared_optimizer_bug=task.shared_optimizer_bug, conv_paths=r["conv_paths"], shards=r["shards"])
    diverged_at = None
    try:
        trainer.run(checkpoint=workdir / f"{task.name}.npz", progress=show_progress)
        scores = _scores(trainer.model, pairs, trainer.iteration)
    except TrainingDiverged:
        diverged_at, scores = trainer.iteration, np.full(len(pairs), np.nan)
    differences = []
    loss, recorded_loss = np.array(trainer.history.loss), np.array(r["loss"], np.float64)
    if diverged_at != r["diverged_at"]:
        differences.append(f"diverged at {diverged_at}, the record at {r['diverged_at']}")
    if loss.shape != recorded_loss.shape or not np.array_equal(loss, recorded_loss, equal_nan=True):
        n = min(len(loss), len(recorded_loss))
        first = next((i for i in range(n) if not (loss[i] == recorded_loss[i] or np.isnan(loss[i]) and np.isnan(recorded_loss[i]))), n)
        differences.append(f"training loss differs from iteration {first + 1}" + (
            f" ({loss[first]!r} against {recorded_loss[first]!r})" if first < n else f" (lengths {len(loss)}, {len(recorded_loss)})"))
    recorded_scores = np.array(r["psnr"], np.float64)
    if not np.array_equal(scores, recorded_scores, equal_nan=True):
        gap = np.nanmax(np.abs(scores - recorded_scores)) if len(scores) == len(recorded_scores) else float("nan")
        differences.append(f"per-image scores differ (by up to {gap:.3g} dB)")
    return differences


def load_result(task: Task, folder: str | Path, record: dict | None = None) -> Result:
    """The result of ``task`` from its record in ``folder`` (``record``: that record, already read)."""
    folder = Path(folder)
    r = record if record is not None else record_file.read(folder / f"{task.name}.json", task.digest(), task.iterations)
    ck = folder / f"{task.name}.npz"
    return Result(task, np.array(r["psnr"], np.float64), np.array(r["loss"], np.float64), r["diverged_at"],
                  r["val_iteration"], r["val_psnr"], ck if ck.is_file() else None)


#: how long to try to reach an existing Dask scheduler before giving up, and how much longer its
#: handshake may take once reached
CONNECT_TIMEOUT_S, HANDSHAKE_GRACE_S = 30, 10


def default_workers() -> int:
    return os.cpu_count() or 1


#: Dask's protocols that name a host and port
DASK_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")


def _host_name_ok(host: str) -> bool:
    """A bracketed IPv6 address, or a host name of DNS's shape: labels of 1..63 letters, digits and inner
    hyphens, 253 characters in all (the resolver refuses anything else with a UnicodeError)."""
    if host.startswith("["):
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels)


def check_scheduler(scheduler: str, reach: bool = False) -> str:
    """``scheduler`` if it is "local", "serial" or a Dask address (PROTOCOL://HOST:PORT), else one clear
    error; with ``reach``, an address must also accept a connection now (a run that fails after an hour
    because the cluster was never there helps no one)."""
    if scheduler in ("local", "serial"):
        return scheduler
    usage = f"scheduler {scheduler!r:.100} is not local, serial or a Dask address such as tcp://HOST:8786"
    m = re.fullmatch(r"([a-z]+)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?", scheduler)
    if not m or m[1] not in DASK_PROTOCOLS or not 1 <= int(m[3]) <= 65535 or not _host_name_ok(m[2]):
        raise SrlibError(usage)
    if reach:
        host, port = m[2].strip("[]"), int(m[3])
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise SrlibError(f"cannot reach the Dask scheduler at {scheduler} ({e.strerror or e}); start it, "
                             f"or use --scheduler local") from None
    return scheduler


def clear(tasks: list[Task], folder: str | Path) -> None:
    """Remove the results, checkpoints and snapshots ``tasks`` left in ``folder``, and nothing else."""
    for t in tasks:
        for f in [Path(folder) / f"{t.name}.json", Path(folder) / f"{t.name}.npz",
                  *Path(folder).glob(f"{glob.escape(t.name)}.at*.npz")]:
            f.unlink(missing_ok=True)


def run_tasks(tasks: list[Task], folder: str | Path, data: Data, scheduler: str = "local",
              workers: int | None = None, desc: str = "runs", fresh: bool = False) -> dict[str, Result]:
    """Run every unfinished task of ``tasks`` (see the module docstring for ``scheduler``) and return
    all their results by name, in the order of ``tasks``. ``fresh``: train every task anew, removing
    what it left in ``folder`` before (``clear``; other files there are never touched)."""
    check_scheduler(scheduler)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError("run_tasks: task names must be unique")
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if fresh:
        clear(tasks, folder)
    todo = [t for t in tasks if not finished(t, folder, data)]
    # read here and sent with each task: a remote cluster's workers do not share this process's environment
    deadline = budget_deadline()
    stopped: list[str] = []
    # a run that branches from another's snapshot (``Task.restart_optimizer_from``) starts after the rest
    waves = [w for w in ([t for t in todo if not t.restart_optimizer_from], [t for t in todo if t.restart_optimizer_from]) if w]
    if todo:
        with progress(total=len(tasks), initial=len(tasks) - len(todo), desc=desc) as bar:
            for wave in waves:
                if stopped:  # the budget ran out: what branches from the stopped runs waits too
                    stopped += [t.name for t in wave]
                # one task alone runs faster here, on all cores, than on one single-threaded worker
                elif scheduler == "serial" or (scheduler == "local" and min(len(wave), workers or default_workers()) == 1):
                    for t in wave:
                        if run_until_budget(t, str(folder), data, deadline) is None:
                            stopped.append(t.name)
                        else:
                            bar.update(1)
                else:
                    stopped = _run_on_dask(wave, folder, data, scheduler, workers, bar, deadline)
    if stopped:
        raise BudgetSpent(f"time budget spent: {len(tasks) - len(stopped)} of {len(tasks)} runs of {desc!r} "
                          f"finished, the others checkpointed; run again with --resume to continue")
    return {t.name: load_result(t, folder) for t in tasks}


def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT_S):
    """A Dask client of the scheduler at ``scheduler``, within ``timeout`` seconds. Dask's own timeout
    covers reaching the address, not the handshake after it: a server that accepts the connection and
    never answers would hang the report, and one that answers junk fails inside Dask's decoder. Both are
    one line naming the scheduler. The handshake runs on a daemon thread, so one that never returns does
    not keep the process from exiting."""
    from dask.distributed import Client

    outcome: list = []

    def attempt() -> None:
        try:
            outcome.append(Client(scheduler, timeout=timeout))
        except BaseException as e:  # whatever Dask raises on a bad peer, reported below in one line
            outcome.append(e)

    worker = threading.Thread(target=attempt, name="srlib-dask-connect", daemon=True)
    worker.start()
    worker.join(timeout + HANDSHAKE_GRACE_S)  # Dask's own timeout (reaching the address) ends first
    fix = "start it, or use --scheduler local"
    if not outcome:
        raise SrlibError(f"the Dask scheduler at {scheduler} accepted the connection but did not answer within "
                         f"{timeout + HANDSHAKE_GRACE_S:.0f} s; check it is a Dask scheduler, {fix}")
    e = outcome[0]
    if isinstance(e, (OSError, TimeoutError)):
        raise SrlibError(f"cannot reach the Dask scheduler at {scheduler} ({e}); {fix}")
    if isinstance(e, BaseException):
        raise SrlibError(f"cannot use the Dask scheduler at {scheduler} ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]}); {fix}")
    return e


def _run_on_dask(todo: list[Task], folder: Path, data: Data, scheduler: str, workers: int | None, bar,
                 deadline: float | None) -> list[str]:
    """Run ``todo`` on Dask; returns the names of the runs the time budget stopped."""
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler == "local":
        n = workers or default_workers()
        # one core per worker: srlib's own threads and BLAS would otherwise oversubscribe the cores;
        # ":0": any free port for the scheduler's web page (a second cluster on 8787 would print a warning)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               env={"SRLIB_THREADS": "1", "OMP_NUM_THREADS": "1"})
        client = Client(cluster)
    else:
        cluster = None
        client = connect(scheduler)
    try:
        # the longest first, so the last worker does not start a long task when the others are done
        order = sorted(todo, key=lambda t: -t.iterations)
        futures = client.map(run_until_budget, order, folder=str(folder), data=data, deadline=deadline,
                             key=[f"srlib-{t.name}" for t in order], pure=False)
        stopped = []
        for future in as_completed(futures):  # the others reach the same deadline: they checkpoint too
            if future.result() is None:
                stopped.append(future.key.removeprefix("srlib-"))
            else:
                bar.update(1)
        return stopped
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- reading many results at once -------------------------------------------------------------------
def psnr_matrix(results: list[Result]) -> np.ndarray:
    """Per-image PSNR of several runs (e.g. one per seed) as (runs, images)."""
    return np.stack([r.psnr for r in results])
