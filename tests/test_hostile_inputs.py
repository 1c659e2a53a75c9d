"""Hostile and damaged checkpoints and pickles are refused cheaply: one line, exit 1, little memory and
time, checked from names, headers and sizes before anything large is read."""
from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from srlib.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from srlib.errors import SrlibError
from srlib.legacy import load_array_pickle
from srlib.network import NetConfig, SRNet

ROOT = Path(__file__).resolve().parent.parent
MAX_MIB, MAX_SECONDS = 300, 5


def probe(tmp_path: Path, cases: list[list[str]], env: dict | None = None) -> list[dict]:
    """Run srlib commands through tests/cli_probe.py: one process, per-case peak memory and time."""
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_probe.py"), str(spec)], capture_output=True,
                       text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})})
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def assert_refused_cheaply(result: dict) -> None:
    assert result["rc"] == 1, result
    assert len(result["stderr"]) == 1 and result["stderr"][0].startswith("srlib: error:"), result
    assert result["peak_mib"] < MAX_MIB and result["seconds"] < MAX_SECONDS, result


def trained_like_ckpt() -> Checkpoint:
    net = SRNet(NetConfig(bias=True, init="he"), seed=0)
    opt = {"t": np.array(3), "hp.lr": np.array(1e-3)}
    opt.update({f"{s}.{p.name}": np.zeros_like(p.value) for s in ("m", "v") for p in net.params()})
    return Checkpoint(config=net.config, weights=[net.weights()], iteration=3, optimizer="adam",
                      optimizer_state=[opt], history={"loss": np.arange(3.0)}, meta={"note": "x"})


