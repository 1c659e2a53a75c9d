"""Every layer's and the whole network's gradients against central finite differences (float64)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from srlib.model import ChannelLayout
from srlib.nn import layers
from srlib.nn.layers import Conv2d, JpegShift, Layer, MSELoss, PixelShuffle, ReLU, ResBlock, pixel_shuffle, pixel_unshuffle
from srlib.nn.network import NetConfig, SRNet

RTOL = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12))


def numeric_grad(f, x: np.ndarray, idx, eps: float = 1e-5) -> np.ndarray:
    """Central differences of scalar f() with respect to x at the flat indices idx (x changed in place)."""
    flat = x.reshape(-1)
    out = []
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        out.append((up - down) / (2 * eps))
    return np.array(out)


def check_layer(layer, x: np.ndarray, params=(), n_checks: int = 40, seed: int = 0):
    """Loss = sum(forward(x) * r) for a fixed random r; compare analytic and numeric gradients."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(layer.forward(x.copy()).shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x.copy()) * r))

    layer.forward(x.copy())
    dx = layer.backward(r.copy())
    targets = [("x", x, dx)] + [(p.name, p.value, p.grad.copy()) for p in params]
    for name, arr, grad in targets:
        if grad is None:
            continue
        idx = rng.choice(arr.size, size=min(n_checks, arr.size), replace=False)
        num = numeric_grad(loss, arr, idx)
        assert rel_error(grad.reshape(-1)[idx], num) < RTOL, name


@pytest.mark.parametrize("k,c_in,c_out,bias,path", [
    (3, 4, 5, False, "im2col"), (5, 1, 6, True, "fixed"), (3, 3, 2, True, "im2col"), (1, 2, 3, False, "fixed"),
    (3, 4, 5, False, "winograd"), (3, 3, 2, True, "winograd"), (3, 9, 3, False, "fixed"), (3, 4, 5, True, "shifted"),
    (5, 3, 2, False, "shifted")])
def test_conv_gradients(k, c_in, c_out, bias, path):
    rng = np.random.default_rng(k + c_in)
    conv = Conv2d("c", rng.standard_normal((c_out, c_in, k, k)), rng.standard_normal(c_out) if bias else None,
                  path=path)
    check_layer(conv, rng.standard_normal((3, 7, 6, c_in)), conv.params())


def test_conv_gradients_across_blocks(monkeypatch):
    """Tiny blocks force the multi-block, multi-thread path (per-block dW partial sums)."""
    monkeypatch.setattr(layers, "_BLOCK_BYTES", 1)
    rng = np.random.default_rng(3)
    conv = Conv2d("c", rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4))
    check_layer(conv, rng.standard_normal((5, 6, 6, 3)), conv.params())


def test_conv_forward_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 8, 3))
    w = rng.standard_normal((4, 3, 5, 5))
    b = rng.standard_normal(4)
    y = Conv2d("c", w, b).forward(x)
    for n in range(2):
        for o in range(4):
            ref = sum(correlate(x[n, :, :, c], w[o, c], mode="same") for c in range(3)) + b[o]
            np.testing.assert_allclose(y[n, :, :, o], ref, rtol=1e-12, atol=1e-12)


def test_conv_rejects_wrong_channels():
    conv = Conv2d("conv2", np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="conv2"):
        conv.forward(np.zeros((1, 5, 5, 2)))


def test_relu_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 5, 3))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink
    check_layer(ReLU(), x)


@pytest.mark.parametrize("bias,path", [(True, "im2col"), (False, "shifted"), (True, "winograd")])
def test_residual_block_gradients(bias, path):
    rng = np.random.default_rng(3)

    def conv(name: str) -> Conv2d:
        return Conv2d(name, rng.standard_normal((4, 4, 3, 3)) * 0.3, rng.standard_normal(4) if bias else None, path=path)
    block = ResBlock(conv("block1a"), conv("block1b"))
    x = rng.standard_normal((2, 6, 5, 4))
    check_layer(block, x, block.params())
    assert block.reach() == 2 and block.convolutions() == [block.a, block.b]


def test_a_residual_block_keeps_one_width():
    with pytest.raises(ValueError, match="one width"):
        ResBlock(Conv2d("a", np.zeros((4, 4, 3, 3))), Conv2d("b", np.zeros((5, 4, 3, 3))))


def test_pixel_shuffle_matches_pytorch_order_and_round_trips():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 2 * 16))
    y = pixel_shuffle(x, 4)
    assert y.shape == (2, 12, 16, 2)
    # channel c*r*r + i*r + j lands at output channel c, sub-pixel (i, j)
    assert y[1, 2 * 4 + 3, 1 * 4 + 2, 1] == x[1, 2, 1, 1 * 16 + 3 * 4 + 2]
    np.testing.assert_array_equal(pixel_unshuffle(y, 4), x)
    check_layer(PixelShuffle(4), x)


def test_mse_loss_gradient():
    rng = np.random.default_rng(0)
    y, t = rng.standard_normal((2, 1, 4, 4)), rng.standard_normal((2, 1, 4, 4))
    loss = MSELoss()
    assert loss.forward(y, t) == pytest.approx(np.mean((y - t) ** 2), rel=1e-12)
    g = loss.backward()
    num = numeric_grad(lambda: MSELoss().forward(y, t), y, range(y.size))
    assert rel_error(g.reshape(-1), num) < RTOL


