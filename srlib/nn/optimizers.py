"""Optimizers in their textbook forms, with the study's default hyper-parameters.

Each optimizer is built over a list of ``Param`` objects and keeps its state (velocities, moments,
step count) in arrays of its own, one per parameter. Two networks therefore never share moment
estimates unless a caller builds one optimizer over both on purpose — the study's 3-colour experiment
shared one Adam keyed by 'W1'..'W4' across three networks by accident.

Updates, with g the gradient, in place on each parameter w:
  SGD       w -= lr g
  Momentum  v = mu v - lr g;  w += v
  Nesterov  v = mu v - lr g;  w += mu v - lr g          (Bengio et al. 2013 / PyTorch form)
  AdaGrad   h += g^2;  w -= lr g / (sqrt(h) + eps)
  RMSprop   h = rho h + (1 - rho) g^2;  w -= lr g / (sqrt(h) + eps)
  Adam      t += 1;  m += (1 - b1)(g - m);  v += (1 - b2)(g^2 - v)
            w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)   (bias-corrected step size)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .layers import Param


class Optimizer:
    """Base class: ``step()`` applies one update from each ``Param.grad``; state saves to flat arrays."""

    #: names of the per-parameter state arrays (e.g. ("m", "v") for Adam)
    slots: tuple[str, ...] = ()
    #: each subclass's update of one parameter in place: ``_update(w, g, *state)``, one state array per
    #: slot, named as the textbook names them (a callable attribute, not a method: the arity varies)
    _update: Callable[..., None]

    def __init__(self, params: list[Param], lr: float):
        if not lr > 0 or not np.isfinite(lr):
            raise ValueError(f"{type(self).__name__}: learning rate must be a positive number, got {lr}")
        self.params = list(params)
        self.lr = float(lr)
        self.t = 0
        self.state = {s: [np.zeros_like(p.value) for p in self.params] for s in self.slots}

    def step(self) -> None:
        self.t += 1
        for i, p in enumerate(self.params):
            self._update(p.value, p.grad, *(self.state[s][i] for s in self.slots))

    def hyperparams(self) -> dict[str, float]:
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping (storable in an .npz): step count, hyper-parameters, slots."""
        d = {"t": np.array(self.t)}
        d.update({f"hp.{k}": np.array(v) for k, v in self.hyperparams().items()})
        for s in self.slots:
            d.update({f"{s}.{p.name}": a for p, a in zip(self.params, self.state[s])})
        return d

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        expected = set(self.state_dict())
        if set(d) != expected:
            missing, extra = sorted(expected - set(d)), sorted(set(d) - expected)
            raise ValueError(f"{type(self).__name__} state: missing {missing}, unexpected {extra}")
        for s in self.slots:
            for p, a in zip(self.params, self.state[s]):
                src = d[f"{s}.{p.name}"]
                if src.shape != a.shape:
                    raise ValueError(f"{type(self).__name__} state {s}.{p.name}: shape {src.shape}, "
                                     f"expected {a.shape}")
                a[...] = src
        self.t = int(d["t"])
        for k in self.hyperparams():
            setattr(self, k, float(d[f"hp.{k}"]))


class SGD(Optimizer):
    def __init__(self, params: list[Param], lr: float = 0.01):
        super().__init__(params, lr)

    def _update(self, w, g):
        w -= self.lr * g


class Momentum(Optimizer):
    slots = ("v",)

    def __init__(self, params: list[Param], lr: float = 0.01, momentum: float = 0.9):
        super().__init__(params, lr)
        self.momentum = float(momentum)

    def hyperparams(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _update(self, w, g, v):
        v *= self.momentum
        v -= self.lr * g
        w += v


class Nesterov(Momentum):
    def _update(self, w, g, v):
        v *= self.momentum
        v -= self.lr * g
        w += self.momentum * v - self.lr * g


class AdaGrad(Optimizer):
    slots = ("h",)

    def __init__(self, params: list[Param], lr: float = 0.01, eps: float = 1e-7):
        super().__init__(params, lr)
        self.eps = float(eps)

    def hyperparams(self):
        return {"lr": self.lr, "eps": self.eps}

    def _update(self, w, g, h):
        h += g * g
        w -= self.lr * g / (np.sqrt(h) + self.eps)


class RMSprop(Optimizer):
    slots = ("h",)

    def __init__(self, params: list[Param], lr: float = 0.01, decay: float = 0.99, eps: float = 1e-7):
        super().__init__(params, lr)
        self.decay, self.eps = float(decay), float(eps)

    def hyperparams(self):
        return {"lr": self.lr, "decay": self.decay, "eps": self.eps}

    def _update(self, w, g, h):
        h *= self.decay
        h += (1 - self.decay) * g * g
        w -= self.lr * g / (np.sqrt(h) + self.eps)


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, params: list[Param], lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-7):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def hyperparams(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _update(self, w, g, m, v):
        lr_t = self.lr * float(np.sqrt(1 - self.beta2 ** self.t)) / (1 - self.beta1 ** self.t)
        m += (1 - self.beta1) * (g - m)
        v += (1 - self.beta2) * (g * g - v)
        w -= lr_t * m / (np.sqrt(v) + self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov,
    "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam,
}


def make_optimizer(name: str, params: list[Param], **hyperparams: float) -> Optimizer:
    """Build an optimizer by (case-insensitive) name, e.g. ``make_optimizer("adam", net.params(), lr=1e-3)``."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](params, **hyperparams)
