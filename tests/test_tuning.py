"""Convolution paths measured per machine (``tuning.py``): cached, re-measured when the cache is
damaged, looked up only when a network first needs them, recorded by training runs and kept on resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from srlib import cli
from srlib.checkpoint import load_checkpoint, save_checkpoint
from srlib.errors import SrlibError
from srlib.nn import tuning
from srlib.nn.layers import OPS, PATHS, fixed_paths
from srlib.nn.network import NetConfig, SRNet
from srlib.recipe import Recipe
from srlib.train import Trainer

SMALL = Recipe(name="small", images=2)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, a small timing batch and no choices remembered in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tuning, "BATCH", (2, 10, 10))
    monkeypatch.setattr(tuning, "_memo", {})
    return tmp_path / "cache" / "srlib" / "conv_paths.json"


def fake_times(winner: str):
    """A ``measure`` that makes ``winner`` the fastest path of every operation, and counts its calls."""
    calls = []

    def measure(c_in, c_out, k, dtype="float32", rounds=3):
        calls.append((c_in, c_out, k, dtype))
        return {op: {p: (1.0 if p == winner else 5.0) for p in PATHS if p != "winograd" or k == 3} for op in OPS}
    return measure, calls


def test_a_layer_is_timed_once_then_read_from_the_cache(cache, monkeypatch):
    paths = tuning.layer_paths(8, 4, 3)
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert entry["paths"] == paths
    for op in OPS:  # every path of every operation was timed, and the fastest kept
        assert set(entry["ms"][op]) == set(PATHS) and all(t > 0 for t in entry["ms"][op].values())
        assert paths[op] == min(entry["ms"][op], key=entry["ms"][op].get)
    measure, calls = fake_times("im2col")
    monkeypatch.setattr(tuning, "measure", measure)
    monkeypatch.setattr(tuning, "_memo", {})  # a new process: the file answers
    assert tuning.layer_paths(8, 4, 3) == paths and calls == []
    assert tuning.layer_paths(8, 4, 3, retune=True) == dict.fromkeys(OPS, "im2col") and len(calls) == 1
    assert json.loads(cache.read_text())[tuning._key(8, 4, 3, "float32", tuning.threads())][
        "paths"] == dict.fromkeys(OPS, "im2col")


@pytest.mark.parametrize("content", [b"\x00garbage", b"[1, 2]", b'{"x": 1}', b"[" * 100_000, "winograd for 5x5", "unknown path"])
def test_a_damaged_cache_is_measured_again(cache, monkeypatch, content):
    measure, calls = fake_times("shifted")
    monkeypatch.setattr(tuning, "measure", measure)
    k = 5 if content == "winograd for 5x5" else 3
    if isinstance(content, str):
        bad = dict.fromkeys(OPS, "winograd" if k == 5 else "fft")
        content = json.dumps({tuning._key(8, 4, k, "float32", tuning.threads()): {"paths": bad}}).encode()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    assert tuning.layer_paths(8, 4, k) == dict.fromkeys(OPS, "shifted") and len(calls) == 1
    assert tuning.layer_paths(8, 4, k) == dict.fromkeys(OPS, "shifted") and len(calls) == 1  # remembered


def test_an_unwritable_cache_folder_still_gives_a_choice(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    monkeypatch.setattr(tuning, "_memo", {})
    measure, calls = fake_times("im2col")
    monkeypatch.setattr(tuning, "measure", measure)
    assert tuning.layer_paths(8, 4, 3) == dict.fromkeys(OPS, "im2col")


def test_a_tuned_network_looks_its_paths_up_when_first_needed(cache, monkeypatch):
    measure, calls = fake_times("winograd")
    monkeypatch.setattr(tuning, "measure", measure)
    monkeypatch.setenv("SRLIB_CONV_PATHS", "tuned")
    net = SRNet(NetConfig())
    assert calls == []  # building a network (e.g. to list its parameters) measures nothing
    paths = net.conv_paths()
    assert paths[0] == dict.fromkeys(OPS, "im2col")  # winograd is for 3x3 kernels only
    assert paths[1:] == [dict.fromkeys(OPS, "winograd")] * 3
    assert sorted(calls) == sorted([(1, 64, 5, "float32"), (64, 32, 3, "float32"), (32, 32, 3, "float32"),
                                    (32, 16, 3, "float32")])
    monkeypatch.setenv("SRLIB_CONV_PATHS", "im2col")
    assert SRNet(NetConfig()).conv_paths() == [dict.fromkeys(OPS, "im2col")] * 4


def test_a_bad_setting_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("SRLIB_CONV_PATHS", "fastest")
    with pytest.raises(SrlibError, match="SRLIB_CONV_PATHS='fastest' is not one of tuned, fixed, im2col"):
        SRNet(NetConfig())
    assert cli.main(["tune"]) == 1
    assert "SRLIB_CONV_PATHS" in capsys.readouterr().err


MIXED = [dict.fromkeys(OPS, "im2col"), {"forward": "shifted", "weight_grad": "winograd", "input_grad": "im2col"},
         {"forward": "winograd", "weight_grad": "shifted", "input_grad": "winograd"}, dict.fromkeys(OPS, "shifted")]


def test_a_run_records_its_paths_and_keeps_them_on_resume(tmp_path, pairs, monkeypatch):
    full = Trainer(SMALL, pairs, total=6, seed=1, conv_paths=MIXED)
    full.run(progress=False)
    ck = tmp_path / "run.npz"
    first = Trainer(SMALL, pairs, total=6, seed=1, conv_paths=MIXED)
    first.run(until=3, checkpoint=ck, progress=False)
    assert load_checkpoint(ck).meta["conv_paths"] == MIXED
    monkeypatch.setenv("SRLIB_CONV_PATHS", "im2col")  # what this machine would choose now
    resumed = Trainer.resume(ck, pairs)
    assert resumed.conv_paths == MIXED
    resumed.run(progress=False)
    weights = full.model.nets[0].weights()
    assert resumed.history.loss == full.history.loss
    for name, w in resumed.model.nets[0].weights().items():
        np.testing.assert_array_equal(w, weights[name])  # the same bits
    other = Trainer(SMALL, pairs, total=6, seed=1)
    other.run(progress=False)
    assert other.conv_paths == [dict.fromkeys(OPS, "im2col")] * 4
    others = other.model.nets[0].weights()
    assert any(not np.array_equal(w, weights[name]) for name, w in others.items())  # other paths round otherwise
    for name, w in others.items():
        np.testing.assert_allclose(w, weights[name], rtol=1e-4, atol=1e-7)


def test_a_checkpoint_from_before_paths_were_recorded_resumes_with_the_fixed_rule(tmp_path, pairs, monkeypatch):
    trainer = Trainer(SMALL, pairs, total=4, seed=1, conv_paths="im2col")
    ckpt = trainer.checkpoint()
    del ckpt.meta["conv_paths"]
    save_checkpoint(tmp_path / "old.npz", ckpt)
    resumed = Trainer.resume(tmp_path / "old.npz", pairs)
    c_in = (1, 64, 32, 32)
    assert resumed.conv_paths == [fixed_paths(a, b) for a, b in zip(c_in, (64, 32, 32, 16))]


@pytest.mark.parametrize("paths", [MIXED[:3], "im2col", [dict.fromkeys(OPS, "winograd")] * 4,
                                   [{"forward": "im2col"}] * 4, [dict.fromkeys(OPS, "fft")] * 4])
def test_a_checkpoint_with_bad_paths_is_one_line(tmp_path, pairs, paths):
    ckpt = Trainer(SMALL, pairs, total=4, seed=1, conv_paths="im2col").checkpoint()
    ckpt.meta["conv_paths"] = paths
    save_checkpoint(tmp_path / "bad.npz", ckpt)
    with pytest.raises(SrlibError, match="bad.npz is not usable") as e:
        load_checkpoint(tmp_path / "bad.npz")
    assert "\n" not in str(e.value)


def test_tune_measures_again_for_one_thread_and_for_all(cache, monkeypatch):
    measure, calls = fake_times("shifted")
    monkeypatch.setattr(tuning, "measure", measure)
    monkeypatch.setattr(tuning, "threads", lambda: 2)
    table = tuning.tune([(8, 4, 3, "float32"), (1, 8, 5, "float32")])
    assert len(calls) == 4 and list(table.threads.unique()) == [1, 2]
    assert len(table) == 2 * 2 * 3 and set(table.chosen) == {"shifted"}
    assert table[(table.layer == "1->8 5x5 float32")]["winograd ms"].isna().all()  # 3x3 only
    entries = json.loads(cache.read_text())
    assert sum("| 1 threads |" in k for k in entries) == 2 and sum("| 2 threads |" in k for k in entries) == 2
