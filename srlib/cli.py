"""Command line: ``python -m srlib {upscale,evaluate,photo-benchmark,train,export,import-study-weights,report}
--help``.

Exit codes: 0 success, 1 a user-facing error (printed as one line), 2 bad usage, 75 ``report --budget``
spent its time (run it again with --resume), 130 interrupted (SIGINT), 141 the output pipe closed, 143
terminated (SIGTERM; ``train`` checkpoints first, ``report`` keeps its finished runs' records).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from .errors import SrlibError, note

# ``report --budget``: the budget was spent before the report was done (BSD's EX_TEMPFAIL: try again)
EXIT_BUDGET_SPENT = 75

# Images of the validation split that ``train`` scores during and after training (a fixed, evenly
# spread subset: the whole split of real CelebA would take 2 GB and minutes per validation).
VALIDATION_IMAGES = 30


def load_model(weights: str | None, shipped: str = "photo"):
    """The model in ``weights``, or the ``shipped`` model (``model.SHIPPED``) when None."""
    from .model import SRModel

    if weights is None:
        return SRModel.shipped(shipped)
    if not weights.strip():
        raise SrlibError("--weights is empty; give a checkpoint file, or leave --weights out for the shipped model")
    return SRModel.from_checkpoint(weights)


def model_file(name: str) -> str:
    """The file of a shipped model for its name (``model.SHIPPED``: photo, fast, study) unless a file of
    that name exists here; else the path as given."""
    from .model import SHIPPED

    return str(SHIPPED[name]) if name in SHIPPED and not Path(name).exists() else name


def add_named_models(methods: dict, specs: list[str] | None, option: str) -> dict:
    """``methods`` plus a model for each ``[NAME=]CKPT`` in ``specs`` (NAME defaults to the file's stem);
    a name that is empty or already taken is refused in one line naming ``option``."""
    baselines = set(methods)
    for spec in specs or []:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).stem, "", spec)
        if not name.strip() or name in methods:
            taken = "a baseline's name" if name in baselines else "already taken" if name.strip() else "empty"
            raise SrlibError(f"{option} {spec}: the method name {name!r} is {taken}; name it with NAME=CKPT")
        methods[name] = load_model(path)
    return methods


def print_path(path: Path) -> None:
    """Print a path on stdout as the bytes the file system has (a name need not be valid UTF-8)."""
    if sys.stdout is None:  # started with stdout closed: nothing to print to
        return
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        print(str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    else:
        sys.stdout.flush()
        out.write(os.fsencode(path) + b"\n")
        out.flush()


def write_png(path: Path, image: np.ndarray, alpha: np.ndarray | None = None) -> None:
    from .data.png import encode_png
    from .files import atomic_write

    atomic_write(path, lambda f: encode_png(f, image, alpha), "image")


def write_csv(path: Path, table, **options) -> None:
    """A pandas table written to ``path`` atomically: a full disk or a kill leaves the previous file."""
    from .files import atomic_write

    data = table.to_csv(**options).encode()
    atomic_write(path, lambda f: f.write(data), "table")


def comparison(lr: np.ndarray, result: np.ndarray, grid: str, model_name: str) -> np.ndarray:
    """Side by side, labelled: the input (each pixel drawn 4x4), bicubic on the same grid, and
    ``result`` (of the model ``model_name``). The caller's arrays are left as they are."""
    from .data.degrade import to_uint8, upscale_nearest
    from .data.photo import BICUBIC_FOR_GRID

    panels = [upscale_nearest(lr), to_uint8(BICUBIC_FOR_GRID[grid](lr)), result.copy()]
    labels = ["input", f"bicubic ({grid} grid)", f"srlib, {model_name}"]
    for panel, label in zip(panels, labels):
        cv2.putText(panel, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(panel, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    gap = np.full((result.shape[0], 8, 3), 255, np.uint8)
    return np.hstack([panels[0], gap, panels[1], gap, panels[2]])


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:  # Python 3.11 reports a symbolic link loop as RuntimeError
        raise SrlibError(f"{path}: cannot use this path ({e}); remove the link or choose another path") from None


def upscale_targets(images: list[str], out_dir: Path, force: bool, compare: bool = False
                    ) -> list[tuple[Path, list[Path]]]:
    """(input, its outputs) for each image: NAME_x4.png, and NAME_x4_compare.png with ``compare``.
    Checked before any work: every input exists, no two inputs write the same output, no output is one
    of the inputs, and no existing file is replaced unless ``force``."""
    from .files import check_new_file

    suffixes = ["_x4.png", "_x4_compare.png"] if compare else ["_x4.png"]
    jobs = [(Path(name), [out_dir / f"{Path(name).stem}{s}" for s in suffixes]) for name in images]
    for src, _ in jobs:
        try:
            if not stat.S_ISREG(os.stat(src).st_mode):
                raise SrlibError(f"{src}: not a regular file (a folder, device or FIFO); give an image file")
        except OSError as e:
            raise SrlibError(f"{src}: cannot read the image ({e.strerror}); check the path") from None
    inputs = {_resolve(src) for src, _ in jobs}
    seen: dict[Path, Path] = {}
    for src, targets in jobs:
        for target in targets:
            resolved = _resolve(target)
            if resolved in seen:
                raise SrlibError(f"{seen[resolved]} and {src} would both be written to {target}; "
                                 f"upscale them into different folders (-o)")
            if resolved in inputs:
                raise SrlibError(f"{target} is one of the input images; choose another output folder (-o)")
            check_new_file(target, force, "-o")
            seen[resolved] = src
    return jobs


def cmd_upscale(args) -> None:
    from .data.celeba import MAX_FRAMES_COUNTED, read_alpha, read_image
    from .data.photo import estimate_jpeg_quality, jpeg_quality
    from .display import progress
    from .files import check_writable_folder
    from .model import check_output_size, upscale_alpha

    if args.model and args.weights:
        raise SrlibError("give --model (a shipped model) or --weights (a checkpoint), not both")
    shipped = args.model or ("study" if args.grid == "study" else "photo")
    model = load_model(args.weights, shipped)
    if args.grid and model.grid != args.grid:
        raise SrlibError(f"{args.weights or f'the shipped {args.model} model'} was trained for the {model.grid} grid, "
                         f"not the {args.grid} grid; leave --weights and --model out to use the shipped model for "
                         f"that grid")
    if args.ensemble and model.grid != "centre":
        raise SrlibError("--ensemble keeps the sampling phase only on the centre grid; drop it for this model")
    out_dir = check_writable_folder(args.out)
    for path, (target, *compare) in upscale_targets(args.images, out_dir, args.force, args.compare):
        img = read_image(path)
        h, w = img.shape[:2]
        check_output_size(h, w, str(path))
        alpha, frames = read_alpha(path, (h, w))
        if frames > 1:
            held = f"more than {MAX_FRAMES_COUNTED}" if frames > MAX_FRAMES_COUNTED else frames
            note(f"{path} holds {held} frames; upscaling the first")
        quality = args.jpeg_quality
        if quality == "auto":  # the file's own table, else what its pixels show (a JPEG saved again as PNG)
            quality = jpeg_quality(path) or estimate_jpeg_quality(img)
        grey = bool(np.all(img[..., 0] == img[..., 1]) and np.all(img[..., 1] == img[..., 2]))
        with progress(total=h * w, unit="px", unit_scale=True, desc=path.name, leave=False,
                  disable=h * w < 1_000_000) as bar:
            hr = model.upscale(img, progress=bar.update, ensemble=args.ensemble, jpeg_quality=quality)
        if grey:
            hr = hr[..., 0] if len(model.nets) == 1 and not model.sees_colour else cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY)
        write_png(target, hr, None if alpha is None else upscale_alpha(alpha, model.grid))
        print_path(target)
        if compare:
            name = f"{shipped} model" if args.weights is None else Path(args.weights).stem
            write_png(compare[0], comparison(img, hr if hr.ndim == 3 else cv2.cvtColor(hr, cv2.COLOR_GRAY2BGR),
                                             model.grid, name))
            print_path(compare[0])


def cmd_evaluate(args) -> None:
    import pandas as pd

    from .data.celeba import CelebA, ImageSet, evaluation_subset
    from .data.default import resolve_data_dir
    from .evaluation.evaluate import BASELINES, evaluate, summarize
    from .files import check_new_file, check_writable_folder

    out = check_writable_folder(args.out)
    tables = [check_new_file(out / f"{kind}_{args.split}.csv", args.force, "--out") for kind in ("scores", "summary")]
    methods = add_named_models(dict(BASELINES), args.weights, "--weights")
    if args.study_model:
        methods["srlib_study"] = load_model(None, "study")
    data = resolve_data_dir(args.data)
    paths = evaluation_subset(CelebA.open(data).split(args.split), args.limit)
    pairs = ImageSet(paths)
    scores = evaluate(pairs, methods, crop_border=args.crop_border)
    summary = summarize(scores)
    write_csv(tables[0], scores, index=False)
    write_csv(tables[1], summary)
    with pd.option_context("display.width", 200, "display.precision", 4):
        print(f"{data} / {args.split}: {len(pairs)} images, crop_border={args.crop_border}")
        print(summary.to_string())
    print(f"wrote {tables[0]} and {tables[1]}")


def cmd_photo_benchmark(args) -> None:
    import pandas as pd

    from .data.celeba import CelebA, ImageSet, evaluation_subset
    from .data.default import resolve_data_dir
    from .evaluation.evaluate import PHOTO_BASELINES, model_method, opencv_methods, photo_benchmark
    from .files import check_new_file, check_writable_folder
    from .model import SRModel

    out = check_writable_folder(args.out)
    tables = [check_new_file(out / f"photo_{kind}_{args.split}.csv", args.force, "--out")
              for kind in ("scores", "summary")]
    photo_model = load_model(args.weights)
    study_model = load_model(None, "study")
    methods = {**PHOTO_BASELINES, "study model": model_method(study_model), "photo model": model_method(photo_model),
               "photo model, 8-fold ensemble": model_method(photo_model, ensemble=True)}
    if photo_model.nets[0].config.jpeg_aware:
        methods["photo model, not told the JPEG quality"] = model_method(photo_model, jpeg="withheld")
        methods["photo model, JPEG quality read from the pixels"] = model_method(photo_model, jpeg="estimated")
    methods = {name: model_method(m) if isinstance(m, SRModel) else m
               for name, m in add_named_models(methods, args.compare_with, "--compare-with").items()}
    if args.opencv_models:
        methods.update(opencv_methods(args.opencv_models))
    data = resolve_data_dir(args.data)
    paths = CelebA.open(data).split(args.split)
    if args.exclude_subset:
        left_out = set(evaluation_subset(paths, args.exclude_subset))
        paths = [p for p in paths if p not in left_out]
        if not paths:
            raise SrlibError(f"--exclude-subset {args.exclude_subset} leaves no image of the {args.split} split; "
                             f"exclude fewer")
    images = ImageSet(evaluation_subset(paths, args.limit))
    scores, summary = photo_benchmark(images, methods)
    write_csv(tables[0], scores, index=False)
    write_csv(tables[1], summary, index=False)
    with pd.option_context("display.width", 200, "display.precision", 2, "display.max_rows", 100):
        print(f"{data} / {args.split}: {len(images)} images; PSNR RGB (dB) and the paired difference to "
              f"bicubic on the same images, 95% bootstrap interval")
        print(summary.to_string(index=False))
    print(f"wrote {tables[0]} and {tables[1]}")


def cmd_benchmark(args) -> None:
    import pandas as pd

    from .display import progress
    from .evaluation.benchmark import Upscaler, bicubic, one_image, run_benchmark, set_images, summarize
    from .files import check_new_file, check_writable_folder

    out = check_writable_folder(args.out)
    tables = [check_new_file(out / f"benchmark_{kind}.csv", args.force, "--out") for kind in ("scores", "summary")]
    sets = {Path(folder).name + ("" if args.split == "all" else f" ({args.split})"): folder for folder in args.sets}
    if len(sets) != len(args.sets):
        raise SrlibError("two test sets share a folder name; give each set once")
    models = {f"srlib {name}": load_model(None, name) for name in args.models}
    models = add_named_models(models, args.weights, "--weights")
    methods: dict[str, Upscaler] = {"bicubic": bicubic, **{name: m.upscale for name, m in models.items()}}
    if args.opencv_models:
        from .evaluation.evaluate import opencv_methods

        methods.update({name: one_image(f) for name, f in opencv_methods(args.opencv_models).items()})
    total = sum(len(set_images(folder, args.split)) for folder in sets.values())
    with progress(total=total, desc="benchmark", unit="image") as bar:
        scores = run_benchmark(sets, methods, progress=lambda: bar.update(1), split=args.split)
    summary = summarize(scores)
    write_csv(tables[0], scores, index=False)
    write_csv(tables[1], summary, index=False)
    with pd.option_context("display.width", 200, "display.precision", 3, "display.max_rows", 200):
        print("x4, the papers' protocol: LR by MATLAB's bicubic imresize; PSNR and SSIM on Y, 4-pixel border; "
              "the difference to bicubic on the same images with a 95% bootstrap interval")
        print(summary.drop(columns=["source"]).to_string(index=False, na_rep=""))
    print(f"wrote {tables[0]} and {tables[1]}")


def cmd_train(args) -> None:
    from .files import check_new_file, check_writable_folder, exclusive_claim

    out = Path(args.out)
    check_new_file(out, True, "--out")  # a folder, a device, a name too long: refused before anything
    check_writable_folder(out.parent, "--out")
    with exclusive_claim(out, "--out"):  # two runs started at once on one --out: the second is refused
        if out.is_file() and not args.resume:
            raise SrlibError(f"{out} exists; pass --resume to continue that run, or choose another --out")
        _train(args, out)


def _train(args, out: Path) -> None:
    from .data.celeba import CelebA, ImageSet, evaluation_subset, load_pairs
    from .data.default import resolve_data_dir
    from .data.folders import PATCH, PhotoPatches, split_photos, validation_pairs
    from .nn.parallel import threads
    from .recipe import get_recipe
    from .train import Trainer, stop_requests

    train: ImageSet | PhotoPatches
    if args.photos:
        train = PhotoPatches(split_photos(args.photos, "train"))
        val = validation_pairs(split_photos(args.photos, "validation"))
        print(f"{', '.join(args.photos)}: {len(train)} training photos, {len(val)} validation photos "
              f"(their centre {PATCH}x{PATCH})")
    else:
        data = CelebA.open(resolve_data_dir(args.data))
        train = ImageSet(data.split("train"))
        val = load_pairs(evaluation_subset(data.split("validation"), VALIDATION_IMAGES), desc="loading validation")
    if out.exists():
        trainer = Trainer.resume(out, train, val)
        print(f"resuming {out} at iteration {trainer.iteration} of {trainer.total}")
    else:
        rate = {} if args.lr is None else {"lr": args.lr}
        trainer = Trainer(get_recipe(args.recipe), train, total=args.iterations, seed=args.seed, val=val,
                          shards=args.shards or threads(),
                          init_from=None if args.init_from is None else model_file(args.init_from), **rate)
    with stop_requests() as stop:
        trainer.run(checkpoint=out, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
                    stop=stop)
    if trainer.val is not None:
        print(f"{out}: iteration {trainer.iteration}, validation PSNR {trainer.validate():.2f} dB "
              f"({len(val)} images)")


def cmd_export(args) -> None:
    from .checkpoint import load_checkpoint, model_only, save_checkpoint
    from .files import atomic_write, check_new_file
    from .model import SRModel

    check_new_file(args.out, args.force, "--out")
    source = model_file(args.checkpoint)
    if args.onnx:
        from .onnx_export import to_onnx

        data = to_onnx(SRModel.from_checkpoint(source)).SerializeToString()
        atomic_write(args.out, lambda f: f.write(data), "ONNX model")
        print(f"wrote {args.out} (ONNX: input 'image' float32 N x 3 x H x W, B, G, R on 0..255; output 'output' "
              f"N x 3 x 4H x 4W, unrounded)")
        return
    ckpt = load_checkpoint(source)
    save_checkpoint(args.out, model_only(ckpt))
    print(f"wrote {args.out} (weights of {args.checkpoint} at iteration {ckpt.iteration}, no optimizer state)")


def cmd_tune(args) -> None:
    from .nn.parallel import threads
    from .nn.tuning import cache_file, machine, tune
    from .recipe import RECIPES

    shapes = list(dict.fromkeys((*shape, recipe.net.dtype) for recipe in RECIPES.values()
                                for shape in recipe.net.conv_shapes()))
    print(f"timing every convolution path of {len(shapes)} layer shapes on {machine()}, with 1 thread and with "
          f"{threads()} (SRLIB_THREADS to change)", flush=True)
    print(tune(shapes).to_string(index=False, na_rep="-", float_format="{:.1f}".format))
    print(f"choices kept in {cache_file()}; training runs record the paths they use")


def cmd_import(args) -> None:
    from .files import check_new_file
    from .legacy import import_study_weights

    check_new_file(args.out, args.force, "--out")
    ckpt = import_study_weights(args.folder, args.out)
    print(f"wrote {args.out} ({len(ckpt.weights)} network(s) from {args.folder})")


@contextmanager
def terminate_unwinds() -> Iterator[None]:
    """While inside, SIGTERM (``kill``, a batch scheduler's time limit) raises ``Interrupted`` in the main
    thread, as Ctrl-C raises KeyboardInterrupt, instead of ending the process where it stands: a report
    then stores the records of the runs its notebook finished and shuts the notebook's kernel down (the
    kernel runs in a session of its own, which a signal to the report's process group does not reach)."""
    from .errors import Interrupted

    def handler(signum, frame):
        raise Interrupted("terminated (SIGTERM); the finished runs are kept: run again with --resume to continue",
                          signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_lab(args) -> None:
    """JupyterLab on the checkout, with the setting that keeps the tracked notebooks as committed
    (``report/lab.py``); what JupyterLab itself takes goes through unchanged."""
    import importlib.util

    from .paths import in_checkout, project_root

    if importlib.util.find_spec("jupyterlab") is None:
        raise SrlibError("JupyterLab is not installed: pip install 'srlib[report]' (or '.[report]' in a checkout)")
    if in_checkout():
        os.chdir(project_root())
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.contents_manager_class={LAB_CONTENTS_MANAGER}",
               *args.jupyter_args]
    sys.stdout.flush()
    os.execv(sys.executable, command)


#: The Jupyter contents manager ``srlib lab`` runs JupyterLab with
LAB_CONTENTS_MANAGER = "srlib.report.lab.ReportContentsManager"


def cmd_report_html(args) -> None:
    from .paths import project_root
    from .report.html import render

    source = Path(args.report) if args.report else project_root() / "conclusion"
    out = Path(args.out) if args.out else project_root() / "runs" / "html"
    print(render(source, out))


def cmd_reproduce(args) -> None:
    import tempfile

    from .report.sweep import reproduce

    failed = 0
    for record in args.records:
        with tempfile.TemporaryDirectory(prefix="srlib-reproduce-") as work:
            differences = reproduce(record, args.data, work)
        if differences:
            failed += 1
            print(f"{record}: differs: {'; '.join(differences)}", flush=True)
        else:
            print(f"{record}: the same bits (training loss at every iteration, every image's score)", flush=True)
    if failed:
        raise SystemExit(1)


def cmd_report(args) -> None:
    from .data.celeba import CelebA
    from .data.default import resolve_data_dir
    from .paths import project_root
    from .report.notebook import study_models
    from .report.runner import dry_run, refresh_stored_outputs, report_folder, run_report
    from .report.sweep import check_scheduler

    try:
        import papermill  # noqa: F401
    except ImportError:
        raise SrlibError("the report needs the notebook packages: pip install 'srlib[report]' (or '.[report]' "
                         "in a checkout)") from None
    if args.refresh_notebooks:
        refresh_stored_outputs(args.only)
        return
    if args.dry_run:
        import pandas as pd

        table = dry_run(args.preset, args.only)
        with pd.option_context("display.width", 200, "display.float_format", "{:.2f}".format):
            print(f"[{args.preset}] what is left to train (one iteration of the study's recipe takes "
                  f"{table.attrs['step_seconds']:.3f} s of this machine, its cores each running one; estimates are "
                  f"+-30%):")
            print(table.to_string())
        print(f"total: {table.hours_left.sum():.1f} hours on this machine")
        return
    # Inputs are checked now, not hours later when a notebook first reads them.
    check_scheduler(args.scheduler, reach=True)
    CelebA.open(resolve_data_dir(args.data))
    if args.study_weights:
        args.study_weights = str(Path(args.study_weights).resolve())  # given from here, not from notebooks/
        study_models(args.study_weights)
    with terminate_unwinds():
        times = run_report(args.preset, only=args.only, data=args.data, study_weights=args.study_weights,
                           resume=args.resume, publish=args.publish, scheduler=args.scheduler, workers=args.workers,
                           budget_minutes=args.budget)
    where = report_folder(args.preset, args.publish).relative_to(project_root())
    print(f"report ({args.preset}) written to {where}/ in {sum(times.values()):.0f} s")


def jpeg_quality_option(text: str) -> str | int | None:
    """argparse type for --jpeg-quality: auto, none, or a quality 1..100."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, none or a quality 1..100") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a JPEG quality is 1..100, got {value}")
    return value


def count(minimum: int, maximum: int | None = None, why: str = ""):
    """argparse type: an integer of ``minimum``..``maximum`` (usage error, exit 2, otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}{why}, got {value}")
        return value
    return parse


def learning_rate(text: str) -> float:
    """argparse type: a learning rate a recipe accepts (``train.Recipe``; usage error, exit 2, otherwise)."""
    from .recipe import RANGES, Recipe

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    try:
        Recipe(lr=value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {RANGES['lr']}, got {text}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    from .data.photo import GRIDS
    from .model import SHIPPED
    from .recipe import MAX_ITERATION, MAX_SHARDS, RECIPES
    from .report.registry import PRESETS

    p = argparse.ArgumentParser(prog="python -m srlib", description="4x super-resolution with a NumPy sub-pixel CNN.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("upscale", help="upscale images 4x (any size, colour or grey) to PNG")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if missing)")
    s.add_argument("--weights", metavar="CKPT", help="srlib checkpoint (default: the shipped model for --grid)")
    s.add_argument("--model", choices=list(SHIPPED),
                   help="a shipped model instead (see srlib/models/MODEL_CARD_*.md): photo, the default, for photos; "
                        "fast, for photos within 1.5x OpenCV ESPCN's time (0.1-0.3 dB less); study, for the study's "
                        "degradation (--grid study)")
    s.add_argument("--grid", choices=sorted(GRIDS),
                   help="where the input's pixels sit: centre (photos: area-averaged, resized, camera images; "
                   "the default) or study (the study's degradation: the top-left pixel of each 4x4 block)")
    s.add_argument("--ensemble", action="store_true",
                   help="average over the 8 flips and rotations (centre grid; 8x the time)")
    s.add_argument("--compare", action="store_true",
                   help="also write NAME_x4_compare.png: the input, bicubic and srlib side by side")
    s.add_argument("--jpeg-quality", type=jpeg_quality_option, default="auto", metavar="auto|none|Q",
                   help="the quality the input was saved at as JPEG, which the photo model is told: auto (the "
                   "default) reads it from a JPEG file's header, or from the pixels of any other file (a JPEG "
                   "saved again as PNG still shows JPEG's 8x8 quantisation); none: never compressed; Q: 1..100")
    s.add_argument("--force", action="store_true", help="replace output files that already exist")
    s.set_defaults(func=cmd_upscale)

    s = sub.add_parser("evaluate", help="score baselines and models on a data split; print and write CSV")
    s.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    s.add_argument("--split", default="test", choices=["train", "validation", "test"])
    s.add_argument("--weights", action="append", metavar="[NAME=]CKPT", help="a model to score (repeatable)")
    s.add_argument("--study-model", action="store_true",
                   help="also score the shipped study model (the one for this degradation)")
    s.add_argument("--limit", type=count(1), metavar="N", help="a fixed, evenly spread subset of N images")
    s.add_argument("--crop-border", type=count(0), default=0, metavar="PX",
                   help="pixels cut from each side, 0..82 (default 0)")
    s.add_argument("--out", default=".", metavar="DIR", help="where the CSV files go (default: .)")
    s.add_argument("--force", action="store_true", help="replace the CSV files of an earlier run there")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("photo-benchmark", help="score interpolation and the shipped models on photo degradations")
    s.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    s.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    s.add_argument("--limit", type=count(1), metavar="N", help="a fixed, evenly spread subset of N images")
    s.add_argument("--weights", metavar="CKPT", help="the photo model to score (default: the shipped one)")
    s.add_argument("--exclude-subset", type=count(1), metavar="N",
                   help="leave out the N images that --limit N would pick (e.g. those a design was chosen on)")
    s.add_argument("--compare-with", action="append", metavar="[NAME=]CKPT",
                   help="another model to score beside it, without the ensemble (repeatable)")
    s.add_argument("--opencv-models", metavar="DIR",
                   help="also score the x4 models of OpenCV's dnn_superres in DIR (ESPCN_x4.pb, FSRCNN_x4.pb, "
                        "FSRCNN-small_x4.pb, LapSRN_x4.pb); needs opencv-contrib-python-headless 4.x")
    s.add_argument("--out", default=".", metavar="DIR", help="where the CSV files go (default: .)")
    s.add_argument("--force", action="store_true", help="replace the CSV files of an earlier run there")
    s.set_defaults(func=cmd_photo_benchmark)

    s = sub.add_parser("benchmark", help="score bicubic and srlib's models on the field's x4 test sets as the "
                                         "papers do, beside their published numbers")
    s.add_argument("sets", nargs="+", metavar="SET_DIR",
                   help="a test set's folder of HR images (Set5, Set14, BSD68, ...; a folder named like a published "
                        "set is shown beside that set's published rows)")
    s.add_argument("--models", nargs="*", default=["photo", "fast"], choices=["photo", "fast"],
                   help="the shipped models to score (default: photo fast)")
    s.add_argument("--weights", action="append", metavar="[NAME=]CKPT", help="another model to score (repeatable)")
    s.add_argument("--opencv-models", metavar="DIR",
                   help="also score the x4 models of OpenCV's dnn_superres in DIR; needs opencv-contrib-python-headless 4.x")
    s.add_argument("--split", default="all", choices=["all", "train", "validation"],
                   help="all the images of each SET_DIR (default), or one split of a training folder: validation "
                        "is where models are compared and chosen (cut by name, as train --photos cuts it)")
    s.add_argument("--out", default=".", metavar="DIR", help="where the CSV files go (default: .)")
    s.add_argument("--force", action="store_true", help="replace the CSV files of an earlier run there")
    s.set_defaults(func=cmd_benchmark)

    s = sub.add_parser("train", help="train a model with a named recipe (seeded, resumable)")
    s.add_argument("--recipe", default="improved", choices=list(RECIPES),
                   help="study: the study's; improved: the report's shipped model; photo: the photo model's on area "
                        "and centred blur; photo-wide: on a wider mix (aliased resizes, off-centre samples, "
                        "sharpening); photo-wide-96: that network 1.5x wider (the shipped photo model); photo-fast: a "
                        "network of a third of the work per pixel on that mix; photo-fast-40: 40 channels, 3x3 "
                        "first layer (the shipped fast tier); bicubic-res8: 8 residual blocks of 64 channels on "
                        "MATLAB's bicubic, for general photos (--photos)")
    s.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: start from this model's weights instead of the seed's (a model file or "
                        "checkpoint, or a shipped model's name: photo, fast, study); its network must be the recipe's")
    s.add_argument("--lr", type=learning_rate, metavar="RATE",
                   help="the recipe's learning rate replaced (e.g. a quarter of it to fine-tune); part of the run: "
                        "--resume keeps the checkpoint's")
    data = s.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    data.add_argument("--photos", nargs="+", metavar="DIR",
                      help="train on random patches of the photos in these folders instead (a photo recipe; 10%% of "
                           "the photos, chosen by name, are the validation split: srlib.data.folders)")
    s.add_argument("--iterations", type=count(1, MAX_ITERATION), default=12000, metavar="N",
                   help="iterations of 10 images x 3 channels")
    s.add_argument("--out", required=True, metavar="CKPT", help="checkpoint written during and after training")
    s.add_argument("--seed", type=count(0, 2 ** 32 - 1), default=0)
    s.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    s.add_argument("--checkpoint-every", type=count(1), default=500, metavar="N")
    s.add_argument("--shards", type=count(0, MAX_SHARDS), default=0, metavar="N",
                   help="split each step's batch into N shards run side by side (default 0: one per worker thread, SRLIB_THREADS); "
                        "part of the run: --resume keeps the checkpoint's")
    s.add_argument("--validate-every", type=count(0), default=1000, metavar="N",
                   help="validation PSNR every N (0: never)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("import-study-weights", help="convert the 2022 study's W1..W4.pickle safely to a checkpoint")
    s.add_argument("folder", help="folder with W1..W4.pickle, or with B/, G/, R/ folders of them")
    s.add_argument("--out", required=True, metavar="CKPT")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", help="write a checkpoint's model alone (no optimizer state), or as an ONNX graph")
    s.add_argument("checkpoint", metavar="CKPT", help="a checkpoint file, or photo / fast / study for a shipped model")
    s.add_argument("--out", required=True, metavar="MODEL")
    s.add_argument("--onnx", action="store_true",
                   help="write an ONNX graph (onnxruntime, OpenCV's dnn) instead of a checkpoint; needs the onnx "
                        "package: pip install 'srlib[onnx]'")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("tune", help="time each convolution path of the recipes' layers on this machine and keep "
                                    "the fastest (done by itself on first use; run again after a hardware change)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("report-html", help="render a report (default: the published conclusion/) as web pages into "
                                           "runs/html/; prints the front page's path")
    s.add_argument("report", nargs="?", metavar="FOLDER", help="a report folder: conclusion/ (default) or a run's "
                   "runs/PRESET/report/")
    s.add_argument("--out", metavar="DIR", help="where the pages go (default: runs/html/)")
    s.set_defaults(func=cmd_report_html)

    s = sub.add_parser("lab", help="open the checkout in JupyterLab; running a report notebook there never rewrites "
                                   "the tracked file (edited cells save as usual)",
                       description="JupyterLab on the checkout. Any other arguments go to JupyterLab as they are "
                                   "(e.g. --no-browser --port 8890).")
    s.set_defaults(func=cmd_lab)

    s = sub.add_parser("reproduce", help="train a report run again from its record, with the convolution paths it "
                                         "recorded, and check the result is the same bits",
                       description="Each RECORD (a run's .json in a report's records/) is trained again from its seed "
                                   "in a temporary folder with the convolution paths and shards it recorded, and scored "
                                   "on the images it names; exit 1 if any differs. Without the recorded paths (a "
                                   "report re-run on another machine tunes its own) the numbers agree closely, not bit "
                                   "for bit.")
    s.add_argument("records", nargs="+", metavar="RECORD")
    s.add_argument("--data", metavar="DIR", help="the CelebA-layout folder the record ran on (default: data/ or the "
                                                 "embedded sample)")
    s.set_defaults(func=cmd_reproduce)

    s = sub.add_parser("report", help="run the report's notebooks with papermill into runs/PRESET/report/")
    s.add_argument("--preset", default="quick", choices=list(PRESETS),
                   help="; ".join(f"{name}: {what}" for name, what in PRESETS.items()))
    s.add_argument("--only", action="append", metavar="NOTEBOOK", help="run only this notebook (repeatable)")
    s.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    s.add_argument("--study-weights", metavar="DIR", help="the study's weights/ folder (its train/, many_adam/ and "
                   "color_weight/ models are scored in notebooks 02, 03 and 04), or one network's folder")
    s.add_argument("--resume", action="store_true", help="keep finished training runs in runs/ and continue "
                   "unfinished ones from their checkpoints")
    s.add_argument("--scheduler", default="local", metavar="WHERE",
                   help="where training runs go: local (default: a Dask cluster of one single-threaded worker per "
                        "core), serial (one at a time in this process), or the address of a Dask scheduler "
                        "(tcp://HOST:8786) whose workers have srlib and see the data and runs/ at the same paths")
    s.add_argument("--workers", type=count(0, os.cpu_count() or 1, " (this machine's cores)"), default=0, metavar="N",
                   help="workers of the local cluster, at most one per core (default 0: one per core)")
    s.add_argument("--budget", type=count(1), metavar="MINUTES",
                   help="stop when this much time is spent: unfinished runs checkpoint, finished ones are kept in "
                        "the record store; exit 75; the same command with --resume continues")
    s.add_argument("--dry-run", action="store_true",
                   help="run nothing: print per notebook the runs and iterations the preset asks for, those done, "
                        "and the hours left on this machine (from a measured training step)")
    s.add_argument("--publish", action="store_true",
                   help="write the published report in conclusion/ (replacing it) instead of runs/PRESET/report/")
    s.add_argument("--refresh-notebooks", action="store_true",
                   help="for developers: re-run notebooks/ in place with their small defaults (what nbval checks)")
    s.set_defaults(func=cmd_report)
    return p


def _open_standard_streams() -> None:
    """Give a closed stdin, stdout or stderr /dev/null: otherwise the next file opened takes its number,
    and whatever a library prints to it (libjpeg's warnings go to file descriptor 2) lands in that file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def one_line(message: str) -> str:
    """``message`` as one line: a control character (a newline in a file's name, say) written as its
    escape, so the name printed is the name on disk rather than one with a space where the newline was."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)


def main(argv: list[str] | None = None) -> int:
    from .data.celeba import cache_size_mb
    from .errors import BudgetSpent, Interrupted
    from .nn.parallel import threads
    from .nn.tuning import setting

    _open_standard_streams()
    parser = build_parser()
    args, others = parser.parse_known_args(argv)
    if others and args.func is not cmd_lab:  # only lab passes arguments on (to JupyterLab)
        parser.error(f"unrecognized arguments: {' '.join(others)}")
    args.jupyter_args = others
    try:
        threads(), cache_size_mb(), setting()  # settings from the environment, checked before any work
        args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()
    except BudgetSpent as e:
        print(f"srlib: {e}", file=sys.stderr)
        return EXIT_BUDGET_SPENT
    except SrlibError as e:
        message = one_line(str(e))
        print(f"srlib: error: {message}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"srlib: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("srlib: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``srlib ... | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    return 0
