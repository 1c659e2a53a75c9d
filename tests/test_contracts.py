"""The extension points keep their promises: every layer does all a layer must (checkpoints, tiling,
ONNX), every network a configuration can make saves and loads by its parameters' names, and every
preset parameterises every notebook with names its parameters cell has."""
from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from srlib.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from srlib.model import SRModel
from srlib.nn import layers
from srlib.nn.network import NetConfig, SRNet
from srlib.recipe import RECIPES
from srlib.report.registry import NOTEBOOKS, PRESETS
from srlib.report.runner import notebook_defaults

ROOT = Path(__file__).resolve().parent.parent


def layer_classes() -> list[type[layers.Layer]]:
    found, todo = [], [layers.Layer]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def configs() -> dict[str, NetConfig]:
    """Every recipe's network, and each switch a configuration has, on and off."""
    out = {name: recipe.net for name, recipe in RECIPES.items()}
    base = RECIPES["photo"].net
    out.update({"no bias": replace(base, bias=False), "not jpeg_aware": replace(base, jpeg_aware=False),
                "one channel, jpeg_aware": replace(RECIPES["improved"].net, jpeg_aware=True),
                "final ReLU": replace(base, final_relu=True), "residual blocks": replace(base, res_blocks=2)})
    return out


@pytest.mark.parametrize("cls", layer_classes(), ids=lambda c: c.__name__)
def test_every_layer_class_exports_to_onnx(cls):
    assert cls.to_onnx is not layers.Layer.to_onnx, f"{cls.__name__} has no to_onnx"


@pytest.mark.parametrize("name", list(configs()))
def test_every_parameter_a_configuration_makes_saves_and_loads(tmp_path, name):
    config = configs()[name]
    net = SRNet(config, seed=1, paths="fixed")
    assert set(config.param_shapes()) == {p.name for p in net.params()}
    weights = {k: np.random.default_rng(0).standard_normal(v.shape).astype(v.dtype) for k, v in net.weights().items()}
    save_checkpoint(tmp_path / "m.npz", Checkpoint(config=config, weights=[weights]))
    loaded = load_checkpoint(tmp_path / "m.npz")
    assert all(np.array_equal(loaded.weights[0][k], v) for k, v in weights.items())


@pytest.mark.parametrize("name", list(configs()))
def test_the_tiling_halo_covers_every_layer_that_looks_at_neighbours(name):
    net = SRNet(configs()[name], paths="fixed")
    model = SRModel(net, residual=True, output_scale=255.0, grid="centre")
    assert model.halo > sum(layer.reach() for layer in net.layers)
    assert sum(layer.reach() for layer in net.layers) == sum(k // 2 for _, _, k in configs()[name].conv_shapes())


def parameters_cell(notebook: str) -> set[str]:
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook}: {len(tagged)} cells tagged parameters"
    tree = ast.parse("".join(tagged[0]["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_notebook_has_every_preset_with_its_own_parameters(preset):
    for name, notebook in NOTEBOOKS.items():
        assert preset in notebook.presets, f"{name} has no {preset} preset"
        unknown = set(notebook.presets[preset]) - parameters_cell(name)
        assert not unknown, f"{preset} gives {name} parameters its parameters cell lacks: {sorted(unknown)}"
    assert all(set(nb.presets) == set(PRESETS) for nb in NOTEBOOKS.values()), "a preset no notebook documents"


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_every_notebook_plans_from_its_parameters_and_writes_its_findings_in_its_module(name):
    """The notebook's run cell and ``report --dry-run`` plan alike: the run cell calls its module's
    ``plan`` on ``notebook.parameters(...)``, and its conclusions come from the module, not from
    f-strings in the notebook."""
    module = NOTEBOOKS[name].experiment()
    assert callable(module.plan) and callable(module.findings) and callable(module.limitations)
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert f'notebook.parameters("{name}", globals())' in code
    assert "experiment.plan(P)" in code or "experiment.run(P," in code
    assert "experiment.findings(" in code and "experiment.limitations(" in code
    for preset in PRESETS:
        plan = module.plan({**notebook_defaults(name), **NOTEBOOKS[name].presets[preset]})
        tasks = [t for group in plan.values() for t in group]
        assert tasks and len({t.name for t in tasks}) == len(tasks), f"{name} {preset}: no runs, or two with one name"


def test_every_notebook_in_the_registry_exists_and_each_file_is_registered():
    files = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert files == set(NOTEBOOKS)


def test_nbval_runs_a_notebook_from_the_notebooks_folder():
    """``cd notebooks && pytest 02_hard_training.ipynb``: the sanitize file is found from there too."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "02_hard_training.ipynb::Cell 0"],
                       cwd=ROOT / "notebooks", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_a_recipe_changes_its_network_whole_or_field_by_field():
    base = RECIPES["photo"]
    other = NetConfig(channels=(8, 48), kernels=(3, 3), image_channels=3)
    assert base.with_(net=other).net == other
    assert base.with_(net=other, res_blocks=2).net == replace(other, res_blocks=2)
    assert base.with_(res_blocks=1, lr=1e-3).net == replace(base.net, res_blocks=1)
