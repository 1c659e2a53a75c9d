"""Run the report: execute the notebooks with papermill and write figures, tables and the executed
notebook of each experiment into ``runs/<preset>/report/<experiment>/`` or, only when asked to publish,
into ``conclusion/<experiment>/``, the published report that the repository carries.

Each notebook writes into a staging folder; only when it finishes is the staging folder swapped in for
the old results, so a failed run never leaves half-written figures behind. A failure names the notebook
and the cell, and keeps the failed executed copy under ``runs/<preset>/failed/`` for inspection.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from ..display import STATIC_OUTPUT
from ..errors import SrlibError
from ..paths import project_root
from .registry import NOTEBOOKS, PRESETS


def selected(preset: str, only: list[str] | None) -> list[str]:
    """The notebooks a report runs (``only``, else all), after checking the preset and every name."""
    if preset not in PRESETS:
        raise SrlibError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    for name in only or []:
        if name not in NOTEBOOKS:
            raise SrlibError(f"unknown notebook {name!r}; choose from {', '.join(NOTEBOOKS)}")
    return list(only or NOTEBOOKS)


def _remove_stale(folder: Path, exp: str) -> None:
    """Staging folders left by a runner that was killed (its pid no longer exists)."""
    for stale in folder.glob(f".{exp}.*-*"):
        try:
            os.kill(int(stale.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def execute_notebook(source: Path, target: Path, parameters: dict | None = None) -> None:
    """papermill ``source`` -> ``target`` in the notebook's folder, with a kernel of our own: on local
    sockets (IPC; no "running over TCP without encryption" warning on every run), stopped at once when
    the run ends or is interrupted (a Ctrl-C otherwise left the kernel finishing its cell and then
    printing a traceback when it found its parent gone), and with ``SRLIB_STATIC_OUTPUT=1``: a saved
    notebook is read without a live kernel, so progress is text and the image browser a figure."""
    import papermill as pm
    from traitlets.config import Config

    saved = os.environ.get(STATIC_OUTPUT)
    os.environ[STATIC_OUTPUT] = "1"  # the kernel inherits this process's environment
    try:
        with tempfile.TemporaryDirectory(prefix="srlib-kernel-") as sockets:
            kernel = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
            pm.execute_notebook(source, target, parameters=parameters or {}, cwd=source.parent,
                                progress_bar=False, kernel_name="python3", shutdown_kernel="immediate",
                                config=kernel)
    finally:
        if saved is None:
            os.environ.pop(STATIC_OUTPUT)
        else:
            os.environ[STATIC_OUTPUT] = saved


def _relative(path: str | Path, notebooks: Path) -> str:
    """``path`` as the notebook's kernel (working in ``notebooks/``) reaches it: published notebooks
    hold no absolute paths of the machine that ran them."""
    return os.path.relpath(Path(path).resolve(), notebooks)


def kernelspec() -> dict:
    """The kernelspec metadata JupyterLab writes when it opens a notebook on the python3 kernel. A
    notebook saved with any other (e.g. display name "Python 3" instead of "Python 3 (ipykernel)")
    shows as modified as soon as it is opened."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"display_name": spec.display_name, "language": spec.language, "name": "python3"}


#: The first lines of the parameters cell papermill adds to an executed notebook, once published.
INJECTED_NOTE = ("# The parameters this run was given (``srlib report``), replacing the defaults in the cell above.\n"
                 "# Paths are relative to notebooks/ on the machine that ran it: the data and the study's weights\n"
                 "# lie outside this repository (see the README); pass your own to run it again.\n")


