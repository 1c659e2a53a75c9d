"""The study's colour-network bug, reproduced on purpose for notebook 03 (nothing else uses it).

The study trained three networks (B, G, R) with ONE Adam object whose state was keyed by layer
position ('W1'..'W4'): the three networks' moment estimates mixed, and its step counter advanced once
per network per iteration. ``SharedAdam`` does exactly that, so the report can measure what it cost.
"""
from __future__ import annotations

from dataclasses import dataclass

from .network import SRNet
from .optimizers import Adam


class SharedAdam:
    """ONE Adam, its state keyed by layer position, serving several networks. ``bound(i)`` gives
    network i an optimizer-like handle."""

    def __init__(self, nets: list[SRNet], **hyperparams: float):
        self.nets = nets
        self.adam = Adam(nets[0].params(), **hyperparams)

    def bound(self, i: int) -> "_BoundSharedAdam":
        return _BoundSharedAdam(self, i)


@dataclass
class _BoundSharedAdam:
    shared: SharedAdam
    index: int

    @property
    def lr(self) -> float:
        return self.shared.adam.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.shared.adam.lr = value

    def step(self) -> None:
        self.shared.adam.params = self.shared.nets[self.index].params()
        self.shared.adam.step()

    def state_dict(self) -> dict:
        return self.shared.adam.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.shared.adam.load_state_dict(d)
