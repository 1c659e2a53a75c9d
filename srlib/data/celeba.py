"""CelebA (or any folder in CelebA's layout) from disk to LR/HR pairs.

Layout: ``ROOT/img_align_celeba/<images>`` and a partition file, either Kaggle's
``ROOT/list_eval_partition.csv`` (header ``image_id,partition``) or the original
``ROOT/list_eval_partition.txt`` (``000001.jpg 0`` per line). Partition 0 = train, 1 = validation,
2 = test. Every problem (missing folder, unlisted or unreadable image, empty split) raises one
``SrlibError`` line that names the file and the fix.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np

from ..display import progress
from ..errors import SrlibError
from ..files import open_regular
from ..settings import env_int
from . import png
from .degrade import HR_SIZE, LR_SIZE, degrade

SPLITS = {"train": 0, "validation": 1, "test": 2}
IMAGE_DIR = "img_align_celeba"
PARTITION_FILES = ("list_eval_partition.csv", "list_eval_partition.txt")
MAX_PARTITION_LINE = 4096


def _jpeg_is_complete(data: bytes) -> bool:
    """A JPEG's image data ends with an end-of-image marker (FF D9) after its last start-of-scan (FF DA).
    Bytes after that marker are allowed: phones and cameras append trailers there."""
    return data.find(b"\xff\xd9", data.rfind(b"\xff\xda")) != -1


#: start-of-frame markers of Huffman-coded JPEGs (baseline, extended, progressive, lossless and their
#: hierarchical forms), where every 8x8 block of a scanned component costs at least one bit
_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}
#: the arithmetic-coded ones: libjpeg decodes a truncated one without a warning (its decoder reads
#: zeros past the data), so a damaged file would come out as a plausible grey image
_ARITHMETIC_FRAMES = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: the most pixels one byte of GIF data can fill: LZW codes of 12 bits, each a string of at most 4,096
#: pixels (so a GIF's data bounds the canvas it can fill)
_GIF_PIXELS_PER_BYTE = 4096 * 8 // 12


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _jpeg_frame(data: bytes) -> tuple[int, int, int, list[tuple[int, int]]] | None:
    """A JPEG's start-of-frame: (marker, width, height, each component's (horizontal, vertical)
    sampling factors), found by walking the header's segments; None when there is none."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 10 > len(data):
                return None
            h, w, count = struct.unpack(">HHB", data[pos + 5:pos + 10])
            return marker, w, h, [(b >> 4, b & 15) for b in data[pos + 11:pos + 11 + 3 * count:3]]
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return None


def _jpeg_problem(data: bytes) -> str | None:
    """Why libjpeg should not be handed this JPEG, in words, or None. A header that claims 8192x8192
    over a few hundred bytes would make it allocate the whole image (464 MB at the peak) before finding
    the data short: a Huffman-coded JPEG's data takes at least one bit per 8x8 block of its smallest
    component (a Huffman code is at least one bit long)."""
    frame = _jpeg_frame(data)
    if frame is None:
        return None  # libjpeg says what is wrong
    marker, w, h, sampling = frame
    if marker in _ARITHMETIC_FRAMES:
        return "an arithmetic-coded JPEG, which srlib cannot tell whole from damaged; convert it to PNG or a baseline JPEG"
    if marker not in _HUFFMAN_FRAMES or not sampling or min(min(hv) for hv in sampling) == 0:
        return None
    h_max, v_max = max(hv[0] for hv in sampling), max(hv[1] for hv in sampling)
    blocks = min(_ceil_div(_ceil_div(w * hi, h_max), 8) * _ceil_div(_ceil_div(h * vi, v_max), 8) for hi, vi in sampling)
    if len(data) < blocks // 8:
        return f"truncated JPEG ({len(data):,} bytes cannot hold the {w}x{h} image its header claims); re-download or remove it"
    return None


