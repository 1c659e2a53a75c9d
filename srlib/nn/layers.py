"""Layers of the sub-pixel network, each with ``forward`` and a hand-written ``backward``.

Activations are channels-last, ``(N, H, W, C)``: on a CPU that makes the im2col gather copy contiguous
runs of ``C`` values and lets every convolution be one matrix product whose result is already in the
right layout. Weights keep the study's (and PyTorch's) layout ``(C_out, C_in, k, k)`` so published
weights load unchanged. For single-channel images, ``(N, 1, H, W)`` and ``(N, H, W, 1)`` are the same
bytes, so the network's NCHW interface costs nothing (see ``network.py``).

A convolution can be computed three ways, all tested against each other: im2col here, the readable
reference; shifted matrix products on the padded input (``shifted.py``); and Winograd F(2x2, 3x3)
(``winograd.py``). Which is fastest depends on the layer, the operation (forward, weight gradient,
input gradient), the CPU and the thread count, so each Conv2d takes a path per operation
(``Conv2d.paths``), measured per machine by ``tuning.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from . import shifted, winograd
from .parallel import map_blocks, scratch

# Aim for im2col blocks of about this many bytes: small enough to stay in cache, where the gather and
# the matrix product that reads it are faster than through main memory, large enough that per-block
# overhead stays small (16 MiB measured best on the 2-core machine; 2 MiB was 30% slower).
_BLOCK_BYTES = 16 << 20
# At least this many blocks (when there are that many images), to keep up to 4 threads busy. A fixed
# number, not the thread count: the blocks, the order of the weight gradient's sums and hence the bits
# of every result are then the same with 1 thread, 2, or a Dask worker's 1.
_MIN_BLOCKS = 4

# The algorithms a Conv2d can use; all compute the same correlation and its gradients, rounded
# differently. "fixed" is a rule that picks among them by layer shape (``fixed_paths``).
PATHS = ("im2col", "shifted", "winograd")
# The three operations of a convolution, each of which can take its own path.
OPS = ("forward", "weight_grad", "input_grad")


def fixed_paths(c_in: int, c_out: int) -> dict[str, str]:
    """The rule srlib used before paths were measured per machine (``tuning.py``), and still uses when
    told to (``SRLIB_CONV_PATHS=fixed``, the tests): shifted products when the input of a correlation
    has many channels and the output no more, im2col otherwise (few input channels, where shifted
    products would have an inner dimension of 1, or fewer input than output channels). Runs saved
    before srlib recorded its paths were trained with it."""
    def rule(c_from: int, c_to: int) -> str:
        return "shifted" if 8 <= c_from and c_to <= c_from else "im2col"
    forward = rule(c_in, c_out)
    return {"forward": forward, "weight_grad": forward, "input_grad": rule(c_out, c_in)}


def check_paths(paths: object, k: int) -> dict[str, str]:
    """``paths`` as a dict of OPS -> PATHS for a k x k kernel (Winograd: 3x3 only); raises ValueError."""
    if (not isinstance(paths, dict) or set(paths) != set(OPS)
            or not all(isinstance(p, str) and p in PATHS for p in paths.values())):
        raise ValueError(f"convolution paths must map {', '.join(OPS)} to one of {', '.join(PATHS)}, got {paths!r:.120}")
    if k != 3 and "winograd" in paths.values():
        raise ValueError(f"the winograd path is for 3x3 kernels only, not {k}x{k}")
    return dict(paths)


@dataclass
class Param:
    """A trainable array and the gradient the last ``backward`` left for it (same shape, same dtype)."""

    name: str
    value: np.ndarray
    grad: np.ndarray


def saved_for_backward(value: np.ndarray | None, layer: str) -> np.ndarray:
    """What ``forward`` kept for ``backward``; a backward with no forward before it is a clear error."""
    if value is None:
        raise RuntimeError(f"{layer}: backward needs a forward pass first (each forward serves one backward)")
    return value


#: what a parameter may be called (``layer.kind``, e.g. ``conv1.weight``): checkpoints store parameters
#: under these names and read back only names of this form that the network has
PARAM_NAME = r"[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}"


class OnnxGraph(Protocol):
    """What a layer writes its ONNX operators with (``onnx_export`` provides it; layers import no onnx)."""

    def const(self, name: str, value: np.ndarray) -> str: ...  # an initializer (a layer's weights), by name
    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str: ...
    def name(self, suffix: str) -> str: ...  # a node name unique to this network and layer
    def weight(self, param: "Param", value: np.ndarray | None = None) -> str: ...  # a parameter as an initializer
    def strength_map(self) -> str: ...  # each image's JPEG strength as an (N, 1, h, w) map


class Layer:
    """What the network, checkpoints, tiled inference and the ONNX export ask of every layer
    (``network.SRNet`` is an ordered list of them); a new layer is one class here:

    forward(x)    (N, H, W, C) -> the layer's output, keeping what backward needs
    backward(dy)  dL/d(output) -> dL/d(input), leaving dL/d(param) in each of ``params()``' ``grad``
    params()      the trainable arrays (none by default), named ``PARAM_NAME``: checkpoints and optimizers
                  store them by these names and shapes
    condition(s)  per-image side information for the next forward: s (N,) says how strongly each input
                  was JPEG-compressed. Only a layer that uses it (``JpegShift``) overrides this.
    reach()       how many pixels on each side of an output pixel its value depends on (0 for a layer
                  that works pixel by pixel): tiled inference adds up the layers' reaches for its halo
    convolutions() the ``Conv2d`` layers it computes with, in order (their paths are tuned and recorded)
    to_onnx(g, x) the layer as ONNX operators on the NCHW tensor named x (``OnnxGraph``); returns the
                  output's name
    """

    def params(self) -> list[Param]:
        return []

    def reach(self) -> int:
        return 0

    def convolutions(self) -> list["Conv2d"]:
        return []

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        raise NotImplementedError(f"{type(self).__name__} has no ONNX export")

    def condition(self, strength: np.ndarray) -> None:
        pass

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError


class Conv2d(Layer):
    """2-D convolution, stride 1, "same" zero padding, odd square kernel, optional bias.

    forward:  x (N, H, W, C_in)  -> y (N, H, W, C_out)
    backward: dy (N, H, W, C_out) -> dx (N, H, W, C_in), or None when ``needs_input_grad`` is False
              (the first layer's input is the image: its gradient is never used, and skipping it saves
              the costliest scatter of the step).
    Like PyTorch's Conv2d this is a cross-correlation: y[n,h,w,o] = sum W[o,c,i,j] x[n,h+i-p,w+j-p,c] + b[o].
    path: the algorithm of each operation, ``{"forward": ..., "weight_grad": ..., "input_grad": ...}``
    with values from PATHS, or one name for all three: "im2col", "shifted", "winograd" (3x3 only),
    "fixed" (``fixed_paths``) or "tuned": the fastest on this machine, asked of ``resolve(c_in, c_out, k,
    dtype)`` when first needed (``SRNet`` hands in ``tuning.layer_paths``; the layer knows no tuner, which
    builds layers to time them).
    """

    def __init__(self, name: str, weight: np.ndarray, bias: np.ndarray | None = None,
                 needs_input_grad: bool = True, path: str | dict[str, str] = "fixed",
                 resolve: Callable[[int, int, int, str], dict[str, str]] | None = None):
        c_out, c_in, k, k2 = weight.shape
        if k != k2 or k % 2 == 0:
            raise ValueError(f"{name}: kernel must be square and odd, got {k}x{k2}")
        self.name = name
        self.k = k
        self.pad = k // 2
        self.weight = Param(f"{name}.weight", weight, np.zeros_like(weight))
        self.bias = None if bias is None else Param(f"{name}.bias", bias, np.zeros_like(bias))
        self.needs_input_grad = needs_input_grad
        self._paths: dict[str, str] | None = None  # None: "tuned", looked up when first needed
        self._resolve = resolve
        if path == "tuned" and resolve is None:
            raise ValueError(f"{name}: tuned paths need a resolver (SRNet gives tuning.layer_paths)")
        if path != "tuned":
            self.paths = fixed_paths(c_in, c_out) if path == "fixed" else (
                dict.fromkeys(OPS, path) if isinstance(path, str) else path)
        self._saved: np.ndarray | None = None  # forward's input, or its grid when both it and dW are shifted

    @property
    def paths(self) -> dict[str, str]:
        """The path of each operation (OPS -> PATHS)."""
        if self._paths is None:
            assert self._resolve is not None  # checked in __init__
            c_out, c_in = self.weight.value.shape[:2]
            self.paths = self._resolve(c_in, c_out, self.k, self.weight.value.dtype.name)
            assert self._paths is not None
        return self._paths

    @paths.setter
    def paths(self, paths: dict[str, str]) -> None:
        try:
            self._paths = check_paths(paths, self.k)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None

    def params(self) -> list[Param]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def reach(self) -> int:
        return self.pad

    def convolutions(self) -> list["Conv2d"]:
        return [self]

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        ins = [x, g.weight(self.weight, self.weight.value.astype(np.float32))]
        if self.bias is not None:
            ins.append(g.weight(self.bias, self.bias.value.astype(np.float32)))
        # kernel_shape spelled out: OpenCV's dnn 4.12 and older refuse a Conv without it
        return g.node("Conv", ins, g.name("conv"), kernel_shape=[self.k, self.k], pads=[self.pad] * 4)

    def correlate(self, path: str, x: np.ndarray, w: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
        """x (N, H, W, C) and weights w (C', C, k, k) -> the "same"-padded cross-correlation (N, H, W, C'),
        computed by ``path``. ``grid``: x already laid out by ``shifted.to_grid``, when there is one."""
        if path == "shifted":
            grid = shifted.to_grid(x, self.pad, self.k) if grid is None else grid
            return shifted.correlate(grid, x.shape[:3], w)
        if path == "winograd":
            return winograd.correlate3x3(x, winograd.weight_transform(w))
        # Weight matrix (k*k*C, C'): rows ordered (i, j, c) to match the columns ``_im2col`` builds.
        return self._correlate(self._pad(x), w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]))

    def weight_grad(self, path: str, x: np.ndarray | None, dy: np.ndarray, grid: np.ndarray | None = None,
                    dy_grid: np.ndarray | None = None) -> np.ndarray:
        """dL/dW (C_out, C_in, k, k) from forward's input x (N, H, W, C_in) and dy (N, H, W, C_out), computed
        by ``path``. ``grid``, ``dy_grid``: x and dy laid out by ``shifted.to_grid``, when there are."""
        k, c_out = self.k, dy.shape[3]
        if path == "shifted":
            grid = shifted.to_grid(saved_for_backward(x, self.name), self.pad, k) if grid is None else grid
            dy_grid = shifted.to_grid(dy, self.pad, k) if dy_grid is None else dy_grid
            return shifted.weight_grad(grid, dy_grid, dy.shape[:3], k)
        x = saved_for_backward(x, self.name)
        if path == "winograd":
            return winograd.weight_grad3x3(x, dy)
        xp = self._pad(x)

        def block(s: int, e: int) -> np.ndarray:
            # Rebuilding the patches block by block (in cache) is cheaper than keeping them from forward.
            return self._im2col(xp[s:e]).T @ dy[s:e].reshape(-1, c_out)

        n, h, w, c_in = x.shape
        dwm = np.sum(map_blocks(block, self._blocks(n, h, w, c_in, x.itemsize)), axis=0)
        return dwm.reshape(k, k, x.shape[3], c_out).transpose(3, 2, 0, 1)

    def _blocks(self, n: int, h: int, w: int, c_in: int, itemsize: int) -> list[tuple[int, int]]:
        per_image = h * w * self.k * self.k * c_in * itemsize
        step = max(1, min(_BLOCK_BYTES // per_image, -(-n // _MIN_BLOCKS)))
        return [(s, min(s + step, n)) for s in range(0, n, step)]

    def _im2col(self, xp: np.ndarray) -> np.ndarray:
        """xp (n, H+2p, W+2p, C) padded input -> (n*H*W, k*k*C) patches, in this thread's scratch buffer."""
        n, hp, wp, c = xp.shape
        k = self.k
        h, w = hp - k + 1, wp - k + 1
        cols = scratch(n * h * w * k * k * c, xp.dtype).reshape(n, h, w, k, k, c)
        for i in range(k):
            # One strided window view per kernel row copies k shifted slices at once.
            win = np.lib.stride_tricks.sliding_window_view(xp[:, i:i + h], k, axis=2)  # (n,h,w,c,k)
            cols[:, :, :, i] = win.transpose(0, 1, 2, 4, 3)
        return cols.reshape(n * h * w, k * k * c)

    def _correlate(self, xp: np.ndarray, wm: np.ndarray) -> np.ndarray:
        """Padded input xp (N, H+2p, W+2p, C) and weight matrix wm (k*k*C, C') -> (N, H, W, C')."""
        n, hp, wp, c = xp.shape
        h, w = hp - self.k + 1, wp - self.k + 1
        c_out = wm.shape[1]
        y = np.empty((n, h, w, c_out), dtype=xp.dtype)

        def block(s: int, e: int) -> None:
            np.matmul(self._im2col(xp[s:e]), wm, out=y[s:e].reshape(-1, c_out))

        map_blocks(block, self._blocks(n, h, w, c, xp.itemsize))
        return y

    def _pad(self, x: np.ndarray) -> np.ndarray:
        p = self.pad
        return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[3] != self.weight.value.shape[1]:
            raise ValueError(f"{self.name}: expected (N, H, W, {self.weight.value.shape[1]}) input, "
                             f"got {x.shape}")
        path = self.paths["forward"]
        grid = shifted.to_grid(x, self.pad, self.k) if path == "shifted" else None
        # Keep what the weight gradient reads: the grid when its path is shifted too, else x.
        self._saved = grid if grid is not None and self.paths["weight_grad"] == "shifted" else x
        y = self.correlate(path, x, self.weight.value, grid)
        if self.bias is not None:
            y += self.bias.value
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        saved, self._saved = saved_for_backward(self._saved, self.name), None
        dw_path, dx_path = self.paths["weight_grad"], self.paths["input_grad"]
        needs_dx = self.needs_input_grad
        shifted_dy = dw_path == "shifted" or (needs_dx and dx_path == "shifted")
        dy_grid = shifted.to_grid(dy, self.pad, self.k) if shifted_dy else None
        if saved.ndim == 2:  # forward's grid
            self.weight.grad[...] = self.weight_grad(dw_path, None, dy, saved, dy_grid)
        else:
            self.weight.grad[...] = self.weight_grad(dw_path, saved, dy, None, dy_grid)
        if self.bias is not None:
            self.bias.grad[...] = dy.sum(axis=(0, 1, 2))
        if not needs_dx:
            return None
        # dx is the correlation of the padded dy with the kernel flipped in space and transposed in
        # channels: a gather over k*k*C_out columns, cheaper than scattering k*k*C_in back (col2im).
        w_flip = self.weight.value[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        return self.correlate(dx_path, dy, w_flip, dy_grid)


class JpegShift(Layer):
    """Tells a layer how strongly each input image was JPEG-compressed: adds ``strength[n] * v[c]`` to
    channel c of image n, with ``v`` learned (one number per channel; ``strength`` 0 for an image never
    compressed, see ``photo.jpeg_strength``). Placed after a convolution, it lets the ReLU that follows
    switch features on or off by how compressed the input is, so one network need not hedge between
    clean and compressed inputs it cannot tell apart from a small window.

    ``condition(strength)`` (N,) before ``forward``. forward: x (N, H, W, C) -> same (in place, like ReLU:
    its input is the convolution's fresh output); backward: dy -> dy, with dL/dv = sum_n strength[n] sum_hw dy.
    """

    def __init__(self, name: str, channels: int, dtype: np.dtype):
        self.v = Param(f"{name}.jpeg", np.zeros(channels, dtype), np.zeros(channels, dtype))
        self.strength: np.ndarray | None = None

    def params(self) -> list[Param]:
        return [self.v]

    def condition(self, strength: np.ndarray) -> None:
        self.strength = strength

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.strength is None or self.strength.shape != (x.shape[0],):
            raise ValueError(f"{self.v.name}: condition on one strength per image ({x.shape[0]}) first")
        self._s = self.strength.astype(x.dtype)
        x += self._s[:, None, None, None] * self.v.value
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.v.grad[...] = self._s @ dy.sum(axis=(1, 2), dtype=np.float64).astype(dy.dtype)
        return dy

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        # strength[n] * v as a 1x1 convolution of the strength map: a tensor of x's own shape, since
        # OpenCV's dnn refuses to broadcast an Add after a convolution (4.x: shapes; 5.1: a "residual")
        v = self.v.value.astype(np.float32).reshape(-1, 1, 1, 1)
        shift = g.node("Conv", [g.strength_map(), g.weight(self.v, v)], g.name("jpeg_shift"), kernel_shape=[1, 1])
        return g.node("Add", [x, shift], g.name("jpeg"))


class ReLU(Layer):
    """max(x, 0), elementwise. forward/backward: any shape -> same shape.

    Works in place: its input is the previous convolution's fresh output, which nothing else reads,
    and the gradient it receives is likewise its own to overwrite. That saves two full passes per step.
    """

    def __init__(self) -> None:
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.maximum(x, 0, out=x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y, self._y = saved_for_backward(self._y, "ReLU"), None
        return np.multiply(dy, y > 0, out=dy if dy.flags.writeable else None)

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        return g.node("Relu", [x], g.name("relu"))


class ResBlock(Layer):
    """A residual block: x + b(relu(a(x))), two "same" convolutions of one width with a ReLU between them
    (EDSR's block, Lim et al. 2017, without batch normalisation). Stacked in low-resolution space they let
    a network grow deep without its gradients fading: each block only adds a correction to what it is
    given. forward/backward: (N, H, W, C) -> same; dL/dx = dy + (the branch's input gradient)."""

    def __init__(self, a: Conv2d, b: Conv2d):
        width = a.weight.value.shape[0]
        if a.weight.value.shape[:2] != (width, width) or b.weight.value.shape[:2] != (width, width):
            raise ValueError(f"{a.name}, {b.name}: a residual block's convolutions keep one width")
        self.a, self.b, self.relu = a, b, ReLU()

    def params(self) -> list[Param]:
        return self.a.params() + self.b.params()

    def reach(self) -> int:
        return self.a.reach() + self.b.reach()

    def convolutions(self) -> list[Conv2d]:
        return [self.a, self.b]

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.b.forward(self.relu.forward(self.a.forward(x)))
        y += x  # b's output is fresh; x stays as it was, which a's backward may still need
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        db = self.b.backward(dy)
        dx = self.a.backward(self.relu.backward(db)) if db is not None else None
        if dx is None:
            raise RuntimeError(f"{self.a.name}: a residual block's convolutions must compute their input gradients")
        dx += dy
        return dx

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        y = self.b.to_onnx(g, self.relu.to_onnx(g, self.a.to_onnx(g, x)))
        return g.node("Add", [y, x], g.name("block"))


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """(N, H, W, C*r*r) -> (N, H*r, W*r, C), PyTorch's channel order: input channel c*r*r + i*r + j
    becomes output channel c at sub-pixel (i, j) of each r x r block."""
    n, h, w, crr = x.shape
    if crr % (r * r):
        raise ValueError(f"pixel_shuffle: {crr} channels is not a multiple of r*r = {r * r}")
    c = crr // (r * r)
    return x.reshape(n, h, w, c, r, r).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c)


def pixel_unshuffle(y: np.ndarray, r: int) -> np.ndarray:
    """The exact inverse of ``pixel_shuffle``: (N, H*r, W*r, C) -> (N, H, W, C*r*r)."""
    n, hr, wr, c = y.shape
    if hr % r or wr % r:
        raise ValueError(f"pixel_unshuffle: size {hr}x{wr} is not a multiple of r = {r}")
    h, w = hr // r, wr // r
    return y.reshape(n, h, r, w, r, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h, w, c * r * r)


class PixelShuffle(Layer):
    """Sub-pixel upsampling by ``r``. forward: (N, H, W, C*r*r) -> (N, H*r, W*r, C); backward: the inverse."""

    def __init__(self, r: int):
        self.r = r

    def forward(self, x: np.ndarray) -> np.ndarray:
        return pixel_shuffle(x, self.r)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return pixel_unshuffle(dy, self.r)

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        return g.node("DepthToSpace", [x], g.name("shuffle"), blocksize=self.r, mode="CRD")  # PyTorch's order


class MSELoss:
    """Mean squared error over every element of the batch, as the study used.

    forward(y, t) -> scalar loss; backward() -> dL/dy, same shape as y. ``batch_size``: the elements
    the mean is over, when y is one shard of a larger batch (default: y's own); the shards' losses
    and gradients then add up to the batch's.
    """

    def __init__(self, batch_size: int | None = None) -> None:
        self._diff: np.ndarray | None = None
        self.batch_size = batch_size

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        if y.shape != t.shape:
            raise ValueError(f"MSELoss: output {y.shape} and target {t.shape} differ in shape")
        self._diff = y - t
        return float(np.vdot(self._diff, self._diff) / (self.batch_size or self._diff.size))

    def backward(self) -> np.ndarray:
        diff = saved_for_backward(self._diff, "MSELoss")
        return diff * (2.0 / (self.batch_size or diff.size))