def _publishable(executed: Path, staging: Path, final: Path, notebooks: Path) -> None:
    """Rewrite what papermill recorded of the run's folders: the staging folder becomes the folder the
    results end in, and its input and output paths become relative. The kernelspec is the one
    JupyterLab would write, so opening the notebook does not mark it modified."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    text = nbformat.writes(nb).replace(_relative(staging, notebooks), _relative(final, notebooks))
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:  # papermill's record of the run's parameters, told apart from the notebook's own
        if "injected-parameters" in cell.metadata.get("tags", []) and not cell.source.startswith(INJECTED_NOTE):
            cell.source = INJECTED_NOTE + cell.source
    nb.metadata["kernelspec"] = kernelspec()
    papermill = nb.metadata.get("papermill", {})
    papermill["input_path"] = _relative(Path(papermill.get("input_path", executed)), notebooks)
    papermill["output_path"] = _relative(final / executed.name, notebooks)
    nbformat.write(nb, executed)


def report_folder(preset: str, publish: bool) -> Path:
    """Where a run's results go: the published report, or a run folder of its own (git-ignored)."""
    return project_root() / ("conclusion" if publish else Path("runs") / preset / "report")


def records_folder(preset: str, publish: bool, notebook: str) -> Path:
    """The record store (``records.py``) of one notebook's runs in one preset."""
    return report_folder(preset, publish) / "records" / preset / NOTEBOOKS[notebook].folder


def run_report(preset: str = "quick", only: list[str] | None = None, data: str | None = None,
               study_weights: str | None = None, resume: bool = False, publish: bool = False,
               scheduler: str = "local", workers: int = 0, budget_minutes: float | None = None) -> dict[str, float]:
    """Execute the selected notebooks; returns the wall time (s) of each. Results go to
    ``report_folder(preset, publish)``: ``conclusion/`` is rewritten only with ``publish``.

    Every run a notebook finishes is also kept in its record store (``records_folder``), whatever
    becomes of the notebook, and with ``resume`` the store is laid back first: finished runs are not
    run again, unfinished ones continue from their last checkpoint. With ``budget_minutes`` the runs
    checkpoint and stop when the time is spent; ``BudgetSpent`` then says how far the report got."""
    from ..errors import BudgetSpent
    from ..settings import DEADLINE

    saved = os.environ.get(DEADLINE)
    if budget_minutes is not None:
        os.environ[DEADLINE] = repr(time.time() + 60 * budget_minutes)  # the notebooks' kernels inherit it
    try:
        return _run_notebooks(preset, only, data, study_weights, resume, publish, scheduler, workers)
    except BudgetSpent as e:
        raise BudgetSpent(f"{e}; the finished runs are kept in {report_folder(preset, publish)}/records/: run the "
                          f"same command with --resume to continue") from None
    finally:
        if saved is None:
            os.environ.pop(DEADLINE, None)
        else:
            os.environ[DEADLINE] = saved


