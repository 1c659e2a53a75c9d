"""srlib models as ONNX graphs, for onnxruntime, OpenCV's ``dnn`` and anything else that runs ONNX.

The graph takes what ``SRModel.predict`` takes and gives what it gives, in NCHW:
- input ``image``: float32 (N, 3, H, W), B, G, R on 0..255 (a uint8 image cast to float);
- input ``jpeg_strength`` (JPEG-aware networks only): float32 (N,), ``photo.jpeg_strength`` of each
  image's JPEG quality (0: never compressed);
- output ``output``: float32 (N, 3, 4H, 4W) on 0..255, unrounded and unclipped, as ``predict``: round
  and clip it to save it.
Inside: the input over 255, the network's layers as ONNX operators (Conv, Relu, Mul and Add for
``JpegShift``, DepthToSpace in PyTorch's channel order for PixelShuffle), the output scale, and, for a
residual model, the bicubic base of the model's sampling grid. That base is written as a convolution
(each of the 4 x 4 output phases a 4x4 kernel of cubic weights, a = -0.75 as OpenCV's) over the input
padded by repeating its edge pixels, so it is exactly OpenCV's ``resize`` (centre grid) or
``warpAffine`` (study grid) bicubic, borders included, with nothing but Pad, Conv and DepthToSpace.

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

    nodes, inits = [], []
    jpeg_aware = model.nets[0].config.jpeg_aware

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def network(prefix: str, net: SRNet, x: str, strength: str | None) -> str:
        for i, layer in enumerate(net.layers):
            out = f"{prefix}l{i}"
            if isinstance(layer, Conv2d):
                w = layer.weight.value.astype(np.float32)
                ins = [x, const(f"{prefix}{layer.weight.name}", w)]
                if layer.bias is not None:
                    ins.append(const(f"{prefix}{layer.bias.name}", layer.bias.value.astype(np.float32)))
                p = w.shape[-1] // 2
                x = node("Conv", ins, out, pads=[p, p, p, p])
            elif isinstance(layer, JpegShift):
                if strength is None:
                    raise SrlibError("ONNX export: a JpegShift layer in a network that is not jpeg_aware")
                v = const(f"{prefix}{layer.v.name}", layer.v.value.astype(np.float32).reshape(1, -1, 1, 1))
                x = node("Add", [x, node("Mul", [strength, v], f"{out}_shift")], out)
            elif isinstance(layer, ReLU):
                x = node("Relu", [x], out)
            elif isinstance(layer, PixelShuffle):
                x = node("DepthToSpace", [x], out, blocksize=layer.r, mode="CRD")
            else:
                raise SrlibError(f"ONNX export does not know the layer {type(layer).__name__}")
        return x

    image = "image"
    x = node("Div", [image, const("c255", np.float32(255.0))], "x")
    strength = None
    if jpeg_aware:  # (N,) -> (N, 1, 1, 1), broadcast over channels and pixels
        strength = node("Reshape", ["jpeg_strength", const("s_shape", np.array([-1, 1, 1, 1], np.int64))], "s")
    if model.sees_colour:
        y = network("", model.nets[0], x, strength)
    elif len(model.nets) == 1:  # one network for each channel of each image: (N, 3) images of one channel
        xs = node("Reshape", [x, const("one_channel", np.array([-1, 1, 0, 0], np.int64))], "x_channels")
        s3 = None
        if strength is not None:
            s3 = node("Reshape", [node("Expand", [strength, const("by3", np.array([1, 3, 1, 1], np.int64))], "s_by3"),
                                  const("s3_shape", np.array([-1, 1, 1, 1], np.int64))], "s3")
        ys = network("", model.nets[0], xs, s3)
        y = node("Reshape", [ys, const("three_channels", np.array([-1, 3, 0, 0], np.int64))], "y_channels")
    else:  # three networks, B, G, R
        parts = [f"x_c{c}" for c in range(3)]
        nodes.append(helper.make_node("Split", [x], parts, name="split", axis=1))
        y = node("Concat", [network(f"net{c}_", net, parts[c], strength) for c, net in enumerate(model.nets)],
                 "y_concat", axis=1)
    y = node("Mul", [y, const("output_scale", np.float32(model.output_scale))], "y_scaled")
    if model.residual:
        kernels, pad = bicubic_kernels(model.grid)
        per_channel = node("Reshape", [image, const("bic_in", np.array([-1, 1, 0, 0], np.int64))], "bic_channels")
        padded = node("Pad", [per_channel, const("bic_pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))],
                      "bic_padded", mode="edge")
        phases = node("Conv", [padded, const("bic_w", kernels)], "bic_phases")  # 5x5 over a 2-pixel pad: H x W
        base = node("DepthToSpace", [phases], "bic_hr", blocksize=SCALE, mode="CRD")
        base = node("Reshape", [base, const("bic_out", np.array([-1, 3, 0, 0], np.int64))], "bicubic")
        y = node("Add", [y, base], "y_residual")
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
