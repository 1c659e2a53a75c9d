"""Command line: ``python -m srlib {upscale,evaluate,train,export,import-study-weights,report} --help``.

Exit codes: 0 success, 1 a user-facing error (printed as one line), 2 bad usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from .errors import SrlibError

def load_model(weights: str | None):
    """The model in ``weights``, or the shipped default model when None."""
    from .model import SRModel

    return SRModel.from_checkpoint(weights) if weights else SRModel.default()


def writable_dir(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".srlib-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SrlibError(f"output folder {path} is not writable ({e.strerror}); choose another with -o/--out") from None
    return path


def cmd_upscale(args) -> None:
    from tqdm.auto import tqdm

    from .data import read_image
    from .model import check_output_size

    model = load_model(args.weights)
    out_dir = writable_dir(args.out)
    for name in args.images:
        path = Path(name)
        img = read_image(path)
        h, w = img.shape[:2]
        check_output_size(h, w, str(path))
        grey = bool(np.all(img[..., 0] == img[..., 1]) and np.all(img[..., 1] == img[..., 2]))
        with tqdm(total=h * w, unit="px", unit_scale=True, desc=path.name, leave=False,
                  disable=h * w < 1_000_000) as bar:
            hr = model.upscale(img, progress=bar.update)
        if grey:
            hr = hr[..., 0] if len(model.nets) == 1 else cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY)
        target = out_dir / f"{path.stem}_x4.png"
        if not cv2.imwrite(str(target), hr):
            raise SrlibError(f"could not write {target}; check the output folder")
        print(target)


def cmd_evaluate(args) -> None:
    import pandas as pd

    from .data import CelebA, evaluation_subset, load_pairs
    from .evaluate import BASELINES, evaluate, summarize
    from .sample import resolve_data_dir

    methods = dict(BASELINES)
    for w in args.weights or []:
        name, _, path = w.rpartition("=") if "=" in w else (Path(w).stem, "", w)
        methods[name] = load_model(path)
    if args.default_model:
        methods["srlib_default"] = load_model(None)
    data = resolve_data_dir(args.data)
    paths = evaluation_subset(CelebA.open(data).split(args.split), args.limit)
    pairs = load_pairs(paths, desc=f"loading {args.split}")
    scores = evaluate(pairs, methods, crop_border=args.crop_border)
    summary = summarize(scores)
    out = writable_dir(args.out)
    scores.to_csv(out / f"scores_{args.split}.csv", index=False)
    summary.to_csv(out / f"summary_{args.split}.csv")
    with pd.option_context("display.width", 200, "display.precision", 4):
        print(f"{data} / {args.split}: {len(pairs)} images, crop_border={args.crop_border}")
        print(summary.to_string())
    print(f"wrote {out / f'scores_{args.split}.csv'} and {out / f'summary_{args.split}.csv'}")


def cmd_train(args) -> None:
    from .data import CelebA, load_pairs
    from .sample import resolve_data_dir
    from .train import Trainer, get_recipe

    data = CelebA.open(resolve_data_dir(args.data))
    train = load_pairs(data.split("train"), desc="loading train")
    val = load_pairs(data.split("validation"), desc="loading validation")
    out = Path(args.out)
    if out.exists() and not args.resume:
        raise SrlibError(f"{out} exists; pass --resume to continue that run, or choose another --out")
    if out.exists():
        trainer = Trainer.resume(out, train, val)
        print(f"resuming {out} at iteration {trainer.iteration} of {trainer.total}")
    else:
        trainer = Trainer(get_recipe(args.recipe), train, total=args.iterations, seed=args.seed, val=val)
    trainer.run(checkpoint=out, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every)
    if trainer.val is not None:
        print(f"{out}: iteration {trainer.iteration}, validation PSNR {trainer.validate():.2f} dB (30 images)")


def cmd_export(args) -> None:
    from .checkpoint import load_checkpoint, model_only, save_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    save_checkpoint(args.out, model_only(ckpt))
    print(f"wrote {args.out} (weights of {args.checkpoint} at iteration {ckpt.iteration}, no optimizer state)")


def cmd_import(args) -> None:
    from .legacy import import_study_weights

    ckpt = import_study_weights(args.folder, args.out)
    print(f"wrote {args.out} ({len(ckpt.weights)} network(s) from {args.folder})")


def cmd_report(args) -> None:
    from .report import refresh_stored_outputs, run_report

    if args.refresh_notebooks:
        refresh_stored_outputs(args.only)
        return
    times = run_report(args.preset, only=args.only, data=args.data, study_weights=args.study_weights,
                       resume=args.resume)
    print(f"report ({args.preset}) written to conclusion/ in {sum(times.values()):.0f} s")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m srlib", description="4x super-resolution with a NumPy sub-pixel CNN.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("upscale", help="upscale images 4x (any size, colour or grey) to PNG")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if missing)")
    s.add_argument("--weights", metavar="CKPT", help="srlib checkpoint (default: the shipped model)")
    s.set_defaults(func=cmd_upscale)

    s = sub.add_parser("evaluate", help="score baselines and models on a data split; print and write CSV")
    s.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    s.add_argument("--split", default="test", choices=["train", "validation", "test"])
    s.add_argument("--weights", action="append", metavar="[NAME=]CKPT", help="a model to score (repeatable)")
    s.add_argument("--default-model", action="store_true", help="also score the shipped default model")
    s.add_argument("--limit", type=int, metavar="N", help="a fixed, evenly spread subset of N images")
    s.add_argument("--crop-border", type=int, default=0, metavar="PX", help="pixels cut from each side (default 0)")
    s.add_argument("--out", default=".", metavar="DIR", help="where the CSV files go (default: .)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("train", help="train a model with a named recipe (seeded, resumable)")
    s.add_argument("--recipe", default="improved", choices=["study", "improved"])
    s.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    s.add_argument("--iterations", type=int, default=12000, metavar="N", help="iterations of 10 images x 3 channels")
    s.add_argument("--out", required=True, metavar="CKPT", help="checkpoint written during and after training")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    s.add_argument("--checkpoint-every", type=int, default=500, metavar="N")
    s.add_argument("--validate-every", type=int, default=1000, metavar="N", help="validation PSNR every N (0: never)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("import-study-weights", help="convert the 2022 study's W1..W4.pickle safely to a checkpoint")
    s.add_argument("folder", help="folder with W1..W4.pickle, or with B/, G/, R/ folders of them")
    s.add_argument("--out", required=True, metavar="CKPT")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", help="write a checkpoint's model alone (no optimizer state), e.g. to ship it")
    s.add_argument("checkpoint", metavar="CKPT")
    s.add_argument("--out", required=True, metavar="MODEL")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("report", help="run the report's notebooks with papermill into conclusion/")
    s.add_argument("--preset", default="quick", choices=["quick", "medium", "full"],
                   help="quick: embedded sample, minutes; medium: small real CelebA, ~30 min; full: study's counts")
    s.add_argument("--only", action="append", metavar="NOTEBOOK", help="run only this notebook (repeatable)")
    s.add_argument("--data", metavar="DIR", help="CelebA-layout folder (default: data/ or the embedded sample)")
    s.add_argument("--study-weights", metavar="DIR", help="the study's weights folder (e.g. .../weights/many_adam) "
                   "to score the 2022 model in notebooks 02 and 04")
    s.add_argument("--resume", action="store_true", help="continue training runs from their checkpoints in runs/")
    s.add_argument("--refresh-notebooks", action="store_true",
                   help="for developers: re-run notebooks/ in place with their small defaults (what nbval checks)")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("iterations", "limit", "checkpoint_every"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"srlib: error: --{name.replace('_', '-')} must be at least 1, got {value}", file=sys.stderr)
            return 2
    try:
        args.func(args)
    except SrlibError as e:
        print(f"srlib: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("srlib: interrupted", file=sys.stderr)
        return 130
    return 0
