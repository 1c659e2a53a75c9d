"""srlib models as ONNX graphs, for onnxruntime, OpenCV's ``dnn`` and anything else that runs ONNX.

The graph takes what ``SRModel.predict`` takes and gives what it gives, in NCHW:
- input ``image``: float32 (N, 3, H, W), B, G, R on 0..255 (a uint8 image cast to float);
- input ``jpeg_strength`` (JPEG-aware networks only): float32 (N,), ``photo.jpeg_strength`` of each
  image's JPEG quality (0: never compressed);
- output ``output``: float32 (N, 3, 4H, 4W) on 0..255, unrounded and unclipped, as ``predict``: round
  and clip it to save it.
Inside: the input over 255, the network's layers as ONNX operators (each layer writes its own:
``Layer.to_onnx``), the output scale, and, for a residual model, the bicubic base of the
model's sampling grid, all as sub-pixel phases at the input's resolution, then one DepthToSpace in
PyTorch's channel order (PixelShuffle). The base is a grouped convolution (each of the 4 x 4 output
phases a 4x4 kernel of cubic weights, a = -0.75 as OpenCV's) over the input padded by repeating its
edge pixels, so it is exactly OpenCV's ``resize`` (centre grid) or ``warpAffine`` (study grid)
bicubic, borders included. Only plain operators with explicit attributes, and nothing broadcast into
the output of a convolution, so OpenCV's dnn runs the graph too: tested with OpenCV 4.12 to 5.1
(``tests/test_onnx.py``; ``.ci/run`` repeats it for each version in ``.ci/opencv-versions``).

Needs the optional ``onnx`` package (``pip install 'srlib[onnx]'``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .data.degrade import SCALE
from .errors import SrlibError
from .model import SRModel
from .nn.layers import PixelShuffle
from .nn.network import SRNet

#: the opset the graphs use (DepthToSpace's CRD mode needs 11; Pad with pads as an input needs 11)
OPSET = 13


def _cubic(t: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel, as OpenCV's INTER_CUBIC."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_kernels(grid: str) -> tuple[np.ndarray, int]:
    """Weights of the bicubic 4x upscale of ``grid`` as a convolution: (16, 1, 5, 5) float32, output
    channel i*4 + j holding the weights of sub-pixel (i, j) over the LR window at offsets -2..2 from its
    pixel (4 of the 5 taps are non-zero: offsets -1..2 on the study grid, -2..1 or -1..2 on the centre
    grid), and the padding that window needs on each side."""
    # HR pixel 4m + i samples LR coordinate m + f(i): study grid f = i / 4 (warpAffine, x/4); centre
    # grid f = (i + 0.5) / 4 - 0.5 (resize, half-pixel centres), which is negative for i < 2.
    frac = [i / SCALE if grid == "study" else (i + 0.5) / SCALE - 0.5 for i in range(SCALE)]
    base = -2  # windows span LR offsets base .. base + 4 (a 5-wide span covers both grids)
    w1d = np.zeros((SCALE, 5))
    for i, f in enumerate(frac):
        for k in range(5):
            w1d[i, k] = _cubic(base + k - f)
    kernels = np.einsum("ik,jl->ijkl", w1d, w1d).reshape(SCALE * SCALE, 1, 5, 5)
    return kernels.astype(np.float32), -base


class _Graph:
    """The ONNX nodes and initializers being built (``layers.OnnxGraph``, what each layer writes with)."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.inits: dict[str, Any] = {}
        self.prefix = ""           # names this network's nodes: a network run on each channel runs 3 times
        self.weights_prefix = ""   # names this network's weights: shared by the channels of one network
        self.strength: str | None = None  # each image's JPEG strength, (N, 1, 1, 1)
        self._input = ""           # the network's input, whose size the strength map takes
        self._input_channels = 1
        self._strength_map: str | None = None
        self._count = 0

    def const(self, name: str, value) -> str:
        if name not in self.inits:
            self.inits[name] = self.numpy_helper.from_array(np.asarray(value), name)
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def name(self, suffix: str) -> str:
        self._count += 1
        return f"{self.prefix}l{self._count}_{suffix}"

    def weight(self, param, value: np.ndarray | None = None) -> str:
        return self.const(f"{self.weights_prefix}{param.name}", param.value if value is None else value)


    def strength_map(self) -> str:
        if self.strength is None:
            raise SrlibError("ONNX export: a JpegShift layer in a network that is not jpeg_aware")
        if self._strength_map is None:  # ones of the input's size (zero weights, a bias of 1) x strength
            channels = self._input_channels
            ones = self.node("Conv", [self._input, self.const(f"ones_w{channels}", np.zeros((1, channels, 1, 1), np.float32)),
                                      self.const("ones_b", np.ones(1, np.float32))],
                             f"{self.prefix}ones", kernel_shape=[1, 1])
            self._strength_map = self.node("Mul", [ones, self.strength], f"{self.prefix}strength_map")
        return self._strength_map

    def network(self, net: SRNet, x: str, prefix: str, weights_prefix: str) -> str:
        """``net``'s layers over ``x`` (N, C, h, w), but for its final PixelShuffle: the (N, C * 16, h, w)
        sub-pixel phases, channel c's at 16c..16c+15, for the caller to add the bicubic base to."""
        *layers, last = net.layers
        if not (isinstance(last, PixelShuffle) and last.r == SCALE):
            raise SrlibError(f"ONNX export: a network must end in a x{SCALE} PixelShuffle, not {type(last).__name__}")
        self.prefix, self.weights_prefix = prefix, weights_prefix
        self._input, self._input_channels = x, net.config.image_channels
        self._strength_map, self._count = None, 0
        for layer in layers:
            try:
                x = layer.to_onnx(self, x)
            except NotImplementedError:
                raise SrlibError(f"ONNX export does not know the layer {type(layer).__name__}") from None
        return x


