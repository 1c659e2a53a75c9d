"""The papers' x4 protocol: MATLAB's bicubic imresize, the benchmark's scores and published rows, and
photo folders as training data (split by name, random patches, training and resuming on them)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from srlib.data.folders import PATCH, PhotoPatches, in_validation, list_photos, split_photos, validation_pairs
from srlib.data.matlab import imresize
from srlib.errors import SrlibError
from srlib.evaluation.benchmark import bicubic, run_benchmark, summarize
from srlib.recipe import RECIPES
from srlib.train import Trainer
from test_cli import error_line, srlib

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "shared" / "general" / "benchmarks"


def test_imresize_is_pillows_antialiased_bicubic_away_from_the_borders():
    """Pillow's bicubic is MATLAB's kernel (a = -0.5) widened 4x when shrinking; it renormalises at the
    borders where MATLAB mirrors, so they agree inside only (to a grey level: each rounds its own way)."""
    img = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)  # detail up to the borders
    ours = imresize(img, 1 / 4)
    pillow = np.asarray(Image.fromarray(img).resize((32, 24), Image.Resampling.BICUBIC))
    assert ours.shape == (24, 32, 3) and ours.dtype == np.uint8
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(ours[inner].astype(int) - pillow[inner]).max() <= 1
    assert np.abs(ours.astype(int) - pillow).max() > 1  # the borders do differ: mirrored, not renormalised


def test_imresize_keeps_constants_and_matches_its_float_path():
    flat = np.full((20, 28, 3), 77, np.uint8)
    assert (imresize(flat, 1 / 4) == 77).all() and (imresize(flat, 4) == 77).all()
    img = smooth_image(np.random.default_rng(1), 40, 52)
    as_float = np.clip(imresize(img.astype(np.float64), 1 / 4), 0, 255)  # the float path neither rounds nor clips
    # uint8 rounds after each pass: half a level after the first, carried through weights summing to ~1.1
    assert np.abs(imresize(img, 1 / 4).astype(float) - as_float).max() <= 1.5
    assert imresize(img, 4).shape == (160, 208, 3)


def test_imresize_mirrors_at_the_border():
    """MATLAB pads symmetrically: a 1-D ramp upscaled keeps its end samples' neighbourhood mirrored, so
    the first output pixels equal those of the ramp with its first sample repeated before it."""
    ramp = np.arange(0, 80, 10, dtype=np.float64)[None, :]
    out = imresize(ramp, 4)[0]
    padded = imresize(np.concatenate([ramp[:, 1::-1], ramp], axis=1), 4)[0][8:]
    np.testing.assert_allclose(out[:4], padded[:4], atol=1e-9)


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="needs ../shared/general/benchmarks (the field's test sets)")
def test_published_bicubic_rows_are_reproduced():
    """Set5 28.42 and Set14 26.00 dB in the papers' tables: this protocol within 0.1 dB."""
    scores = run_benchmark({s: BENCHMARKS / s for s in ("Set5", "Set14")}, {"bicubic": bicubic})
    means = scores.groupby("set").psnr_y.mean()
    assert abs(means["Set5"] - 28.42) < 0.1 and abs(means["Set14"] - 26.00) < 0.1, means


def test_summary_pairs_each_method_with_bicubic_and_adds_the_published_rows(tmp_path):
    folder = tmp_path / "Set5"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), smooth_image(rng, 50, 61))  # cropped to 48x60
    nearest = {"bicubic": bicubic, "nearest": lambda lr: np.repeat(np.repeat(lr, 4, 0), 4, 1)}
    scores = run_benchmark({"Set5": folder}, nearest)
    assert len(scores) == 6 and set(scores.method) == {"bicubic", "nearest"}
    summary = summarize(scores).set_index("method")
    assert summary.loc["bicubic", "minus_bicubic"] == 0
    assert summary.loc["nearest", "minus_bicubic"] < 0 and summary.loc["nearest", "above_bicubic"] == 0
    assert summary.loc["VDSR, published (Kim et al., CVPR 2016)", "psnr_y"] == 31.35
    assert summary.loc["VDSR, published (Kim et al., CVPR 2016)", "minus_bicubic"] == pytest.approx(31.35 - 28.42)


def write_photos(folder: Path, n: int, size=(200, 260), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"photo{i:02d}.png" for i in range(n)]
    for p in paths:
        cv2.imwrite(str(p), smooth_image(rng, *size))
    return paths


