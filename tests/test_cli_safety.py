"""The command line never overwrites what a user owns, never crashes, and checks its inputs and outputs
before any work: duplicate or self-overwriting outputs, non-UTF-8 names, a full disk, SIGTERM, bad values."""
from __future__ import annotations

import errno
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_celeba, smooth_image
from srlib import cli, files
from srlib.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from srlib.nn.network import NetConfig, SRNet
from test_cli import ROOT, error_line, srlib


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory) -> Path:
    net = SRNet(NetConfig(), seed=0)
    return save_checkpoint(tmp_path_factory.mktemp("m") / "m.npz", Checkpoint(config=net.config, weights=[net.weights()]))


def image(path: Path, seed: int = 0) -> Path:
    cv2.imwrite(str(path), smooth_image(np.random.default_rng(seed), 20, 24))
    return path


def test_upscale_refuses_two_inputs_with_one_output_name(tmp_path, model_ckpt):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = image(tmp_path / "a" / "x.png"), image(tmp_path / "b" / "x.png", 1)
    r = srlib("upscale", a, b, "-o", tmp_path / "out", "--weights", model_ckpt)
    assert r.returncode == 1 and "would both be written" in error_line(r)
    assert not any((tmp_path / "out").iterdir())  # refused before any work


def test_upscale_never_overwrites_its_inputs_or_existing_files(tmp_path, model_ckpt):
    p, p4 = image(tmp_path / "p.png"), image(tmp_path / "p_x4.png", 1)
    before = p4.read_bytes()
    r = srlib("upscale", p, p4, "-o", tmp_path, "--weights", model_ckpt)
    assert r.returncode == 1 and "is one of the input images" in error_line(r)
    assert p4.read_bytes() == before
    out = tmp_path / "out"
    assert srlib("upscale", p, "-o", out, "--weights", model_ckpt).returncode == 0
    r = srlib("upscale", p, "-o", out, "--weights", model_ckpt)
    assert r.returncode == 1 and "--force" in error_line(r)
    assert srlib("upscale", p, "-o", out, "--weights", model_ckpt, "--force").returncode == 0


