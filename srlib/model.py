"""A trained super-resolution model: a network plus the conventions that map pixels to and from it.

- input: LR / 255, one colour channel (N, 1, h, w), or B, G and R together (N, 3, h, w) for a network
  with ``image_channels`` 3
- output: ``output_scale`` * network output on the 0..255 scale (1 for the study, which regressed
  0..255 values directly; 255 for a recipe that trains on 0..1 targets), plus, for a ``residual`` model, the phase-aligned
  bicubic upscale of the same channels (the network then only predicts the detail bicubic misses).

Every colour channel goes through the same network (the study's "shared" model), each channel
through its own network (the 3-colour experiment: ``per_channel``), or all three through one network
that sees them together (the photo model).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .data.degrade import SCALE, to_uint8
from .data.photo import BICUBIC_FOR_GRID, GRIDS, jpeg_strength
from .errors import SrlibError
from .nn.network import SRNet

# Large images go through the network in tiles of TILE x TILE LR pixels, each with a halo of real
# neighbouring pixels around it. A network sees the sum of its kernel radii to each side (the study's:
# 2 + 1 + 1 + 1 = 5 LR pixels; the photo model's 7) and the bicubic base BICUBIC_REACH, so with a halo
# one wider than the larger (``SRModel.halo``) every output pixel is computed from exactly the pixels it
# would see in one piece: tiles join without seams, and memory stays that of one tile. Tiles of at most
# 256 (as even as can be, ``_spans``) trade the halo's extra work (the photo model's on a 512x512 image:
# 6% in 2 x 2 tiles, against 13% in the 3 x 3 tiles of at most 192) against the tile's activations (the
# photo model's NumPy arrays at their peak: about 160 MiB, against 76 with tiles of 192). A wider
# activation than TILE_FLOATS over one tile (the study's network runs the three channels together: 3 x 64
# planes) spills out of the caches and runs slower than the halo's work saves: such a model takes
# smaller tiles (``SRModel.tile``).
TILE = 256
TILE_FLOATS = 256 * 256 * 96
BICUBIC_REACH = 2
# OpenCV refuses to read images above 2**30 pixels (its CV_IO_MAX_IMAGE_PIXELS default): an output
# larger than that could not be opened again, so ``upscale`` refuses it before any work.
MAX_OUTPUT_PIXELS = 1 << 30


def _spans(n: int, tile: int) -> list[tuple[int, int]]:
    """[start, stop) of the fewest tiles of at most ``tile`` pixels that cover n, as even as can be: with
    tiles of 256 a 600-pixel side takes three of 200 rather than 256 + 256 + 88, so no tile is a sliver
    whose halo costs more than its pixels."""
    k = -(-n // tile)
    edges = [i * n // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def tile_grid(h: int, w: int, halo: int, tile: int | None = None):
    """Tiles of at most ``tile`` (default TILE) LR pixels a side covering an h x w LR image, each with
    ``halo`` LR pixels around it. Yields (window, inner, tile), each a (rows, cols) pair of LR slices:
    ``window`` is what to compute (the tile and its halo), ``inner`` the tile within the window's result,
    ``tile`` where that lands in the image. ``hr_slice`` maps an LR slice to HR pixels."""
    side = TILE if tile is None else tile
    for r, r1 in _spans(h, side):
        for c, c1 in _spans(w, side):
            r0, c0 = max(r - halo, 0), max(c - halo, 0)
            yield ((slice(r0, min(r1 + halo, h)), slice(c0, min(c1 + halo, w))),
                   (slice(r - r0, r1 - r0), slice(c - c0, c1 - c0)),
                   (slice(r, r1), slice(c, c1)))


def hr_slice(s: slice) -> slice:
    """The HR pixels of the LR slice s."""
    return slice(s.start * SCALE, s.stop * SCALE)


def upscale_alpha(alpha: np.ndarray, grid: str) -> np.ndarray:
    """A transparency mask (H, W) uint8 -> (4H, 4W) uint8: bicubic on the sampling ``grid`` of the model
    that upscales the pixels beside it, rounded and clipped, streamed tile by tile as ``SRModel.upscale``
    is. The networks never saw a mask; interpolating it is what upscalers that keep transparency do."""
    h, w = alpha.shape
    out = np.empty((h * SCALE, w * SCALE), np.uint8)
    for (rows, cols), (ir, ic), (tr, tc) in tile_grid(h, w, BICUBIC_REACH + 1):
        y = BICUBIC_FOR_GRID[grid](alpha[rows, cols])
        out[hr_slice(tr), hr_slice(tc)] = to_uint8(y[hr_slice(ir), hr_slice(ic)])
    return out


def check_output_size(h: int, w: int, name: str = "the image") -> None:
    """Refuse, in one line, an h x w LR image whose 4x upscale could not be held or read back."""
    out_px = h * SCALE * w * SCALE
    if out_px > MAX_OUTPUT_PIXELS:
        raise SrlibError(f"{name}: {w}x{h} upscales to {w * SCALE}x{h * SCALE} = {out_px / 1e9:.1f} "
                         f"gigapixels, above the {MAX_OUTPUT_PIXELS / 1e9:.2f} that OpenCV can read back; "
                         f"upscale a crop of it (at most {int((MAX_OUTPUT_PIXELS / SCALE ** 2) ** 0.5)} "
                         f"pixels square)")


# The models shipped with the package, by name (each has a model card beside it): "photo" for photographs
# (centre grid, ``upscale``'s default), "fast" for photographs within 1.5x OpenCV ESPCN's time, and "study" for
# the study's degradation (the report's model).
SHIPPED = {name: Path(__file__).resolve().parent / "models" / f"{name}.npz" for name in ("photo", "fast", "study")}


class ChannelLayout:
    """How the B, G and R channels of a batch reach a model's networks; training and inference both
    split and merge by it, so the two cannot disagree.

    "colour":      one network takes B, G and R together: one input (N, h, w, 3)
    "shared":      one network takes one channel at a time (the study's model): the three channels as
                   one batch of 3N images, channel by channel (``stack``), or as three batches of N
    "per_channel": network i takes channel i (the study's 3-colour experiment): three batches of N
    """

    KINDS = ("colour", "shared", "per_channel")

    def __init__(self, kind: str):
        if kind not in self.KINDS:
            raise ValueError(f"ChannelLayout: kind must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind = kind

    def split(self, x: np.ndarray, stack: bool = True) -> list[tuple[int, np.ndarray]]:
        """Images (N, ..., 3), channels last -> [(network index, its input)], in the order ``merge`` takes
        the outputs back: (N, ..., 3) for "colour", (N, ...) or (3N, ...) for the others."""
        if self.kind == "colour":
            return [(0, x)]
        channels = np.moveaxis(x, -1, 0)  # (3, N, ...)
        if self.kind == "per_channel":
            return [(i, channels[i]) for i in range(3)]
        if stack:
            return [(0, channels.reshape(-1, *channels.shape[2:]))]
        return [(0, channels[i]) for i in range(3)]

    def per_image(self, values: np.ndarray, stack: bool = True) -> list[np.ndarray]:
        """Per-image values (N,) (a JPEG strength) aligned with each of ``split``'s inputs."""
        by_channel = np.repeat(np.asarray(values)[:, None], 3, axis=1)  # (N, 3): the image's value per channel
        return [part[:, 0] if part.ndim == 2 else part for _, part in self.split(by_channel, stack)]

    def merge(self, outputs: list[np.ndarray], stack: bool = True) -> np.ndarray:
        """The networks' outputs, in ``split``'s order -> images (N, ..., 3), channels last."""
        if self.kind == "colour":
            return outputs[0]
        if self.kind == "shared" and stack:
            outputs = list(outputs[0].reshape(3, -1, *outputs[0].shape[1:]))
        return np.stack(outputs, axis=-1)


class SRModel:
    """``nets``: one network for all channels, or three (B, G, R) for per-channel models."""

    def __init__(self, nets: SRNet | list[SRNet], residual: bool = False, output_scale: float = 1.0,
                 grid: str = "study"):
        self.nets = nets if isinstance(nets, list) else [nets]
        if len(self.nets) not in (1, 3):
            raise ValueError(f"SRModel takes one network or three (B, G, R), got {len(self.nets)}")
        if len(self.nets) == 3 and any(n.config.image_channels != 1 for n in self.nets):
            raise ValueError("SRModel: three per-channel networks must each take one channel")
        if grid not in GRIDS:
            raise ValueError(f"SRModel: grid must be one of {', '.join(GRIDS)}, got {grid!r}")
        self.residual = residual
        self.output_scale = float(output_scale)
        self.grid = grid  # the sampling grid of the LR images it was trained on (see data/photo.py)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint | str) -> "SRModel":
        ckpt = load_checkpoint(ckpt) if not isinstance(ckpt, Checkpoint) else ckpt
        m = ckpt.meta.get("model", {})  # checked by load_checkpoint
        return cls(ckpt.networks(), residual=bool(m.get("residual", False)),
                   output_scale=float(m.get("output_scale", 1.0)), grid=m.get("grid", "study"))

    @classmethod
    def shipped(cls, name: str) -> "SRModel":
        """A model shipped with srlib: "photo" (``upscale``'s default), "fast" or "study" (the report's)."""
        if name not in SHIPPED:
            raise SrlibError(f"no shipped model {name!r}; choose one of {', '.join(SHIPPED)}")
        if not SHIPPED[name].is_file():
            raise SrlibError(f"the shipped model {SHIPPED[name]} is missing from this installation; "
                             f"reinstall srlib or pass --weights CKPT")
        return cls.from_checkpoint(str(SHIPPED[name]))

    def model_meta(self) -> dict:
        return {"residual": self.residual, "output_scale": self.output_scale, "grid": self.grid}

    @property
    def halo(self) -> int:
        """LR pixels around a tile that make its output that of one-piece inference (see TILE)."""
        reach = max(sum(layer.reach() for layer in net.layers) for net in self.nets)
        return max(reach, BICUBIC_REACH) + 1

    @property
    def tile(self) -> int:
        """The largest tile side ``predict`` and ``upscale`` cut for this model: TILE, or less where one
        tile's widest activation (over the channel planes that go through a network together) would hold
        more than TILE_FLOATS values."""
        planes = 3 if self.layout.kind == "shared" else 1
        widest = planes * max(max(net.config.channels) for net in self.nets)
        return max(1, min(TILE, math.isqrt(TILE_FLOATS // widest)))

    @property
    def sees_colour(self) -> bool:
        """True when the network takes B, G and R together (``image_channels`` 3)."""
        return self.nets[0].config.image_channels == 3

    @property
    def layout(self) -> ChannelLayout:
        """How colour channels reach the networks."""
        return ChannelLayout("colour" if self.sees_colour else "per_channel" if len(self.nets) == 3 else "shared")

    # The methods below take single channels (N, h, w) for a network of one image channel, or colour
    # images (N, h, w, 3) for one that sees colour; ``_nchw`` and ``_from_nchw`` convert either layout.
    @staticmethod
    def _nchw(a: np.ndarray) -> np.ndarray:
        return a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2)

    @staticmethod
    def _from_nchw(a: np.ndarray, ndim: int) -> np.ndarray:
        return a[:, 0] if ndim == 3 else a.transpose(0, 2, 3, 1)

    def targets(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        """What the network must output for uint8 LR (N, h, w[, 3]) and HR (N, 4h, 4w[, 3]):
        (N, C, 4h, 4w) float32."""
        t = hr.astype(np.float32)
        if self.residual:
            t -= self._bicubic(lr)
        return self._nchw(t / np.float32(self.output_scale))

    def inputs(self, lr: np.ndarray) -> np.ndarray:
        """uint8 LR (N, h, w[, 3]) -> network input (N, C, h, w) float32 in [0, 1]."""
        return self._nchw(lr.astype(np.float32) / np.float32(255.0))

    def _bicubic(self, lr: np.ndarray) -> np.ndarray:
        """The residual base: bicubic interpolation that puts LR samples where this model's grid has them."""
        return np.stack([BICUBIC_FOR_GRID[self.grid](c) for c in lr])

    def _through(self, net: SRNet, lr: np.ndarray, jpeg_quality: int | None) -> np.ndarray:
        """uint8 LR (N, h, w[, 3]), one piece -> float HR estimate (N, 4h, 4w[, 3]) on 0..255, unclipped."""
        strength = np.full(len(lr), jpeg_strength(jpeg_quality))
        y = self._from_nchw(net.forward(self.inputs(lr), strength), lr.ndim) * np.float32(self.output_scale)
        if self.residual:
            y += self._bicubic(lr)
        return y

    def _window(self, lr: np.ndarray, ensemble: bool = False, jpeg_quality: int | None = None) -> np.ndarray:
        """uint8 LR images (N, h, w, 3) BGR, one piece -> float (N, 4h, 4w, 3) on 0..255, unclipped.

        ``ensemble``: the mean over the 8 flips and rotations of the input, each undone on its output.
        Only on the centre grid: there a flip maps block centres to block centres, while on the study
        grid it would move every sample from a block's first pixel to its last (3 HR pixels off)."""
        if not ensemble:
            return self._window_once(lr, jpeg_quality)
        if self.grid != "centre":
            raise SrlibError("the flip/rotation ensemble keeps the sampling phase only on the centre grid; "
                             "this model was trained on the study grid")
        total = np.zeros((lr.shape[0], lr.shape[1] * SCALE, lr.shape[2] * SCALE, lr.shape[3]), np.float32)
        for k in range(4):
            for flip in (False, True):
                x = np.rot90(lr[:, :, ::-1] if flip else lr, k, axes=(1, 2))
                y = np.rot90(self._window_once(np.ascontiguousarray(x), jpeg_quality), -k, axes=(1, 2))
                total += y[:, :, ::-1] if flip else y
        return total / 8

    def _window_once(self, lr: np.ndarray, jpeg_quality: int | None) -> np.ndarray:
        layout = self.layout
        return layout.merge([self._through(self.nets[k], x, jpeg_quality) for k, x in layout.split(lr)])

    def predict(self, lr: np.ndarray, batch: int = 16, ensemble: bool = False,
                jpeg_quality: int | None = None) -> np.ndarray:
        """uint8 LR images (N, h, w, 3) BGR -> float (N, 4h, 4w, 3) on 0..255, unclipped.
        Runs ``batch`` images and one tile (``tile_grid``) at a time, so memory stays bounded for any N
        and any image size. ``ensemble``: see ``_window``. ``jpeg_quality``: the quality the LR images
        were saved at as JPEG (None: not JPEG), which a ``jpeg_aware`` network is told."""
        n, h, w, c = lr.shape
        if c != 3:
            raise ValueError(f"SRModel.predict expects (N, h, w, 3) BGR images, got shape {lr.shape}")
        out = np.empty((n, h * SCALE, w * SCALE, c), np.float32)
        for s in range(0, n, batch):
            for (rows, cols), (ir, ic), (tr, tc) in tile_grid(h, w, self.halo, self.tile):
                y = self._window(lr[s:s + batch, rows, cols], ensemble, jpeg_quality)
                out[s:s + batch, hr_slice(tr), hr_slice(tc)] = y[:, hr_slice(ir), hr_slice(ic)]
        return out

    def upscale(self, image: np.ndarray, progress=None, ensemble: bool = False,
                jpeg_quality: int | None = None) -> np.ndarray:
        """uint8 BGR image (H, W, 3) -> uint8 (4H, 4W, 3), rounded and clipped.

        Streams tile by tile (``tile_grid``) into one preallocated uint8 output, so the memory beyond the
        input and output images stays that of one tile whatever the image size. ``progress``, if given,
        is called with the number of LR pixels done after each tile (for a progress bar). ``ensemble``:
        see ``_window`` (8x the time). ``jpeg_quality``: see ``predict``.
        """
        h, w, c = image.shape
        check_output_size(h, w)
        out = np.empty((h * SCALE, w * SCALE, c), np.uint8)
        for (rows, cols), (ir, ic), (tr, tc) in tile_grid(h, w, self.halo, self.tile):
            y = self._window(image[None, rows, cols], ensemble, jpeg_quality)
            out[hr_slice(tr), hr_slice(tc)] = to_uint8(y[0, hr_slice(ir), hr_slice(ic)])
            if progress is not None:
                progress((tr.stop - tr.start) * (tc.stop - tc.start))
        return out