_stderr_lock = threading.Lock()  # file descriptor 2 is one per process: one capture at a time


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 2 (where libjpeg prints its warnings) into a temporary file; on exit the
    yielded list holds what was written."""
    text: list[str] = []
    with _stderr_lock, tempfile.TemporaryFile() as captured:
        if sys.stderr is not None:  # None when the process started with stderr closed
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text.append(captured.read().decode(errors="replace").strip())


# The largest image srlib reads: 8192 x 8192 pixels, whose 4x upscale is the most OpenCV can read back
# (``model.MAX_OUTPUT_PIXELS``). Its size is read from the file's header, before anything is decoded.
MAX_INPUT_PIXELS = 1 << 26


def _max_file_bytes(w: int, h: int) -> int:
    """The most bytes an image file of w x h pixels is read for: 16-bit RGBA stored uncompressed, and
    room for metadata."""
    return (16 << 20) + 8 * w * h


def image_size(f: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from an image file's header (a PNG's IHDR read here; other formats by Pillow,
    which reads a few bytes and decodes nothing); None when the file is not recognised, (0, 0) when the
    header claims more pixels than Pillow's own bomb limit (about 179 million), which it then does not tell."""
    from PIL import Image, UnidentifiedImageError

    size = png.header_size(f.read(24))
    f.seek(0)
    if size is not None:
        return size
    try:
        # a large header is refused by the caller and a damaged one by the decoder, not warned about
        # (Pillow warns of corrupt EXIF tags, for one)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(f) as img:
                return img.size
    except Image.DecompressionBombError:
        return (0, 0)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
        return None
    finally:
        f.seek(0)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """Read an image file as uint8 BGR (H, W, 3), as OpenCV and the study do.

    EXIF orientation is applied (a phone photo comes out the way up it is shown), greyscale files are
    repeated into three equal channels and an alpha channel is dropped, so every model sees the same
    layout. Unreadable, truncated, damaged (libjpeg warns of corrupt data: it would decode grey or
    shifted blocks) or 16-bit files raise ``SrlibError``, and so do files that are not regular files,
    claim more than ``max_pixels`` in their header, or hold far more bytes than their pixels need: all
    before any pixel is decoded.
    """
    path = Path(path)
    not_an_image = f"{path}: not a readable image (corrupt, or not an image file); replace or remove it"
    with open_regular(path, "image") as f:
        size = image_size(f)
        if size is None:
            raise SrlibError(not_an_image)
        w, h = size
        if w * h > max_pixels or size == (0, 0):
            claims = f"{w}x{h} is" if w * h else "its header claims"
            raise SrlibError(f"{path}: {claims} more than the {max_pixels:,} pixels srlib reads (8192x8192); "
                             f"use a crop or a smaller copy of it")
        limit = _max_file_bytes(w, h)
        try:
            nbytes = os.fstat(f.fileno()).st_size
            if nbytes > limit:
                raise SrlibError(f"{path}: {nbytes:,} bytes, far more than a {w}x{h} image needs; check the file")
            data = f.read(limit + 1)
        except OSError as e:
            raise SrlibError(f"{path}: cannot read ({e.strerror}); check the path") from None
    jpeg = data[:2] == b"\xff\xd8"
    if jpeg and not _jpeg_is_complete(data):
        # libjpeg decodes a truncated JPEG with only a warning, filling the rest with grey: refuse it.
        raise SrlibError(f"{path}: truncated JPEG (no end-of-image marker); re-download or remove it")
    if jpeg and (problem := _jpeg_problem(data)):
        raise SrlibError(f"{path}: {problem}")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) * _GIF_PIXELS_PER_BYTE < w * h:
        raise SrlibError(f"{path}: truncated GIF ({len(data):,} bytes cannot fill the {w}x{h} image its header "
                         "claims); re-download or remove it")
    if data[:8] == png.SIGNATURE and not png.chunks_fit(data):
        raise SrlibError(f"{path}: damaged or truncated PNG (a chunk runs past the end of the file); "
                         f"re-download or remove it")
    try:
        with _stderr_captured() as captured:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data else None
        warning = captured[0]
    except cv2.error:
        img, warning = None, ""
    if img is None or img.shape[0] * img.shape[1] > max_pixels:
        raise SrlibError(not_an_image)
    if jpeg and ("Corrupt JPEG data" in warning or "Premature end" in warning):
        raise SrlibError(f"{path}: damaged JPEG ({warning.splitlines()[0]}); re-download or remove it")
    if img.dtype != np.uint8:
        raise SrlibError(f"{path}: {img.dtype} pixels; srlib reads 8-bit images, convert it first")
    return img


#: frames of an animated or multi-page file counted before saying "more than": a file can claim tens of
#: thousands of pages, and Pillow's own count walks every one (a 4 MB TIFF of 50,000 pages: 25 s)
MAX_FRAMES_COUNTED = 100


def _frames(img) -> int:
    """How many frames ``img`` holds, counted up to MAX_FRAMES_COUNTED + 1 (meaning more than that)."""
    count = 1
    try:
        while count <= MAX_FRAMES_COUNTED:
            img.seek(count)
            count += 1
    except EOFError:
        pass
    img.seek(0)
    return count


