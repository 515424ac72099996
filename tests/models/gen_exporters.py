#!/usr/bin/env python3
"""Whole small networks in the exact node patterns of two exporters other than PyTorch, with
fixed-seed random weights, committed under tests/models/exporters/ with an input batch and
ONNX Runtime's outputs (`<name>.in0.npy`, `<name>.ort0.npy`, `<name>.se_blocks`).

- tf2onnx_mobilenetv3_small: what tf2onnx 1.16 (opset 13) writes for a Keras
  MobileNetV3Small-style model: NHWC input with a `unk__NNN` batch dimension and one
  Transpose to NCHW, BatchNorm already folded into Conv biases, ZeroPadding2D before the
  strided depthwise convs (a Pad node + VALID conv), hard-swish spelled
  x * (Clip(x + 3, 0, 6) * 0.16666667), SE blocks as ReduceMean(axes 2,3 keepdims) -> Conv1x1
  -> Relu -> Conv1x1 -> Add 3 -> Clip 0..6 -> Mul 1/6 -> Mul, and a head that transposes back
  to NHWC before Reshape(-1, classes) and Softmax.
- paddle2onnx_ppocr_det: what Paddle2ONNX 1.0 (opset 11) writes for a PP-OCRv3-det-style
  model (PP-LCNet backbone, DB-FPN neck, DB head): weights as Constant nodes, a
  `p2o.DynamicDimension.0` batch, Conv + BatchNormalization pairs, hard-swish for opset 11
  as x * Clip(x + 3, 0, 6) / 6 with Constant clip bounds, SE as GlobalAveragePool -> Conv1x1
  -> Relu -> Conv1x1 -> HardSigmoid(1/6, 0.5) -> Mul, Identity nodes, nearest Resize x2/x4/x8
  (asymmetric, floor, empty roi, Constant scales), and ConvTranspose upsampling in the head.

    .venv/bin/python tests/models/gen_exporters.py
"""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exporters")