def test_upscale_non_utf8_file_name(tmp_path, model_ckpt):
    name = os.fsdecode(b"caf\xe9\xff.png")  # Latin-1 bytes: not valid UTF-8
    src = image(tmp_path / "src.png")
    os.rename(src, tmp_path / name)
    r = subprocess.run([sys.executable, "-m", "srlib", "upscale", os.fsencode(tmp_path / name), "-o",
                        os.fsencode(tmp_path / "out"), "--weights", str(model_ckpt)],
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 0, r.stderr
    target = tmp_path / "out" / os.fsdecode(b"caf\xe9\xff_x4.png")
    assert os.fsencode(target) in r.stdout and cv2.imdecode(np.fromfile(target, np.uint8), 1).shape == (80, 96, 3)


def test_full_disk_keeps_the_previous_output_and_leaves_no_temporary(tmp_path, model_ckpt, monkeypatch, capsys):
    p = image(tmp_path / "p.png")
    out = tmp_path / "out"
    assert cli.main(["upscale", str(p), "-o", str(out), "--weights", str(model_ckpt)]) == 0
    before = (out / "p_x4.png").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    capsys.readouterr()
    assert cli.main(["upscale", str(p), "-o", str(out), "--weights", str(model_ckpt), "--force"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left" in err[0] and "p_x4.png" in err[0]
    assert (out / "p_x4.png").read_bytes() == before and sorted(out.iterdir()) == [out / "p_x4.png"]


def test_stale_temporary_from_a_killed_write_is_removed(tmp_path, model_ckpt):
    stale = tmp_path / ".m.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "m.npz", load_checkpoint(model_ckpt))
    assert not stale.exists()


@pytest.mark.parametrize("args,message", [
    (["train", "--seed", "-1", "--out", "x.npz"], "must be at least 0"),
    (["train", "--validate-every", "-1", "--out", "x.npz"], "must be at least 0"),
    (["train", "--iterations", "0", "--out", "x.npz"], "must be at least 1"),
    (["train", "--lr", "nan", "--out", "x.npz"], "must be a number in (0, 10]"),
    (["train", "--lr", "0", "--out", "x.npz"], "must be a number in (0, 10]"),
    (["train", "--lr", "fast", "--out", "x.npz"], "is not a number"),
    (["evaluate", "--crop-border", "-5"], "must be at least 0"),
])
def test_bad_values_are_usage_errors(args, message):
    r = srlib(*args)
    assert r.returncode == 2 and message in r.stderr


def test_evaluate_refuses_crop_border_too_large_and_clashing_names(tmp_path, model_ckpt):
    data = make_celeba(tmp_path / "c", counts=(1, 1, 2))
    r = srlib("evaluate", "--data", data, "--crop-border", "100", "--out", tmp_path / "e")
    assert r.returncode == 1 and "crop border 100 must be 0..82" in error_line(r)
    for weights, why in [("nearest=" + str(model_ckpt), "a baseline's name"), ("", "empty")]:
        r = srlib("evaluate", "--data", data, "--weights", weights, "--out", tmp_path / "e")
        assert r.returncode == 1 and why in error_line(r)
    r = srlib("evaluate", "--data", data, "--weights", f"m={model_ckpt}", "--weights", f"m={model_ckpt}",
              "--out", tmp_path / "e")
    assert r.returncode == 1 and "already taken" in error_line(r)


def test_empty_weights_is_refused_not_the_default_model(tmp_path):
    r = srlib("upscale", image(tmp_path / "p.png"), "-o", tmp_path / "o", "--weights", "")
    assert r.returncode == 1 and "--weights is empty" in error_line(r)


def test_outputs_that_are_folders_or_unwritable_fail_before_work(tmp_path, model_ckpt):
    (tmp_path / "dir.npz").mkdir()
    r = srlib("export", model_ckpt, "--out", tmp_path / "dir.npz")
    assert r.returncode == 1 and "is a folder" in error_line(r)
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"a file the user owns")
    r = srlib("export", model_ckpt, "--out", mine)
    assert r.returncode == 1 and "--force" in error_line(r) and mine.read_bytes() == b"a file the user owns"
    assert srlib("export", model_ckpt, "--out", mine, "--force").returncode == 0
    r = srlib("train", "--out", tmp_path / "dir.npz")
    assert r.returncode == 1 and "is a folder" in error_line(r)
    blocker = tmp_path / "file"
    blocker.write_text("")
    t0 = time.time()
    r = srlib("train", "--data", tmp_path / "no-data-needed-yet", "--out", blocker / "run.npz")
    assert r.returncode == 1 and "not writable" in error_line(r) and time.time() - t0 < 30


def test_broken_pipe_is_quiet(tmp_path, model_ckpt):
    r = subprocess.run(f"{sys.executable} -m srlib --help | head -c 1", shell=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True, timeout=60)
    assert "Traceback" not in r.stderr
    data = make_celeba(tmp_path / "c", counts=(1, 1, 2))
    r = subprocess.run(f"{sys.executable} -m srlib evaluate --data {data} --out {tmp_path} | head -c 1",
                       shell=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                       timeout=120)
    assert "Traceback" not in r.stderr and "Broken pipe" not in r.stderr, r.stderr


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_143(tmp_path):
    """SIGTERM mid-run saves the last whole iteration and exits 143; --resume then finishes the run with
    the weights of an uninterrupted one."""
    data = make_celeba(tmp_path / "c", counts=(4, 2, 1))
    args = ["train", "--recipe", "study", "--data", data, "--iterations", "60", "--checkpoint-every", "1000",
            "--validate-every", "0", "--seed", "2"]
    full = srlib(*args, "--out", tmp_path / "full.npz")
    assert full.returncode == 0, full.stderr
    out = tmp_path / "run.npz"
    proc = subprocess.Popen([sys.executable, "-m", "srlib", *map(str, args), "--out", str(out)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    # Wait (polling its progress bar, not a fixed sleep) until a few iterations are done: checkpoints
    # come only every 1000, so the one SIGTERM writes is the only one.
    seen, deadline = b"", time.monotonic() + 120
    while not re.search(rb" ([3-9]|[1-5]\d)/60 ", seen) and time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1.0)[0]:
            seen += os.read(proc.stderr.fileno(), 4096)
    proc.send_signal(signal.SIGTERM)
    err = (seen + proc.communicate(timeout=60)[1]).decode(errors="replace")
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    stopped_at = load_checkpoint(out).iteration
    assert 0 < stopped_at < 60
    assert srlib(*args, "--out", out, "--resume").returncode == 0
    a, b = load_checkpoint(tmp_path / "full.npz"), load_checkpoint(out)
    for k, v in a.weights[0].items():
        np.testing.assert_array_equal(v, b.weights[0][k])


def test_report_checks_its_inputs_before_running_anything(tmp_path):
    data = make_celeba(tmp_path / "c", counts=(1, 1, 1))
    t0 = time.time()
    r = srlib("report", "--data", data, "--study-weights", tmp_path / "bogus")
    assert r.returncode == 1 and "bogus" in error_line(r) and time.time() - t0 < 30
    r = srlib("report", "--data", tmp_path / "nowhere")
    assert r.returncode == 1 and "nowhere" in error_line(r)


def test_training_memory_does_not_grow_with_the_split(tmp_path):
    """train streams its split: 5x more images, the same peak memory (the cache is set small here)."""
    from test_hostile_inputs import probe

    small = make_celeba(tmp_path / "small", counts=(80, 2, 0))
    large = make_celeba(tmp_path / "large", counts=(400, 2, 0))
    args = ["train", "--recipe", "study", "--iterations", "2", "--validate-every", "0"]
    env_cache = {"SRLIB_CACHE_MB": "2"}
    results = probe(tmp_path, [args + ["--data", str(small), "--out", str(tmp_path / "s.npz")],
                               args + ["--data", str(large), "--out", str(tmp_path / "l.npz")]], env=env_cache)
    assert [r["rc"] for r in results] == [0, 0], results
    # Loading the large split into memory would take 400 x 98 kB x 2 (list + stacked array) = 78 MB more.
    assert results[1]["peak_mib"] - results[0]["peak_mib"] < 15, results


def test_upscale_grid_ensemble_and_compare(tmp_path, model_ckpt):
    p = image(tmp_path / "p.png")
    r = srlib("upscale", p, "-o", tmp_path / "o", "--weights", model_ckpt, "--grid", "centre")
    assert r.returncode == 1 and "trained for the study grid" in error_line(r)
    r = srlib("upscale", p, "-o", tmp_path / "o", "--weights", model_ckpt, "--ensemble")
    assert r.returncode == 1 and "centre grid" in error_line(r)
    r = srlib("upscale", p, "-o", tmp_path / "o", "--weights", model_ckpt, "--compare")
    assert r.returncode == 0, r.stderr
    compare = cv2.imread(str(tmp_path / "o" / "p_x4_compare.png"))
    assert compare.shape == (80, 3 * 96 + 16, 3)
    r = srlib("upscale", p, "-o", tmp_path / "o", "--weights", model_ckpt, "--compare")
    assert r.returncode == 1 and "--force" in error_line(r)


def test_upscale_picks_a_shipped_model_by_name(tmp_path, model_ckpt):
    p = image(tmp_path / "p.png")
    r = srlib("upscale", p, "-o", tmp_path / "o", "--model", "study")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "o" / "p_x4.png")).shape == (80, 96, 3)
    r = srlib("upscale", p, "-o", tmp_path / "o2", "--model", "photo", "--grid", "study")
    assert r.returncode == 1 and "the shipped photo model was trained for the centre grid" in error_line(r)
    r = srlib("upscale", p, "-o", tmp_path / "o3", "--model", "study", "--weights", model_ckpt)
    assert r.returncode == 1 and "not both" in error_line(r)
    r = srlib("upscale", p, "-o", tmp_path / "o5", "--model", "fast")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "o5" / "p_x4.png")).shape == (80, 96, 3)
    r = srlib("upscale", p, "-o", tmp_path / "o4", "--model", "best")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_comparison_names_the_model_and_grid_and_leaves_its_inputs_alone():
    lr = smooth_image(np.random.default_rng(0), 20, 24)
    result = np.zeros((80, 96, 3), np.uint8)
    panel = cli.comparison(lr, result, "centre", "photo model")
    assert not result.any() and panel.shape == (80, 3 * 96 + 16, 3)
    assert panel[:, -96:].any()  # the label is drawn on a copy


def test_two_trainings_on_one_out_cannot_both_run(tmp_path, celeba):
    """The second of two ``train --out same.npz`` started together is refused in one line, rather than
    both running and one run's checkpoints silently replacing the other's; the claim leaves no file."""
    from srlib.files import exclusive_claim

    out = tmp_path / "same.npz"
    with exclusive_claim(out, "--out"):
        r = srlib("train", "--data", celeba, "--iterations", 2, "--validate-every", 0, "--out", out)
        assert r.returncode == 1 and "another srlib command is writing it" in error_line(r)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["celeba"]
    r = srlib("train", "--data", celeba, "--iterations", 2, "--validate-every", 0, "--out", out)
    assert r.returncode == 0 and out.is_file(), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["celeba", "same.npz"]


def test_a_file_name_with_a_newline_is_named_as_it_is(tmp_path):
    """The one error line writes a control character in a name as its escape, not as a space: the file named is
    the file on disk."""
    bad = tmp_path / "a\nb.npz"
    bad.write_bytes(b"not a checkpoint")
    r = srlib("export", bad, "--out", tmp_path / "out.npz")
    assert r.returncode == 1 and "a\\nb.npz" in error_line(r)
