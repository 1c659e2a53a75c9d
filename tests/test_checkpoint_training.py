"""Checkpoints (atomic, validated, pickle-free) and training (seeded, resumable, diverges loudly)."""
from __future__ import annotations

import numpy as np
import pytest

from srlib import checkpoint as ckpt_mod
from srlib.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from srlib.errors import SrlibError, TrainingDiverged
from srlib.nn.network import NetConfig, SRNet
from srlib.nn.optimizers import make_optimizer
from srlib.recipe import RECIPES, Recipe, get_recipe
from srlib.train import Trainer, train_step

SMALL = Recipe(name="small", images=2)


def small_ckpt() -> Checkpoint:
    net = SRNet(NetConfig(), seed=0)
    return Checkpoint(config=net.config, weights=[net.weights()], iteration=7,
                      history={"loss": np.arange(3.0)}, meta={"note": "x"})


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "a.npz", small_ckpt())
    back = load_checkpoint(path)
    assert back.iteration == 7 and back.meta == {"note": "x"} and back.config == NetConfig()
    for k, v in small_ckpt().weights[0].items():
        np.testing.assert_array_equal(back.weights[0][k], v)
    np.testing.assert_array_equal(back.history["loss"], np.arange(3.0))


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "a.npz", small_ckpt())
    before = path.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies in the middle of writing

    monkeypatch.setattr(ckpt_mod.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, small_ckpt())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "shape", "version", "pickle", "nan"])
