"""Photo degradations sample the centre grid; models remember their grid; the flip/rotation ensemble;
the photo benchmark's paired intervals."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from srlib.checkpoint import Checkpoint, save_checkpoint
from srlib.data import photo
from srlib.data.celeba import Pairs
from srlib.data.degrade import upscale_bicubic_centred
from srlib.errors import SrlibError
from srlib.evaluation.evaluate import PHOTO_BASELINES, model_method, opencv_methods, photo_benchmark
from srlib.evaluation.metrics import paired_difference
from srlib.model import SRModel
from srlib.nn.network import NetConfig, SRNet
from srlib.recipe import RECIPES
from srlib.report import plots
from srlib.train import Trainer, draw_batch


def ramp(h: int = 64, w: int = 64) -> np.ndarray:
    """HR image whose value is linear in x: a sample's value says where it was taken."""
    x = np.arange(w, dtype=np.float64)
    return np.repeat((40 + 2 * x)[None, :], h, axis=0).astype(np.uint8)


@pytest.mark.parametrize("degrade", [photo.area, lambda hr: photo.blur_sample(hr, 1.2),
                                     lambda hr: photo.blur_sample_at(hr, 1.2, 0.0, 0.0)]
                         + [lambda hr, k=k: photo.pillow_resize(hr, k) for k in Image.Resampling if k != Image.Resampling.NEAREST]
                         + [lambda hr, k=k: photo.opencv_resize(hr, k) for k in (cv2.INTER_LINEAR, cv2.INTER_CUBIC,
                                                                                  cv2.INTER_LANCZOS4)])
def test_photo_degradations_sample_block_centres(degrade):
    lr = degrade(ramp()).astype(np.float64)
    centres = 40 + 2 * (4 * np.arange(16) + 1.5)  # HR x = 4j + 1.5
    np.testing.assert_allclose(lr[8, 2:-2], centres[2:-2], atol=0.51)  # away from the borders
    up = upscale_bicubic_centred(lr.astype(np.uint8))
    np.testing.assert_allclose(up[8, 8:-8], ramp()[8, 8:-8], atol=1.0)  # centre-grid bicubic puts it back


@pytest.mark.parametrize("dy,dx", [(0.5, 0.5), (-0.5, 0.25), (0.0, -0.4)])
def test_blur_sample_at_takes_each_sample_where_it_is_told(dy, dx):
    lr = photo.blur_sample_at(ramp(), 0.3, dy, dx).astype(np.float64)
    at = 40 + 2 * (4 * np.arange(16) + 1.5 + dx)
    np.testing.assert_allclose(lr[8, 2:-2], at[2:-2], atol=0.6)


def test_sharpening_steepens_an_edge_and_zero_leaves_it():
    edge = np.repeat(np.r_[np.full(8, 80), np.full(8, 160)][None], 16, axis=0).astype(np.uint8)
    np.testing.assert_array_equal(photo.sharpen(edge, 0.0), edge)
    sharp = photo.sharpen(edge, 0.5).astype(int)
    assert sharp[8, 6] < 80 and sharp[8, 9] > 160 and sharp[8, 0] == 80 and sharp[8, 15] == 160