class Net:
    def __init__(self, name, seed, consts_as_nodes=False):
        self.name, self.rng, self.cnodes = name, np.random.default_rng(seed), consts_as_nodes
        self.nodes, self.inits, self.n, self.se_count = [], [], 0, 0

    def uid(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, arr, p, dtype=np.float32):
        arr = np.asarray(arr, dtype=dtype)
        name = self.uid(p)
        if self.cnodes:
            self.nodes.append(helper.make_node("Constant", [], [name], name=self.uid("Constant"),
                                               value=numpy_helper.from_array(arr, name + "_v")))
        else:
            self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, t, ins, **a):
        out = self.uid(t.lower())
        self.nodes.append(helper.make_node(t, ins, [out], name=self.uid(t), **a))
        return out

    def w(self, shape, fan_in, gain=1.0):
        return self.const(self.rng.standard_normal(shape) * gain * np.sqrt(2.0 / fan_in), "w")

    def conv(self, x, cin, cout, k, s=1, groups=1, bias=True, pads=None, gain=1.0):
        ins = [x, self.w([cout, cin // groups, k, k], cin // groups * k * k, gain)]
        if bias:
            ins.append(self.const(self.rng.standard_normal(cout) * 0.05, "b"))
        p = [k // 2] * 4 if pads is None else pads
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=p, group=groups, dilations=[1, 1])

    def bn(self, x, c):
        r = self.rng
        return self.op("BatchNormalization", [
            x, self.const(1 + 0.1 * r.standard_normal(c), "bn_scale"), self.const(0.05 * r.standard_normal(c), "bn_offset"),
            self.const(0.05 * r.standard_normal(c), "bn_mean"), self.const(1 + 0.1 * r.random(c), "bn_variance")],
            epsilon=1e-5, momentum=0.9)

    def save(self, inputs, outputs, opset):
        g = helper.make_graph(self.nodes, self.name,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in outputs], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=self.producer[0], producer_version=self.producer[1])
        m.ir_version = 7
        onnx.checker.check_model(m)
        path = os.path.join(OUT, self.name + ".onnx")
        onnx.save(m, path)
        return path


def tf2onnx_mobilenetv3_small():
    n = Net("tf2onnx_mobilenetv3_small", 13)
    n.producer = ("tf2onnx", "1.16.1 15c810")
    three, six, zero, sixth = n.const(3.0, "const_three"), n.const(6.0, "const_six"), n.const(0.0, "const_zero"), n.const(1.0 / 6.0, "const_sixth")

    def hard_sigmoid(x):
        return n.op("Mul", [n.op("Clip", [n.op("Add", [x, three]), zero, six]), sixth])

    def hard_swish(x):
        return n.op("Mul", [x, hard_sigmoid(x)])

    def act(x, a):
        return n.op("Relu", [x]) if a == "relu" else hard_swish(x)

    def se(x, c, sq):
        n.se_count += 1
        p = n.op("ReduceMean", [x], axes=[2, 3], keepdims=1)
        h = n.op("Relu", [n.conv(p, c, sq, 1)])
        return n.op("Mul", [x, hard_sigmoid(n.conv(h, sq, c, 1))])

    x = n.op("Transpose", ["input_1"], perm=[0, 3, 1, 2])
    x = hard_swish(n.conv(x, 3, 16, 3, 2, pads=[0, 0, 1, 1]))  # Keras 'same' with stride 2
    cfg = [(16, 3, 16, 16, True, "relu", 2), (16, 3, 72, 24, False, "relu", 2), (24, 3, 88, 24, False, "relu", 1),
           (24, 5, 96, 40, True, "hswish", 2), (40, 5, 240, 40, True, "hswish", 1)]
    for cin, k, exp, out, use_se, a, s in cfg:
        h = x
        if exp != cin:
            h = act(n.conv(h, cin, exp, 1), a)
        if s == 2:  # ZeroPadding2D(correct_pad) then a VALID depthwise conv
            h = n.op("Pad", [h, n.const([0, 0, k // 2 - 1, k // 2 - 1, 0, 0, k // 2, k // 2], "pads", np.int64)], mode="constant")
            h = act(n.conv(h, exp, exp, k, 2, groups=exp, pads=[0, 0, 0, 0]), a)
        else:
            h = act(n.conv(h, exp, exp, k, 1, groups=exp), a)
        if use_se:
            h = se(h, exp, max(8, (exp // 4 + 4) // 8 * 8))
        h = n.conv(h, exp, out, 1)
        x = n.op("Add", [x, h]) if (s == 1 and cin == out) else h
    x = hard_swish(n.conv(x, 40, 240, 1))
    x = n.op("ReduceMean", [x], axes=[2, 3], keepdims=1)
    x = hard_swish(n.conv(x, 240, 256, 1))
    x = n.conv(x, 256, 10, 1, gain=8.0)
    x = n.op("Transpose", [x], perm=[0, 2, 3, 1])
    x = n.op("Reshape", [x, n.const([-1, 10], "const_shape", np.int64)])
    y = n.op("Softmax", [x], axis=-1)
    path = n.save([("input_1", ["unk__612", 96, 96, 3])], [(y, ["unk__613", 10])], 13)
    return n, path, "input_1", [2, 96, 96, 3]


def paddle2onnx_ppocr_det():
    n = Net("paddle2onnx_ppocr_det", 11, consts_as_nodes=True)
    n.producer = ("PaddlePaddle", "1.0.6")

    def hard_swish(x):
        c = n.op("Clip", [n.op("Add", [x, n.const(3.0, "hs_offset")]), n.const(0.0, "hs_min"), n.const(6.0, "hs_max")])
        return n.op("Div", [n.op("Mul", [x, c]), n.const(6.0, "hs_scale")])

    def cbn(x, cin, cout, k, s=1, groups=1, a="hardswish"):
        y = n.bn(n.conv(x, cin, cout, k, s, groups, bias=False), cout)
        return hard_swish(y) if a == "hardswish" else (n.op("Relu", [y]) if a == "relu" else y)

    def se(x, c):
        n.se_count += 1
        p = n.op("GlobalAveragePool", [x])
        h = n.op("Relu", [n.conv(p, c, c // 4, 1)])
        g = n.op("HardSigmoid", [n.conv(h, c // 4, c, 1)], alpha=0.1666666716337204, beta=0.5)
        return n.op("Mul", [n.op("Identity", [x]), g])

    def up(x, f):
        return n.op("Resize", [x, n.const(np.zeros([0]), "roi"), n.const([1, 1, f, f], "scales")],
                    coordinate_transformation_mode="asymmetric", mode="nearest", nearest_mode="floor",
                    cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0)

    # PP-LCNet x0.5-style backbone: depthwise-separable blocks, SE in the last two
    x = cbn("x", 3, 8, 3, 2)
    feats = []
    cfg = [(8, 16, 3, 1, False), (16, 32, 3, 2, False), (32, 32, 3, 1, False), (32, 64, 3, 2, False),
           (64, 64, 5, 1, False), (64, 128, 5, 2, True), (128, 128, 5, 1, True)]
    for i, (cin, cout, k, s, use_se) in enumerate(cfg):
        x = cbn(x, cin, cin, k, s, groups=cin)
        if use_se:
            x = se(x, cin)
        x = n.op("Identity", [cbn(x, cin, cout, 1)])
        if i in (2, 4, 6):
            feats.append((x, cout))
    # DB-FPN neck
    c = 24
    lat = [n.conv(f, ch, c, 1, bias=False) for f, ch in feats]  # strides 4, 8, 16... -> 1/4, 1/8, 1/16
    p16 = lat[2]
    p8 = n.op("Add", [lat[1], up(p16, 2)])
    p4 = n.op("Add", [lat[0], up(p8, 2)])
    outs = [n.conv(p, c, c // 4, 3, bias=False) for p in (p4, p8, p16)]
    fuse = n.op("Concat", [outs[0], up(outs[1], 2), up(outs[2], 4)], axis=1)
    # DB head: conv-bn-relu, two 2x transposed convs, sigmoid
    h = cbn(fuse, 3 * (c // 4), c // 4, 3, a="relu")
    h = n.op("ConvTranspose", [h, n.w([c // 4, c // 4, 2, 2], c), n.const(np.zeros(c // 4), "b")], strides=[2, 2], kernel_shape=[2, 2])
    h = n.op("Relu", [n.bn(h, c // 4)])
    h = n.op("ConvTranspose", [h, n.w([c // 4, 1, 2, 2], c // 4, gain=6.0), n.const(np.zeros(1), "b")], strides=[2, 2], kernel_shape=[2, 2])
    y = n.op("Sigmoid", [h])
    path = n.save([("x", ["p2o.DynamicDimension.0", 3, 64, 96])], [(y, ["p2o.DynamicDimension.1", 1, 64, 96])], 11)
    return n, path, "x", [2, 3, 64, 96]


def main():
    import onnxruntime as ort
    os.makedirs(OUT, exist_ok=True)
    for make in (tf2onnx_mobilenetv3_small, paddle2onnx_ppocr_det):
        net, path, xname, shape = make()
        x = np.random.default_rng(96).standard_normal(shape).astype(np.float32)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        y = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {xname: x})[0]
        np.save(path[:-5] + ".in0.npy", x)
        np.save(path[:-5] + ".ort0.npy", y)
        with open(path[:-5] + ".se_blocks", "w") as f:
            f.write(str(net.se_count))
        print(f"{net.name}: {net.se_count} SE blocks, output {list(y.shape)} std {y.std():.4f}, {os.path.getsize(path) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
