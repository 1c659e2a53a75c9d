"""Hostile and damaged checkpoints and pickles are refused cheaply: one line, exit 1, little memory and
time, checked from names, headers and sizes before anything large is read."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from srlib.checkpoint import Checkpoint, save_checkpoint
from srlib.errors import SrlibError
from srlib.nn.network import NetConfig, SRNet

ROOT = Path(__file__).resolve().parent.parent
MAX_MIB, MAX_CPU_SECONDS = 300, 5


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
    assert result["peak_mib"] < MAX_MIB and result["cpu_seconds"] < MAX_CPU_SECONDS, result


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
    cut = b"{'descr': '<f4', 'fortran_order': False, 'shape': (32, "  # numpy's fallback parser raises TokenError
    cut += b" " * (63 - (10 + len(cut)) % 64) + b"\n"
    config = json.loads(str(np.load(io.BytesIO(m["meta_json.npy"]))))["config"]
    cases = {
        "npy header cut inside its dict": {**m, "weight/0/conv1.weight.npy": b"\x93NUMPY\x01\x00"
                                           + struct.pack("<H", len(cut)) + cut},
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


def test_netconfig_bounds():
    with pytest.raises(ValueError, match="at most"):
        NetConfig(kernels=(20001, 3, 3, 3))
    with pytest.raises(ValueError, match="integers"):
        NetConfig(channels=(64.0, 32, 32, 16))
    with pytest.raises(TypeError):
        NetConfig.from_dict({"channels": [64, 32, 32, 16], "kernels": [5, 3, 3, 3], "colour": 1})


def test_resume_needs_optimizer_state(tmp_path, pairs):
    from srlib.recipe import Recipe
    from srlib.train import Trainer

    trainer = Trainer(Recipe(images=2), pairs, total=4)
    trainer.run(until=2, progress=False)
    ckpt = trainer.checkpoint()
    ckpt.optimizer_state = []
    save_checkpoint(tmp_path / "no_state.npz", ckpt)
    with pytest.raises(SrlibError, match="no optimizer state"):
        Trainer.resume(tmp_path / "no_state.npz", pairs)


@pytest.mark.parametrize("edit", ["unknown recipe field", "total is text", "lr is text", "rng state", "no seed"])
def test_resume_refuses_damaged_training_metadata(tmp_path, pairs, edit):
    from srlib.recipe import Recipe
    from srlib.train import Trainer

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


@pytest.mark.parametrize("answer", [None, b"\xff" * 64, b"\x00" * 8 + b"\xff" * 8])
def test_a_scheduler_that_never_answers_or_answers_junk_is_one_line_in_bounded_time(answer):
    """Dask's own timeout covers reaching an address, not the handshake after it."""
    import socket
    import threading
    import time

    from srlib.errors import SrlibError
    from srlib.report.sweep import connect

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted = []

    def serve() -> None:
        while True:
            try:
                peer, _ = server.accept()
            except OSError:
                return
            accepted.append(peer)  # kept open, never closed: a peer that stays silent
            if answer is not None:
                peer.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(SrlibError, match="127.0.0.1") as e:
            connect(f"tcp://127.0.0.1:{server.getsockname()[1]}", timeout=3)
    finally:
        server.close()
    assert time.monotonic() - start < 20 and "\n" not in str(e.value)