def test_the_wide_mix_draws_every_kind_and_keeps_lanczos_out():
    hr = smooth_image(np.random.default_rng(0), 176, 176)
    a, b = (photo.random_wide_degradation(hr, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(a[0], b[0])
    drawn = [photo.random_wide_degradation(hr, np.random.default_rng(s)) for s in range(60)]
    assert all(lr.shape == (44, 44, 3) and lr.dtype == np.uint8 for lr, _ in drawn)
    qualities = [q for _, q in drawn]
    assert 15 < sum(q is not None for q in qualities) < 45
    assert all(photo.JPEG_QUALITIES[0] <= q <= photo.JPEG_QUALITIES[1] for q in qualities if q is not None)
    assert not any("Lanczos" in kind for kind in photo.WIDE_KINDS)  # held out: BENCHMARK scores them
    assert {"Pillow Lanczos", "OpenCV Lanczos, aliased"} <= set(photo.BENCHMARK)


@pytest.mark.parametrize("name", list(photo.TRAINING))
def test_every_training_degradation_names_a_grid_and_draws_lr(name, pairs):
    kind = photo.TRAINING[name]
    assert kind.grid in photo.GRIDS
    if kind.draw is not None:
        lr, quality = kind.draw(pairs.hr[0], np.random.default_rng(0))
        assert lr.shape == pairs.lr[0].shape and (quality is None or 1 <= quality <= 100)


def test_random_degradation_is_seeded_and_shaped():
    hr = smooth_image(np.random.default_rng(0), 176, 176)
    a = [photo.random_degradation(hr, np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])
    assert a[0][0].shape == (44, 44, 3) and a[0][0].dtype == np.uint8
    drawn = [photo.random_degradation(hr, np.random.default_rng(s)) for s in range(16)]
    assert len({lr.tobytes() for lr, _ in drawn}) == 16
    qualities = [q for _, q in drawn]
    assert None in qualities and all(q is None or 60 <= q <= 95 for q in qualities) and set(qualities) != {None}
    for lr, q in drawn:  # the quality returned is the one the image was compressed at
        if q is not None:
            np.testing.assert_array_equal(photo.jpeg(lr, q).shape, lr.shape)


def test_jpeg_strength():
    assert photo.jpeg_strength(None) == 0 and photo.jpeg_strength(75) == 1 and photo.jpeg_strength(95) == pytest.approx(0.2)
    assert photo.jpeg_strength(20) == photo.jpeg_strength(60) == pytest.approx(1.6)  # below training's range
    with pytest.raises(ValueError, match="1..100"):
        photo.jpeg_strength(0)


@pytest.mark.parametrize("quality", [30, 60, 75, 95, 100])
def test_jpeg_quality_is_read_from_the_file(tmp_path, quality):
    img = smooth_image(np.random.default_rng(0), 40, 48)
    cv2.imwrite(str(tmp_path / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    Image.fromarray(img).save(tmp_path / "b.jpeg", quality=quality)
    assert photo.jpeg_quality(tmp_path / "a.jpg") == photo.jpeg_quality(tmp_path / "b.jpeg") == quality
    cv2.imwrite(str(tmp_path / "c.png"), img)
    (tmp_path / "d.jpg").write_bytes(b"not an image")
    assert photo.jpeg_quality(tmp_path / "c.png") is None and photo.jpeg_quality(tmp_path / "d.jpg") is None


@pytest.fixture(scope="module")
def centre_model() -> SRModel:
    return SRModel(SRNet(NetConfig(init="he", bias=True, final_relu=False), seed=2), residual=True,
                   output_scale=255.0, grid="centre")


def test_grid_is_stored_and_old_checkpoints_are_study(tmp_path, centre_model):
    net = centre_model.nets[0]
    path = save_checkpoint(tmp_path / "m.npz", Checkpoint(config=net.config, weights=[net.weights()],
                                                          meta={"model": centre_model.model_meta()}))
    assert SRModel.from_checkpoint(str(path)).grid == "centre"
    old = save_checkpoint(tmp_path / "old.npz", Checkpoint(config=net.config, weights=[net.weights()],
                                                           meta={"model": {"residual": True}}))
    assert SRModel.from_checkpoint(str(old)).grid == "study"
    for i, model in enumerate([{"grid": "diagonal"}, {"output_scale": "x"}, {"residual": "yes"}, "model"]):
        bad = save_checkpoint(tmp_path / f"bad{i}.npz", Checkpoint(config=net.config, weights=[net.weights()],
                                                                   meta={"model": model}))
        with pytest.raises(SrlibError, match=f"bad{i}.npz"):
            SRModel.from_checkpoint(str(bad))


def test_ensemble_is_flip_equivariant_and_only_on_the_centre_grid(centre_model):
    lr = smooth_image(np.random.default_rng(1), 20, 24)[None]
    y = centre_model.predict(lr, ensemble=True)
    y_flipped = centre_model.predict(np.ascontiguousarray(lr[:, :, ::-1]), ensemble=True)
    np.testing.assert_allclose(y_flipped[:, :, ::-1], y, atol=1e-3)
    assert np.abs(y - centre_model.predict(lr)).max() > 0.01  # it does average something
    study = SRModel(centre_model.nets, residual=True, output_scale=255.0, grid="study")
    with pytest.raises(SrlibError, match="centre grid"):
        study.predict(lr, ensemble=True)


def test_paired_difference_and_benchmark_table(centre_model):
    a, b = np.array([30.0, 31.0, 29.0, 30.5]), np.array([29.0, 30.5, 28.0, 30.0])
    mean, low, high = paired_difference(a, b)
    assert mean == pytest.approx(0.75) and 0.5 <= low <= mean <= high <= 1.0
    hr = np.stack([smooth_image(np.random.default_rng(i), 176, 176) for i in range(4)])
    pairs = Pairs([__import__("pathlib").Path(f"{i}.png") for i in range(4)], hr[:, ::4, ::4], hr)
    methods = {**PHOTO_BASELINES, "model": model_method(centre_model)}
    scores, summary = photo_benchmark(pairs, methods)
    assert len(scores) == 4 * len(methods) * len(photo.BENCHMARK)
    assert list(summary.columns) == ["degradation", "method", "psnr_rgb", "minus_bicubic", "ci_low", "ci_high",
                                     "below_bicubic", "images"]
    bicubic = summary[summary.method == "bicubic"]
    assert (bicubic.minus_bicubic == 0).all() and (bicubic.below_bicubic == 0).all() and (summary.images == 4).all()
    for (deg, name), g in scores.groupby(["degradation", "method"]):
        ref = scores[(scores.degradation == deg) & (scores.method == "bicubic")].psnr_rgb.to_numpy()
        row = summary[(summary.degradation == deg) & (summary.method == name)]
        assert row.below_bicubic.item() == np.mean(g.psnr_rgb.to_numpy() < ref)


class FakeSuperRes:
    """cv2.dnn_superres's model object: records what it is given, upscales by repeating pixels."""
    made: list = []

    def __init__(self):
        self.calls = []
        FakeSuperRes.made.append(self)

    def readModel(self, path):
        if "broken" in path:
            raise cv2.error("cannot parse")
        self.calls.append(("read", path.rsplit("/", 1)[-1]))

    def setModel(self, algo, scale):
        self.calls.append(("set", algo, scale))

    def upsample(self, image):
        return np.repeat(np.repeat(image, 4, axis=0), 4, axis=1)


def test_opencv_models_are_found_by_name_and_scored_per_image(tmp_path, monkeypatch):
    monkeypatch.setattr(cv2, "dnn_superres", type("M", (), {"DnnSuperResImpl_create": FakeSuperRes}), raising=False)
    FakeSuperRes.made = []
    for name in ("ESPCN_x4.pb", "FSRCNN-small_x4.pb", "ESPCN_x2.pb", "Other_x4.pb", "notes.txt"):
        (tmp_path / name).write_bytes(b"graph")
    methods = opencv_methods(tmp_path)
    assert list(methods) == ["OpenCV ESPCN", "OpenCV FSRCNN-small"]
    assert [m.calls for m in FakeSuperRes.made] == [[("read", "ESPCN_x4.pb"), ("set", "espcn", 4)],
                                                    [("read", "FSRCNN-small_x4.pb"), ("set", "fsrcnn", 4)]]
    lr = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    out = methods["OpenCV ESPCN"](lr, 75)
    assert out.shape == (2, 20, 24, 3) and out.dtype == np.float32 and np.array_equal(out[:, ::4, ::4], lr)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "LapSRN_x4.pb").write_bytes(b"x")
    with pytest.raises(SrlibError, match="LapSRN_x4.pb: OpenCV cannot read this model"):
        opencv_methods(tmp_path / "broken")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrlibError, match="holds no x4 model"):
        opencv_methods(tmp_path / "empty")
    with pytest.raises(SrlibError, match="is not a folder"):
        opencv_methods(tmp_path / "missing")


def test_opencv_models_without_contrib_say_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delattr(cv2, "dnn_superres", raising=False)
    with pytest.raises(SrlibError, match="pip install 'opencv-contrib-python-headless>=4.8,<5'") as e:
        opencv_methods(tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("recipe", ["photo", "photo-wide"])
def test_photo_recipe_trains_on_the_centre_grid(pairs, recipe):
    trainer = Trainer(RECIPES[recipe].with_(images=3), pairs, total=2, seed=0, val=pairs)
    lr, hr, strength = draw_batch(trainer.recipe, trainer.train, trainer.rng)
    assert lr.shape == (3, 44, 44, 3) and trainer.model.grid == "centre" and strength.shape == (3,)
    trainer.run(progress=False)
    assert np.isfinite(trainer.validate())


def test_sampling_grid_figure(tmp_path):
    fig = plots.sampling_grids(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 10_000
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


@pytest.mark.parametrize("quality", [30, 50, 60, 75, 85, 95])
def test_jpeg_quality_is_read_from_the_pixels(quality):
    """A JPEG decoded and kept as pixels still shows its 8x8 quantisation: the quality is found (to the
    quality next to it, whose table can be the same to the rounding); never-compressed, resized and
    shifted images show none."""
    img = smooth_image(np.random.default_rng(quality), 64, 72)
    assert abs(photo.estimate_jpeg_quality(photo.jpeg(img, quality)) - quality) <= 1
    assert photo.estimate_jpeg_quality(img) is None
    resized = cv2.resize(photo.jpeg(img, quality), (61, 53), interpolation=cv2.INTER_AREA)
    assert photo.estimate_jpeg_quality(resized) is None
    assert photo.estimate_jpeg_quality(photo.jpeg(img, quality)[3:, 5:]) is None
    assert photo.estimate_jpeg_quality(img[:7, :7]) is None  # smaller than one block
