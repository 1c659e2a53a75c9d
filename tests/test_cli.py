"""The command line behaves like a Unix tool: --help, exit codes, one error line, real outputs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import make_celeba, smooth_image
from srlib.checkpoint import load_checkpoint
from srlib.data.celeba import CelebA
from srlib.nn.network import NetConfig, SRNet
from srlib.recipe import RECIPES
from srlib.train import Trainer

ROOT = Path(__file__).resolve().parent.parent


def srlib(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "srlib", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srlib: error:"), r.stderr
    return lines[0]


@pytest.mark.parametrize("cmd", [[], ["upscale"], ["evaluate"], ["train"], ["import-study-weights"], ["report"]])
def test_help(cmd):
    r = srlib(*cmd, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def test_usage_errors_exit_2(tmp_path):
    assert srlib("frobnicate").returncode == 2
    assert srlib("upscale").returncode == 2
    r = srlib("train", "--iterations", "0", "--out", tmp_path / "x.npz")
    assert r.returncode == 2 and "--iterations" in r.stderr


@pytest.fixture(scope="module")
def study_ckpt(tmp_path_factory) -> Path:
    """A small trained-looking checkpoint (real training is covered elsewhere)."""
    from srlib.checkpoint import Checkpoint, save_checkpoint

    net = SRNet(NetConfig(init="he", bias=True, final_relu=False), seed=0)
    path = tmp_path_factory.mktemp("ck") / "m.npz"
    save_checkpoint(path, Checkpoint(config=net.config, weights=[net.weights()],
                                     meta={"model": {"residual": True, "output_scale": 255.0}}))
    return path


def test_upscale_colour_and_grey_any_size(tmp_path, study_ckpt):
    rng = np.random.default_rng(0)
    colour, grey = smooth_image(rng, 50, 70), smooth_image(rng, 300, 180)[..., 0]
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    r = srlib("upscale", tmp_path / "c.png", tmp_path / "g.png", "-o", tmp_path / "out", "--weights", study_ckpt)
    assert r.returncode == 0, r.stderr
    c = cv2.imread(str(tmp_path / "out" / "c_x4.png"), cv2.IMREAD_UNCHANGED)
    g = cv2.imread(str(tmp_path / "out" / "g_x4.png"), cv2.IMREAD_UNCHANGED)
    assert c.shape == (200, 280, 3) and g.shape == (1200, 720)  # the grey one is tiled (LR > TILE px)


def test_upscale_keeps_transparency_and_says_which_frame(tmp_path, study_ckpt):
    from PIL import Image

    from srlib.model import upscale_alpha

    rng = np.random.default_rng(1)
    colour, grey = smooth_image(rng, 30, 40), smooth_image(rng, 30, 40)[..., 0]
    alpha = np.zeros((30, 40), np.uint8)
    alpha[5:25, 8:30] = 255  # an opaque patch on a clear background, as an icon or a logo has
    Image.fromarray(np.dstack([colour[..., ::-1], alpha])).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.dstack([colour[..., ::-1], np.full_like(alpha, 255)])).save(tmp_path / "opaque.png")
    frames = [Image.fromarray(smooth_image(rng, 12, 12)) for _ in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    files = ["rgba.png", "la.png", "opaque.png", "anim.gif"]
    r = srlib("upscale", *[tmp_path / f for f in files], "-o", tmp_path / "out", "--weights", study_ckpt)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == f"srlib: note: {tmp_path / 'anim.gif'} holds 3 frames; upscaling the first"
    out = {f: Image.open(tmp_path / "out" / (Path(f).stem + "_x4.png")) for f in files}
    assert {f: im.mode for f, im in out.items()} == {"rgba.png": "RGBA", "la.png": "LA", "opaque.png": "RGB",
                                                     "anim.gif": "RGB"}
    for f in ("rgba.png", "la.png"):
        np.testing.assert_array_equal(np.asarray(out[f])[..., -1], upscale_alpha(alpha, "study"))
    # the colour is what the same image without transparency gives
    np.testing.assert_array_equal(np.asarray(out["rgba.png"])[..., :3], np.asarray(out["opaque.png"]))


def test_upscale_errors(tmp_path, study_ckpt):
    (tmp_path / "bad.jpg").write_text("nope")
    r = srlib("upscale", tmp_path / "bad.jpg", "-o", tmp_path / "o", "--weights", study_ckpt)
    assert r.returncode == 1 and "bad.jpg" in error_line(r)
    r = srlib("upscale", tmp_path / "bad.jpg", "-o", tmp_path / "o", "--weights", tmp_path / "missing.npz")
    assert r.returncode == 1 and "missing.npz" in error_line(r)
    cv2.imwrite(str(tmp_path / "ok.png"), smooth_image(np.random.default_rng(0), 30, 30))
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = srlib("upscale", tmp_path / "ok.png", "-o", blocker / "sub", "--weights", study_ckpt)
    assert r.returncode == 1 and "not writable" in error_line(r)


def test_evaluate_without_weights_prints_bicubic(tmp_path):
    data = make_celeba(tmp_path / "c", counts=(2, 1, 3))
    r = srlib("evaluate", "--data", data, "--split", "test", "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    assert "bicubic_aligned" in r.stdout and "bicubic_centred" in r.stdout
    assert (tmp_path / "ev" / "summary_test.csv").is_file() and (tmp_path / "ev" / "scores_test.csv").is_file()


def test_evaluate_on_embedded_sample_by_default(tmp_path):
    r = srlib("evaluate", "--split", "test", "--out", tmp_path, "--limit", "3")
    assert r.returncode == 0, r.stderr
    assert "bicubic_aligned" in r.stdout and "3 images" in r.stdout


def test_evaluate_missing_data(tmp_path):
    r = srlib("evaluate", "--data", tmp_path / "nowhere")
    assert r.returncode == 1 and "nowhere" in error_line(r)


def test_train_splits_steps_into_shards_and_resume_keeps_them(tmp_path):
    data = make_celeba(tmp_path / "c", counts=(3, 1, 0))
    args = ["train", "--recipe", "study", "--data", data, "--validate-every", "0", "--out", tmp_path / "run.npz"]
    r = srlib(*args, "--iterations", "2", "--shards", "3")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "run.npz").meta["shards"] == 3
    r = srlib(*args, "--iterations", "4", "--shards", "1", "--resume")  # a resumed run keeps its own
    assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(tmp_path / "run.npz")
    assert ckpt.iteration == 2 and ckpt.meta["shards"] == 3  # --iterations is the new run's; it was done
    r = srlib(*args[:-1], tmp_path / "default.npz", "--iterations", "1", env={"SRLIB_THREADS": "2"})
    assert load_checkpoint(tmp_path / "default.npz").meta["shards"] == 2  # one per worker thread


def test_train_fine_tunes_a_shipped_model_by_name_and_refuses_another_network(tmp_path):
    from srlib.model import SHIPPED

    data = make_celeba(tmp_path / "c", counts=(3, 1, 0))
    args = ["train", "--data", data, "--validate-every", "0", "--iterations", "1", "--init-from", "fast"]
    r = srlib(*args, "--recipe", "photo-fast-40", "--lr", "5e-4", "--out", tmp_path / "tuned.npz")
    assert r.returncode == 0, r.stderr
    meta = load_checkpoint(tmp_path / "tuned.npz").meta
    assert meta["init_from"]["file"] == "fast.npz" and meta["base_lr"] == 5e-4
    r = srlib(*args, "--recipe", "photo-wide", "--out", tmp_path / "other.npz")
    assert r.returncode == 1 and f"--init-from {SHIPPED['fast']}: it holds another network" in error_line(r)
    assert not (tmp_path / "other.npz").exists()


@pytest.mark.slow
def test_train_refuses_to_overwrite_and_kill_resume_matches(tmp_path):
    """A real SIGKILL in the middle of a CLI training run; --resume finishes it with the same weights
    as an uninterrupted run."""
    data = make_celeba(tmp_path / "c", counts=(4, 2, 1))
    args = ["train", "--recipe", "study", "--data", data, "--iterations", "40", "--checkpoint-every", "2",
            "--validate-every", "0", "--seed", "1"]
    full = srlib(*args, "--out", tmp_path / "full.npz")
    assert full.returncode == 0, full.stderr
    again = srlib(*args, "--out", tmp_path / "full.npz")
    assert again.returncode == 1 and "--resume" in error_line(again)

    out = tmp_path / "killed.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "srlib", *map(str, args), "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and load_checkpoint(out).iteration >= 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(out).iteration
    assert 6 <= killed_at < 40, "the run finished before it could be killed"
    r = srlib(*args, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    a, b = load_checkpoint(tmp_path / "full.npz"), load_checkpoint(out)
    assert b.iteration == 40
    for k, v in a.weights[0].items():
        np.testing.assert_array_equal(v, b.weights[0][k])


def test_upscale_and_evaluate_need_no_notebook_packages(tmp_path, celeba):
    """What `pip install .` gives must be enough: the core commands import none of the [report] extra."""
    cv2.imwrite(str(tmp_path / "photo.png"), smooth_image(np.random.default_rng(0), 40, 48))
    blocked = ["matplotlib", "ipywidgets", "IPython", "papermill", "jupyterlab", "nbformat", "dask", "distributed"]
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed (blocked by the test)")
sys.meta_path.insert(0, Block())
from srlib.cli import main
sys.exit(main(sys.argv[1:]))
"""
    for args in (["upscale", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out")],
                 ["evaluate", "--data", str(celeba), "--split", "test", "--out", str(tmp_path / "eval")]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    assert cv2.imread(str(tmp_path / "out" / "photo_x4.png")).shape == (160, 192, 3)


def test_photo_benchmark_scores_extra_models_by_name(tmp_path, pairs):
    data = make_celeba(tmp_path / "c", counts=(1, 2, 1))
    trainer = Trainer(RECIPES["photo"].with_(images=2), pairs, total=1, seed=0)
    trainer.run(progress=False)
    ckpt = trainer.save(tmp_path / "mine.npz")
    r = srlib("photo-benchmark", "--data", data, "--out", tmp_path / "pb", "--compare-with", f"colour={ckpt}",
              "--exclude-subset", "1")
    assert r.returncode == 0, r.stderr
    summary = pd.read_csv(tmp_path / "pb" / "photo_summary_validation.csv")
    assert {"bicubic", "photo model", "colour"} <= set(summary.method) and (summary.images == 1).all()
    scores = pd.read_csv(tmp_path / "pb" / "photo_scores_validation.csv")
    first, second = CelebA.open(data).split("validation")  # --limit 1 would pick the first
    assert set(scores.image) == {second.name}
    again = srlib("photo-benchmark", "--data", data, "--out", tmp_path / "pb")
    assert again.returncode == 1 and "--force" in error_line(again)  # last run's tables are kept
    assert set(pd.read_csv(tmp_path / "pb" / "photo_scores_validation.csv").image) == {second.name}
    everything = srlib("photo-benchmark", "--data", data, "--out", tmp_path / "pb", "--exclude-subset", "2", "--force")
    assert everything.returncode == 1 and "leaves no image" in error_line(everything)
    taken = srlib("photo-benchmark", "--data", data, "--out", tmp_path / "pb", "--compare-with", f"bicubic={ckpt}",
                  "--force")
    assert taken.returncode == 1 and "--compare-with" in error_line(taken) and "baseline" in error_line(taken)


def test_upscale_tells_a_jpeg_aware_model_the_file_s_jpeg_quality(tmp_path):
    from srlib.checkpoint import Checkpoint, save_checkpoint

    config = RECIPES["photo"].net
    net = SRNet(config, seed=0)
    weights = {k: (np.random.default_rng(1).uniform(-0.5, 0.5, v.shape).astype(v.dtype) if k.endswith("jpeg") else v)
               for k, v in net.weights().items()}
    ckpt = save_checkpoint(tmp_path / "m.npz", Checkpoint(config=config, weights=[weights], meta={
        "model": {"residual": True, "output_scale": 255.0, "grid": "centre"}}))
    img = smooth_image(np.random.default_rng(2), 48, 40)
    cv2.imwrite(str(tmp_path / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    cv2.imwrite(str(tmp_path / "b.png"), cv2.imread(str(tmp_path / "a.jpg")))  # the same pixels, not a JPEG file
    cv2.imwrite(str(tmp_path / "c.png"), img)  # never compressed
    runs = {"auto": ("a.jpg", "auto"), "told": ("b.png", "75"), "png": ("b.png", "auto"), "none": ("a.jpg", "none"),
            "plain": ("c.png", "auto"), "plain-none": ("c.png", "none")}
    out = {}
    for name, (src, q) in runs.items():
        r = srlib("upscale", tmp_path / src, "-o", tmp_path / name, "--weights", ckpt, "--jpeg-quality", q)
        assert r.returncode == 0, r.stderr
        out[name] = cv2.imread(str(tmp_path / name / f"{Path(src).stem}_x4.png"))
    np.testing.assert_array_equal(out["auto"], out["told"])
    np.testing.assert_array_equal(out["png"], out["told"])  # the quality read from the PNG's pixels
    np.testing.assert_array_equal(out["plain"], out["plain-none"])
    assert np.abs(out["auto"].astype(int) - out["none"]).max() > 0
    bad = srlib("upscale", tmp_path / "a.jpg", "-o", tmp_path / "x", "--jpeg-quality", "0")
    assert bad.returncode == 2 and "1..100" in bad.stderr


def test_reproduce_says_the_same_bits_or_where_a_record_differs(tmp_path):
    """`srlib reproduce` on a fresh record: the same bits, exit 0; on a record whose loss was edited and
    resealed: one line per record saying from which iteration it differs, exit 1."""
    import json

    from srlib.report import notebook
    from srlib.report import record as record_file
    from srlib.report.sweep import Task, run_tasks

    celeba = make_celeba(tmp_path / "celeba")
    task = Task("run", RECIPES["study"].with_(images=2), 3, seed=0)
    run_tasks([task], tmp_path / "runs", notebook.data_source(str(celeba), "validation", 2), scheduler="serial")
    good = tmp_path / "runs" / "run.json"
    r = srlib("reproduce", good, "--data", celeba)
    assert r.returncode == 0 and r.stdout.strip() == f"{good}: the same bits (training loss at every iteration, every image's score)"
    edited = json.loads(good.read_text())
    edited["loss"][1] += 1.0
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(record_file.seal({k: v for k, v in edited.items() if k != record_file.SEAL})))
    r = srlib("reproduce", bad, "--data", celeba)
    assert r.returncode == 1 and r.stdout.strip().startswith(f"{bad}: differs: training loss differs from iteration 2 (")
