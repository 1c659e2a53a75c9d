"""The fast convolution paths (shifted products, Winograd F(2x2, 3x3)) against the im2col reference path:
every layer shape of the network, odd sizes, the blocked and threaded code, and 200 training iterations.
(Finite-difference gradient checks of every path are in test_layers.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from srlib.nn import parallel, shifted, winograd
from srlib.nn.layers import OPS, Conv2d
from srlib.nn.network import NetConfig, SRNet
from srlib.nn.optimizers import Adam
from srlib.train import train_step


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def forward_backward(path: str | dict, w: np.ndarray, x: np.ndarray, dy: np.ndarray):
    conv = Conv2d("c", w.copy(), path=path)
    y = conv.forward(x.copy())
    dx = conv.backward(dy.copy())
    return y, conv.weight.grad.copy(), dx


LAYERS = [(1, 64, 5), (64, 32, 3), (32, 32, 3), (32, 16, 3)]


@pytest.mark.parametrize("path,c_in,c_out,k", [("shifted", *layer) for layer in LAYERS]
                         + [("winograd", *layer) for layer in LAYERS if layer[2] == 3])
@pytest.mark.slow
def test_fast_paths_match_float64_reference_on_the_benchmark_layers(path, c_in, c_out, k):
    """fp32 fast path vs float64 im2col on the benchmark problem (30 x 44x44): forward, dW and dx."""
    rng = np.random.default_rng(c_in + c_out)
    w = rng.normal(0, np.sqrt(2 / (k * k * c_in)), (c_out, c_in, k, k))
    x = np.maximum(rng.standard_normal((30, 44, 44, c_in)), 0)
    dy = rng.standard_normal((30, 44, 44, c_out)) * 1e-3
    ref = forward_backward("im2col", w, x, dy)
    fast = forward_backward(path, w.astype(np.float32), x.astype(np.float32), dy.astype(np.float32))
    for name, a, b in zip(("y", "dW", "dx"), fast, ref):
        assert a.dtype == np.float32
        assert rel_error(a, b) <= 1e-5, name


@pytest.mark.parametrize("path,k", [("shifted", 3), ("shifted", 5), ("shifted", 1), ("winograd", 3)])
@pytest.mark.parametrize("n,h,w", [(1, 1, 1), (2, 2, 3), (2, 7, 9), (1, 13, 4)])
def test_fast_paths_odd_and_tiny_sizes(path, k, n, h, w):
    rng = np.random.default_rng(h * w)
    wt = rng.standard_normal((3, 5, k, k))
    x, dy = rng.standard_normal((n, h, w, 5)), rng.standard_normal((n, h, w, 3))
    for a, b in zip(forward_backward(path, wt, x, dy), forward_backward("im2col", wt, x, dy)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", ["shifted", "winograd"])
def test_small_blocks_and_threads_give_the_same_bits(monkeypatch, path):
    """Tiny blocks (Winograd: one tile row each) agree with big ones, and threaded results equal
    one-thread results bit for bit."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    x = rng.standard_normal((2, 37, 30, 8)).astype(np.float32)
    dy = rng.standard_normal((2, 37, 30, 4)).astype(np.float32)
    whole = forward_backward(path, w, x, dy)
    monkeypatch.setattr(winograd, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(shifted, "_FORWARD_ROWS", 97)
    monkeypatch.setattr(shifted, "_GRAD_ROWS", 97)
    assert len(winograd._blocks(2, 37, 30, 8, 4)) == 2 * 19
    threaded = forward_backward(path, w, x, dy)
    monkeypatch.setattr(parallel, "_pool", None)  # one thread
    serial = forward_backward(path, w, x, dy)
    for a, b, c in zip(whole, threaded, serial):
        assert rel_error(b, a) < 1e-5  # dW's fp32 sums are taken in another order
        np.testing.assert_array_equal(b, c)


def test_fixed_path_rule_and_bad_paths():
    assert Conv2d("c", np.zeros((32, 64, 3, 3))).paths == {"forward": "shifted", "weight_grad": "shifted",
                                                           "input_grad": "im2col"}
    assert Conv2d("c", np.zeros((32, 32, 3, 3))).paths == dict.fromkeys(OPS, "shifted")
    assert Conv2d("c", np.zeros((64, 1, 5, 5))).paths == {"forward": "im2col", "weight_grad": "im2col",
                                                          "input_grad": "shifted"}
    assert Conv2d("c", np.zeros((2, 2, 3, 3)), path="winograd").paths == dict.fromkeys(OPS, "winograd")
    with pytest.raises(ValueError, match="3x3 kernels only"):
        Conv2d("c", np.zeros((2, 2, 5, 5)), path="winograd")
    with pytest.raises(ValueError, match="must map forward"):
        Conv2d("c", np.zeros((2, 2, 3, 3)), path="fft")
    with pytest.raises(ValueError, match="must map forward"):
        Conv2d("c", np.zeros((2, 2, 3, 3)), path={"forward": "im2col"})


MIXED = [{"forward": "shifted", "weight_grad": "winograd", "input_grad": "im2col"},
         {"forward": "winograd", "weight_grad": "shifted", "input_grad": "shifted"},
         {"forward": "im2col", "weight_grad": "shifted", "input_grad": "winograd"},
         {"forward": "shifted", "weight_grad": "im2col", "input_grad": "shifted"}]


@pytest.mark.parametrize("paths", MIXED)
def test_each_operation_takes_its_own_path(paths):
    """Any mix of paths over forward, dW and dx gives the im2col results (float64: to rounding)."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((6, 4, 3, 3))
    x, dy = rng.standard_normal((2, 9, 7, 4)), rng.standard_normal((2, 9, 7, 6))
    for a, b in zip(forward_backward(paths, w, x, dy), forward_backward("im2col", w, x, dy)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_200_training_iterations_agree_between_paths():
    """The same small training run with every 3x3 layer on each path: losses agree to ~1e-3."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 12, 12)).astype(np.float32)
    t = np.clip(np.kron(x, np.ones((1, 1, 4, 4), np.float32)) + 0.05 * rng.standard_normal((8, 1, 48, 48)), 0, 1)
    t = t.astype(np.float32) * 255
    losses = {}
    for path in ("im2col", "shifted", "winograd"):
        net = SRNet(NetConfig(init="he", bias=True, final_relu=False), seed=1)
        for layer in net.layers:
            if isinstance(layer, Conv2d) and layer.k == 3:
                layer.paths = dict.fromkeys(OPS, path)
        opt = Adam(net.params(), lr=1e-3)
        losses[path] = np.array([train_step(net, opt, x, t) for _ in range(200)])
    assert losses["im2col"][-1] < 0.5 * losses["im2col"][0]  # it learned something
    np.testing.assert_allclose(losses["winograd"], losses["im2col"], rtol=1e-3)
    np.testing.assert_allclose(losses["shifted"], losses["im2col"], rtol=1e-3)