def test_bad_checkpoints_raise_one_clear_line(tmp_path, damage):
    path = tmp_path / "c.npz"
    save_checkpoint(path, small_ckpt())
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "missing":
        path = tmp_path / "nope.npz"
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if damage == "shape":
            arrays["weight/0/conv2.weight"] = np.zeros((32, 64, 5, 5), np.float32)
        elif damage == "version":
            arrays["meta_json"] = np.array(str(arrays["meta_json"]).replace('"version": 1', '"version": 99'))
        elif damage == "nan":
            arrays["weight/0/conv1.weight"][0, 0, 0, 0] = np.nan
        elif damage == "pickle":
            arrays["weight/0/conv1.weight"] = np.array([{"evil": 1}], dtype=object)
        np.savez(path, **arrays)
    with pytest.raises(SrlibError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg


def test_train_step_returns_loss_of_its_own_forward_pass():
    net = SRNet(NetConfig(dtype="float64"), seed=0)
    rng = np.random.default_rng(0)
    x, t = rng.random((3, 1, 44, 44)), rng.random((3, 1, 176, 176)) * 255
    expected = float(np.mean((net.forward(x) - t) ** 2))
    assert train_step(net, make_optimizer("adam", net.params()), x, t) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("recipe,per_channel", [(SMALL, False), (RECIPES["improved"].with_(images=2), False),
                                                (SMALL, True), (RECIPES["photo"].with_(images=2), False)])
def test_killed_run_resumes_to_identical_weights(tmp_path, pairs, recipe, per_channel):
    total, kill_at = 7, 5
    full = Trainer(recipe, pairs, total=total, seed=3, per_channel=per_channel)
    full.run(progress=False)

    ck = tmp_path / "run.npz"
    first = Trainer(recipe, pairs, total=total, seed=3, per_channel=per_channel)
    first.run(until=kill_at, checkpoint=ck, checkpoint_every=2, progress=False)
    assert load_checkpoint(ck).iteration == kill_at  # the last checkpoint of the killed run
    del first
    resumed = Trainer.resume(ck, pairs)
    resumed.run(progress=False)
    assert resumed.iteration == total
    for a, b in zip(full.model.nets, resumed.model.nets):
        for k, v in a.weights().items():
            np.testing.assert_array_equal(v, b.weights()[k])
    assert resumed.history.loss == full.history.loss


def _edit_meta(path, edit) -> None:
    """Rewrite a checkpoint's run metadata (``meta``) with ``edit(meta)``, as an older srlib or a hostile
    hand would have written it."""
    import json
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    stored = json.loads(str(arrays["meta_json"]))
    edit(stored["meta"])
    arrays["meta_json"] = np.array(json.dumps(stored))
    np.savez(path, **arrays)


def test_training_time_adds_up_over_sittings(tmp_path, pairs):
    ck = tmp_path / "run.npz"
    first = Trainer(SMALL, pairs, total=6, seed=0)
    first.run(until=3, checkpoint=ck, progress=False)
    saved = load_checkpoint(ck).meta
    assert 0 < saved["train_s"] <= first.train_s and saved["timed_from"] == 0
    resumed = Trainer.resume(ck, pairs)
    assert (resumed.train_s, resumed.timed_from) == (saved["train_s"], 0)
    resumed.run(progress=False)
    assert resumed.train_s > saved["train_s"]  # the second sitting's time added to the first's

    # a run checkpointed before srlib kept its time: timed from where it was resumed, and says so
    _edit_meta(ck, lambda m: (m.pop("train_s"), m.pop("timed_from")))
    legacy = Trainer.resume(ck, pairs)
    assert (legacy.train_s, legacy.timed_from) == (0.0, 3)


def test_a_checkpoint_whose_seed_was_edited_is_refused(tmp_path, pairs):
    """A finished seed-0 run passed off as seed 1 would make two 'independent' seeds of one model: its
    random state still belongs to seed 0's stream."""
    ck = tmp_path / "run.npz"
    Trainer(SMALL, pairs, total=4, seed=0).run(checkpoint=ck, progress=False)
    _edit_meta(ck, lambda m: m.update(seed=1))
    with pytest.raises(SrlibError, match="its random state is not seed 1's: the seed was changed after training"):
        Trainer.resume(ck, pairs)


@pytest.mark.parametrize("train_s,timed_from", [(-1.0, 0), (float("inf"), 0), ("1", 0), (1.0, 7), (1.0, True)])
def test_bad_training_time_is_refused(tmp_path, pairs, train_s, timed_from):
    ck = tmp_path / "run.npz"
    Trainer(SMALL, pairs, total=6, seed=0).run(until=3, checkpoint=ck, progress=False)
    _edit_meta(ck, lambda m: m.update(train_s=train_s, timed_from=timed_from))
    with pytest.raises(SrlibError, match="training time"):
        load_checkpoint(ck)


def test_same_seed_same_run_other_seed_other_run(pairs):
    runs = [Trainer(SMALL, pairs, total=3, seed=s).run(progress=False).loss for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_divergence_is_an_error_not_nan(pairs):
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        Trainer(SMALL.with_(optimizer="sgd"), pairs, total=20, seed=0, lr=10.0).run(progress=False)


def test_shared_optimizer_bug_advances_one_counter(pairs):
    t = Trainer(SMALL, pairs, total=2, per_channel=True, shared_optimizer_bug=True)
    t.run(progress=False)
    adam = t.optimizers[0].shared.adam
    assert adam.t == 6  # 3 networks x 2 iterations share one step counter, as in the study
    fixed = Trainer(SMALL, pairs, total=2, per_channel=True)
    fixed.run(progress=False)
    assert [o.t for o in fixed.optimizers] == [2, 2, 2]


def test_learning_rate_schedule():
    r = Recipe(lr=1.0, warmup=10, cosine=True)
    assert r.learning_rate(0, 110) == pytest.approx(0.1)
    assert r.learning_rate(9, 110) == pytest.approx(1.0)
    assert r.learning_rate(60, 110) == pytest.approx(0.5)
    assert r.learning_rate(109, 110) == pytest.approx(0.5 * (1 + np.cos(np.pi * 99 / 100)))


def test_unknown_recipe():
    with pytest.raises(SrlibError, match="choose one of"):
        get_recipe("magic")


def test_checkpoints_of_srlib_1_0_name_the_uniform_init_seed():
    from srlib.nn.network import NetConfig

    old = {**NetConfig().to_dict(), "init": "seed"}
    assert NetConfig.from_dict(old) == NetConfig(init="uniform")
    with pytest.raises(ValueError, match="init must be 'uniform' or 'he'"):
        NetConfig(init="seed")


def test_a_fine_tuning_run_starts_from_the_file_and_records_it(tmp_path, pairs):
    import hashlib

    start = tmp_path / "start.npz"
    Trainer(SMALL, pairs, total=4, seed=5).run(checkpoint=start, progress=False)
    tuned = Trainer(SMALL.with_(name="tune", lr=1e-4), pairs, total=6, seed=0, init_from=start)
    for k, v in load_checkpoint(start).weights[0].items():
        np.testing.assert_array_equal(tuned.model.nets[0].weights()[k], v)
    record = {"file": "start.npz", "sha256": hashlib.sha256(start.read_bytes()).hexdigest()}
    assert tuned.init_from == record

    # killed and resumed, it is the uninterrupted fine-tuning run, and still says where it started
    full = Trainer(SMALL.with_(name="tune", lr=1e-4), pairs, total=6, seed=0, init_from=start)
    full.run(progress=False)
    ck = tmp_path / "tune.npz"
    tuned.run(until=3, checkpoint=ck, progress=False)
    resumed = Trainer.resume(ck, pairs)
    resumed.run(progress=False)
    assert resumed.init_from == record and load_checkpoint(ck).meta["init_from"] == record
    for k, v in full.model.nets[0].weights().items():
        np.testing.assert_array_equal(resumed.model.nets[0].weights()[k], v)


@pytest.mark.parametrize("other", [RECIPES["improved"].with_(images=2), SMALL.with_(output_scale=255.0)])
def test_fine_tuning_from_another_network_or_output_is_one_line(tmp_path, pairs, other):
    start = tmp_path / "start.npz"
    Trainer(other, pairs, total=1, seed=0).run(checkpoint=start, progress=False)
    with pytest.raises(SrlibError, match=r"--init-from .*start\.npz: it holds (another network|output_scale)"):
        Trainer(SMALL, pairs, total=2, init_from=start)


@pytest.mark.parametrize("bad", ["x", {"file": "a.npz"}, {"file": "a.npz", "sha256": "00"},
                                 {"file": 3, "sha256": "0" * 64}])
def test_a_damaged_fine_tuning_record_is_refused(tmp_path, pairs, bad):
    ck = tmp_path / "run.npz"
    Trainer(SMALL, pairs, total=2, seed=0).run(checkpoint=ck, progress=False)
    _edit_meta(ck, lambda m: m.update(init_from=bad))
    with pytest.raises(SrlibError, match="init_from"):
        load_checkpoint(ck)
