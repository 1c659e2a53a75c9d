"""Large images: tiled inference equals one-piece inference, and outputs too large are refused early."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import smooth_image
from srlib import model as model_module
from srlib.data.degrade import to_uint8
from srlib.data.photo import BICUBIC_FOR_GRID
from srlib.errors import SrlibError
from srlib.model import SRModel, check_output_size, tile_grid, upscale_alpha
from srlib.nn.network import SRNet
from srlib.recipe import RECIPES


@pytest.fixture(scope="module", params=["study", "photo"])
def residual_model(request) -> SRModel:
    """The shipped models' networks (the photo one sees colour and reaches 7 LR pixels, not 5), random weights."""
    net = SRNet(RECIPES["improved" if request.param == "study" else "photo"].net, seed=3)
    return SRModel(net, residual=True, output_scale=255.0, grid="study" if request.param == "study" else "centre")


def test_tile_grid_covers_every_pixel_once_in_even_tiles(monkeypatch):
    monkeypatch.setattr(model_module, "TILE", 16)
    seen, heights, widths = np.zeros((37, 50), int), set(), set()
    for (rows, cols), (ir, ic), (tr, tc) in tile_grid(37, 50, 6):
        assert ir.stop - ir.start == tr.stop - tr.start and ic.stop - ic.start == tc.stop - tc.start
        assert rows.start + ir.start == tr.start and cols.start + ic.start == tc.start
        seen[tr, tc] += 1
        heights.add(tr.stop - tr.start)
        widths.add(tc.stop - tc.start)
    assert (seen == 1).all()
    assert heights == {12, 13} and widths == {12, 13}  # 3 x 4 tiles of at most 16, none a sliver


def test_tiles_shrink_for_networks_that_hold_more_per_pixel():
    """Colour networks of up to 96 channels take the largest tiles; the study's network, which runs
    three channel planes of 64 together, takes tiles of a quarter fewer pixels a side."""
    assert SRModel.shipped("photo").tile == SRModel.shipped("fast").tile == model_module.TILE
    assert SRModel.shipped("study").tile == 181
    wide = SRModel(SRNet(replace(RECIPES["photo"].net, channels=(512, 48), kernels=(3, 3)), seed=0), grid="centre")
    assert 0 < wide.tile < 120 and wide.tile ** 2 * 512 <= model_module.TILE_FLOATS


def test_tiles_join_without_seams(residual_model, monkeypatch):
    """Small tiles (many seams, halos cut at the border) give the one-piece result."""
    img = smooth_image(np.random.default_rng(0), 45, 38)
    whole = residual_model.predict(img[None])[0]
    monkeypatch.setattr(model_module, "TILE", 8)
    tiled_float = residual_model.predict(img[None])[0]
    tiled = residual_model.upscale(img)
    np.testing.assert_allclose(tiled_float, whole, atol=1e-3)
    assert tiled.dtype == np.uint8 and tiled.shape == (180, 152, 3)
    assert np.abs(tiled.astype(int) - to_uint8(whole)).max() <= 1


@pytest.mark.parametrize("grid", ["study", "centre"])
def test_transparency_upscales_in_tiles_as_in_one_piece(grid, monkeypatch):
    alpha = smooth_image(np.random.default_rng(2), 45, 38)[..., 1]
    whole = to_uint8(BICUBIC_FOR_GRID[grid](alpha))
    monkeypatch.setattr(model_module, "TILE", 8)
    np.testing.assert_array_equal(upscale_alpha(alpha, grid), whole)


def test_upscale_reports_progress(residual_model, monkeypatch):
    monkeypatch.setattr(model_module, "TILE", 16)
    done = []
    residual_model.upscale(smooth_image(np.random.default_rng(1), 40, 33), progress=done.append)
    assert sum(done) == 40 * 33 and len(done) == 9


def test_output_too_large_is_refused_before_any_work():
    check_output_size(8192, 8192)
    with pytest.raises(SrlibError, match=r"photo.png: 16000x16000 upscales to 64000x64000 .* crop"):
        check_output_size(16000, 16000, "photo.png")


@pytest.mark.parametrize("name", list(model_module.SHIPPED))
def test_a_shipped_model_is_what_its_recipe_trains(name):
    """The model card's command reproduces the file: the recipe the model records is the one of that name
    in RECIPES today, network and all (a recipe changed after the model shipped would train another)."""
    from srlib.checkpoint import load_checkpoint
    from srlib.recipe import Recipe

    recorded = Recipe.from_dict(load_checkpoint(model_module.SHIPPED[name]).meta["recipe"])
    assert recorded == RECIPES[recorded.name]
    assert recorded.net == SRModel.shipped(name).nets[0].config


@pytest.mark.parametrize("options,label", [(["--model", "fast"], "fast model"), ([], "photo model"),
                                           (["--grid", "study"], "study model")])
def test_the_compare_panel_names_the_model_that_made_it(tmp_path, monkeypatch, options, label):
    import cv2

    from srlib import cli

    names = []
    monkeypatch.setattr(cli, "comparison", lambda lr, result, grid, name: names.append(name) or result)
    cv2.imwrite(str(tmp_path / "in.png"), smooth_image(np.random.default_rng(0), 16, 20))
    assert cli.main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--compare", *options]) == 0
    assert names == [label]
