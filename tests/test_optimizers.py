"""Each optimizer's update against its textbook formula, written out here independently, over 5 steps."""
from __future__ import annotations

import numpy as np
import pytest

from srlib.nn.layers import Param
from srlib.nn.optimizers import OPTIMIZERS, make_optimizer


def textbook(name: str, w: np.ndarray, grads: list[np.ndarray], **hp) -> np.ndarray:
    w = w.copy()
    v = np.zeros_like(w)
    h = np.zeros_like(w)
    m = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            w = w - hp["lr"] * g
        elif name == "momentum":
            v = hp["momentum"] * v - hp["lr"] * g
            w = w + v
        elif name == "nesterov":
            # w_{t+1} = w_t + mu^2 v_t - (1 + mu) lr g_t, with v_{t+1} = mu v_t - lr g_t
            w = w + hp["momentum"] ** 2 * v - (1 + hp["momentum"]) * hp["lr"] * g
            v = hp["momentum"] * v - hp["lr"] * g
        elif name == "adagrad":
            h = h + g ** 2
            w = w - hp["lr"] * g / (np.sqrt(h) + hp["eps"])
        elif name == "rmsprop":
            h = hp["decay"] * h + (1 - hp["decay"]) * g ** 2
            w = w - hp["lr"] * g / (np.sqrt(h) + hp["eps"])
        elif name == "adam":
            m = hp["beta1"] * m + (1 - hp["beta1"]) * g
            v = hp["beta2"] * v + (1 - hp["beta2"]) * g ** 2
            m_hat, v_hat = m / (1 - hp["beta1"] ** t), v / (1 - hp["beta2"] ** t)
            # the study's (and Kingma & Ba's section 2) form puts eps beside sqrt(v) before bias correction
            w = w - hp["lr"] * m_hat / (np.sqrt(v_hat) + hp["eps"] / np.sqrt(1 - hp["beta2"] ** t))
    return w


DEFAULTS = {
    "sgd": {"lr": 0.01}, "momentum": {"lr": 0.01, "momentum": 0.9}, "nesterov": {"lr": 0.01, "momentum": 0.9},
    "adagrad": {"lr": 0.01, "eps": 1e-7}, "rmsprop": {"lr": 0.01, "decay": 0.99, "eps": 1e-7},
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_matches_textbook(name):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(5)]
    p = Param("w", w0.copy(), np.zeros_like(w0))
    opt = make_optimizer(name, [p])
    assert opt.hyperparams() == DEFAULTS[name]  # the study's defaults
    for g in grads:
        p.grad[...] = g
        opt.step()
    np.testing.assert_allclose(p.value, textbook(name, w0, grads, **DEFAULTS[name]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(5) for _ in range(6)]
    a = Param("a", np.ones(5), np.zeros(5))
    b = Param("a", np.ones(5), np.zeros(5))
    opt_a = make_optimizer(name, [a], lr=0.05)
    for g in grads[:3]:
        a.grad[...] = g
        opt_a.step()
    b.value[...] = a.value
    opt_b = make_optimizer(name, [b])
    opt_b.load_state_dict({k: v.copy() for k, v in opt_a.state_dict().items()})
    assert opt_b.lr == 0.05
    for g in grads[3:]:
        for p, o in ((a, opt_a), (b, opt_b)):
            p.grad[...] = g
            o.step()
    np.testing.assert_array_equal(a.value, b.value)


def test_two_optimizers_never_share_state():
    p1, p2 = Param("conv1.weight", np.zeros(3), np.ones(3)), Param("conv1.weight", np.zeros(3), np.ones(3))
    o1, o2 = make_optimizer("adam", [p1]), make_optimizer("adam", [p2])
    o1.step()
    o1.step()
    o2.step()
    assert o1.t == 2 and o2.t == 1
    assert not np.shares_memory(o1.state["m"][0], o2.state["m"][0])


def test_bad_optimizer_and_lr_are_refused():
    p = Param("w", np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("adamw", [p])
    with pytest.raises(ValueError, match="learning rate"):
        make_optimizer("sgd", [p], lr=-1)
    with pytest.raises(ValueError, match="missing"):
        make_optimizer("adam", [p]).load_state_dict({"t": np.array(1)})