def read_alpha(path: str | os.PathLike, shape: tuple[int, int]) -> tuple[np.ndarray | None, int]:
    """The transparency of the image file at ``path`` already read by ``read_image`` into pixels of
    ``shape`` (H, W), and how many frames the file holds (an animated GIF, a multi-page TIFF: ``read_image``
    reads the first; counted up to MAX_FRAMES_COUNTED + 1, which stands for more). The transparency is
    uint8 (H, W), 0 clear to 255 opaque, turned by the EXIF orientation as the pixels are; None when the
    file has none or every pixel is opaque."""
    from PIL import Image, ImageOps

    h, w = shape
    with open_regular(path, "image") as f:
        data = f.read(_max_file_bytes(w, h))
    if data[:8] == png.SIGNATURE:
        data = png.without_metadata(data)  # Pillow would refuse a large one
    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as img:
            warnings.simplefilter("ignore")  # damaged metadata is not the transparency's concern
            frames = _frames(img)
            if "A" not in img.getbands() and "transparency" not in img.info:
                return None, frames
            alpha = np.asarray(ImageOps.exif_transpose(img).convert("RGBA").getchannel("A"))
    except (OSError, ValueError, SyntaxError, struct.error) as e:
        raise SrlibError(f"{path}: its transparency cannot be read ({type(e).__name__}: {e}); save it "
                         f"again, or without transparency") from None
    if alpha.shape != tuple(shape):
        raise SrlibError(f"{path}: its transparency is {alpha.shape[1]}x{alpha.shape[0]} and its pixels "
                         f"{shape[1]}x{shape[0]}; save it again, or without transparency")
    return (None if bool(np.all(alpha == 255)) else alpha), frames


def _read_partition(path: Path, present: set[str]) -> dict[str, int]:
    """image name -> partition number, from either partition file form, streamed line by line: only the
    images that are in ``present`` are kept, so a file of millions of lines naming missing images costs
    no memory before it is refused."""
    out: dict[str, int] = {}
    missing, first_missing = 0, None
    sep = "," if path.suffix == ".csv" else None
    with open_regular(path, "partition file") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig")  # a spreadsheet may add a BOM
        n = 0
        while True:
            try:
                line = text.readline(MAX_PARTITION_LINE + 1)
            except (OSError, UnicodeDecodeError) as e:
                raise SrlibError(f"{path}: cannot read the partition file ({e}); restore it from CelebA") from None
            if not line:
                break
            n += 1
            if len(line) > MAX_PARTITION_LINE:
                raise SrlibError(f"{path}:{n}: a line longer than {MAX_PARTITION_LINE} characters; fix or restore "
                                 f"the partition file")
            if not line.strip() or (n == 1 and line.replace(" ", "").strip().lower() == "image_id,partition"):
                continue
            fields = line.split(sep)
            if len(fields) != 2 or fields[1].strip() not in ("0", "1", "2"):
                raise SrlibError(f"{path}:{n}: expected 'image_name{sep or ' '}partition' with partition 0, 1 "
                                 f"or 2, got {line.strip()!r:.80}; fix or restore the partition file")
            name = fields[0].strip()
            if name in present:
                out[name] = int(fields[1])
            else:
                missing += 1
                first_missing = first_missing or name
    if missing:
        raise SrlibError(f"{path} lists {missing} image(s) missing from {path.parent / IMAGE_DIR} (first: "
                         f"{first_missing}); restore them or remove their lines")
    if not out:
        raise SrlibError(f"{path}: the partition file lists no images; restore it from CelebA")
    return out


@dataclass(frozen=True)
class CelebA:
    """A CelebA-layout folder: ``split(name)`` gives that split's image paths in partition-file order."""

    root: Path
    partition: dict[str, int]

    @classmethod
    def open(cls, root: str | os.PathLike) -> "CelebA":
        root = Path(root)
        if not root.is_dir():
            raise SrlibError(f"data folder {root} does not exist; put CelebA there ({IMAGE_DIR}/ and "
                             f"list_eval_partition.csv) or leave --data out to use the embedded sample")
        images = root / IMAGE_DIR
        if not images.is_dir():
            raise SrlibError(f"{images} is missing; a data folder needs {IMAGE_DIR}/ beside the partition file")
        found = [root / f for f in PARTITION_FILES if (root / f).is_file()]
        if not found:
            raise SrlibError(f"{root}: no list_eval_partition.csv or .txt; download it with CelebA and put "
                             f"it beside {IMAGE_DIR}/")
        try:
            present = set(os.listdir(images))
        except OSError as e:
            raise SrlibError(f"{images}: cannot list the images ({e.strerror}); check the folder") from None
        return cls(root, _read_partition(found[0], present))

    def split(self, name: str) -> list[Path]:
        if name not in SPLITS:
            raise SrlibError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        paths = [self.root / IMAGE_DIR / f for f, p in self.partition.items() if p == SPLITS[name]]
        if not paths:
            raise SrlibError(f"{self.root}: the {name} split is empty; the partition file assigns no image "
                             f"to partition {SPLITS[name]}")
        return paths