def write_npz(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def with_meta(members: dict[str, bytes], **changes) -> dict[str, bytes]:
    meta = json.loads(str(np.load(io.BytesIO(members["meta_json.npy"]))))
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return {**members, "meta_json.npy": npy_bytes(np.array(json.dumps(meta)))}


@pytest.fixture
def good_ckpt(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "good.npz", trained_like_ckpt())


def size_bombs(tmp_path: Path, good: Path) -> dict[str, Path]:
    """Small files that would cost gigabytes if trusted."""
    m = members_of(good)
    w = m["weight/0/conv1.weight.npy"]
    huge_header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    huge_header["shape"] = (10 ** 13,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, huge_header)
    config = json.loads(str(np.load(io.BytesIO(m["meta_json.npy"]))))["config"]
    cases = {
        "network index 99,999,999": {**m, "weight/99999999/conv1.weight.npy": w},
        "npy header of 1e13 values": {**m, "weight/0/conv1.weight.npy": buf.getvalue()},
        "20001x20001 kernel": with_meta(m, config={**config, "kernels": [20001, 3, 3, 3]}),
        "10,000 networks' channels": with_meta(m, config={**config, "channels": [10 ** 6, 32, 32, 16]}),
        "unknown member": {**m, "extra/blob.npy": npy_bytes(np.zeros(10))},
        "weights of network 1 only": {k.replace("weight/0/", "weight/1/"): v for k, v in m.items()},
        "history longer than the run": {**m, "history/loss.npy": npy_bytes(np.zeros(10 ** 6))},
        "object array": {**m, "history/loss.npy": npy_bytes(np.array([None, 1], dtype=object))},
    }
    paths = {name: write_npz(tmp_path / f"bomb{i}.npz", members) for i, (name, members) in enumerate(cases.items())}
    # A deflated member of 1 GiB in a 1 MiB file, under the name of a weight whose header it keeps.
    bomb = tmp_path / "deflate.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in m.items():
            if name != "weight/0/conv1.weight.npy":
                zf.writestr(name, data)
        with zf.open("weight/0/conv1.weight.npy", "w", force_zip64=True) as f:
            f.write(w)
            zero = bytes(1 << 20)
            for _ in range(1024):
                f.write(zero)
    paths["deflated 1 GiB member"] = bomb
    return paths


def metadata_edits(tmp_path: Path, good: Path) -> dict[str, Path]:
    m = members_of(good)
    config = json.loads(str(np.load(io.BytesIO(m["meta_json.npy"]))))["config"]
    cases = {
        "iteration is text": with_meta(m, iteration="seven"),
        "negative iteration": with_meta(m, iteration=-4),
        "no config": with_meta(m, config=None),
        "config is a list": with_meta(m, config=[1, 2]),
        "unknown config field": with_meta(m, config={**config, "colour": "blue"}),
        "kernel is text": with_meta(m, config={**config, "kernels": ["3", 3, 3, 3]}),
        "meta is a string": with_meta(m, meta="x"),
        "no format": with_meta(m, format=None),
        "deeply nested": {**m, "meta_json.npy": npy_bytes(np.array("[" * 100000 + "]" * 100000))},
        "NaN optimizer state": {**m, "optim/0/m.conv2.weight.npy": npy_bytes(
            np.full((32, 64, 3, 3), np.nan, np.float32))},
    }
    return {name: write_npz(tmp_path / f"meta{i}.npz", members) for i, (name, members) in enumerate(cases.items())}


def test_size_bombs_and_edited_metadata_are_refused_cheaply(tmp_path, good_ckpt):
    cases = {**size_bombs(tmp_path, good_ckpt), **metadata_edits(tmp_path, good_ckpt)}
    results = probe(tmp_path, [["export", str(p), "--out", str(tmp_path / f"out{i}.npz")]
                               for i, p in enumerate(cases.values())])
    for name, result in zip(cases, results):
        assert_refused_cheaply(result)
        assert str(cases[name]) in result["stderr"][0], name


def test_random_mutations_of_a_checkpoint(tmp_path, good_ckpt):
    """Byte flips, truncations and renamed members: each is refused in one line (exit 1), cheaply, or,
    where the damage fell on bytes that carry nothing (a zip timestamp), loads the very same weights."""
    rng = np.random.default_rng(0)
    data = good_ckpt.read_bytes()
    paths = []
    for i in range(40):
        damaged = bytearray(data)
        if i < 25:
            for pos in rng.integers(0, len(data), size=1 + i % 4):
                damaged[pos] ^= 1 << int(rng.integers(0, 8))
        elif i < 35:
            damaged = damaged[:int(rng.integers(0, len(data)))]
        else:
            members = members_of(good_ckpt)
            name = sorted(members)[int(rng.integers(0, len(members)))]
            members[name.replace("/", "/x", 1) if i % 2 else name.upper()] = members.pop(name)
            damaged = write_npz(tmp_path / "renamed.npz", members).read_bytes()
        path = tmp_path / f"mut{i}.npz"
        path.write_bytes(bytes(damaged))
        paths.append(path)
    results = probe(tmp_path, [["export", str(p), "--out", str(tmp_path / f"out{i}.npz")] for i, p in enumerate(paths)])
    refused = 0
    for path, result in zip(paths, results):
        if result["rc"] == 0:
            for a, b in zip(load_checkpoint(path).weights[0].values(), load_checkpoint(good_ckpt).weights[0].values()):
                np.testing.assert_array_equal(a, b)
        else:
            assert_refused_cheaply(result)
            refused += 1
    assert refused >= 30


def study_pickles(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(SRNet(NetConfig(dtype="float64")).params(), start=1):
        (folder / f"W{i}.pickle").write_bytes(pickle.dumps(np.random.default_rng(i).normal(size=p.value.shape),
                                                           protocol=5))
    return folder


def test_hostile_and_mutated_study_pickles(tmp_path):
    good = study_pickles(tmp_path / "good")
    w1 = (good / "W1.pickle").read_bytes()
    hostile = {
        # 2e8 object elements declared in a few bytes: _reconstruct with a huge shape, an object dtype
        "object bomb": b"\x80\x05cnumpy\n_reconstruct\n" + b".",
        "huge shape": pickle.dumps(np.zeros(1)).replace(b"\x4b\x01\x85", b"\x4a\x00\xc2\xeb\x0b\x85"),
        "bytearray8 of 1.6 GB": b"\x80\x05\x96" + (1_600_000_000).to_bytes(8, "little") + b"x.",
        "NaN weights": pickle.dumps(np.full((64, 1, 5, 5), np.nan), protocol=5),
        "object dtype": pickle.dumps(np.array([1.0, None], dtype=object), protocol=5),
        "os.system": b"cos\nsystem\n(S'echo pwned'\ntR.",
        "too large": w1 + bytes(2 << 20),
    }
    rng = np.random.default_rng(1)
    for i in range(20):
        damaged = bytearray(w1)
        if i < 12:
            for pos in rng.integers(0, len(w1), size=1 + i % 3):
                damaged[pos] ^= 1 << int(rng.integers(0, 8))
        else:
            damaged = damaged[:int(rng.integers(0, len(w1)))]
        hostile[f"mutation {i}"] = bytes(damaged)
    cases = []
    for i, payload in enumerate(hostile.values()):
        folder = study_pickles(tmp_path / f"case{i}")
        (folder / "W1.pickle").write_bytes(payload)
        cases.append(["import-study-weights", str(folder), "--out", str(tmp_path / f"case{i}.npz")])
    results = probe(tmp_path, cases)
    original = load_array_pickle(good / "W1.pickle")
    for i, ((name, payload), result) in enumerate(zip(hostile.items(), results)):
        if result["rc"] == 0:
            # A pickle carries no checksum: a flip inside the array's bytes changes a value and nothing
            # else, and cannot be told from a real weight. Anything else must have been refused.
            assert name.startswith("mutation") and int(name.split()[1]) < 12, result
            loaded = load_checkpoint(result["argv"][3]).weights[0]["conv1.weight"]
            assert np.isfinite(loaded).all() and np.sum(loaded != original) <= 1 + int(name.split()[1]) % 3
        else:
            assert_refused_cheaply(result)
            assert "W1.pickle" in result["stderr"][0], (name, result)
    assert not (Path.cwd() / "pwned").exists()


def test_netconfig_bounds():
    with pytest.raises(ValueError, match="at most"):
        NetConfig(kernels=(20001, 3, 3, 3))
    with pytest.raises(ValueError, match="integers"):
        NetConfig(channels=(64.0, 32, 32, 16))
    with pytest.raises(TypeError):
        NetConfig.from_dict({"channels": [64, 32, 32, 16], "kernels": [5, 3, 3, 3], "colour": 1})


def test_resume_needs_optimizer_state(tmp_path, pairs):
    from srlib.train import Recipe, Trainer

    trainer = Trainer(Recipe(images=2), pairs, total=4)
    trainer.run(until=2, progress=False)
    ckpt = trainer.checkpoint()
    ckpt.optimizer_state = []
    save_checkpoint(tmp_path / "no_state.npz", ckpt)
    with pytest.raises(SrlibError, match="no optimizer state"):
        Trainer.resume(tmp_path / "no_state.npz", pairs)


@pytest.mark.parametrize("edit", ["unknown recipe field", "total is text", "lr is text", "rng state", "no seed"])
def test_resume_refuses_damaged_training_metadata(tmp_path, pairs, edit):
    from srlib.train import Recipe, Trainer

    trainer = Trainer(Recipe(images=2), pairs, total=4)
    trainer.run(until=2, progress=False)
    ckpt = trainer.checkpoint()
    if edit == "unknown recipe field":
        ckpt.meta["recipe"]["colour"] = "blue"
    elif edit == "total is text":
        ckpt.meta["total"] = "4"
    elif edit == "lr is text":
        ckpt.meta["recipe"]["lr"] = "fast"
    elif edit == "rng state":
        ckpt.rng_state = {"bit_generator": "Nonsense"}
    else:
        del ckpt.meta["seed"]
    save_checkpoint(tmp_path / "c.npz", ckpt)
    with pytest.raises(SrlibError, match="c.npz"):
        Trainer.resume(tmp_path / "c.npz", pairs)
