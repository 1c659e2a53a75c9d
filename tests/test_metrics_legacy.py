"""Metrics against scikit-image, the evaluation table, and the restricted importer of the study's pickles."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srlib.errors import SrlibError
from srlib.evaluation.evaluate import BASELINES, evaluate, summarize
from srlib.evaluation.metrics import crop, image_metrics, luma, psnr, ssim, study_psnr
from srlib.legacy import import_study_weights, load_array_pickle
from srlib.model import SRModel


@pytest.fixture
def two_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 36, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_skimage(two_images):
    a, b = two_images
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)


def test_luma_matches_skimage_bt601(two_images):
    a, _ = two_images
    np.testing.assert_allclose(luma(a), rgb2ycbcr(a[..., ::-1])[..., 0], atol=1e-6)


def test_ssim_matches_skimage(two_images):
    a, b = two_images
    for x, y, rng in ((a[..., 0], b[..., 0], 255), (luma(a), luma(b), 255)):
        ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=rng)
        assert ssim(x, y, rng) == pytest.approx(ref, abs=1e-6)
    m = image_metrics(a, b, crop_border=4)
    ref = structural_similarity(crop(a, 4), crop(b, 4), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255, channel_axis=-1)
    assert m["ssim_rgb"] == pytest.approx(ref, abs=1e-6)
    assert m["psnr_rgb"] == pytest.approx(peak_signal_noise_ratio(crop(a, 4), crop(b, 4), data_range=255), abs=1e-6)


def test_study_psnr_is_psnr_of_mean_mse():
    assert study_psnr(np.array([100.0, 300.0])) == pytest.approx(10 * np.log10(255 ** 2 / 200))


def test_evaluate_table(pairs):
    scores = evaluate(pairs, BASELINES)
    assert len(scores) == 3 * len(pairs)
    summary = summarize(scores)
    assert list(summary.index) == ["nearest", "bicubic_centred", "bicubic_aligned"]
    assert summary.loc["bicubic_aligned", "psnr_rgb"] > summary.loc["bicubic_centred", "psnr_rgb"]
    one = scores[scores.method == "nearest"].psnr_rgb.mean()
    assert summary.loc["nearest", "psnr_rgb"] == pytest.approx(one)  # mean of per-image values


def write_study_pickles(folder, rng):
    folder.mkdir(parents=True)
    shapes = [(64, 1, 5, 5), (32, 64, 3, 3), (32, 32, 3, 3), (16, 32, 3, 3)]
    arrays = [rng.uniform(-0.01, 0.01, s) for s in shapes]
    for i, a in enumerate(arrays, start=1):
        with open(folder / f"W{i}.pickle", "wb") as f:
            pickle.dump(a, f, protocol=5)
    return arrays


def test_importer_round_trips_float64_pickles(tmp_path):
    arrays = write_study_pickles(tmp_path / "w", np.random.default_rng(0))
    ckpt = import_study_weights(tmp_path / "w", tmp_path / "study.npz")
    for a, w in zip(arrays, ckpt.weights[0].values()):
        np.testing.assert_array_equal(a, w)
        assert w.dtype == np.float64
    model = SRModel.from_checkpoint(str(tmp_path / "study.npz"))
    assert model.output_scale == 1.0 and not model.residual


def test_importer_reads_three_colour_folders(tmp_path):
    for c in "BGR":
        write_study_pickles(tmp_path / "color" / c, np.random.default_rng(ord(c)))
    assert len(import_study_weights(tmp_path / "color").weights) == 3


class _Exploit:
    """Unpickling this calls os.system: a classic malicious pickle."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", [_Exploit(), {"not": "an array"}, np.array(["text"])])
def test_importer_refuses_anything_but_float_arrays(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "W1.pickle"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(SrlibError) as e:
        load_array_pickle(path)
    assert "refused" in str(e.value) and str(path) in str(e.value)
    assert not (tmp_path / "pwned").exists()


def test_importer_names_missing_file(tmp_path):
    with pytest.raises(SrlibError, match="W1.pickle is missing"):
        import_study_weights(tmp_path)
