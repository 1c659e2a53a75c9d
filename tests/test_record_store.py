"""The record store is input, read like a checkpoint: links are never followed (so nothing outside the store
is read, written or deleted), only plain files of bounded size and depth are read, and a record that is
not one srlib wrote (edited, cut short, merged, forged) is set aside with one line, so its run trains
again and no such number is published. Fixtures are made by code."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from srlib.errors import SrlibError
from srlib.recipe import RECIPES
from srlib.report import notebook, record, records
from srlib.report.sweep import Task, finished, recorded, run_tasks


@pytest.fixture
def store_of_two(celeba, tmp_path) -> tuple[Path, Path, list[Task], notebook.Data]:
    """A run folder with two finished runs (one keeps its weights), and their store."""
    data = notebook.data_source(str(celeba), "validation", 2)
    recipe = RECIPES["improved"].with_(images=2, warmup=1)
    tasks = [Task("kept", recipe, 3, seed=0, keep_weights=True), Task("other", recipe, 3, seed=1)]
    run_tasks(tasks, tmp_path / "runs", data, scheduler="serial")
    records.store(tmp_path / "runs", tmp_path / "store")
    return tmp_path / "runs", tmp_path / "store", tasks, data


def rewrite(path: Path, change) -> None:
    r = json.loads(path.read_text())
    change(r)
    path.write_text(json.dumps(r))


FORGERIES = {
    "a score raised 10 dB": lambda r: r.update(psnr=[v + 10 for v in r["psnr"]]),
    "the task digest deleted": lambda r: r.pop("task_digest"),
    "a NaN score, no divergence": lambda r: r["psnr"].__setitem__(0, float("nan")),
    "an infinite score": lambda r: r["psnr"].__setitem__(0, float("inf")),
    "one score for two images": lambda r: r.update(psnr=r["psnr"][:1]),
    "a loss curve cut short": lambda r: r.update(loss=r["loss"][:1]),
    "the seal deleted": lambda r: r.pop(record.SEAL),
    "a validation curve out of the run": lambda r: r.update(val_iteration=[99], val_psnr=[30.0]),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_an_edited_record_is_set_aside_and_its_run_trains_again(store_of_two, tmp_path, capsys, name):
    runs, store, tasks, data = store_of_two
    rewrite(store / "other.json", FORGERIES[name])
    fresh = tmp_path / "sitting2"
    assert records.restore(store, fresh) == 1  # "kept" only
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "other.json" in note[0] and "trains again" in note[0], note
    assert not (fresh / "other.json").exists() and not finished(tasks[1], store, data)
    assert records.table(store).name.tolist() == ["kept"]


def test_a_record_run_by_today_and_one_sealed_when_migrated_are_taken(store_of_two):
    runs, store, tasks, data = store_of_two
    assert all(finished(t, store, data) for t in tasks)
    r = recorded(tasks[0], store)
    assert r is not None and record.check(r, store / "kept.json", tasks[0].digest(), 3) is r


@pytest.mark.parametrize("junk", ["<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n", "[1, 2, 3]", "[" * 100_000,
                                  "\xff\xfe not utf-8", ""])
def test_a_stray_file_in_a_records_place_is_one_note(store_of_two, tmp_path, capsys, junk):
    runs, store, tasks, data = store_of_two
    (store / "other.json").write_bytes(junk.encode("latin-1"))
    assert records.restore(store, tmp_path / "fresh") == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert recorded(tasks[1], store) is None


def test_links_devices_and_folders_in_the_store_are_never_followed(store_of_two, tmp_path, capsys):
    runs, store, tasks, data = store_of_two
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "other.json").write_bytes((store / "other.json").read_bytes())
    (store / "other.json").unlink()
    (store / "other.json").symlink_to(outside / "other.json")  # a link to a valid record
    (store / "zero.npz").symlink_to("/dev/zero")
    (store / "folder.json").mkdir()
    os.mkfifo(store / "fifo.json")
    fresh = tmp_path / "fresh"
    assert records.restore(store, fresh) == 1
    assert sorted(p.name for p in fresh.iterdir()) == ["kept.json", "kept.npz"]
    assert len(capsys.readouterr().err.strip().splitlines()) == 4
    assert recorded(tasks[1], store) is None


def test_a_linked_partial_folder_is_refused_before_anything_is_deleted(store_of_two, tmp_path):
    """``store`` removes a finished run's unfinished checkpoint from partial/: through a link that would
    delete files elsewhere."""
    runs, store, tasks, data = store_of_two
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept.npz").write_text("a user's file")
    (store / "partial").symlink_to(elsewhere)
    with pytest.raises(SrlibError, match="symbolic link"):
        records.store(runs, store)
    with pytest.raises(SrlibError, match="symbolic link"):
        records.restore(store, tmp_path / "fresh")
    assert (elsewhere / "kept.npz").read_text() == "a user's file"


def test_a_record_is_read_within_bounds(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(record.MAX_RECORD_BYTES + 1)
    with pytest.raises(record.BadRecord, match="bytes"):
        record.read(big)
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 1000 + "1" + "}" * 1000)
    with pytest.raises(record.BadRecord, match="nested"):
        record.read(deep)
    quoted = tmp_path / "quoted.json"
    quoted.write_text(json.dumps({"text": "[[[[" * 100}))  # brackets inside a string are no nesting
    with pytest.raises(record.BadRecord, match="no task"):
        record.read(quoted)


@pytest.mark.parametrize("name", ["01_optimizer_comparison", "02_hard_training", "03_three_colour_networks",
                                  "04_beyond_the_study"])
def test_every_published_record_is_still_taken_for_the_task_that_made_it(name):
    """The published report republishes from its records: a change to how tasks or recipes are hashed (a
    new configuration field, say) must leave every committed record its task's, and every record a task
    of the plan. (Runs added to the plan since the last publish have no record yet: a sitting trains them.)"""
    from srlib.report import runner
    from srlib.report.registry import NOTEBOOKS
    from srlib.report.sweep import recorded

    store = runner.records_folder("study", True, name)
    notebook = NOTEBOOKS[name]
    plan = notebook.experiment().plan({**runner.notebook_defaults(name), **notebook.presets["study"]}, [store])
    tasks = {t.name: t for group in plan.values() for t in group}
    names = sorted(p.stem for p in store.glob("*.json"))
    assert names and set(names) <= set(tasks)
    assert [n for n in names if recorded(tasks[n], store) is None] == []


def test_a_forged_record_resealed_is_caught_by_its_kept_model_on_publish(store_of_two, tmp_path, capsys):
    """A seal is a hash anyone can recompute: a record whose scores were raised and sealed again reads as
    srlib's own. Its kept model, scored again on the images the record names, does not give them."""
    from srlib.report.sweep import check_kept_models

    runs, store, tasks, data = store_of_two
    fresh = tmp_path / "sitting2"
    records.restore(store, fresh)
    assert check_kept_models(fresh, data.root) == []  # the honest record: its model gives its scores
    rewrite(fresh / "kept.json", lambda r: r.update(record.seal({k: v for k, v in r.items() if k != record.SEAL}
                                                                | {"psnr": [v + 0.5 for v in r["psnr"]]})))
    assert recorded(tasks[0], fresh) is not None  # it passes every check a record file can have
    capsys.readouterr()
    assert check_kept_models(fresh, data.root) == ["kept"]
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "kept.json: its kept model scores 0.500 dB away from it on" in note[0], note
    assert not finished(tasks[0], fresh, data)  # so the run trains again


def test_a_damaged_record_of_a_kept_model_never_blocks_the_resume(store_of_two, tmp_path, capsys):
    """The store keeps "kept"'s model alone beside its record. With the record damaged, laying that model
    down as the run's checkpoint would block every --resume ("holds no training state"): the run trains
    again instead, to the same numbers."""
    runs, store, tasks, data = store_of_two
    before = json.loads((runs / "kept.json").read_text())
    (store / "kept.json").write_text((store / "kept.json").read_text()[:100])  # cut short by a merge
    fresh = tmp_path / "sitting2"
    assert records.restore(store, fresh) == 1 and not (fresh / "kept.npz").exists()
    capsys.readouterr()
    again = run_tasks(tasks, fresh, data, scheduler="serial")
    assert again["kept"].psnr.tolist() == before["psnr"]
    (fresh / "other.npz").write_bytes((store / "kept.npz").read_bytes())  # a model alone where a checkpoint goes
    (fresh / "other.json").unlink()
    assert run_tasks(tasks, fresh, data, scheduler="serial")["other"].loss.shape == (3,)