def _run_notebooks(preset: str, only: list[str] | None, data: str | None, study_weights: str | None, resume: bool,
                   publish: bool, scheduler: str, workers: int) -> dict[str, float]:
    import papermill as pm

    from ..errors import BudgetSpent
    from ..settings import budget_deadline
    from . import records
    from .sweep import check_kept_models

    root = project_root()
    times = {}
    for name in selected(preset, only):
        deadline = budget_deadline()
        if deadline is not None and time.time() >= deadline:
            raise BudgetSpent(f"time budget spent before notebooks/{name}.ipynb")
        exp = NOTEBOOKS[name].folder
        final = report_folder(preset, publish) / exp
        staging = final.with_name(f".{exp}.partial-{os.getpid()}")
        _remove_stale(staging.parent, exp)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        params = dict(NOTEBOOKS[name].presets[preset])
        notebooks = root / "notebooks"
        params.update(DATA=_relative(data, notebooks) if data else "auto", OUT_DIR=_relative(staging, notebooks),
                      RESUME=resume, SCHEDULER=scheduler, WORKERS=workers, CHECKPOINT_DIR=_relative(root / "runs" / preset / exp, notebooks))
        run_folder, store = root / "runs" / preset / exp, records_folder(preset, publish, name)
        if resume:
            records.restore(store, run_folder)
        if publish:  # every published number a figure shows traces to a model, not only to a file
            check_kept_models(run_folder, data)
        if study_weights and "STUDY_WEIGHTS" in notebook_defaults(name):
            params["STUDY_WEIGHTS"] = _relative(study_weights, notebooks)
        executed = staging / f"{name}.ipynb"
        print(f"[{preset}] running notebooks/{name}.ipynb -> {final.relative_to(root)}/", flush=True)
        start = time.perf_counter()
        try:
            try:
                with reporting_progress(preset, name):
                    execute_notebook(notebooks / f"{name}.ipynb", executed, params)
            finally:
                kept = records.store(run_folder, store)
                print(f"[{preset}] {kept} new run record(s) in {store.relative_to(root)}/", flush=True)
            _publishable(executed, staging, final, notebooks)
        except pm.PapermillExecutionError as e:
            if e.ename == "BudgetSpent":
                shutil.rmtree(staging, ignore_errors=True)
                raise BudgetSpent(f"notebooks/{name}.ipynb: {e.evalue}") from None
            failed = root / "runs" / preset / "failed"
            failed.mkdir(parents=True, exist_ok=True)
            shutil.copy(executed, failed / executed.name)
            shutil.rmtree(staging, ignore_errors=True)
            raise SrlibError(f"notebooks/{name}.ipynb failed in cell {e.exec_count} ({e.ename}: {e.evalue}); "
                             f"{final.relative_to(root)}/ left unchanged, executed copy in {failed / executed.name}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        old = final.with_name(f".{exp}.old-{os.getpid()}")
        if final.exists():
            final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        times[name] = time.perf_counter() - start
        print(f"[{preset}] {name}: done in {times[name]:.0f} s", flush=True)
    return times


def step_seconds(iterations: int = 8) -> float:
    """Seconds per training iteration of the study's recipe when the report has this machine: its runs
    go to one single-threaded worker per thread (``--scheduler local``), so one thread's iteration time,
    measured on generated images after two warm-up iterations, divided by the threads."""
    import numpy as np

    from ..data.celeba import Pairs
    from ..data.degrade import degrade
    from ..nn.network import network_paths
    from ..nn.parallel import serial, threads
    from ..recipe import RECIPES
    from ..train import Trainer

    rng = np.random.default_rng(0)
    images = [degrade(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)) for _ in range(10)]
    pairs = Pairs([Path(f"{i}.png") for i in range(10)], np.stack([a for a, _ in images]), np.stack([b for _, b in images]))
    with serial():  # as a worker of one thread computes
        trainer = Trainer(RECIPES["study"], pairs, total=iterations + 2,
                          conv_paths=network_paths(RECIPES["study"].net, n_threads=1))
        trainer.run(until=2, progress=False)
        start = time.perf_counter()
        trainer.run(progress=False)
    return (time.perf_counter() - start) / iterations / threads()


@lru_cache(maxsize=None)
def notebook_defaults(name: str) -> dict:
    """The values of a notebook's parameters cell (what a preset does not set stays at these); read once
    per process, not at every progress line. Callers copy it (``{**notebook_defaults(name), ...}``)."""
    import ast

    import papermill as pm

    found = pm.inspect_notebook(project_root() / "notebooks" / f"{name}.ipynb")
    return {key: ast.literal_eval(p["default"]) for key, p in found.items()}


def progress_of(preset: str, name: str) -> dict[str, int]:
    """How far notebook ``name`` of ``preset`` has trained: the runs and iterations its parameters ask
    for (the notebook's ``plan``), and those done: runs with a record in the run folder or a record
    store, iterations of unfinished runs from their last checkpoint (a run branching from another's
    snapshot counts from there)."""
    from ..checkpoint import load_checkpoint
    from .sweep import recorded

    notebook = NOTEBOOKS[name]
    folders = [project_root() / "runs" / preset / notebook.folder, records_folder(preset, True, name),
               records_folder(preset, False, name)]
    plan = notebook.experiment().plan({**notebook_defaults(name), **notebook.presets[preset]}, folders)
    tasks = [t for group in plan.values() for t in group]
    done_runs = done_its = total = 0
    for t in tasks:
        start = t.iterations // 2 if t.restart_optimizer_from else 0
        total += t.iterations - start
        if any(recorded(t, f) for f in folders):
            done_runs, done_its = done_runs + 1, done_its + t.iterations - start
            continue
        for ck in [f / f"{t.name}.npz" for f in folders] + [f / "partial" / f"{t.name}.npz" for f in folders]:
            try:
                reached = load_checkpoint(ck).iteration if ck.is_file() else 0
            except SrlibError:  # being replaced this instant, or damaged: counted at the next look
                reached = 0
            if reached:
                done_its += reached - start
                break
    return {"runs": len(tasks), "iterations": total, "runs_done": done_runs, "iterations_done": done_its}