@pytest.mark.parametrize("config", [
    NetConfig(channels=(6, 5, 4, 16), dtype="float64", init="he"),
    NetConfig(channels=(6, 5, 4, 16), dtype="float64", init="he", bias=True, final_relu=False),
    NetConfig(channels=(6, 5, 4, 48), dtype="float64", init="he", bias=True, final_relu=False, image_channels=3),
    NetConfig(channels=(6, 5, 48), kernels=(5, 3, 3), dtype="float64", init="he", bias=True, final_relu=False,
              image_channels=3, jpeg_aware=True),
    NetConfig(channels=(6, 5, 48), kernels=(3, 3, 3), dtype="float64", init="he", bias=True, final_relu=False,
              image_channels=3, jpeg_aware=True, res_blocks=2),
])
def test_network_gradients(config):
    """Whole network + MSE loss against finite differences, on every parameter array."""
    net = SRNet(config, seed=1)
    rng = np.random.default_rng(2)
    for p in net.params():  # non-zero biases and JPEG shifts, so their gradients are exercised through ReLUs
        if p.name.endswith(("bias", "jpeg")):
            p.value[...] = rng.uniform(-0.2, 0.2, p.value.shape)
    c = config.image_channels
    x = rng.random((2, c, 6, 5))
    t = rng.random((2, c, 24, 20))
    strength = np.array([0.0, 1.3])  # one clean image, one compressed

    def loss() -> float:
        return MSELoss().forward(net.forward(x, strength), t)

    mse = MSELoss()
    mse.forward(net.forward(x, strength), t)
    net.backward(mse.backward())
    grads = {p.name: p.grad.copy() for p in net.params()}
    for p in net.params():
        idx = rng.choice(p.value.size, size=min(25, p.value.size), replace=False)
        assert rel_error(grads[p.name].reshape(-1)[idx], numeric_grad(loss, p.value, idx)) < RTOL, p.name


def test_study_network_shape_and_size():
    net = SRNet()
    assert net.n_weights() == 33856
    assert [p.value.shape for p in net.params()] == [(64, 1, 5, 5), (32, 64, 3, 3), (32, 32, 3, 3), (16, 32, 3, 3)]
    assert all(np.abs(p.value).max() <= 0.01 and p.value.dtype == np.float32 for p in net.params())
    y = net.forward(np.random.default_rng(0).random((2, 1, 44, 44)))
    assert y.shape == (2, 1, 176, 176) and y.dtype == np.float32


def test_float32_matches_float64():
    w = SRNet(NetConfig(init="he", bias=True), seed=3).weights()
    x = np.random.default_rng(0).random((3, 1, 12, 10))
    y32 = SRNet(NetConfig(init="he", bias=True), weights=w).forward(x)
    y64 = SRNet(NetConfig(init="he", bias=True, dtype="float64"), weights=w).forward(x)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


def test_load_weights_rejects_bad_input():
    net = SRNet()
    w = net.weights()
    w["conv1.weight"] = np.zeros((64, 1, 3, 3))
    with pytest.raises(ValueError, match="conv1.weight"):
        net.load_weights(w)
    w = net.weights()
    w["conv2.weight"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.load_weights(w)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="scale"):
        NetConfig(channels=(64, 32, 32, 8))
    with pytest.raises(ValueError, match="image_channels"):
        NetConfig(channels=(64, 32, 32, 16), image_channels=3)
    with pytest.raises(ValueError, match="image channels"):
        NetConfig(channels=(64, 32, 32, 32), image_channels=2)
    with pytest.raises(ValueError, match="init"):
        NetConfig(init="xavier")


@pytest.mark.parametrize("kind,stack", [("colour", True), ("shared", True), ("shared", False), ("per_channel", True)])
def test_channel_layout_splits_and_merges_back(kind, stack):
    """What training and inference both use: merge(split(x)) is x; per-image values follow their images."""
    x = np.random.default_rng(0).random((4, 5, 6, 3))
    x[:, 0, 0, :] = 10 * np.arange(4)[:, None] + np.arange(3)  # pixel (0, 0) says image n, channel c
    layout = ChannelLayout(kind)
    parts = layout.split(x, stack)
    assert [k for k, _ in parts] == {"colour": [0], "shared": [0] if stack else [0, 0, 0],
                                     "per_channel": [0, 1, 2]}[kind]
    np.testing.assert_array_equal(layout.merge([p for _, p in parts], stack), x)
    for (_, part), values in zip(parts, layout.per_image(np.arange(4.0), stack)):
        corner = part[:, 0, 0, 0] if kind == "colour" else part[:, 0, 0]
        np.testing.assert_array_equal(corner // 10, values)  # each value beside its own image


def test_every_layer_keeps_the_layer_contract_and_only_jpeg_shift_reads_the_condition():
    net = SRNet(NetConfig(jpeg_aware=True, bias=True, final_relu=False, init="he"))
    assert all(isinstance(layer, Layer) for layer in net.layers)
    x = np.random.default_rng(0).random((2, 1, 6, 6))
    plain = net.forward(x, np.zeros(2))
    for layer in net.layers:
        if isinstance(layer, JpegShift):
            layer.v.value[...] = 1.0
    assert np.array_equal(net.forward(x, np.zeros(2)), plain)  # strength 0: no shift
    assert not np.array_equal(net.forward(x, np.array([0.0, 1.0]))[1], plain[1])
    np.testing.assert_array_equal(net.forward(x, np.array([0.0, 1.0]))[0], plain[0])
