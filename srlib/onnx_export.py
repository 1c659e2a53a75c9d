"""srlib models as ONNX graphs, for onnxruntime, OpenCV's ``dnn`` and anything else that runs ONNX.

The graph takes what ``SRModel.predict`` takes and gives what it gives, in NCHW:
- input ``image``: float32 (N, 3, H, W), B, G, R on 0..255 (a uint8 image cast to float);
- input ``jpeg_strength`` (JPEG-aware networks only): float32 (N,), ``photo.jpeg_strength`` of each
  image's JPEG quality (0: never compressed);
- output ``output``: float32 (N, 3, 4H, 4W) on 0..255, unrounded and unclipped, as ``predict``: round
  and clip it to save it.
Inside: the input over 255, the network's layers as ONNX operators (Conv, Relu; a ``JpegShift`` folded
into the convolution before it), the output scale, and, for a residual model, the bicubic base of the
model's sampling grid, all as sub-pixel phases at the input's resolution, then one DepthToSpace in
PyTorch's channel order (PixelShuffle). The base is a grouped convolution (each of the 4 x 4 output
phases a 4x4 kernel of cubic weights, a = -0.75 as OpenCV's) over the input padded by repeating its
edge pixels, so it is exactly OpenCV's ``resize`` (centre grid) or ``warpAffine`` (study grid)
bicubic, borders included. Only plain operators with explicit attributes and no broadcasting between
computed tensors, so OpenCV's dnn runs the graph too: tested with OpenCV 4.12 to 5.1
(``tests/test_onnx.py``; ``.ci/run`` repeats it for each version in ``.ci/opencv-versions``).

Needs the optional ``onnx`` package (``pip install 'srlib[onnx]'``).
"""
from __future__ import annotations

import numpy as np

from .data.degrade import SCALE
from .errors import SrlibError
from .model import SRModel
from .nn.layers import Conv2d, JpegShift, PixelShuffle, ReLU
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


