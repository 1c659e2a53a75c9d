"""PNG files: the checks made on one before it is decoded, and PNGs written in rows.

An upscale's output goes to disk a band at a time, so writing it costs a
few megabytes beside the image instead of a second, encoded copy of it (an 8192 x 8192 input gives a
3.2 GB output), and any width PNG allows (2^31 - 1) can be written, where OpenCV's encoder stops at
libpng's default of 1,000,000 pixels.

Each row is filtered with PNG's "Up" filter (the difference to the row above, which is what the
deflate step compresses best on photographs among the filters that vectorise over a whole row), then
deflated at level 1, OpenCV's default.

Read, a PNG is a signature and chunks (length, kind, data, CRC). A damaged length can claim more than
the file holds, and text chunks and colour profiles carry metadata that OpenCV's pixels do not depend on
but that Pillow decompresses on opening (refusing past 1 MB: a valid PNG whose 509 KiB zTXt chunk unpacks
larger was called corrupt).
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Iterator

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: text and the colour profile: compressed metadata, which srlib never reads
_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"iCCP"}
_BAND_BYTES = 4 << 20  # raw bytes filtered and deflated at a time
_UP = 2


def header_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's first 24 bytes (its IHDR chunk); None for anything else."""
    if head[:8] != SIGNATURE or head[12:16] != b"IHDR" or len(head) < 24:
        return None
    return struct.unpack(">II", head[16:24])


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Each chunk after the signature as (kind, start, end) byte offsets, ``end`` as its length field
    claims (possibly past the end of ``data``)."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, pos, pos + 12 + length
        pos += 12 + length


def chunks_fit(data: bytes) -> bool:
    """Every chunk of a PNG ends inside the file (a flipped bit in a length field can claim 256 MB, which
    OpenCV's reader allocates before it finds the file short)."""
    for kind, _, end in _chunks(data):
        if end > len(data):
            return False
        if kind == b"IEND":
            break
    return True


def without_metadata(data: bytes) -> bytes:
    """A PNG's bytes with its text chunks and colour profile left out."""
    return data[:8] + b"".join(data[start:end] for kind, start, end in _chunks(data) if kind not in _METADATA_CHUNKS)


def _chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


#: PNG's colour type for each number of channels: grey, grey + alpha, RGB, RGBA
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def encode_png(f: BinaryIO, image: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write ``image`` as an 8-bit PNG to ``f``: (H, W) uint8 grey, or (H, W, 3) uint8 BGR (OpenCV's
    channel order; stored as RGB); with ``alpha`` (H, W) uint8, its transparency beside it (grey + alpha,
    or RGBA), joined band by band so no four-channel copy of a large image is made."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"encode_png takes (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != image.shape[:2]):
        raise ValueError(f"encode_png: alpha must be uint8 {image.shape[:2]}, got {alpha.shape} {alpha.dtype}")
    h, w = image.shape[:2]
    if not (0 < h < 2 ** 31 and 0 < w < 2 ** 31):
        raise ValueError(f"a PNG is 1 .. 2^31 - 1 pixels on each side, got {w}x{h}")
    channels = (3 if image.ndim == 3 else 1) + (alpha is not None)
    f.write(SIGNATURE)
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPE[channels], 0, 0, 0))
    deflate = zlib.compressobj(1)
    row_bytes = w * channels
    band = max(1, _BAND_BYTES // row_bytes)
    previous = np.zeros(row_bytes, np.uint8)
    for r in range(0, h, band):
        rows = image[r:r + band]
        if rows.ndim == 3:
            rows = rows[..., ::-1]  # BGR -> RGB
        if alpha is not None:
            rows = np.dstack([rows, alpha[r:r + band]])
        rows = np.ascontiguousarray(rows).reshape(len(rows), row_bytes)
        filtered = np.empty((len(rows), row_bytes + 1), np.uint8)
        filtered[:, 0] = _UP
        np.subtract(rows[:1], previous, out=filtered[:1, 1:])
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
        previous = rows[-1].copy()
        data = deflate.compress(filtered.data)
        if data:
            _chunk(f, b"IDAT", data)
    _chunk(f, b"IDAT", deflate.flush())
    _chunk(f, b"IEND", b"")