def dry_run(preset: str, only: list[str] | None = None):
    """What ``run_report`` would still train, per notebook, without running anything (``progress_of``),
    and an estimate of the time left from this machine's measured step time, as a pandas DataFrame.
    Notebook 01's later rungs depend on the earlier ones' results: its plan is an estimate."""
    import pandas as pd

    names = selected(preset, only)
    step = step_seconds()
    rows = []
    for name in names:
        p = progress_of(preset, name)
        rows.append({"notebook": name, **p, "hours_left": (p["iterations"] - p["iterations_done"]) * step / 3600})
    table = pd.DataFrame(rows).set_index("notebook")
    table.attrs["step_seconds"] = step
    return table


class RecentRate:
    """Iterations per second over the last ``window_s`` seconds of (time, iterations done) samples: the
    speed now, which a rate since the start hides once the machine's load changes (a run sharing the
    cores for an hour, then not)."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> float:
        """Record a sample; the rate from the oldest sample still inside the window (or the last before
        it) to this one, 0 before two samples."""
        self.samples.append((now, done))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()
        then, before = self.samples[0]
        return (done - before) / (now - then) if now > then else 0.0


@contextmanager
def reporting_progress(preset: str, name: str, every_s: float = 60.0, window_s: float = 900.0) -> Iterator[None]:
    """While inside, a line on stdout every ``every_s`` seconds: the notebook's runs and iterations done
    of those it asks for, the rate over the last ``window_s`` seconds (``RecentRate``; checkpoints come
    every 500 iterations, so much shorter spans are lumpy) and the time left at that rate. The notebook
    itself runs in a kernel whose output goes into the executed notebook, not to the terminal."""
    stop = threading.Event()
    recent = RecentRate(window_s)
    span = f"the last {window_s / 60:g} min"

    def report() -> None:
        while not stop.wait(every_s):
            try:
                p = progress_of(preset, name)
            except Exception:  # a progress line is never worth stopping a report for
                continue
            done = p["iterations_done"]
            rate = recent.add(time.monotonic(), done)
            hours = (p["iterations"] - done) / rate / 3600 if rate > 0 else float("nan")
            left = ("rate not known yet" if hours != hours else f"about {hours:.1f} h left at this rate" if hours >= 1
                    else f"about {60 * hours:.0f} min left at this rate")
            print(f"[{preset}] {name}: {p['runs_done']}/{p['runs']} runs done, {done:,}/{p['iterations']:,} iterations "
                  f"({100 * done / max(1, p['iterations']):.0f}%), {rate:.1f} it/s over {span}, {left}", flush=True)

    thread = threading.Thread(target=report, name="srlib-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def refresh_stored_outputs(only: list[str] | None = None) -> None:
    """Re-execute the notebooks in place with their own (small) default parameters: the outputs they
    store are what ``pytest --nbval-lax`` compares. Widget state is dropped (it holds random model ids
    and megabytes of image bytes). The convolutions take the fixed paths, as under pytest: a path
    tuned to this machine would round differently from the test machine's."""
    import nbformat

    os.environ["SRLIB_CONV_PATHS"] = "fixed"
    root = project_root()
    for name in only or list(NOTEBOOKS):
        path = root / "notebooks" / f"{name}.ipynb"
        print(f"refreshing {path}", flush=True)
        execute_notebook(path, path)
        nb = nbformat.read(path, as_version=4)
        nb.metadata.pop("widgets", None)
        nb.metadata.pop("papermill", None)
        nb.metadata["kernelspec"] = kernelspec()
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