def to_onnx(model: SRModel):
    """``model`` as an ``onnx.ModelProto`` (see the module docstring for its inputs and output)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SrlibError("exporting to ONNX needs the onnx package: pip install 'srlib[onnx]' (or onnx)") from None

    nodes: list = []
    inits: list = []
    jpeg_aware = model.nets[0].config.jpeg_aware

    def const(name: str, value) -> str:
        if name not in {i.name for i in inits}:  # a network run on each channel shares its weights
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(inputs: list[str], output: str, kernel: np.ndarray, **attrs) -> str:
        # kernel_shape spelled out: OpenCV 4.12 and older refuse a Conv without it
        return node("Conv", inputs, output, kernel_shape=list(kernel.shape[-2:]), **attrs)

    def network(prefix: str, net: SRNet, x: str, strength: str | None, weights: str) -> str:
        """``net``'s layers over ``x`` (N, C, h, w). A JpegShift (strength[n] * v added to the preceding
        convolution's output) is folded into that convolution as one more input channel, the strength map
        (N, 1, h, w), whose kernel holds v at its centre tap and 0 elsewhere: the centre tap never falls on
        padding, so the sum is the same, and the graph needs no broadcasting Add after a Conv, which
        OpenCV's dnn refuses (4.x: broadcast shapes; 5.1: a residual added after a convolution).
        ``prefix`` names the nodes, ``weights`` the network's initializers. The final PixelShuffle is left
        to the caller: the output is the (N, C * 16, h, w) sub-pixel phases, channel c's phases at 16c..16c+15."""
        *layers, last = net.layers
        if not (isinstance(last, PixelShuffle) and last.r == SCALE):
            raise SrlibError(f"ONNX export: a network must end in a x{SCALE} PixelShuffle, not {type(last).__name__}")
        strength_map: str | None = None
        for i, layer in enumerate(layers):
            out = f"{prefix}l{i}"
            if isinstance(layer, Conv2d):
                w = layer.weight.value.astype(np.float32)
                ins = [x]
                shift = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(shift, JpegShift):
                    if strength is None:
                        raise SrlibError("ONNX export: a JpegShift layer in a network that is not jpeg_aware")
                    if strength_map is None:  # ones of x's size (a convolution of zeros plus a bias of 1) x strength
                        zeros = np.zeros((1, net.config.image_channels, 1, 1), np.float32)
                        ones = conv([x, const("ones_w", zeros), const("ones_b", np.ones(1, np.float32))],
                                    f"{prefix}ones", zeros)
                        strength_map = node("Mul", [ones, strength], f"{prefix}strength_map")
                    extra = np.zeros((w.shape[0], 1, *w.shape[2:]), np.float32)
                    extra[:, 0, w.shape[2] // 2, w.shape[3] // 2] = shift.v.value
                    w = np.concatenate([w, extra], axis=1)
                    ins = [node("Concat", [x, strength_map], f"{out}_with_strength", axis=1)]
                ins.append(const(f"{weights}{layer.weight.name}", w))
                if layer.bias is not None:
                    ins.append(const(f"{weights}{layer.bias.name}", layer.bias.value.astype(np.float32)))
                p = w.shape[-1] // 2
                x = conv(ins, out, w, pads=[p, p, p, p])
            elif isinstance(layer, JpegShift):  # folded into the convolution before it
                if i == 0 or not isinstance(layers[i - 1], Conv2d):
                    raise SrlibError("ONNX export: a JpegShift layer must follow a convolution")
            elif isinstance(layer, ReLU):
                x = node("Relu", [x], out)
            else:
                raise SrlibError(f"ONNX export does not know the layer {type(layer).__name__}")
        return x

    image = "image"
    x = node("Div", [image, const("c255", np.float32(255.0))], "x")
    strength = None
    if jpeg_aware:  # (N,) -> (N, 1, 1, 1), broadcast over the strength map's pixels
        strength = node("Reshape", ["jpeg_strength", const("s_shape", np.array([-1, 1, 1, 1], np.int64))], "s")
    # Everything up to the output stays at the input's resolution as sub-pixel phases (N, 48, h, w): the
    # networks' and the bicubic base's phases are added there, and one DepthToSpace (CRD, PyTorch's
    # PixelShuffle order) makes the image. OpenCV 4.x refuses an Add of two upscaled branches.
    if model.sees_colour:
        y = network("", model.nets[0], x, strength, "")
    else:  # B, G and R each through one network (shared: the same weights under one name) or its own
        parts = [f"x_c{c}" for c in range(3)]
        nodes.append(helper.make_node("Split", [x], parts, name="split", axis=1))
        shared = len(model.nets) == 1
        y = node("Concat", [network(f"c{c}_", model.nets[0 if shared else c], parts[c], strength,
                                    "" if shared else f"net{c}_") for c in range(3)], "y_concat", axis=1)
    y = node("Mul", [y, const("output_scale", np.float32(model.output_scale))], "y_scaled")
    if model.residual:
        # a grouped convolution, one group per colour channel: channel c's 16 phases are output
        # channels 16c..16c+15, as the networks' are
        kernels, pad = bicubic_kernels(model.grid)
        padded = node("Pad", [image, const("bic_pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))],
                      "bic_padded", mode="edge")
        kernels3 = np.concatenate([kernels] * 3)
        base = conv([padded, const("bic_w", kernels3)], "bicubic_phases", kernels3, group=3)
        y = node("Add", [y, base], "y_residual")
    y = node("DepthToSpace", [y], "y_image", blocksize=SCALE, mode="CRD")
    node("Identity", [y], "output")
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    if jpeg_aware:
        inputs.append(helper.make_tensor_value_info("jpeg_strength", TensorProto.FLOAT, ["N"]))
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H4", "W4"])]
    graph = helper.make_graph(nodes, "srlib", inputs, outputs, initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="srlib")
    onnx.checker.check_model(proto)
    return proto
