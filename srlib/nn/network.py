"""The study's sub-pixel network ("SR_Net") as an ordered list of layers.

Default configuration = the study: conv 5x5 1->64, 3x3 64->32, 3x3 32->32, 3x3 32->16, ReLU after each,
PixelShuffle(4), no biases, weights uniform in [-0.01, 0.01]: 33,856 weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

from .layers import Conv2d, JpegShift, Layer, Param, PixelShuffle, ReLU, ResBlock
from .parallel import single_threaded_blas
from .tuning import layer_paths, setting

# Limits on what a configuration (e.g. one read from a checkpoint) may ask for: far above the study's
# network (4 layers, 64 channels, 5x5 kernels), far below what would exhaust memory.
MAX_LAYERS, MAX_CHANNELS, MAX_KERNEL = 16, 512, 15
# ... and on what it costs to run, which shape limits alone do not bound (16 layers of 512 channels and
# 15x15 kernels would be 944 million weights). Weights = multiply-adds per LR pixel: at most 1 million,
# 3x the photo model's 319,152 (a 512x512 upscale then takes minutes, not hours). Channels summed over
# the layers decide the activations a batch keeps for the backward pass: at most 2,048 (the photo
# model: 480; 8 residual blocks of 64: 1,200), about 2 GB for a training batch of 30 44x44 examples,
# 320 MB for an upscale tile.
MAX_WEIGHTS, MAX_TOTAL_CHANNELS = 1_000_000, 2048


#: NetConfig's fields added after checkpoints and run records were first written (see ``to_dict``)
ADDED_FIELDS = ("res_blocks",)


@dataclass(frozen=True)
class NetConfig:
    """Shape and initialisation of a sub-pixel network.

    channels: output channels of each convolution; the last must equal image_channels * scale**2.
    kernels: kernel size of each convolution (odd).
    image_channels: colour channels the network sees and outputs. 1 (the study): one channel at a time,
        the same network for B, G and R. 3: B, G and R together, so it can use what one channel shows
        of another's edges (a JPEG keeps brightness at full resolution but colour at half).
    bias: give each convolution a bias (the study had none).
    init: "uniform" = uniform(-init_scale, init_scale) as the study; "he" = normal(0, sqrt(2 / fan_in)).
    final_init_scale: multiplies the last convolution's initial weights. A residual model starts best
        near "add nothing to bicubic": with a full-size He init its first outputs are ~100 grey levels
        of noise, and Adam's first large steps kill most ReLUs of the third layer (measured: 0.04% alive).
    final_relu: ReLU after the last convolution (the study: yes; a residual model needs negative outputs).
    jpeg_aware: the network is told how strongly each input was JPEG-compressed (``layers.JpegShift``
        after every hidden convolution; ``forward``'s ``jpeg_strength``).
    res_blocks: residual blocks (``layers.ResBlock``: two 3x3 convolutions of the first layer's width)
        after the first convolution and its ReLU, for a deeper network in low-resolution space; the
        second convolution of each starts at a tenth of its He initialisation, so each block starts near
        "pass the input on".
    dtype: "float32" (fast) or "float64" (gradient checks).
    """

    channels: tuple[int, ...] = (64, 32, 32, 16)
    kernels: tuple[int, ...] = (5, 3, 3, 3)
    scale: int = 4
    image_channels: int = 1
    bias: bool = False
    init: str = "uniform"
    init_scale: float = 0.01
    final_init_scale: float = 1.0
    final_relu: bool = True
    jpeg_aware: bool = False
    res_blocks: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        # Bounds first: a configuration read from a file must not make srlib allocate gigabytes.
        ints = (*self.channels, *self.kernels, self.scale, self.image_channels, self.res_blocks)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise ValueError(f"NetConfig: channels, kernels and scale must be integers, got {self}")
        if not (1 <= len(self.channels) <= MAX_LAYERS and all(1 <= c <= MAX_CHANNELS for c in self.channels)
                and all(1 <= k <= MAX_KERNEL for k in self.kernels) and 1 <= self.scale <= 8
                and self.image_channels in (1, 3) and 0 <= self.res_blocks <= MAX_LAYERS):
            raise ValueError(f"NetConfig: at most {MAX_LAYERS} layers of 1..{MAX_CHANNELS} channels and {MAX_LAYERS} "
                             f"residual blocks, kernels 1..{MAX_KERNEL}, scale 1..8 and 1 or 3 image channels, got {self}")
        if not (isinstance(self.bias, bool) and isinstance(self.final_relu, bool) and isinstance(self.jpeg_aware, bool)
                and all(isinstance(v, (int, float)) and np.isfinite(v) and v > 0
                        for v in (self.init_scale, self.final_init_scale))):
            raise ValueError(f"NetConfig: bias, final_relu and jpeg_aware must be true/false and the init scales positive "
                             f"numbers, got {self}")
        if len(self.channels) != len(self.kernels) or not self.channels:
            raise ValueError("NetConfig: channels and kernels must be non-empty and of equal length")
        if self.channels[-1] != self.image_channels * self.scale ** 2:
            raise ValueError(f"NetConfig: last layer needs image_channels * scale**2 = "
                             f"{self.image_channels * self.scale ** 2} channels, got {self.channels[-1]}")
        if any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise ValueError(f"NetConfig: kernels must be odd, got {self.kernels}")
        weights = sum(c_out * c_in * k * k for c_in, c_out, k in self.conv_shapes())
        channels = sum(c_out for _, c_out, _ in self.conv_shapes())
        if weights > MAX_WEIGHTS or channels > MAX_TOTAL_CHANNELS:
            raise ValueError(f"NetConfig: {weights:,} weights and {channels} channels in all; srlib runs "
                             f"networks of at most {MAX_WEIGHTS:,} weights and {MAX_TOTAL_CHANNELS} channels")
        if self.init not in ("uniform", "he"):
            raise ValueError(f"NetConfig: init must be 'uniform' or 'he', got {self.init!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"NetConfig: dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def to_dict(self) -> dict:
        """Plain values, for checkpoints and run records. A field added after those were first written
        (``ADDED_FIELDS``) appears only when it is not at its default, so every configuration that could
        be made before stores, and hashes into its runs' task digests, exactly as it did."""
        d = asdict(self)
        for name in ADDED_FIELDS:
            if d[name] == NetConfig.__dataclass_fields__[name].default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: object) -> "NetConfig":
        """Inverse of ``to_dict``; raises TypeError or ValueError for anything else."""
        if not isinstance(d, dict) or not all(isinstance(d.get(k), (list, tuple)) for k in ("channels", "kernels")):
            raise TypeError(f"NetConfig: expected a mapping with channel and kernel lists, got {d!r:.200}")
        d = dict(d)
        d["channels"], d["kernels"] = tuple(d["channels"]), tuple(d["kernels"])
        if d.get("init") == "seed":  # the name srlib 1.0's checkpoints used for "uniform"
            d["init"] = "uniform"
        return cls(**d)

    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """(C_in, C_out, k) of each convolution, first layer first, the residual blocks' after the first."""
        plain = list(zip((self.image_channels, *self.channels[:-1]), self.channels, self.kernels))
        return plain[:1] + [(self.channels[0], self.channels[0], 3)] * (2 * self.res_blocks) + plain[1:]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter of an ``SRNet`` with this configuration: what its layers
        declare (``Layer.params``), so a checkpoint reads back exactly what the network holds."""
        return {p.name: p.value.shape for p in SRNet(self, paths="fixed").params()}


class SRNet:
    """Ordered list of layers; input (N, C, h, w) LR in [0, 1] -> output (N, C, h*s, w*s), where C is the
    configuration's ``image_channels``.

    Parameters are named ``conv1.weight`` .. ``conv4.weight`` (and ``.bias``) and belong to this network
    alone; optimizers keep their state per parameter (see ``optimizers.py``).

    paths: how each convolution computes each operation (``layers.Conv2d``): one name for every layer
    ("tuned", "fixed", "im2col", ...), or one ``{op: path}`` per convolution, as ``conv_paths`` returns
    them. Default: ``$SRLIB_CONV_PATHS`` (``tuning.setting``), "tuned" unless set.
    """

    def __init__(self, config: NetConfig = NetConfig(), seed: int = 0,
                 weights: dict[str, np.ndarray] | None = None, paths: str | list[dict[str, str]] | None = None):
        self.config = config
        dtype = np.dtype(config.dtype)
        rng = np.random.default_rng(seed)
        if paths is None:
            paths = setting()
        shapes = config.conv_shapes()
        per_conv: Iterator[str | dict[str, str]] = iter([paths] * len(shapes) if isinstance(paths, str) else list(paths))
        if not isinstance(paths, str) and len(paths) != len(shapes):
            raise ValueError(f"{len(paths)} convolution paths given for {len(shapes)} convolutions")

        def conv(name: str, c_in: int, c_out: int, k: int, scale: float = 1.0, needs_input_grad: bool = True) -> Conv2d:
            shape = (c_out, c_in, k, k)
            if config.init == "uniform":
                w = rng.uniform(-config.init_scale, config.init_scale, shape)
            else:
                w = rng.normal(0.0, np.sqrt(2.0 / (c_in * k * k)), shape)
            b = np.zeros(c_out, dtype) if config.bias else None
            return Conv2d(name, (w * scale).astype(dtype), b, needs_input_grad=needs_input_grad,
                          path=next(per_conv), resolve=layer_paths)

        self.layers: list[Layer] = []
        c_in = config.image_channels
        for i, (c_out, k) in enumerate(zip(config.channels, config.kernels), start=1):
            last = i == len(config.channels)
            self.layers.append(conv(f"conv{i}", c_in, c_out, k, config.final_init_scale if last else 1.0,
                                    needs_input_grad=i > 1))
            if config.jpeg_aware and not last:
                self.layers.append(JpegShift(f"conv{i}", c_out, dtype))
            if not last or config.final_relu:
                self.layers.append(ReLU())
            if i == 1:
                self.layers += [ResBlock(conv(f"block{j}a", c_out, c_out, 3), conv(f"block{j}b", c_out, c_out, 3, 0.1))
                                for j in range(1, config.res_blocks + 1)]
            c_in = c_out
        self.layers.append(PixelShuffle(config.scale))
        if weights is not None:
            self.load_weights(weights)

    def params(self) -> list[Param]:
        return [p for layer in self.layers for p in layer.params()]

    def replica(self) -> "SRNet":
        """A network that shares this one's parameter values (the same arrays: an optimizer step on
        this one is seen by both) but keeps its own gradients and forward state: one per shard of a
        data-parallel training step (``train.train_step``)."""
        twin = SRNet(self.config, paths=self.conv_paths())
        for mine, theirs in zip(self.params(), twin.params()):
            theirs.value = mine.value
        return twin

    def conv_paths(self) -> list[dict[str, str]]:
        """The path of each operation of each convolution, first layer first (a run's record keeps them)."""
        return [dict(conv.paths) for layer in self.layers for conv in layer.convolutions()]

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, by name."""
        return {p.name: p.value.copy() for p in self.params()}

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy ``weights`` (name -> array) into the network; names and shapes must match exactly."""
        params = {p.name: p for p in self.params()}
        if set(weights) != set(params):
            raise ValueError(f"weights have keys {sorted(weights)}, network expects {sorted(params)}")
        for name, p in params.items():
            w = np.asarray(weights[name])
            if w.shape != p.value.shape:
                raise ValueError(f"weight {name} has shape {w.shape}, network expects {p.value.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"weight {name} holds NaN or infinite values")
            p.value[...] = w

    def n_weights(self) -> int:
        return sum(p.value.size for p in self.params())

    def forward(self, x: np.ndarray, jpeg_strength: np.ndarray | None = None) -> np.ndarray:
        """x (N, C, h, w) -> (N, C, h*s, w*s), in the network's dtype (C = ``image_channels``).
        ``jpeg_strength`` (N,): how compressed each input is (``photo.jpeg_strength``; None = not at
        all); only a ``jpeg_aware`` network reads it."""
        if x.ndim != 4 or x.shape[1] != self.config.image_channels:
            raise ValueError(f"SRNet expects a (N, {self.config.image_channels}, h, w) batch, got shape {x.shape}")
        strength = np.zeros(len(x)) if jpeg_strength is None else np.asarray(jpeg_strength, np.float64)
        for layer in self.layers:
            layer.condition(strength)
        h = np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1), dtype=self.config.dtype)
        with single_threaded_blas():
            for layer in self.layers:
                h = layer.forward(h)
        return h.transpose(0, 3, 1, 2)

    def backward(self, dy: np.ndarray) -> None:
        """dy (N, C, H, W) = dL/d(output); leaves dL/d(param) in each ``Param.grad``."""
        g: np.ndarray | None = np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
        with single_threaded_blas():
            for layer in reversed(self.layers):
                if g is None:  # the first layer's input gradient is not needed
                    break
                g = layer.backward(g)


def network_paths(config: NetConfig, n_threads: int | None = None) -> str | list[dict[str, str]]:
    """The paths a network of ``config`` takes under ``setting()``: "fixed" or "im2col" as such, or the
    tuned choice of each layer for ``n_threads`` (``tuning.layer_paths``), first layer first."""
    if setting() != "tuned":
        return setting()
    return [layer_paths(c_in, c_out, k, config.dtype, n_threads=n_threads) for c_in, c_out, k in config.conv_shapes()]
