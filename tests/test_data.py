"""Data path: CelebA layout in both partition forms, the degradation against the study's definition, baselines,
the embedded sample, and one clear error line for every kind of bad input."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from conftest import make_celeba, smooth_image
from srlib.data.celeba import CelebA, evaluation_subset, load_pairs, read_image
from srlib.data.degrade import blur_decimate, degrade, study_kernel, to_uint8, upscale_bicubic, upscale_bicubic_centred, upscale_nearest
from srlib.data.sample import build_sample
from srlib.errors import SrlibError


def test_kernel_matches_fact_sheet():
    k = study_kernel()
    assert k.shape == (9, 9)
    assert np.all(k[0] == 0) and np.all(k[-1] == 0) and np.all(k[:, 0] == 0) and np.all(k[:, -1] == 0)
    assert k[4, 4] == pytest.approx(1 / (2 * np.pi))
    assert k[4, 7] == pytest.approx(np.exp(-9 / 2) / (2 * np.pi))  # offset (0, 3)
    assert k[1, 1] == pytest.approx(np.exp(-18 / 2) / (2 * np.pi))  # offset (-3, -3)
    # not renormalised: (sum_{-3..3} e^{-x^2/2})^2 / 2pi = 0.99946 (the study's description says ~0.9993)
    assert k.sum() == pytest.approx(0.999459, abs=1e-6)


def test_degradation_shapes_dtype_and_phase():
    img = smooth_image(np.random.default_rng(0))
    lr, hr = degrade(img)
    assert lr.shape == (44, 44, 3) and hr.shape == (176, 176, 3)
    assert lr.dtype == hr.dtype == np.uint8
    np.testing.assert_array_equal(hr, cv2.resize(img, (176, 176)))  # squashed, bilinear
    blurred = cv2.filter2D(hr, -1, study_kernel())
    np.testing.assert_array_equal(lr, blurred[0::4, 0::4])  # LR (i, j) = blurred HR (4i, 4j)
    # independent check of one pixel: the kernel applied by hand with reflect-101 borders
    pad = np.pad(hr[..., 1].astype(np.float64), 4, mode="reflect")
    i, j = 5, 7
    by_hand = np.sum(pad[4 * i:4 * i + 9, 4 * j:4 * j + 9] * study_kernel())
    assert lr[i, j, 1] == np.uint8(np.clip(np.rint(by_hand), 0, 255))


def test_aligned_bicubic_interpolates_through_the_lr_samples():
    lr = np.random.default_rng(0).integers(0, 256, (44, 44)).astype(np.uint8)
    up = upscale_bicubic(lr)
    np.testing.assert_allclose(up[::4, ::4], lr, atol=1e-3)
    assert not np.allclose(upscale_bicubic_centred(lr)[::4, ::4], lr, atol=1)
    np.testing.assert_array_equal(upscale_nearest(lr)[1::4, 2::4], lr)


def test_aligned_bicubic_beats_plain_resize_on_real_photo_pairs():
    lr, hr = degrade(smooth_image(np.random.default_rng(5)))

    def mse(up):
        return np.mean((to_uint8(up).astype(float) - hr) ** 2)

    assert mse(upscale_bicubic(lr)) < 0.6 * mse(upscale_bicubic_centred(lr))


def test_flip_augmentation_keeps_the_phase():
    """A flipped training pair must equal the pair the degradation makes from the flipped photo."""
    img = smooth_image(np.random.default_rng(2))
    lr, hr = degrade(img)
    hr_flipped = np.ascontiguousarray(hr[:, ::-1])
    lr_true, hr_true = degrade(np.ascontiguousarray(img[:, ::-1]))
    np.testing.assert_array_equal(hr_flipped, hr_true)
    np.testing.assert_array_equal(blur_decimate(hr_flipped), lr_true)
    assert not np.array_equal(lr[:, ::-1], lr_true)  # flipping the LR too would shift its phase


def test_to_uint8_clips_instead_of_wrapping():
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 12.4, 255.6, 300.0])), [0, 12, 255, 255])


@pytest.mark.parametrize("csv", [True, False])
def test_celeba_layout_both_partition_forms(tmp_path, csv):
    root = make_celeba(tmp_path / "c", counts=(4, 2, 3), csv=csv)
    data = CelebA.open(root)
    assert [len(data.split(s)) for s in ("train", "validation", "test")] == [4, 2, 3]
    assert [p.name for p in data.split("test")] == ["000007.jpg", "000008.jpg", "000009.jpg"]
    pairs = load_pairs(data.split("train"))
    assert pairs.lr.shape == (4, 44, 44, 3) and pairs.hr.shape == (4, 176, 176, 3)


def test_evaluation_subset_is_fixed_and_spread():
    paths = list(range(100))
    assert evaluation_subset(paths, 5) == [0, 25, 50, 74, 99]
    assert evaluation_subset(paths, 5) == evaluation_subset(paths, 5)
    assert evaluation_subset(paths, None) == paths


def test_grey_and_alpha_images_become_bgr(tmp_path):
    rng = np.random.default_rng(0)
    grey = smooth_image(rng)[..., 0]
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (218, 178, 3) and np.all(img[..., 0] == grey)
    bgra = np.dstack([smooth_image(rng), np.full((218, 178), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), bgra[..., :3])


def one_line(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for n in needles:
        assert str(n) in msg, msg


def test_missing_data_folder(tmp_path):
    with pytest.raises(SrlibError) as e:
        CelebA.open(tmp_path / "nothing")
    one_line(e, tmp_path / "nothing", "embedded sample")


def test_missing_partition_file(tmp_path, celeba):
    (celeba / "list_eval_partition.csv").unlink()
    with pytest.raises(SrlibError) as e:
        CelebA.open(celeba)
    one_line(e, celeba, "list_eval_partition")


def test_missing_image_folder(tmp_path):
    (tmp_path / "list_eval_partition.csv").write_text("image_id,partition\n000001.jpg,0\n")
    with pytest.raises(SrlibError) as e:
        CelebA.open(tmp_path)
    one_line(e, "img_align_celeba")


@pytest.mark.parametrize("line,words", [("999999.jpg,2", ("999999.jpg", "missing")),
                                        ("000001.jpg,7", ("list_eval_partition.csv:", "partition 0, 1 or 2"))])
def test_a_bad_partition_line_is_one_line_naming_it(celeba, line, words):
    with open(celeba / "list_eval_partition.csv", "a") as f:
        f.write(line + "\n")
    with pytest.raises(SrlibError) as e:
        CelebA.open(celeba)
    one_line(e, *words)


def test_empty_split(tmp_path):
    root = make_celeba(tmp_path / "c", counts=(3, 0, 1))
    with pytest.raises(SrlibError) as e:
        CelebA.open(root).split("validation")
    one_line(e, "validation split is empty")


def test_unknown_split(celeba):
    with pytest.raises(SrlibError, match="choose one of"):
        CelebA.open(celeba).split("val")


@pytest.mark.parametrize("fault", ["truncated", "not_an_image", "empty", "too_small", "sixteen_bit"])
def test_bad_image_files(celeba, fault):
    target = celeba / "img_align_celeba" / "000002.jpg"
    if fault == "truncated":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    elif fault == "not_an_image":
        target.write_text("this is a text file, not a JPEG")
    elif fault == "empty":
        target.write_bytes(b"")
    elif fault == "too_small":
        cv2.imwrite(str(target), smooth_image(np.random.default_rng(0), 100, 80))
    elif fault == "sixteen_bit":
        target = target.with_suffix(".png")
        (celeba / "img_align_celeba" / "000002.jpg").rename(target)
        cv2.imwrite(str(target), np.zeros((218, 178, 3), np.uint16))
        text = (celeba / "list_eval_partition.csv").read_text().replace("000002.jpg", "000002.png")
        (celeba / "list_eval_partition.csv").write_text(text)
    with pytest.raises(SrlibError) as e:
        load_pairs(CelebA.open(celeba).split("train"))
    one_line(e, target.name)


def test_embedded_sample_is_celeba_layout(tmp_path):
    root = build_sample(tmp_path / "sample")
    data = CelebA.open(root)
    sizes = {s: len(data.split(s)) for s in ("train", "validation", "test")}
    assert all(n >= 3 for n in sizes.values())
    img = read_image(data.split("test")[0])
    assert img.shape == (218, 178, 3)
    assert "licence" in (root / "SOURCES.md").read_text()
    # deterministic: a second build gives the same bytes
    again = build_sample(tmp_path / "again")
    first = data.split("train")[0]
    assert (again / "img_align_celeba" / first.name).read_bytes() == first.read_bytes()


def jpeg_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    return buf.tobytes()


def test_jpeg_with_a_trailer_after_its_end_marker_is_read(tmp_path):
    img = smooth_image(np.random.default_rng(0))
    data = jpeg_bytes(img)
    (tmp_path / "plain.jpg").write_bytes(data)
    (tmp_path / "t.jpg").write_bytes(data + b"\x00SAMSUNG-TRAILER" * 64)
    np.testing.assert_array_equal(read_image(tmp_path / "t.jpg"), read_image(tmp_path / "plain.jpg"))


def test_jpeg_damaged_in_the_middle_is_refused(tmp_path):
    data = bytearray(jpeg_bytes(smooth_image(np.random.default_rng(0))))
    mid = len(data) // 2
    for i in range(mid, mid + 40):
        data[i] = (data[i] * 7 + 13) % 256
    (tmp_path / "d.jpg").write_bytes(bytes(data))
    with pytest.raises(SrlibError, match=r"d.jpg: damaged JPEG \(Corrupt JPEG data"):
        read_image(tmp_path / "d.jpg")


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # a white band on the left of a wide image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(img).save(tmp_path / "o.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    shown = read_image(tmp_path / "o.jpg")
    assert shown.shape == (40, 20, 3)
    assert shown[:10].mean() > 200 and shown[-10:].mean() < 50  # the band is now at the top


def test_partition_csv_with_a_byte_order_mark(tmp_path):
    root = make_celeba(tmp_path / "c", counts=(2, 1, 1))
    csv = root / "list_eval_partition.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    assert len(CelebA.open(root).split("train")) == 2


def test_image_set_streams_the_same_pairs_with_a_bounded_cache(tmp_path):
    from srlib.data.celeba import ImageSet

    root = make_celeba(tmp_path / "c", counts=(7, 1, 1))
    paths = CelebA.open(root).split("train")
    eager = load_pairs(paths)
    small = ImageSet(paths, cache_mb=0)
    small.capacity = 3
    idx = np.array([4, 0, 4, 6, 1, 2, 5, 3])
    for _ in range(2):
        lr, hr = small.take(idx)
        np.testing.assert_array_equal(lr, eager.lr[idx])
        np.testing.assert_array_equal(hr, eager.hr[idx])
        assert len(small._cache) <= 3
    streamed = list(ImageSet(paths, cache_mb=0).batches(3))
    assert [len(b) for b in streamed] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b.hr for b in streamed]), eager.hr)
    assert [p for b in streamed for p in b.paths] == paths


def test_training_and_evaluation_give_the_same_numbers_streamed_or_in_memory(tmp_path):
    from srlib.data.celeba import ImageSet
    from srlib.evaluation.evaluate import BASELINES, evaluate
    from srlib.recipe import Recipe
    from srlib.train import Trainer

    root = make_celeba(tmp_path / "c", counts=(6, 1, 1))
    paths = CelebA.open(root).split("train")
    weights = []
    for train in (load_pairs(paths), ImageSet(paths, cache_mb=0)):
        trainer = Trainer(Recipe(images=3, flips=True), train, total=3, seed=4)
        trainer.run(progress=False)
        weights.append(trainer.model.nets[0].weights())
    for k, v in weights[0].items():
        np.testing.assert_array_equal(v, weights[1][k])
    methods = {"bicubic_aligned": BASELINES["bicubic_aligned"], "nearest": BASELINES["nearest"]}
    a = evaluate(load_pairs(paths), methods)
    b = evaluate(ImageSet(paths, cache_mb=0), methods)
    assert list(b["method"]) == ["bicubic_aligned"] * 6 + ["nearest"] * 6
    assert a.equals(b)


def test_transparency_is_read_turned_as_the_pixels_are(tmp_path):
    from PIL import Image

    from srlib.data.celeba import read_alpha

    rng = np.random.default_rng(3)
    rgba = np.dstack([smooth_image(rng, 10, 20), rng.integers(0, 256, (10, 20), dtype=np.uint8)])
    img = Image.fromarray(rgba)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    img.save(tmp_path / "turned.png", exif=exif.tobytes())
    img.save(tmp_path / "plain.png")
    pixels = read_image(tmp_path / "turned.png")
    alpha, frames = read_alpha(tmp_path / "turned.png", pixels.shape[:2])
    assert pixels.shape[:2] == (20, 10) and frames == 1
    np.testing.assert_array_equal(alpha, np.rot90(rgba[..., 3], -1))
    np.testing.assert_array_equal(read_alpha(tmp_path / "plain.png", (10, 20))[0], rgba[..., 3])
    Image.fromarray(rgba[..., :3]).save(tmp_path / "none.png")
    assert read_alpha(tmp_path / "none.png", (10, 20)) == (None, 1)
    with pytest.raises(SrlibError, match=r"plain\.png: its transparency is 20x10 and its pixels 10x20"):
        read_alpha(tmp_path / "plain.png", (20, 10))


def test_a_png_chunk_claiming_more_than_the_file_is_refused_before_decoding(tmp_path):
    """A flipped bit in a chunk's length can claim 256 MB, which OpenCV's reader would allocate."""
    data = bytearray(cv2.imencode(".png", smooth_image(np.random.default_rng(0), 16, 16))[1].tobytes())
    data[33:37] = (0x10000280).to_bytes(4, "big")  # the length of the chunk after IHDR
    (tmp_path / "long.png").write_bytes(bytes(data))
    with pytest.raises(SrlibError, match=r"long\.png: damaged or truncated PNG"):
        read_image(tmp_path / "long.png")


def test_a_header_claiming_more_than_its_data_can_hold_is_refused_before_decoding(tmp_path):
    """631 bytes of JPEG claiming 8192x8192: libjpeg would allocate the whole image (464 MB) before
    finding the data short. Every Huffman-coded 8x8 block costs a bit, so the bytes bound the pixels;
    the same for GIF (595 MB in OpenCV's reader)."""
    from PIL import Image

    data = bytearray(jpeg_bytes(smooth_image(np.random.default_rng(0), 16, 16)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = (8192).to_bytes(2, "big") * 2
    (tmp_path / "claims.jpg").write_bytes(bytes(data))
    with pytest.raises(SrlibError, match=r"claims\.jpg: truncated JPEG \([\d,]+ bytes cannot hold the 8192x8192 image"):
        read_image(tmp_path / "claims.jpg")
    # libjpeg decodes a truncated arithmetic-coded JPEG without a warning: those are refused
    data[sof + 1] = 0xC9
    (tmp_path / "arithmetic.jpg").write_bytes(bytes(data))
    with pytest.raises(SrlibError, match=r"arithmetic\.jpg: an arithmetic-coded JPEG, which srlib cannot tell whole"):
        read_image(tmp_path / "arithmetic.jpg")
    # a GIF's data bounds the canvas it can fill (LZW: at most 4,096 pixels per 12-bit code)
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(tmp_path / "small.gif")
    gif = bytearray((tmp_path / "small.gif").read_bytes())
    gif[6:10] = (8192).to_bytes(2, "little") * 2
    (tmp_path / "claims.gif").write_bytes(bytes(gif))
    with pytest.raises(SrlibError, match=r"claims\.gif: truncated GIF \([\d,]+ bytes cannot fill the 8192x8192 image"):
        read_image(tmp_path / "claims.gif")
    # real files pass: progressive, chroma subsampled, one pixel, a flat image (the fewest bits a block)
    img = smooth_image(np.random.default_rng(1), 64, 96)
    for name, pixels, options in [("progressive", img, {"progressive": True}), ("subsampled", img, {"subsampling": 2}),
                                  ("one", img[:1, :1], {}), ("flat", np.full((256, 256, 3), 90, np.uint8), {})]:
        Image.fromarray(pixels[..., ::-1]).save(tmp_path / f"{name}.jpg", quality=90, **options)
        assert read_image(tmp_path / f"{name}.jpg").shape == pixels.shape
    Image.fromarray(np.full((2048, 2048), 7, np.uint8)).save(tmp_path / "flat.gif")  # the most a GIF compresses
    assert read_image(tmp_path / "flat.gif").shape == (2048, 2048, 3)


def test_a_png_with_large_text_and_colour_profile_chunks_is_read_with_its_transparency(tmp_path):
    """Text chunks and colour profiles are metadata: Pillow refuses one that unpacks past 1 MB, libpng
    skips it."""
    import struct
    import zlib

    from srlib.data.celeba import read_alpha

    rgba = np.dstack([smooth_image(np.random.default_rng(0), 16, 16), np.full((16, 16), 128, np.uint8)])
    plain = cv2.imencode(".png", rgba)[1].tobytes()
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    large = zlib.compress(b"\x00" * (64 << 20), 9)  # 64 MB in about 64 KB
    metadata = chunk(b"iCCP", b"profile\x00\x00" + large) + chunk(b"zTXt", b"Comment\x00\x00" + large)
    (tmp_path / "text.png").write_bytes(plain[:33] + metadata + plain[33:])  # after the IHDR chunk
    pixels = read_image(tmp_path / "text.png")
    np.testing.assert_array_equal(pixels, rgba[..., :3])
    alpha, frames = read_alpha(tmp_path / "text.png", pixels.shape[:2])
    assert frames == 1 and (alpha == 128).all()


def test_damaged_tiff_metadata_is_one_line_without_pillow_warnings(tmp_path):
    data = bytearray(cv2.imencode(".tif", smooth_image(np.random.default_rng(0), 16, 16))[1].tobytes())
    data[4:8] = (1 << 30).to_bytes(4, "little")  # the first directory's offset, far past the end
    (tmp_path / "d.tif").write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning from Pillow would print above srlib's one line
        with pytest.raises(SrlibError, match=r"d\.tif: not a readable image"):
            read_image(tmp_path / "d.tif")


def many_page_tiff(path, pages: int) -> None:
    """A little-endian TIFF of ``pages`` 1x1 grey pages (one IFD each, all pointing at one pixel), made by
    hand: Pillow takes minutes to write tens of thousands of pages."""
    import struct

    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 1)]
    ifd_size = 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 10) + b"\x80\x00")  # header; the pixel at 8; IFDs from 10
    for page in range(pages):
        start = 10 + page * ifd_size
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            out += struct.pack("<HHII", tag, kind, count, value) if kind == 4 else struct.pack("<HHIHH", tag, kind, count, value, 0)
        out += struct.pack("<I", start + ifd_size if page + 1 < pages else 0)
    path.write_bytes(bytes(out))


def test_a_file_of_thousands_of_pages_is_counted_in_bounded_time(tmp_path):
    import time

    from srlib.data.celeba import MAX_FRAMES_COUNTED, read_alpha, read_image

    many_page_tiff(tmp_path / "pages.tif", 50_000)
    assert read_image(tmp_path / "pages.tif").shape == (1, 1, 3)
    start = time.process_time()
    assert read_alpha(tmp_path / "pages.tif", (1, 1))[1] == MAX_FRAMES_COUNTED + 1
    assert time.process_time() - start < 2
    many_page_tiff(tmp_path / "three.tif", 3)
    assert read_alpha(tmp_path / "three.tif", (1, 1))[1] == 3