def to_onnx(model: SRModel):
    """``model`` as an ``onnx.ModelProto`` (see the module docstring for its inputs and output)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SrlibError("exporting to ONNX needs the onnx package: pip install 'srlib[onnx]' (or onnx)") from None

    g = _Graph(helper, numpy_helper)
    jpeg_aware = model.nets[0].config.jpeg_aware
    image = "image"
    x = g.node("Div", [image, g.const("c255", np.float32(255.0))], "x")
    if jpeg_aware:  # (N,) -> (N, 1, 1, 1), broadcast over the strength map's pixels
        g.strength = g.node("Reshape", ["jpeg_strength", g.const("s_shape", np.array([-1, 1, 1, 1], np.int64))], "s")
    # Everything up to the output stays at the input's resolution as sub-pixel phases (N, 48, h, w): the
    # networks' and the bicubic base's phases are added there, and one DepthToSpace (CRD, PyTorch's
    # PixelShuffle order) makes the image. OpenCV 4.x refuses an Add of two upscaled branches.
    if model.sees_colour:
        y = g.network(model.nets[0], x, "", "")
    else:  # B, G and R each through one network (shared: the same weights under one name) or its own
        parts = [f"x_c{c}" for c in range(3)]
        g.nodes.append(helper.make_node("Split", [x], parts, name="split", axis=1))
        shared = len(model.nets) == 1
        y = g.node("Concat", [g.network(model.nets[0 if shared else c], parts[c], f"c{c}_", "" if shared else f"net{c}_")
                              for c in range(3)], "y_concat", axis=1)
    y = g.node("Mul", [y, g.const("output_scale", np.float32(model.output_scale))], "y_scaled")
    if model.residual:
        # a grouped convolution, one group per colour channel: channel c's 16 phases are output
        # channels 16c..16c+15, as the networks' are
        kernels, pad = bicubic_kernels(model.grid)
        padded = g.node("Pad", [image, g.const("bic_pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))],
                        "bic_padded", mode="edge")
        kernels3 = np.concatenate([kernels] * 3)
        base = g.node("Conv", [padded, g.const("bic_w", kernels3)], "bicubic_phases",
                      kernel_shape=list(kernels3.shape[-2:]), group=3)
        y = g.node("Add", [y, base], "y_residual")
    y = g.node("DepthToSpace", [y], "y_image", blocksize=SCALE, mode="CRD")
    g.node("Identity", [y], "output")
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    if jpeg_aware:
        inputs.append(helper.make_tensor_value_info("jpeg_strength", TensorProto.FLOAT, ["N"]))
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H4", "W4"])]
    graph = helper.make_graph(g.nodes, "srlib", inputs, outputs, initializer=list(g.inits.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="srlib")
    onnx.checker.check_model(proto)
    return proto