def test_the_validation_split_is_cut_by_name_whatever_the_folder(tmp_path):
    write_photos(tmp_path / "a" / "sub", 30)
    write_photos(tmp_path / "b", 2, size=(100, 120))  # too small for a patch: in neither split
    names = [name for _, name in list_photos([tmp_path / "a"])]
    assert names[0] == "sub/photo00.png" and names == sorted(names)
    val = split_photos([tmp_path / "a", tmp_path / "b"], "validation")
    train = split_photos([tmp_path / "a", tmp_path / "b"], "train")
    assert not set(val) & set(train) and len(val) + len(train) == 30
    assert [p.name for p in val] == [f"photo{i:02d}.png" for i in range(30) if in_validation(f"sub/photo{i:02d}.png")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrlibError, match="no photos found"):
        list_photos([tmp_path / "empty"])


def test_the_benchmark_scores_a_training_folder_s_validation_split_alone(tmp_path):
    """Models are compared where they are chosen: the validation photos of the folder they trained on."""
    write_photos(tmp_path / "train", 30)
    scores = run_benchmark({"train": tmp_path / "train"}, {"bicubic": bicubic}, split="validation")
    val = split_photos([tmp_path / "train"], "validation")
    assert 0 < len(val) < 30 and sorted(scores.image) == sorted(p.name for p in val)


def test_patches_are_drawn_from_the_rng_alone(tmp_path):
    paths = write_photos(tmp_path, 3)
    cached, uncached = PhotoPatches(paths), PhotoPatches(paths, cache_mb=0)
    a = cached.crops(np.array([0, 1, 1, 2]), np.random.default_rng(5))
    b = uncached.crops(np.array([0, 1, 1, 2]), np.random.default_rng(5))
    assert a.shape == (4, PATCH, PATCH, 3) and a.dtype == np.uint8 and (a == b).all()
    assert not (a[1] == a[2]).all()  # the same photo twice: two different patches
    pairs = validation_pairs(paths)
    assert pairs.hr.shape == (3, PATCH, PATCH, 3) and pairs.lr.shape == (3, PATCH // 4, PATCH // 4, 3)


def test_training_on_photo_folders_resumes_bit_for_bit(tmp_path):
    paths = write_photos(tmp_path / "photos", 4)
    recipe = RECIPES["photo-fast-40"].with_(images=2)
    whole = Trainer(recipe, PhotoPatches(paths), total=4, seed=3)
    whole.run(progress=False)
    half = Trainer(recipe, PhotoPatches(paths), total=4, seed=3)
    half.run(until=2, checkpoint=tmp_path / "run.npz", progress=False)
    resumed = Trainer.resume(tmp_path / "run.npz", PhotoPatches(paths))
    resumed.run(progress=False)
    assert resumed.history.loss == whole.history.loss
    with pytest.raises(SrlibError, match="study's degradation"):
        Trainer(RECIPES["improved"], PhotoPatches(paths), total=2)


def test_train_and_benchmark_from_the_command_line(tmp_path):
    write_photos(tmp_path / "photos", 20)  # photo15.png is in the validation split
    r = srlib("train", "--recipe", "photo-fast-40", "--photos", tmp_path / "photos", "--iterations", 2,
              "--validate-every", 0, "--out", tmp_path / "run.npz")
    assert r.returncode == 0, r.stderr
    assert "training photos" in r.stdout and (tmp_path / "run.npz").is_file()
    sets = tmp_path / "Set14"
    write_photos(sets, 2, size=(40, 44))
    r = srlib("benchmark", sets, "--models", "fast", "--weights", f"mine={tmp_path / 'run.npz'}", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "srlib fast" in r.stdout and "mine" in r.stdout and "EDSR" in r.stdout
    assert (tmp_path / "benchmark_summary.csv").is_file()
    again = srlib("benchmark", sets, "--out", tmp_path)
    assert again.returncode == 1 and "--force" in error_line(again)
    missing = srlib("benchmark", tmp_path / "nowhere", "--out", tmp_path, "--force")
    assert missing.returncode == 1 and "not a folder" in error_line(missing)


def test_a_recipe_can_train_on_the_papers_degradation(tmp_path):
    """``degradation="bicubic"``: every patch's LR is MATLAB's imresize of it, as the benchmark's test images."""
    from srlib.data.photo import matlab_bicubic
    from srlib.train import draw_batch

    recipe = RECIPES["photo-fast-40"].with_(degradation="bicubic", images=3)
    lr, hr, strength = draw_batch(recipe, PhotoPatches(write_photos(tmp_path, 2)), np.random.default_rng(0))
    assert all(np.array_equal(low, matlab_bicubic(high)) for low, high in zip(lr, hr)) and not strength.any()
