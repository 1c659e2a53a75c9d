"""ONNX export: every kind of srlib model (colour, one network per channel, three per-channel networks,
JPEG-aware, residual on either grid, with residual blocks) gives, in onnxruntime and in OpenCV's dnn, what ``SRModel.predict``
gives before rounding, to float32 precision."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from srlib.data.photo import jpeg_strength
from srlib.model import SRModel
from srlib.nn.network import NetConfig, SRNet
from srlib.onnx_export import to_onnx
from srlib.recipe import RECIPES
from test_cli import ROOT

# float32 sums taken in another order: absolute on the 0..255 scale (the shipped models: up to 1.2e-4)
# and relative for the random networks' larger outputs
ATOL, RTOL = 1e-3, 1e-5


def models() -> dict[str, SRModel]:
    def nets(config: NetConfig, n: int = 1, spread: float = 0.1) -> list[SRNet]:
        """Random weights, biases and JPEG shifts all non-zero, uniform in +-spread."""
        out = []
        for i in range(n):
            net = SRNet(config, seed=i)
            net.load_weights({k: np.random.default_rng(i).uniform(-spread, spread, v.shape).astype(v.dtype)
                              for k, v in net.weights().items()})
            out.append(net)
        return out

    improved, photo = RECIPES["improved"].net, RECIPES["photo"].net
    return {
        "shipped photo": SRModel.shipped("photo"),
        "shipped study": SRModel.shipped("study"),
        "shipped fast": SRModel.shipped("fast"),
        "three per-channel networks, study grid": SRModel(nets(improved, 3), residual=True, output_scale=255.0),
        "one network per channel, JPEG-aware, centre grid": SRModel(
            nets(replace(improved, jpeg_aware=True)), residual=True, output_scale=255.0, grid="centre"),
        "colour, not residual, final ReLU": SRModel(nets(replace(photo, final_relu=True, bias=False)), output_scale=1.0,
                                                    grid="centre"),
        # weights of a trained network's size: at +-0.1 two 64-wide blocks grow activations to ~1e3, where
        # float32 sums in another order differ by more than the tolerance on the 0..255 output
        "colour, residual blocks, JPEG-aware": SRModel(nets(replace(photo, res_blocks=2), spread=0.03), residual=True,
                                                       output_scale=255.0, grid="centre"),
    }


@pytest.mark.parametrize("name", list(models()))
def test_onnx_graph_matches_srlib_in_onnxruntime_and_opencv(name):
    model = models()[name]
    data = to_onnx(model).SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    opencv = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
    lr = np.random.default_rng(1).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    quality = 70 if model.nets[0].config.jpeg_aware else None
    expected = model.predict(lr, jpeg_quality=quality)
    feeds = {"image": np.ascontiguousarray(lr.transpose(0, 3, 1, 2), np.float32)}
    if model.nets[0].config.jpeg_aware:
        feeds["jpeg_strength"] = np.full(len(lr), jpeg_strength(quality), np.float32)
    got = session.run(["output"], feeds)[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    for key, value in feeds.items():
        opencv.setInput(value, key)
    np.testing.assert_allclose(opencv.forward("output").transpose(0, 2, 3, 1), expected, rtol=RTOL, atol=ATOL)


def test_export_onnx_from_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "srlib", "export", "photo", "--onnx", "--out", str(tmp_path / "p.onnx")],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "jpeg_strength"]
    again = subprocess.run([sys.executable, "-m", "srlib", "export", "photo", "--onnx", "--out", str(tmp_path / "p.onnx")],
                           capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert again.returncode == 1 and "--force" in again.stderr
