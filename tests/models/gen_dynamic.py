#!/usr/bin/env python3
"""Generates the dynamic-shape fixtures in tests/models/dynamic/ (issue 10): models whose
image height and width are symbolic, each run by ONNX Runtime at two image sizes, so a test
can compile one artifact and check it at both.

    .venv/bin/python tests/models/gen_dynamic.py

Rerunnable: fixed seeds, so every file is byte-identical on rerun. For each model NAME and
size k in {0, 1} it writes `NAME.s{k}.in0.npy` (standard-normal float32) and
`NAME.s{k}.ort{i}.npy` (ONNX Runtime CPU, graph optimisations off), plus README.md listing
the models, their input spellings and the two sizes.

What each model imitates (random weights, narrow channels, the graph structure and the op
spellings of the real exports):

- ppocr_det: the PP-OCRv3 text detector (DBNet) as Paddle2ONNX writes it at opset 11, input
  `x` [-1, 3, -1, -1] (dim_value -1, as Paddle writes unknown extents). A MobileNetV3
  backbone (stride-2 stages to /32, depthwise convs, SE blocks with Paddle's
  hardsigmoid(slope 0.2, offset 0.5) gate), the RSEFPN neck (1x1 laterals with a residual
  SE, top-down nearest Resize x2 and Add, 3x3 convs with a residual SE, Resize x8/x4/x2 to
  /4, Concat), the DB head (Conv3x3+BN+Relu, ConvTranspose k2 s2 + bias + BN + Relu,
  ConvTranspose k2 s2 + bias, Sigmoid). Weights and BatchNormalization parameters are
  Constant nodes; conv biases are an Add of a Reshape'd constant (elementwise_add axis=1);
  hard swish is Paddle2ONNX's opset-7 spelling Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6); Resize
  is (X, roi = 8 ones, scales [1, 1, s, s], "") with nearest/asymmetric/floor.
- ppocr_rec: the PP-OCR recogniser at opset 14, input `x`
  [DynamicDimension.0, 3, 48, DynamicDimension.1] (Paddle2ONNX 1.x names). A MobileNetV3
  rec backbone (strides (2, 1) so H 48 -> 3, MaxPool k2 s2 to H 1, W -> W/4, SE blocks,
  HardSwish op), an SVTR-lite neck as PP-OCRv3's EncoderWithSVTR (ConvBN-Swish 3x3 and 1x1,
  flatten(2) as Shape/Slice/Concat -> Reshape, Transpose, one pre-norm transformer block
  with LayerNorm spelt out as Paddle2ONNX writes it before opset 17, fused qkv attention
  through a 5-D Reshape/Transpose, Slice+Squeeze picks, MatMul/Softmax, Swish MLP;
  reshape back to [0, H, W, C] with H and W from Shape -> Cast(int32) -> Slice -> Squeeze
  -> Reshape [1] -> Cast(int64) -> Concat; concat shortcut, ConvBN-Swish), Im2Seq as
  Squeeze(axes [2]) + Transpose [0, 2, 1], and the CTC head MatMul + Add + Softmax(axis 2)
  over 97 classes.
- ppocr_cls: the text-direction classifier (ch_ppocr_mobile_v2.0_cls) at opset 11, input `x`
  ["N", 3, 48, "W"]: a MobileNetV3-small-like backbone (SE pool as ReduceMean axes [2, 3],
  hard swish as Mul(x, HardSigmoid(x, 1/6, 0.5))), GlobalAveragePool, Flatten, Gemm to 2
  classes, Softmax. Weights as initializers (newer Paddle2ONNX).
- se_dynamic_hw: two SE blocks back to back, the torchvision spelling (GlobalAveragePool,
  Conv1x1+Relu, Conv1x1, Sigmoid, Mul(x, g)) then the torch MobileNetV3 one (ReduceMean
  axes [2, 3], HardSigmoid 1/6, Mul(g, x)), input ["N", 24, "H", "W"], opset 13.
- se_dynamic_anon: the Paddle2ONNX SE spelling of ../se_paddle.onnx (Constant weights,
  Identity between steps, conv bias as Add of a Reshape, HardSigmoid 0.2/0.5), input
  ["?", 32, "?", "?"]: all three unknown extents share Paddle2ONNX's anonymous name "?"
  (ONNX reads equal names as equal extents; ONNX Runtime does not enforce it, and the
  sizes here have N, H and W all different).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_fixtures import B, se_torchvision  # noqa: E402

OUT = os.path.join(HERE, "dynamic")
F = TensorProto.FLOAT
I64, I32 = TensorProto.INT64, TensorProto.INT32
# He-init gain for the activation in front of a conv (E[act(x)^2] for x ~ N(0, 1) is 0.5 for
# Relu, 0.33 for hard swish, 0.36 for swish; None: a linear input)
GAIN = {"relu": 1.0, "hswish": 1.23, "swish": 1.19, None: 0.71}


class D(B):
    """The fixtures' builder with Paddle2ONNX habits: weights as Constant nodes (`consts`)
    or initializers, convs with every attribute written out, BatchNormalization nodes."""

    def __init__(self, name, seed, consts=True, hswish="op"):
        super().__init__(name, seed)
        self.consts, self.hswish = consts, hswish

    def tensor(self, arr):
        if self.consts:
            return self.const_node(arr)
        name = self.uid("p")
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def f32(self, v):
        return self.tensor(np.asarray(v, np.float32))

    def i64(self, vals, name=None):
        return self.tensor(np.asarray(vals, np.int64))

    def w(self, shape, scale=0.3, name=None):
        return self.f32(self.rng.standard_normal(shape) * scale)

    def scalar(self, v):
        return self.f32(v)

    def bias_add(self, y, c):
        """Paddle's elementwise_add(axis=1) of a [C] bias: Add(y, Reshape(b, [1, C, 1, 1]))."""
        b = self.op("Reshape", [self.w([c], 0.1), self.i64([1, c, 1, 1])])
        return self.op("Add", [y, b])

    def conv(self, x, cin, cout, k, s=1, groups=1, bias=False, gain=1.0):
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        fan_in = cin // groups * kh * kw
        w = self.w([cout, cin // groups, kh, kw], gain * np.sqrt(2.0 / fan_in))
        y = self.op("Conv", [x, w], dilations=[1, 1], group=groups, kernel_shape=[kh, kw],
                    pads=[kh // 2, kw // 2, kh // 2, kw // 2], strides=[sh, sw])
        return self.bias_add(y, cout) if bias else y

    def conv_t(self, x, cin, cout, gain=1.0):
        """Paddle Conv2DTranspose(k=2, s=2) with its bias as a separate Add."""
        w = self.w([cin, cout, 2, 2], gain * np.sqrt(1.0 / cin))
        y = self.op("ConvTranspose", [x, w], dilations=[1, 1], group=1, kernel_shape=[2, 2],
                    pads=[0, 0, 0, 0], strides=[2, 2])
        return self.bias_add(y, cout)

    def bn(self, x, c, gamma=1.0):
        r = self.rng
        return self.op("BatchNormalization", [
            x, self.f32(gamma * (1 + 0.1 * r.standard_normal(c))), self.f32(0.05 * r.standard_normal(c)),
            self.f32(0.05 * r.standard_normal(c)), self.f32(1 + 0.1 * r.random(c))], epsilon=1e-5, momentum=0.9)

    def act(self, x, kind):
        if kind == "relu":
            return self.op("Relu", [x])
        if kind == "swish":
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if kind == "hswish":
            if self.hswish == "op":
                return self.op("HardSwish", [x])
            if self.hswish == "hsig":
                return self.op("Mul", [x, self.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])
            # Paddle2ONNX's hard_swish below opset 14: x * clip(x + 3, 0, 6) / 6
            t = self.op("Clip", [self.op("Add", [x, self.f32(3.0)]), self.f32(0.0), self.f32(6.0)])
            return self.op("Div", [self.op("Mul", [x, t]), self.f32(6.0)])
        assert kind is None
        return x

    def conv_bn(self, x, cin, cout, k, s=1, groups=1, act=None, gamma=1.0, in_act="relu"):
        """Conv (no bias) + BatchNormalization + activation; the weights scaled for the
        activation in front (`in_act`) so that the signal keeps a unit scale through the
        random network (standing in for trained BatchNorm statistics)."""
        y = self.conv(x, cin, cout, k, s, groups, gain=GAIN[in_act])
        return self.act(self.bn(y, cout, gamma), act)

    def se(self, x, c, reduction=4, pool="gap"):
        """PaddleOCR's SEModule: pool, Conv1x1 + bias, Relu, Conv1x1 + bias,
        hardsigmoid(slope=0.2, offset=0.5), Mul(x, gate)."""
        if pool == "gap":
            p = self.op("GlobalAveragePool", [x])
        else:
            p = self.op("ReduceMean", [x], axes=[2, 3], keepdims=1)
        r = max(1, c // reduction)
        # (the pooled means are small: larger weights make the gate depend on the input)
        h = self.op("Relu", [self.conv(p, c, r, 1, bias=True, gain=2.0)])
        g = self.op("HardSigmoid", [self.conv(h, r, c, 1, bias=True, gain=2.0)], alpha=0.2, beta=0.5)
        return self.op("Mul", [x, g])

    def residual_unit(self, x, cin, k, exp, out, use_se, act, s, se_pool="gap"):
        """PaddleOCR's MobileNetV3 ResidualUnit: expand 1x1, depthwise kxk, SE, linear 1x1,
        shortcut when the stride is 1 and the channels match."""
        h = self.conv_bn(x, cin, exp, 1, act=act, in_act=None)
        h = self.conv_bn(h, exp, exp, k, s, groups=exp, act=act, in_act=act)
        if use_se:
            h = self.se(h, exp, pool=se_pool)
        # (the gate halves the signal on average)
        h = self.conv_bn(h, exp, out, 1, gamma=2.0 if use_se else 1.0, in_act=act)
        return self.op("Add", [x, h]) if (s in (1, (1, 1)) and cin == out) else h

    def resize(self, x, s):
        """Paddle2ONNX's nearest_interp_v2 with a scale attribute."""
        roi = self.f32(np.ones(8))
        return self.op("Resize", [x, roi, self.f32([1.0, 1.0, s, s]), ""], mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def linear(self, x, cin, cout, gain=1.0):
        """paddle.nn.Linear: MatMul with a [in, out] weight, then Add of the bias."""
        y = self.op("MatMul", [x, self.w([cin, cout], gain * np.sqrt(1.0 / cin))])
        return self.op("Add", [y, self.w([cout], 0.1)])

    def slice1(self, v, start, end, axis=0):
        return self.op("Slice", [v, self.i64([start]), self.i64([end]), self.i64([axis])])

    def layer_norm(self, x, c, axis):
        """Paddle2ONNX's layer_norm before opset 17: ReduceMean, Sub, Pow 2, ReduceMean, Add
        eps, Sqrt, Div, then scale and bias reshaped to Slice(Shape(x), axis:)."""
        mean = self.op("ReduceMean", [x], axes=[axis])
        num = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [num, self.f32([2.0])])], axes=[axis])
        den = self.op("Sqrt", [self.op("Add", [var, self.f32([1e-6])])])
        wshape = self.slice1(self.op("Shape", [x]), axis, axis + 1)
        scale = self.op("Reshape", [self.f32(1 + 0.1 * self.rng.standard_normal(c)), wshape])
        bias = self.op("Reshape", [self.f32(0.05 * self.rng.standard_normal(c)), wshape])
        return self.op("Add", [self.op("Mul", [self.op("Div", [num, den]), scale]), bias])

    def rename(self, old, new):
        for n in self.nodes:
            for lst in (n.input, n.output):
                for i, v in enumerate(lst):
                    if v == old:
                        lst[i] = new
        return new


def save(b, inputs, outputs, out_dims, opset):
    """Checks and writes `b`'s model; `inputs` as (name, dims) with the dims as written
    (ints, -1 or dim_param strings)."""
    ins = [helper.make_tensor_value_info(n, F, d) for n, d in inputs]
    outs = [helper.make_tensor_value_info(n, F, d) for n, d in zip(outputs, out_dims)]
    g = helper.make_graph(b.nodes, b.name, ins, outs, b.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="secc-fixtures")
    m.ir_version = 8
    onnx.checker.check_model(m)
    # full_check adds strict shape inference, which reads a dim_value of -1 as the extent -1
    # (and then fails on its own conv arithmetic): only for models spelt with dim_params
    if not any(isinstance(d, int) and d < 0 for _, dims in inputs for d in dims):
        onnx.checker.check_model(m, full_check=True)
    path = os.path.join(OUT, b.name + ".onnx")
    onnx.save(m, path)
    return path


def ppocr_det():
    b = D("ppocr_det", 101, hswish="clip")
    x = b.conv_bn("x", 3, 8, 3, 2, act="hswish", in_act=None)  # /2
    # (k, exp, out, se, act, stride); the stage outputs feed the neck at /4, /8, /16, /32
    cfg = [(3, 16, 8, False, "relu", 1), (3, 32, 12, False, "relu", 2), (3, 36, 12, False, "relu", 1),
           (5, 36, 16, True, "relu", 2), (5, 48, 16, True, "relu", 1),
           (3, 64, 24, False, "hswish", 2), (3, 72, 24, True, "hswish", 1),
           (5, 96, 32, True, "hswish", 2), (5, 96, 32, True, "hswish", 1)]
    cin, feats = 8, {}
    for i, (k, exp, out, use_se, act, s) in enumerate(cfg):
        x = b.residual_unit(x, cin, k, exp, out, use_se, act, s)
        cin = out
        if i in (2, 4, 6):
            feats[len(feats)] = (x, out)
    c5 = b.conv_bn(x, 32, 64, 1, act="hswish", in_act=None)
    feats[3] = (c5, 64)

    # RSEFPN (PP-OCRv3): RSELayer = conv (no bias) then x + SE(x)
    oc = 32
    def rse(v, ci, co, k):
        t = b.conv(v, ci, co, k, gain=GAIN[None])
        return b.op("Add", [t, b.se(t, co)])
    ins = [rse(v, c, oc, 1) for v, c in (feats[i] for i in range(4))]
    out4 = b.op("Add", [ins[2], b.resize(ins[3], 2.0)])
    out3 = b.op("Add", [ins[1], b.resize(out4, 2.0)])
    out2 = b.op("Add", [ins[0], b.resize(out3, 2.0)])
    p5 = b.resize(rse(ins[3], oc, oc // 4, 3), 8.0)
    p4 = b.resize(rse(out4, oc, oc // 4, 3), 4.0)
    p3 = b.resize(rse(out3, oc, oc // 4, 3), 2.0)
    p2 = rse(out2, oc, oc // 4, 3)
    fuse = b.op("Concat", [p5, p4, p3, p2], axis=1)

    # DB head (binarize branch, inference): probability map at full resolution
    h = b.conv_bn(fuse, oc, oc // 4, 3, act="relu", in_act=None)
    h = b.op("Relu", [b.bn(b.conv_t(h, oc // 4, oc // 4), oc // 4)])
    y = b.op("Sigmoid", [b.conv_t(h, oc // 4, 1, gain=0.5)])
    y = b.rename(y, "sigmoid_0.tmp_0")
    dims = [-1, 3, -1, -1]
    return save(b, [("x", dims)], [y], [[-1, 1, -1, -1]], 11), dims, [[1, 3, 64, 96], [2, 3, 96, 128]]


def ppocr_rec():
    b = D("ppocr_rec", 102, hswish="op")
    x = b.conv_bn("x", 3, 8, 3, 2, act="hswish", in_act=None)  # [N, 8, 24, W/2]
    cfg = [(3, 16, 8, False, "relu", 1), (3, 32, 16, False, "relu", (2, 1)), (3, 48, 16, False, "relu", 1),
           (5, 48, 24, True, "hswish", (2, 1)), (5, 64, 24, True, "hswish", 1),
           (3, 72, 32, True, "hswish", (2, 1)), (3, 96, 32, True, "hswish", 1)]
    cin = 8
    for k, exp, out, use_se, act, s in cfg:
        x = b.residual_unit(x, cin, k, exp, out, use_se, act, s)
        cin = out
    x = b.conv_bn(x, 32, 64, 1, act="hswish", in_act=None)  # [N, 64, 3, W/2]
    x = b.op("MaxPool", [x], kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2], ceil_mode=0)  # [N, 64, 1, W/4]

    # SVTR-lite neck (EncoderWithSVTR, one block)
    c, d, heads = 64, 32, 2
    hd = d // heads
    shortcut = x
    z = b.conv_bn(x, c, c // 8, 3, act="swish", in_act="hswish")
    z = b.conv_bn(z, c // 8, d, 1, act="swish", in_act="swish")  # [N, d, 1, L]
    # flatten(2): Reshape to Concat(Slice(Shape, 0:2), [-1])
    shp = b.op("Concat", [b.slice1(b.op("Shape", [z]), 0, 2), b.i64([-1])], axis=0)
    z = b.op("Transpose", [b.op("Reshape", [z, shp])], perm=[0, 2, 1])  # [N, L, d]
    # pre-norm attention
    h = b.layer_norm(z, d, 2)
    qkv = b.op("Reshape", [b.linear(h, d, 3 * d), b.i64([0, -1, 3, heads, hd])])
    qkv = b.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # [3, N, heads, L, hd]
    q, k, v = (b.op("Squeeze", [b.slice1(qkv, i, i + 1), b.i64([0])]) for i in range(3))
    q = b.op("Mul", [q, b.f32(hd ** -0.5)])
    att = b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])])
    att = b.op("Softmax", [att], axis=-1)
    o = b.op("Transpose", [b.op("MatMul", [att, v])], perm=[0, 2, 1, 3])
    o = b.linear(b.op("Reshape", [o, b.i64([0, -1, d])]), d, d)
    z = b.op("Add", [z, o])
    # pre-norm MLP
    h = b.linear(b.act(b.linear(b.layer_norm(z, d, 2), d, 2 * d), "swish"), 2 * d, d)
    z = b.layer_norm(b.op("Add", [z, h]), d, 2)
    # reshape([0, H, W, d]) with H, W from the shape of the neck's input: Paddle's int32
    # shape, a slice with decrease_axis (Slice + Squeeze), then Paddle2ONNX's ConcatIndices
    # (Reshape to [1], Cast to int64, Concat)
    s32 = b.op("Cast", [b.op("Shape", [shortcut])], to=I32)
    def dim(i):
        e = b.op("Squeeze", [b.slice1(s32, i, i + 1), b.i64([0])])
        return b.op("Cast", [b.op("Reshape", [e, b.i64([1])])], to=I64)
    shp = b.op("Concat", [b.i64([0]), dim(2), dim(3), b.i64([d])], axis=0)
    z = b.op("Transpose", [b.op("Reshape", [z, shp])], perm=[0, 3, 1, 2])  # [N, d, 1, L]
    z = b.conv_bn(z, d, c, 1, act="swish", in_act=None)
    z = b.op("Concat", [shortcut, z], axis=1)
    z = b.conv_bn(z, 2 * c, c // 8, 3, act="swish", in_act="swish")
    z = b.conv_bn(z, c // 8, c, 1, act="swish", in_act="swish")  # [N, 64, 1, L]

    # Im2Seq and the CTC head
    seq = b.op("Transpose", [b.op("Squeeze", [z, b.i64([2])])], perm=[0, 2, 1])  # [N, L, 64]
    y = b.op("Softmax", [b.linear(seq, c, 97, gain=8.0)], axis=2)
    y = b.rename(y, "softmax_1.tmp_0")
    dims = ["DynamicDimension.0", 3, 48, "DynamicDimension.1"]
    return (save(b, [("x", dims)], [y], [["DynamicDimension.0", "?", 97]], 14), dims,
            [[1, 3, 48, 100], [3, 3, 48, 164]])


def ppocr_cls():
    b = D("ppocr_cls", 103, consts=False, hswish="hsig")
    x = b.conv_bn("x", 3, 8, 3, 2, act="hswish", in_act=None)  # [N, 8, 24, W/2]
    cfg = [(3, 8, 8, True, "relu", 2), (3, 24, 12, False, "relu", 2), (3, 32, 12, False, "relu", 1),
           (5, 48, 16, True, "hswish", 2), (5, 64, 16, True, "hswish", 1), (5, 64, 24, True, "hswish", 2)]
    cin = 8
    for k, exp, out, use_se, act, s in cfg:
        x = b.residual_unit(x, cin, k, exp, out, use_se, act, s, se_pool="rm")
        cin = out
    x = b.conv_bn(x, 24, 48, 1, act="hswish", in_act=None)  # [N, 48, 2, W/32]
    p = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    y = b.op("Gemm", [p, b.w([48, 2], 6.0 * np.sqrt(1.0 / 48)), b.w([2], 0.1)], alpha=1.0, beta=1.0)
    y = b.rename(b.op("Softmax", [y], axis=1), "softmax_0.tmp_0")
    dims = ["N", 3, 48, "W"]
    return save(b, [("x", dims)], [y], [["N", 2]], 11), dims, [[1, 3, 48, 192], [2, 3, 48, 96]]


def se_dynamic_hw():
    b = D("se_dynamic_hw", 104, consts=False)
    c = 24
    t = se_torchvision(b, "x", c, 6)
    y = se_torchvision(b, t, c, 8, gate=(1.0 / 6.0, 0.5), pool="rm_attr", order="gx")
    y = b.rename(y, "y")
    dims = ["N", c, "H", "W"]
    return save(b, [("x", dims)], [y], [dims], 13), dims, [[1, c, 7, 9], [2, c, 13, 5]]


def se_dynamic_anon():
    # as se_paddle in gen_fixtures.py: Constant weights, Identity between every step
    b = D("se_dynamic_anon", 105)
    c, r = 32, 8
    def ident(v):
        return b.op("Identity", [v])
    def conv_add(v, o, i):
        w = b.const_node((b.rng.standard_normal([o, i, 1, 1]) * 0.3).astype(np.float32))
        bias = b.const_node((b.rng.standard_normal([o]) * 0.3).astype(np.float32))
        shp = b.const_node(np.array([1, o, 1, 1], dtype=np.int64))
        y = b.op("Conv", [v, w], kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
        return b.op("Add", [ident(y), b.op("Reshape", [bias, shp])])
    x = ident("x")
    p = ident(b.op("GlobalAveragePool", [x]))
    h = ident(b.op("Relu", [ident(conv_add(p, r, c))]))
    g = ident(b.op("HardSigmoid", [ident(conv_add(h, c, r))], alpha=0.2, beta=0.5))
    y = b.rename(ident(b.op("Mul", [x, g])), "y")
    dims = ["?", c, "?", "?"]
    return save(b, [("x", dims)], [y], [dims], 11), dims, [[1, c, 7, 9], [2, c, 13, 5]]


MODELS = [
    (ppocr_det, "PP-OCRv3 DBNet text detector (MobileNetV3 + SE, RSEFPN with Resize, DB head with ConvTranspose) as Paddle2ONNX writes it, opset 11, Constant-node weights"),
    (ppocr_rec, "PP-OCR recogniser (MobileNetV3 rec backbone with SE, SVTR-lite neck with attention and Shape-built Reshapes, Im2Seq, CTC head with 97 classes), opset 14, Constant-node weights"),
    (ppocr_cls, "PP-OCR text-direction classifier (MobileNetV3-small-like with SE, GlobalAveragePool, Flatten, Gemm, Softmax), opset 11, initializers"),
    (se_dynamic_hw, "torchvision SE then torch-MobileNetV3 SE (ReduceMean, HardSigmoid 1/6), opset 13"),
    (se_dynamic_anon, "Paddle2ONNX SE (as ../se_paddle.onnx) with every unknown extent named \"?\", opset 11"),
]


def spell(dims):
    return "[" + ", ".join(f'"{d}"' if isinstance(d, str) else str(d) for d in dims) + "]"


def run_ort(path, name, sizes, n_expected):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    in_name = s.get_inputs()[0].name
    shapes = []
    for k, shape in enumerate(sizes):
        x = np.random.default_rng(1000 + 10 * k).standard_normal(shape).astype(np.float32)
        outs = s.run(None, {in_name: x})
        assert len(outs) == n_expected
        base = os.path.join(OUT, f"{name}.s{k}")
        np.save(base + ".in0.npy", x)
        for i, o in enumerate(outs):
            assert np.isfinite(o).all(), f"{name} s{k} out{i} not finite"
            assert o.std() > 1e-3, f"{name} s{k} out{i} is (nearly) constant: std {o.std()}"
            np.save(f"{base}.ort{i}.npy", o)
        shapes.append([list(o.shape) for o in outs])
        stats = ", ".join(f"out{i} {list(o.shape)} std {o.std():.4f}" for i, o in enumerate(outs))
        print(f"  s{k}: in {shape} -> {stats}")
    return shapes


def supported_ops():
    """The importer's op registry (compiler/onnx/src/import/registry.rs), to keep the
    fixtures within what secc imports."""
    import re
    reg = os.path.join(HERE, "..", "..", "compiler", "onnx", "src", "import", "registry.rs")
    return set(re.findall(r'^\s*\("(\w+)", \|im, cx\|', open(reg).read(), re.M))


def main():
    os.makedirs(OUT, exist_ok=True)
    known = supported_ops()
    rows = []
    for make, what in MODELS:
        path, dims, sizes = make()
        name = os.path.basename(path)[:-5]
        m = onnx.load(path)
        ops = sorted({n.op_type for n in m.graph.node})
        assert set(ops) <= known, f"{name}: ops the importer lacks: {sorted(set(ops) - known)}"
        print(f"{name}: {os.path.getsize(path) / 1024:.1f} KB, opset {m.opset_import[0].version}, "
              f"{len(m.graph.node)} nodes, input {spell(dims)}; ops {' '.join(ops)}")
        shapes = run_ort(path, name, sizes, len(m.graph.output))
        rows.append((name, dims, sizes, shapes, what, m.graph.output[0].name))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# Dynamic-shape fixtures (issue 10)\n\n"
                "Written by `../gen_dynamic.py` (`.venv/bin/python tests/models/gen_dynamic.py`; fixed\n"
                "seeds, byte-identical on rerun). Each model has a symbolic image height and width and\n"
                "is run by ONNX Runtime (CPU, graph optimisations off) at two sizes: `NAME.s{k}.in0.npy`\n"
                "is the standard-normal input at size k, `NAME.s{k}.ort{i}.npy` output i.\n\n"
                "| model | input `x` as written | size s0 | size s1 | output | imitates |\n"
                "|---|---|---|---|---|---|\n")
        for name, dims, sizes, shapes, what, out in rows:
            outs = " / ".join(str(s[0]) for s in shapes)
            f.write(f"| `{name}` | `{spell(dims)}` | {sizes[0]} | {sizes[1]} | `{out}` {outs} | {what} |\n")
        f.write("\n`-1` is a `dim_value` of -1 (as Paddle writes unknown extents); quoted names are\n"
                "`dim_param`s. In `se_dynamic_anon` all three unknown extents are the `dim_param` `\"?\"`,\n"
                "which ONNX reads as one extent: the sizes there give N, H and W different values, as\n"
                "Paddle2ONNX's users do (ONNX Runtime does not check that equal names bind equal values).\n"
                "See the module docstring of `../gen_dynamic.py` for the op spellings.\n")


if __name__ == "__main__":
    main()