def evaluation_subset(paths: list[Path], n: int | None) -> list[Path]:
    """A fixed, ordered subset of ``n`` images spread evenly over ``paths`` (all when n is None or
    larger): the same images on every run, so reports are comparable (the study scored
    10 random images, different on every run)."""
    if n is None or n >= len(paths):
        return list(paths)
    if n < 1:
        raise SrlibError(f"evaluation subset size must be at least 1, got {n}")
    idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
    return [paths[i] for i in idx]


@dataclass
class Pairs:
    """Degraded pairs for a list of images, held in memory.

    lr: (N, 44, 44, 3) uint8; hr: (N, 176, 176, 3) uint8, BGR, in the order of ``paths``.
    """

    paths: list[Path]
    lr: np.ndarray
    hr: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LR and HR of the images at ``idx`` (the same call as ``ImageSet.take``)."""
        return self.lr[idx], self.hr[idx]

    def batches(self, size: int = 64, desc: str | None = None) -> Iterator["Pairs"]:
        """The same call as ``ImageSet.batches``: pairs already in memory are one batch."""
        yield self


def load_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and degrade one image: (LR (44, 44, 3), HR (176, 176, 3)) uint8. Images smaller than 176x176
    are refused because the degradation would have to invent pixels to build their HR reference."""
    img = read_image(path)
    if min(img.shape[:2]) < HR_SIZE:
        raise SrlibError(f"{path}: {img.shape[1]}x{img.shape[0]} is smaller than the {HR_SIZE}x{HR_SIZE} the "
                         f"degradation needs; remove it from the split")
    return degrade(img)


def load_pairs(paths: list[Path], desc: str = "loading images") -> Pairs:
    """Read and degrade every image into memory (with a progress bar): for evaluation subsets and small
    splits. A split of any size streams through ``ImageSet`` instead."""
    if not paths:
        raise SrlibError("no images to load; check the data folder and split")
    bar = progress(paths, desc=desc, leave=False, disable=len(paths) < 200)
    lr, hr = zip(*(load_pair(p) for p in bar))
    return Pairs(list(paths), np.stack(lr), np.stack(hr))


# Decoded pairs an ImageSet keeps, in MB (98 kB each): all of a few-thousand-image development split,
# a bounded part of CelebA's 162,770 training images. SRLIB_CACHE_MB (0..1,048,576) changes it.
CACHE_MB = 512


def cache_size_mb() -> int:
    """The cache an ``ImageSet`` keeps by default, in MB."""
    return env_int("SRLIB_CACHE_MB", CACHE_MB, 0, 1 << 20)


class ImageSet:
    """The images of a split, read and degraded on demand, with a bounded cache: memory does not grow
    with the split. ``take(idx)`` gives a training batch; ``batches(n)`` streams the whole split in
    order, reading the next batch in a background thread while the caller works on the current one.

    A pair's pixels depend only on its file, so a run gives the same numbers whether its images came
    from the cache, from disk, or from an in-memory ``Pairs``.
    """

    PAIR_BYTES = (LR_SIZE * LR_SIZE + HR_SIZE * HR_SIZE) * 3

    def __init__(self, paths: list[Path], cache_mb: int | None = None):
        if not paths:
            raise SrlibError("no images to load; check the data folder and split")
        self.paths = list(paths)
        self.capacity = max(0, (cache_size_mb() if cache_mb is None else cache_mb) << 20) // self.PAIR_BYTES
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        pair = load_pair(self.paths[i])
        with self._lock:
            if self.capacity:
                self._cache[i] = pair
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return pair

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LR (n, 44, 44, 3) and HR (n, 176, 176, 3) of the images at ``idx`` (repeats allowed)."""
        lr, hr = zip(*(self._pair(int(i)) for i in idx))
        return np.stack(lr), np.stack(hr)

    def batches(self, size: int = 64, desc: str | None = None) -> Iterator[Pairs]:
        """The split in order, ``size`` images at a time, one batch read ahead (bounded prefetch)."""
        starts = range(0, len(self), size)

        def load(s: int) -> Pairs:
            idx = np.arange(s, min(s + size, len(self)))
            return Pairs([self.paths[i] for i in idx], *self.take(idx))

        with ThreadPoolExecutor(1, thread_name_prefix="srlib-read") as reader, \
                progress(total=len(self), desc=desc, leave=False, disable=desc is None or len(self) < 200) as bar:
            ahead = reader.submit(load, starts[0])
            for s in starts:
                batch = ahead.result()
                if s + size < len(self):
                    ahead = reader.submit(load, s + size)
                yield batch
                bar.update(len(batch))
