"""Data-parallel training steps: a batch split into shards that run side by side and whose gradients
are summed in shard order. The shards decide the bits, never the number of threads; a Trainer takes 1
unless told (``srlib train`` takes one per core)."""
from __future__ import annotations

import numpy as np
import pytest

from srlib.checkpoint import load_checkpoint, save_checkpoint
from srlib.errors import SrlibError
from srlib.nn import parallel
from srlib.nn.network import NetConfig, SRNet
from srlib.nn.optimizers import SGD, Adam
from srlib.recipe import RECIPES, Recipe
from srlib.train import Trainer, shard_bounds, train_step

SMALL = Recipe(name="small", images=3)


def test_shard_bounds_cover_the_batch_evenly():
    assert shard_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]  # never an empty shard
    assert shard_bounds(5, 1) == [(0, 5)]


@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_gradients_are_the_whole_batchs(shards):
    """float64: the shards' summed gradients and loss equal one pass over the whole batch (to rounding)."""
    config = NetConfig(dtype="float64", init="he", bias=True, jpeg_aware=True, final_relu=False)
    rng = np.random.default_rng(0)
    x, t = rng.random((7, 1, 6, 5)), rng.random((7, 1, 24, 20))
    strength = rng.random(7)
    whole, split = SRNet(config, seed=1), SRNet(config, seed=1)
    for p in whole.params() + split.params():
        p.value += rng.normal(0, 0.1, p.value.shape) if p.name.endswith("jpeg") else 0
    split.load_weights(whole.weights())
    loss_whole = train_step(whole, SGD(whole.params(), lr=1e-3), x, t, strength)
    loss_split = train_step(split, SGD(split.params(), lr=1e-3), x, t, strength,
                            [split.replica() for _ in range(shards - 1)])
    assert loss_split == pytest.approx(loss_whole, rel=1e-12)
    for a, b in zip(whole.params(), split.params()):
        np.testing.assert_allclose(b.grad, a.grad, rtol=1e-10, atol=1e-14, err_msg=a.name)


def test_a_replica_shares_values_and_keeps_its_own_gradients():
    net = SRNet(NetConfig(), seed=0)
    twin = net.replica()
    for mine, theirs in zip(net.params(), twin.params()):
        assert theirs.value is mine.value and theirs.grad is not mine.grad
    assert twin.conv_paths() == net.conv_paths()


@pytest.mark.parametrize("recipe,per_channel", [(SMALL, False), (SMALL, True), (RECIPES["photo"].with_(images=3), False)])
def test_the_same_shards_give_the_same_bits_on_any_number_of_threads(pairs, monkeypatch, recipe, per_channel):
    threaded = Trainer(recipe, pairs, total=4, seed=2, per_channel=per_channel, shards=2)
    threaded.run(progress=False)
    monkeypatch.setattr(parallel, "_pool", None)  # one thread: the shards run one after the other
    serial = Trainer(recipe, pairs, total=4, seed=2, per_channel=per_channel, shards=2)
    serial.run(progress=False)
    assert threaded.history.loss == serial.history.loss
    for a, b in zip(threaded.model.nets, serial.model.nets):
        for name, w in a.weights().items():
            np.testing.assert_array_equal(w, b.weights()[name])
    one = Trainer(recipe, pairs, total=4, seed=2, per_channel=per_channel, shards=1)
    one.run(progress=False)
    np.testing.assert_allclose(one.history.loss, serial.history.loss, rtol=1e-4)


def test_a_run_keeps_its_shards_on_resume(tmp_path, pairs, monkeypatch):
    assert Trainer(SMALL, pairs, total=4).shards == 1
    first = Trainer(SMALL, pairs, total=4, seed=1, shards=3)
    first.run(until=2, checkpoint=tmp_path / "run.npz", progress=False)
    assert load_checkpoint(tmp_path / "run.npz").meta["shards"] == 3
    monkeypatch.setenv("SRLIB_THREADS", "1")
    assert Trainer.resume(tmp_path / "run.npz", pairs).shards == 3
    ckpt = first.checkpoint()
    del ckpt.meta["shards"]  # saved before srlib split steps
    save_checkpoint(tmp_path / "old.npz", ckpt)
    assert Trainer.resume(tmp_path / "old.npz", pairs).shards == 1


@pytest.mark.parametrize("shards", [0, 257, "2", True, 2.0])
def test_bad_shards_are_refused(tmp_path, pairs, shards):
    ckpt = Trainer(SMALL, pairs, total=4, seed=1, shards=2).checkpoint()
    ckpt.meta["shards"] = shards
    save_checkpoint(tmp_path / "bad.npz", ckpt)
    with pytest.raises(SrlibError, match="bad.npz is not usable"):
        load_checkpoint(tmp_path / "bad.npz")
    with pytest.raises(SrlibError, match="shards must be"):
        Trainer(SMALL, pairs, total=4, shards=shards)


def test_adam_sees_the_summed_gradient_once(pairs):
    """One optimizer step per iteration and network, whatever the shards: Adam's step count says so."""
    trainer = Trainer(SMALL, pairs, total=3, seed=0, shards=3)
    trainer.run(progress=False)
    assert all(isinstance(o, Adam) and o.t == 3 * 3 for o in trainer.optimizers)  # 3 channels x 3 iterations
