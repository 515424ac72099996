#!/usr/bin/env python3
"""Generates the SE-block ONNX fixtures in this folder, as real exporters spell them.

Rerunnable: `.venv/bin/python tests/models/gen_fixtures.py` rewrites every `*.onnx` here
(fixed seeds, so the files are byte-identical on rerun) plus, for each, its inputs and
the ONNX Runtime outputs at batch 2 (`<name>.in<i>.npy`, `<name>.ort<i>.npy`), used by the tests to
check the importer and the reference interpreter against ONNX Runtime.

Which exporter each one imitates is written next to it.
"""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
F = TensorProto.FLOAT


class B:
    """A tiny graph builder: unique names, initializers from numpy."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def uid(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def w(self, shape, scale=0.3, name=None):
        name = name or self.uid("w")
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def i64(self, vals, name=None):
        name = name or self.uid("shape")
        self.inits.append(numpy_helper.from_array(np.array(vals, dtype=np.int64), name))
        return name

    def scalar(self, v):
        name = self.uid("k")
        self.inits.append(numpy_helper.from_array(np.array(v, dtype=np.float32), name))
        return name

    def scalar_vec(self, arr):
        name = self.uid("v")
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.uid(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.uid(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def const_node(self, arr):
        """A weight as a Constant node (Paddle2ONNX style)."""
        out = self.uid("const")
        self.nodes.append(helper.make_node("Constant", [], [out], name=self.uid("Constant"),
                                           value=numpy_helper.from_array(arr, out + "_v")))
        return out

    def save(self, inputs, outputs, opset=17, out_dims=None, out_types=None):
        ins = [helper.make_tensor_value_info(n, F, d) for n, d in inputs]
        out_dims = out_dims or [inputs[0][1]] * len(outputs)
        out_types = out_types or [F] * len(outputs)
        outs = [helper.make_tensor_value_info(n, t, d) for n, d, t in zip(outputs, out_dims, out_types)]
        g = helper.make_graph(self.nodes, self.name, ins, outs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="secc-fixtures")
        m.ir_version = 8
        onnx.checker.check_model(m)
        path = os.path.join(HERE, self.name + ".onnx")
        onnx.save(m, path)
        return path, inputs


def se_torchvision(b, x, c, r, gate="Sigmoid", pool="gap", inner="Relu", order="xg"):
    """torchvision/timm SqueezeExcitation: GAP -> Conv1x1(bias) -> act -> Conv1x1(bias) -> gate -> Mul."""
    if pool == "gap":
        p = b.op("GlobalAveragePool", [x])
    elif pool == "rm_attr":
        p = b.op("ReduceMean", [x], axes=[2, 3], keepdims=1)
    elif pool == "rm_neg_attr":
        p = b.op("ReduceMean", [x], axes=[-2, -1], keepdims=1)
    elif pool == "rm_input":
        p = b.op("ReduceMean", [x, b.i64([-1, -2])], keepdims=1)
    h = b.op("Conv", [p, b.w([r, c, 1, 1]), b.w([r])], kernel_shape=[1, 1])
    if inner == "Relu":
        h = b.op("Relu", [h])
    elif inner == "SiLU":
        h = b.op("Mul", [h, b.op("Sigmoid", [h])])
    g = b.op("Conv", [h, b.w([c, r, 1, 1]), b.w([c])], kernel_shape=[1, 1])
    if gate == "Sigmoid":
        g = b.op("Sigmoid", [g])
    elif isinstance(gate, tuple):
        g = b.op("HardSigmoid", [g], alpha=gate[0], beta=gate[1])
    elif gate == "clip":
        t = b.op("Add", [g, b.scalar(3.0)])
        t = b.op("Clip", [t, b.scalar(0.0), b.scalar(6.0)])
        g = b.op("Div", [t, b.scalar(6.0)])
    return b.op("Mul", [x, g] if order == "xg" else [g, x])


def scales_init(b, v):
    n = b.uid("scales")
    b.inits.append(numpy_helper.from_array(np.array(v, np.float32), n))
    return n


def ort_io(path, inputs, batch=2, seed=7):
    import onnxruntime as ort
    rng = np.random.default_rng(seed)
    feeds = {}
    for n, d in inputs:
        shape = [batch if not isinstance(v, int) else v for v in d]
        feeds[n] = rng.standard_normal(shape).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    outs = s.run(None, feeds)
    base = path[:-5]
    for i, (n, _) in enumerate(inputs):
        np.save(f"{base}.in{i}.npy", feeds[n])
    for i, o in enumerate(outs):
        np.save(f"{base}.ort{i}.npy", o)


def main():
    made = []

    # 1. Keras/tf2onnx-like with Gemm: GAP -> Flatten -> Gemm(transB=0, kernel [C,R]) -> Relu
    #    -> Gemm -> Sigmoid -> Reshape(-1,C,1,1) -> Mul.   (tf2onnx 1.16 on a Keras Dense SE)
    b = B("se_keras_gemm", 1); c, r = 24, 6
    x = "x"; p = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    h = b.op("Relu", [b.op("Gemm", [p, b.w([c, r]), b.w([r])])])
    g = b.op("Sigmoid", [b.op("Gemm", [h, b.w([r, c]), b.w([c])])])
    g = b.op("Reshape", [g, b.i64([-1, c, 1, 1])])
    y = b.op("Mul", [x, g])
    made.append(b.save([("x", ["N", c, 9, 7])], [y]))

    # 2. torchvision/timm (torch.onnx.export opset 17): Conv1x1 with bias, Sigmoid, Mul(x, gate).
    b = B("se_torchvision", 2); c = 40
    y = se_torchvision(b, "x", c, 10)
    made.append(b.save([("x", ["batch", c, 25, 19])], [y]))

    # 3. MobileNetV3 (torch export, opset 13): ReduceMean(axes=[2,3] attr), HardSigmoid
    #    alpha=1/6 beta=0.5, Mul(gate, x).
    b = B("se_mobilenetv3", 3); c = 72
    y = se_torchvision(b, "x", c, 24, gate=(1.0 / 6.0, 0.5), pool="rm_attr", order="gx")
    made.append(b.save([("x", ["N", c, 14, 14])], [y], opset=13))

    # 3b. ReduceMean axes=[-2,-1] as an input (opset 18 spelling), hard sigmoid 0.1666667.
    b = B("se_reducemean_opset18", 4); c = 20
    y = se_torchvision(b, "x", c, 8, gate=(0.1666667, 0.5), pool="rm_input")
    made.append(b.save([("x", ["N", c, 2, 96])], [y], opset=18))

    # 3c. ReduceMean with negative axes as attribute.
    b = B("se_reducemean_neg", 5); c = 16
    y = se_torchvision(b, "x", c, 4, pool="rm_neg_attr")
    made.append(b.save([("x", ["N", c, 5, 5])], [y], opset=13))

    # 4. EfficientNet (torch export of nn.SiLU at opset < 14 style: Mul(t, Sigmoid(t))), and the
    #    SE input itself is a SiLU of a depthwise-free conv output.
    b = B("se_efficientnet", 6); c = 32
    t = b.op("Conv", ["x", b.w([c, c, 1, 1]), b.w([c])], kernel_shape=[1, 1])
    xs = b.op("Mul", [t, b.op("Sigmoid", [t])])
    y = se_torchvision(b, xs, c, 8, inner="SiLU")
    made.append(b.save([("x", ["N", c, 11, 13])], [y]))

    # 5. MatMul + Add FC layers, Flatten and Unsqueeze glue (tf2onnx from a Keras functional model).
    b = B("se_matmul_add", 7); c, r = 36, 9
    p = b.op("Flatten", [b.op("GlobalAveragePool", ["x"])])
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [p, b.w([c, r])]), b.w([r])])])
    g = b.op("Sigmoid", [b.op("Add", [b.w([c]), b.op("MatMul", [h, b.w([r, c])])])])
    g = b.op("Unsqueeze", [g, b.i64([2, 3])])
    y = b.op("Mul", [g, "x"])
    made.append(b.save([("x", ["N", c, 7, 9])], [y]))

    # 6. Paddle2ONNX (opset 11): weights as Constant nodes, conv bias as a separate Add of a
    #    reshaped constant, Identity between every step, HardSigmoid alpha 0.2 beta 0.5, -1 dims.
    b = B("se_paddle", 8); c, r = 48, 12
    def ident(v):
        return b.op("Identity", [v])
    def conv_add(v, o, i):
        w = b.const_node((b.rng.standard_normal([o, i, 1, 1]) * 0.3).astype(np.float32))
        bias = b.const_node((b.rng.standard_normal([o]) * 0.3).astype(np.float32))
        shp = b.const_node(np.array([1, o, 1, 1], dtype=np.int64))
        return b.op("Add", [ident(b.op("Conv", [v, w], kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)), b.op("Reshape", [bias, shp])])
    x = ident("x")
    p = ident(b.op("GlobalAveragePool", [x]))
    h = ident(b.op("Relu", [ident(conv_add(p, r, c))]))
    g = ident(b.op("HardSigmoid", [ident(conv_add(h, c, r))], alpha=0.2, beta=0.5))
    y1 = ident(b.op("Mul", [x, g]))
    p = ident(b.op("GlobalAveragePool", [y1]))
    h = ident(b.op("Relu", [ident(conv_add(p, r, c))]))
    g = ident(b.op("HardSigmoid", [ident(conv_add(h, c, r))], alpha=0.1666667, beta=0.5))
    y = ident(b.op("Mul", [y1, g]))
    path, ins = b.save([("x", [-1, c, 6, 10])], [y], opset=11)
    m = onnx.load(path)  # Paddle writes unknown dims as dim_value -1
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    onnx.save(m, path)
    made.append((path, [("x", ["N", c, 6, 10])]))

    # 7. Hard sigmoid spelled out: Clip(t + 3, 0, 6) / 6 (torch export of F.relu6(x + 3) / 6).
    b = B("se_clip_gate", 9); c = 30
    y = se_torchvision(b, "x", c, 8, gate="clip")
    made.append(b.save([("x", ["N", c, 8, 8])], [y]))

    # 8. SE-ResNet residual: Add(X, Mul(X, gate)) then Relu; X has three consumers.
    b = B("se_residual", 10); c = 64
    xin = b.op("Relu", ["x"])
    y = se_torchvision(b, xin, c, 4)
    y = b.op("Relu", [b.op("Add", [xin, y])])
    made.append(b.save([("x", ["N", c, 7, 7])], [y]))

    # 9. Two SE blocks in one graph with a conv between them; channels 13 and 21.
    b = B("se_two_blocks", 11)
    y1 = se_torchvision(b, "x", 13, 3)
    t = b.op("Conv", [y1, b.w([21, 13, 1, 1]), b.w([21])], kernel_shape=[1, 1])
    y = se_torchvision(b, t, 21, 5, gate=(0.2, 0.5), order="gx")
    made.append(b.save([("x", ["N", 13, 25, 19])], [y], out_dims=[["N", 21, 25, 19]]))

    # 10. Keras-with-ReduceMean spelling (tf2onnx): ReduceMean(keepdims=0) -> Gemm -> SiLU as
    #     Mul(Sigmoid(t), t) -> Gemm -> hard sigmoid as Mul(1/6, Clip(t + 3, 0, 6)) -> Unsqueeze.
    b = B("se_reducemean_flat", 16); c, r = 28, 7
    p = b.op("ReduceMean", ["x"], axes=[2, 3], keepdims=0)
    t = b.op("Gemm", [p, b.w([r, c]), b.w([r])], transB=1)
    h = b.op("Mul", [b.op("Sigmoid", [t]), t])
    t = b.op("Gemm", [h, b.w([r, c]), b.w([c])])
    g = b.op("Mul", [b.scalar(1.0 / 6.0), b.op("Clip", [b.op("Add", [t, b.scalar(3.0)]), b.scalar(0.0), b.scalar(6.0)])])
    y = b.op("Mul", ["x", b.op("Unsqueeze", [g, b.i64([2, 3])])])
    made.append(b.save([("x", ["N", c, 6, 5])], [y], opset=13))

    # 11. Flatten then Reshape back to [N, C, 1, 1] before the 1x1 convs (seen in exports
    #     of hand-written SE modules that use view()).
    b = B("se_reshape_roundtrip", 17); c = 24
    p = b.op("Flatten", [b.op("GlobalAveragePool", ["x"])])
    p = b.op("Reshape", [p, b.i64([-1, c, 1, 1])])
    h = b.op("Relu", [b.op("Conv", [p, b.w([6, c, 1, 1]), b.w([6])])])
    g = b.op("Sigmoid", [b.op("Conv", [h, b.w([c, 6, 1, 1]), b.w([c])])])
    y = b.op("Mul", [g, "x"])
    made.append(b.save([("x", ["N", c, 3, 7])], [y]))

    # 12. PyTorch `x.view(b, c)` / `.view(b, c, 1, 1)` with a dynamic batch (torch.onnx.export
    #     opset 17, dynamic_axes={"x": {0: "batch"}}): the Reshape targets are computed at run
    #     time by Shape -> Gather / Slice -> Unsqueeze -> Concat (with a Cast round trip).
    b = B("se_torch_view", 18); c, r = 20, 5
    shp = b.op("Shape", ["x"])
    bsz = b.op("Gather", [shp, b.i64(0)], axis=0)
    ch = b.op("Cast", [b.op("Gather", [shp, b.i64(1)], axis=0)], to=TensorProto.INT64)
    bs1 = b.op("Slice", [shp, b.i64([0]), b.i64([1]), b.i64([0])])
    t2 = b.op("Concat", [b.op("Unsqueeze", [bsz, b.i64([0])]), b.op("Unsqueeze", [ch, b.i64([0])])], axis=0)
    p = b.op("Reshape", [b.op("GlobalAveragePool", ["x"]), t2])
    h = b.op("Relu", [b.op("Gemm", [p, b.w([r, c]), b.w([r])], transB=1)])
    g = b.op("Sigmoid", [b.op("Gemm", [h, b.w([c, r]), b.w([c])], transB=1)])
    t4 = b.op("Concat", [bs1, b.op("Unsqueeze", [ch, b.i64([0])]), b.i64([1]), b.i64([1])], axis=0)
    y = b.op("Mul", ["x", b.op("Reshape", [g, t4])])
    made.append(b.save([("x", ["batch", c, 9, 9])], [y]))

    # 13. The SE block inside a network: Conv -> BatchNormalization -> Relu -> SE -> residual
    #     Add -> Relu (SE-ResNet bottleneck tail), BN as torch.onnx.export leaves it in eval mode.
    b = B("se_conv_bn", 19); c = 32
    def bn(v, ch):
        gamma, var = b.uid("gamma"), b.uid("var")
        b.inits.append(numpy_helper.from_array((1 + 0.2 * b.rng.standard_normal(ch)).astype(np.float32), gamma))
        b.inits.append(numpy_helper.from_array((0.5 + b.rng.random(ch)).astype(np.float32), var))
        return b.op("BatchNormalization", [v, gamma, b.w([ch]), b.w([ch]), var], epsilon=1e-5)
    t = b.op("Relu", [bn(b.op("Conv", ["x", b.w([c, c, 3, 3], 0.1), b.w([c])], pads=[1, 1, 1, 1]), c)])
    t = bn(b.op("Conv", [t, b.w([c, c, 1, 1], 0.2)]), c)
    y = se_torchvision(b, t, c, 8)
    y = b.op("Relu", [b.op("Add", ["x", y])])
    made.append(b.save([("x", ["N", c, 10, 9])], [y]))

    # 14. Exporter glue around the pool and the gate (issue 9's list), each with awkward sizes:
    #     a) ReduceMean over axes [3, 2] (reversed order, as some converters write it).
    b = B("se_reducemean_32", 20); c = 20
    p = b.op("ReduceMean", ["x"], axes=[3, 2], keepdims=1)
    h = b.op("Relu", [b.op("Conv", [p, b.w([5, c, 1, 1]), b.w([5])], kernel_shape=[1, 1])])
    g = b.op("Sigmoid", [b.op("Conv", [h, b.w([c, 5, 1, 1]), b.w([c])], kernel_shape=[1, 1])])
    made.append(b.save([("x", ["N", c, 7, 5])], [b.op("Mul", ["x", g])], opset=13))

    #     b) ReduceSum over H and W, then Mul by 1/(H*W) (TF/Keras converters, hand-written means).
    b = B("se_reducesum_mul", 21); c, hh, ww = 24, 9, 5
    p = b.op("ReduceSum", ["x", b.i64([2, 3])], keepdims=1)
    p = b.op("Mul", [p, b.scalar(1.0 / (hh * ww))])
    h = b.op("Relu", [b.op("Conv", [p, b.w([6, c, 1, 1]), b.w([6])], kernel_shape=[1, 1])])
    g = b.op("Sigmoid", [b.op("Conv", [h, b.w([c, 6, 1, 1]), b.w([c])], kernel_shape=[1, 1])])
    made.append(b.save([("x", ["N", c, hh, ww])], [b.op("Mul", ["x", g])], opset=13))

    #     c) ReduceSum (axes [-1, -2], keepdims 0) then Div by H*W, a flat [N, C] pool into Gemm.
    b = B("se_reducesum_div", 22); c, hh, ww = 20, 3, 11
    p = b.op("ReduceSum", ["x", b.i64([-1, -2])], keepdims=0)
    p = b.op("Div", [p, b.scalar(float(hh * ww))])
    h = b.op("Relu", [b.op("Gemm", [p, b.w([5, c]), b.w([5])], transB=1)])
    g = b.op("Sigmoid", [b.op("Gemm", [h, b.w([c, 5]), b.w([c])], transB=1)])
    g = b.op("Reshape", [g, b.i64([-1, c, 1, 1])])
    made.append(b.save([("x", ["N", c, hh, ww])], [b.op("Mul", [g, "x"])], opset=13))

    #     c2) the other two spellings: keepdims 1 divided by H*W into 1x1 convs, keepdims 0
    #         times 1/(H*W) into MatMul FCs, the gate unsqueezed back.
    b = B("se_reducesum_div4", 25); c, hh, ww = 12, 6, 7
    p = b.op("ReduceSum", ["x", b.i64([3, 2])], keepdims=1)
    p = b.op("Div", [p, b.scalar(float(hh * ww))])
    h = b.op("Relu", [b.op("Conv", [p, b.w([3, c, 1, 1]), b.w([3])], kernel_shape=[1, 1])])
    g = b.op("HardSigmoid", [b.op("Conv", [h, b.w([c, 3, 1, 1]), b.w([c])], kernel_shape=[1, 1])], alpha=0.2, beta=0.5)
    made.append(b.save([("x", ["N", c, hh, ww])], [b.op("Mul", ["x", g])], opset=13))
    b = B("se_reducesum_flat_mul", 26); c, hh, ww = 40, 13, 1
    p = b.op("ReduceSum", ["x", b.i64([2, 3])], keepdims=0)
    p = b.op("Mul", [b.scalar(1.0 / (hh * ww)), p])
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [p, b.w([c, 10])]), b.w([10])])])
    g = b.op("Sigmoid", [b.op("Add", [b.op("MatMul", [h, b.w([10, c])]), b.w([c])])])
    g = b.op("Unsqueeze", [g, b.i64([2, 3])])
    made.append(b.save([("x", ["N", c, hh, ww])], [b.op("Mul", ["x", g])], opset=13))

    #     d) Squeeze of a keepdims pool, FCs as Gemm, the gate unsqueezed one axis at a time
    #        and Expanded to the input's shape before the Mul.
    b = B("se_squeeze_expand", 23); c = 28
    p = b.op("ReduceMean", ["x"], axes=[2, 3], keepdims=1)
    p = b.op("Squeeze", [p, b.i64([2, 3])])
    h = b.op("Relu", [b.op("Gemm", [p, b.w([7, c]), b.w([7])], transB=1)])
    g = b.op("Sigmoid", [b.op("Gemm", [h, b.w([c, 7]), b.w([c])], transB=1)])
    g = b.op("Unsqueeze", [b.op("Unsqueeze", [g, b.i64([2])]), b.i64([3])])
    g = b.op("Expand", [g, b.op("Shape", ["x"])])
    made.append(b.save([("x", ["N", c, 5, 9])], [b.op("Mul", ["x", g])], opset=13))

    #     e) Flatten after GlobalAveragePool, Reshape of the gate by a constant [N?, C, 1, 1]
    #        with 0 for the batch, MatMul + Add FCs.
    b = B("se_flatten_reshape0", 24); c, r = 18, 6
    p = b.op("Flatten", [b.op("GlobalAveragePool", ["x"])], axis=1)
    h = b.op("Relu", [b.op("Add", [b.op("MatMul", [p, b.w([c, r])]), b.w([r])])])
    g = b.op("Sigmoid", [b.op("Add", [b.op("MatMul", [h, b.w([r, c])]), b.w([c])])])
    g = b.op("Reshape", [g, b.i64([0, c, 1, 1])])
    made.append(b.save([("x", ["N", c, 11, 3])], [b.op("Mul", ["x", g])], opset=13))

    # The scale in the consumer (issue 9): an inverted-residual tail as MobileNetV3 and
    # EfficientNet write it: expand 1x1 + HardSwish, depthwise 3x3, SE, projection 1x1 conv,
    # residual add. secc fuses the SE into its gate step and a gated projection conv.
    b = B("se_scale_in_conv", 25); c, e, r = 19, 37, 9
    t = b.op("Conv", ["x", b.w([e, c, 1, 1]), b.w([e])], kernel_shape=[1, 1])
    t = b.op("HardSwish", [t])
    t = b.op("Conv", [t, b.w([e, 1, 3, 3]), b.w([e])], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=e)
    t = b.op("Relu", [t])
    s = se_torchvision(b, t, e, r, gate=(1.0 / 6, 0.5))
    y = b.op("Conv", [s, b.w([c, e, 1, 1]), b.w([c])], kernel_shape=[1, 1])
    made.append(b.save([("x", ["N", c, 9, 7])], [b.op("Add", [y, "x"])], opset=14))

    #     the same with a bias-free projection and its bias as a separate Add (tf2onnx), the
    #     SE's output read by two convolutions (no fold: it stays one SE kernel) and a
    #     strided 1x1 (no fold: it is not the 1x1 stride-1 form the rule takes).
    b = B("se_scale_two_readers", 26); c, r = 21, 5
    s = se_torchvision(b, "x", c, r)
    y1 = b.op("Add", [b.op("Conv", [s, b.w([11, c, 1, 1])], kernel_shape=[1, 1]), b.w([1, 11, 1, 1])])
    y2 = b.op("Conv", [s, b.w([7, c, 1, 1]), b.w([7])], kernel_shape=[1, 1])
    made.append(b.save([("x", ["N", c, 5, 9])], [y1, y2], opset=13,
                       out_dims=[["N", 11, 5, 9], ["N", 7, 5, 9]]))
    b = B("se_scale_bias_add", 27); c, r = 21, 5
    s = se_torchvision(b, "x", c, r)
    y = b.op("Add", [b.op("Conv", [s, b.w([11, c, 1, 1])], kernel_shape=[1, 1]), b.w([1, 11, 1, 1])])
    s2 = se_torchvision(b, y, 11, 3)
    y2 = b.op("Conv", [s2, b.w([6, 11, 1, 1]), b.w([6])], kernel_shape=[1, 1], strides=[2, 2])
    made.append(b.save([("x", ["N", c, 7, 9])], [y2], opset=13, out_dims=[["N", 6, 4, 5]]))

    # Near-misses: must not fuse, must still run.
    # a) SiLU alone.
    b = B("nm_silu_alone", 12)
    y = b.op("Mul", ["x", b.op("Sigmoid", ["x"])])
    made.append(b.save([("x", ["N", 8, 5, 5])], [y]))

    # b) classifier head: GAP -> Flatten -> Gemm(transB=1).
    b = B("nm_classifier", 13); c = 24
    y = b.op("Gemm", [b.op("Flatten", [b.op("GlobalAveragePool", ["x"])]), b.w([10, c]), b.w([10])], transB=1)
    made.append(b.save([("x", ["N", c, 7, 7])], [y], out_dims=[["N", 10]]))

    # c) gate multiplied into a tensor other than the one pooled.
    b = B("nm_other_tensor", 14); c = 16
    p = b.op("GlobalAveragePool", ["x"])
    h = b.op("Relu", [b.op("Conv", [p, b.w([4, c, 1, 1]), b.w([4])])])
    g = b.op("Sigmoid", [b.op("Conv", [h, b.w([c, 4, 1, 1]), b.w([c])])])
    y = b.op("Mul", ["z", g])
    made.append(b.save([("x", ["N", c, 6, 6]), ("z", ["N", c, 6, 6])], [y]))

    # d) the gate is used elsewhere too (also a graph output).
    b = B("nm_gate_shared", 15); c = 16
    p = b.op("GlobalAveragePool", ["x"])
    h = b.op("Relu", [b.op("Conv", [p, b.w([4, c, 1, 1]), b.w([4])])])
    g = b.op("Sigmoid", [b.op("Conv", [h, b.w([c, 4, 1, 1]), b.w([c])])])
    y = b.op("Mul", ["x", g])
    made.append(b.save([("x", ["N", c, 6, 6])], [y, g], out_dims=[["N", c, 6, 6], ["N", c, 1, 1]]))

    # e) a sum pool scaled by the wrong count (1 / (H * W + 1)): not a mean, must not fuse.
    b = B("nm_reducesum_scale", 27); c, hh, ww = 16, 5, 3
    p = b.op("ReduceSum", ["x", b.i64([2, 3])], keepdims=1)
    p = b.op("Mul", [p, b.scalar(1.0 / (hh * ww + 1))])
    h = b.op("Relu", [b.op("Conv", [p, b.w([4, c, 1, 1]), b.w([4])])])
    g = b.op("Sigmoid", [b.op("Conv", [h, b.w([c, 4, 1, 1]), b.w([c])])])
    made.append(b.save([("x", ["N", c, hh, ww])], [b.op("Mul", ["x", g])], opset=13))

    made += op_models()
    for path, ins in made:
        ort_io(path, ins)
    bad_models()
    cli_models()
    print(f"wrote {len(made)} fixtures to {HERE}")


def op_models():
    """Op coverage beyond SE blocks: every attribute form of the supported ops, so each
    kernel is checked against the interpreter and the interpreter against ONNX Runtime."""
    made = []

    # ReduceMean over other axes, keepdims 0/1, all axes; opset 13 attribute form
    b = B("ops_reduce", 21)
    r1 = b.op("ReduceMean", ["x"], axes=[1], keepdims=0)
    r2 = b.op("ReduceMean", ["x"], axes=[0, 2], keepdims=1)
    r3 = b.op("ReduceMean", ["x"], keepdims=0)
    r4 = b.op("ReduceMean", ["x"], axes=[-1], keepdims=1)
    r5 = b.op("ReduceSum", ["x", b.i64([1, -1])], keepdims=0)
    r6 = b.op("ReduceMax", ["x"], axes=[2], keepdims=1)
    r7 = b.op("ReduceMin", ["x"], axes=[0, 3], keepdims=0)
    made.append(b.save([("x", ["N", 5, 7, 3])], [r1, r2, r3, r4, r5, r6, r7], opset=13,
                       out_dims=[["N", 7, 3], [1, 5, 1, 3], [], ["N", 5, 7, 1], ["N", 7], ["N", 5, 1, 3], [5, 7]]))

    # Gemm in every transpose/alpha/beta form, C broadcast from [N] / [1, N] / scalar
    b = B("ops_gemm", 22)
    y1 = b.op("Gemm", ["x", b.w([6, 5]), b.w([5])], alpha=0.5, beta=2.0)
    y2 = b.op("Gemm", [b.w([6, 4]), "x"], transA=1, transB=1, alpha=1.5)
    y3 = b.op("Gemm", ["x", b.w([3, 6]), b.w([1, 3])], transB=1, beta=-1.0)
    y4 = b.op("Gemm", ["x", b.w([6, 2]), b.scalar(0.25)])
    made.append(b.save([("x", [4, 6])], [y1, y2, y3, y4], out_dims=[[4, 5], [4, 4], [4, 3], [4, 2]]))

    # BatchNorm1d after Linear layers (folded into the Gemm): with and without C, both B layouts
    b = B("ops_gemm_bn", 42)
    def bn(x, c):
        return b.op("BatchNormalization", [x, b.w([c], 0.5), b.w([c]), b.w([c]),
                                           b.scalar_vec(np.abs(b.rng.standard_normal(c)) + 0.5)], epsilon=1e-5)
    h = b.op("Relu", [bn(b.op("Gemm", ["x", b.w([9, 6]), b.w([9])], transB=1, alpha=0.7, beta=1.3), 9)])
    y1 = bn(b.op("Gemm", [h, b.w([9, 5])]), 5)
    y2 = bn(b.op("Gemm", ["x", b.w([6, 4]), b.scalar(0.25)]), 4)
    made.append(b.save([("x", [3, 6])], [y1, y2], opset=15, out_dims=[[3, 5], [3, 4]]))

    # MatMul: batched with broadcasting, 1-D operands, two run-time operands
    b = B("ops_matmul", 23)
    y1 = b.op("MatMul", ["a", b.w([4, 5])])
    y2 = b.op("MatMul", ["a", "bm"])
    y3 = b.op("MatMul", [b.w([4]), b.w([2, 4, 3])])
    y4 = b.op("MatMul", ["a", b.w([4])])
    made.append(b.save([("a", ["N", 2, 3, 4]), ("bm", [2, 4, 6])], [y1, y2, y3, y4],
                       out_dims=[["N", 2, 3, 5], ["N", 2, 3, 6], [2, 3], ["N", 2, 3]]))

    # element-wise: broadcasting in every direction, Sub/Div, Clip forms, activations
    b = B("ops_elementwise", 24)
    t = b.op("Sub", ["x", b.w([1, 6, 1, 1])])
    t = b.op("Div", [t, b.op("Add", [b.w([5]), b.scalar(4.0)])])
    t = b.op("Mul", [t, b.w([3, 1])])
    c1 = b.op("Clip", [t, b.scalar(-0.5)])
    c2 = b.op("Clip", [t, "", b.scalar(0.7)])
    c3 = b.op("HardSwish", [t])
    c4 = b.op("HardSigmoid", [t], alpha=0.3, beta=0.4)
    c5 = b.op("Sigmoid", [b.op("Relu", [t])])
    c6 = b.op("Div", [b.scalar(1.0), b.op("Add", [b.op("Sigmoid", ["x"]), b.scalar(1.0)])])
    made.append(b.save([("x", ["N", 6, 3, 5])], [c1, c2, c3, c4, c5, c6]))

    # convolution: kernel sizes, strides, pads, dilations, groups, auto_pad, no bias
    b = B("ops_conv", 25)
    y1 = b.op("Conv", ["x", b.w([8, 6, 3, 3]), b.w([8])], strides=[2, 2], pads=[1, 1, 1, 1])
    y2 = b.op("Conv", ["x", b.w([6, 3, 3, 2])], group=2, dilations=[2, 1], pads=[2, 0, 1, 1])
    y3 = b.op("Conv", ["x", b.w([6, 1, 3, 3]), b.w([6])], group=6, auto_pad="SAME_UPPER", strides=[2, 1])
    y4 = b.op("Conv", ["x", b.w([4, 6, 2, 2])], auto_pad="SAME_LOWER")
    y5 = b.op("Conv", ["x", b.w([5, 6, 1, 1]), b.w([5])], strides=[2, 3], auto_pad="VALID")
    made.append(b.save([("x", ["N", 6, 9, 8])], [y1, y2, y3, y4, y5], out_dims=[
        ["N", 8, 5, 4], ["N", 6, 8, 8], ["N", 6, 5, 8], ["N", 4, 9, 8], ["N", 5, 5, 3]]))

    # wide maps: register-tiled convolutions (interior and border tiles, channel tails)
    b = B("ops_conv_wide", 31)
    y1 = b.op("Conv", ["x", b.w([6, 5, 3, 3], 0.2), b.w([6])], pads=[1, 1, 1, 1])
    y2 = b.op("Conv", ["x", b.w([7, 5, 5, 3], 0.2)], pads=[2, 2, 2, 2], dilations=[1, 2])
    y3 = b.op("Conv", ["x", b.w([4, 5, 2, 2], 0.2), b.w([4])])
    y4 = b.op("Conv", ["x", b.w([9, 5, 1, 1], 0.2), b.w([9])])
    made.append(b.save([("x", ["N", 5, 7, 37])], [y1, y2, y3, y4], out_dims=[
        ["N", 6, 7, 37], ["N", 7, 7, 37], ["N", 4, 6, 36], ["N", 9, 7, 37]]))

    # strided and depthwise convolutions on wide maps (vectorised paths: strided column
    # loads, masked borders, tails): ResNet stem 7x7/2, 3x3/2, 1x1/2 projection, depthwise
    # 3x3/2, 5x5 dilated, 3x3 without padding, column stride 3
    b = B("ops_conv_strided", 38)
    y1 = b.op("Conv", ["x", b.w([5, 6, 7, 7], 0.1), b.w([5])], strides=[2, 2], pads=[3, 3, 3, 3])
    y2 = b.op("Conv", ["x", b.w([7, 6, 3, 3], 0.2)], strides=[2, 2], pads=[1, 1, 1, 1])
    y3 = b.op("Conv", ["x", b.w([9, 6, 1, 1], 0.2), b.w([9])], strides=[2, 2])
    y4 = b.op("Conv", ["x", b.w([6, 1, 3, 3], 0.3), b.w([6])], group=6, strides=[2, 2], pads=[1, 1, 1, 1])
    y5 = b.op("Conv", ["x", b.w([6, 1, 5, 5], 0.3)], group=6, dilations=[2, 2], pads=[4, 4, 4, 4])
    y6 = b.op("Relu", [b.op("Conv", ["x", b.w([6, 1, 3, 3], 0.3), b.w([6])], group=6)])
    y7 = b.op("Conv", ["x", b.w([4, 6, 3, 3], 0.2), b.w([4])], strides=[1, 3], pads=[1, 1, 1, 1])
    y8 = b.op("Conv", ["x", b.w([6, 1, 3, 3], 0.3)], group=6, strides=[1, 3], pads=[0, 2, 1, 1])
    made.append(b.save([("x", ["N", 6, 9, 37])], [y1, y2, y3, y4, y5, y6, y7, y8], out_dims=[
        ["N", 5, 5, 19], ["N", 7, 5, 19], ["N", 9, 5, 19], ["N", 6, 5, 19], ["N", 6, 9, 37],
        ["N", 6, 7, 35], ["N", 4, 9, 13], ["N", 6, 8, 13]]))

    # timm's Conv2dSame ("same" padding computed from the input size, as scripted/dynamo
    # exports write it): Shape -> Gather -> Cast(float) -> Div -> Ceil -> Cast(int64) ->
    # integer arithmetic -> Max(0) -> Div/Sub -> Concat -> Pad, then a VALID stride-2 conv
    b = B("ops_pad_same_timm", 41)
    def same_pad(axis, k, st):
        size = b.op("Gather", [b.op("Shape", ["x"]), b.i64(axis)], axis=0)
        q = b.op("Ceil", [b.op("Div", [b.op("Cast", [size], to=TensorProto.FLOAT), b.scalar(float(st))])])
        q = b.op("Cast", [q], to=TensorProto.INT64)
        tot = b.op("Sub", [b.op("Add", [b.op("Mul", [b.op("Sub", [q, b.i64(1)]), b.i64(st)]), b.i64(k)]), size])
        tot = b.op("Max", [tot, b.i64(0)])
        lo = b.op("Div", [tot, b.i64(2)])
        return lo, b.op("Sub", [tot, lo])
    (ht, hb), (wl, wr) = same_pad(2, 3, 2), same_pad(3, 3, 2)
    u = lambda v: b.op("Unsqueeze", [v, b.i64([0])])
    pads = b.op("Concat", [b.i64([0, 0]), u(ht), u(wl), b.i64([0, 0]), u(hb), u(wr)], axis=0)
    xp = b.op("Pad", ["x", pads, b.scalar(0.0)], mode="constant")
    y = b.op("Conv", [xp, b.w([7, 5, 3, 3], 0.3), b.w([7])], strides=[2, 2])
    made.append(b.save([("x", ["N", 5, 9, 12])], [y], opset=17, out_dims=[["N", 7, 5, 6]]))

    # 1-D convolution, transposed convolution and pooling (audio/text CNNs; run as 2-D ops
    # over [N, C, 1, L])
    b = B("ops_conv1d", 39)
    y1 = b.op("Conv", ["x", b.w([8, 6, 3], 0.3), b.w([8])], pads=[1, 1])
    y2 = b.op("Conv", ["x", b.w([4, 3, 5], 0.3)], strides=[2], dilations=[2], group=2, pads=[3, 2])
    y3 = b.op("Conv", ["x", b.w([6, 1, 3], 0.3), b.w([6])], group=6, auto_pad="SAME_UPPER", strides=[2])
    y4 = b.op("ConvTranspose", ["x", b.w([6, 3, 4], 0.3), b.w([3])], strides=[2], pads=[1, 1])
    y5 = b.op("MaxPool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1])
    y6 = b.op("AveragePool", ["x"], kernel_shape=[4], strides=[3], ceil_mode=1, count_include_pad=0, pads=[1, 1])
    made.append(b.save([("x", ["N", 6, 29])], [y1, y2, y3, y4, y5, y6], opset=17, out_dims=[
        ["N", 8, 29], ["N", 4, 13], ["N", 6, 15], ["N", 3, 58], ["N", 6, 15], ["N", 6, 11]]))

    # pooling: MaxPool (pads, strides, dilations, ceil_mode, SAME), AveragePool
    # (count_include_pad 0/1, ceil_mode), GlobalMaxPool
    b = B("ops_pool", 27)
    p1 = b.op("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    p2 = b.op("MaxPool", ["x"], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1, dilations=[2, 1])
    p3 = b.op("MaxPool", ["x"], kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])
    p4 = b.op("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    p5 = b.op("AveragePool", ["x"], kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 1, 1], count_include_pad=1, ceil_mode=1)
    p6 = b.op("GlobalMaxPool", ["x"])
    made.append(b.save([("x", ["N", 3, 11, 10])], [p1, p2, p3, p4, p5, p6], out_dims=[
        ["N", 3, 6, 5], ["N", 3, 5, 5], ["N", 3, 6, 5], ["N", 3, 6, 5], ["N", 3, 6, 4], ["N", 3, 1, 1]]))

    # unary and binary element-wise ops beyond the SE set
    b = B("ops_unary", 28)
    outs = [b.op("LeakyRelu", ["x"], alpha=0.07), b.op("Elu", ["x"], alpha=0.8), b.op("Tanh", ["x"]),
            b.op("Exp", ["x"]), b.op("Log", [b.op("Add", [b.op("Abs", ["x"]), b.scalar(0.1)])]),
            b.op("Sqrt", [b.op("Abs", ["x"])]), b.op("Neg", ["x"]), b.op("Erf", ["x"]),
            b.op("PRelu", ["x", b.w([4, 1, 1])]), b.op("Min", ["x", b.w([5]), b.w([3, 1])]),
            b.op("Max", ["x", b.scalar(0.2)])]
    made.append(b.save([("x", ["N", 4, 3, 5])], outs))

    # more activations and variadic ops (opset 20: Mish, Gelu with both approximations)
    b = B("ops_unary2", 40)
    xs = b.op("Mul", ["x", b.scalar(3.0)])
    outs = [b.op("Softplus", [xs]), b.op("Softsign", ["x"]), b.op("Selu", ["x"]), b.op("Selu", ["x"], alpha=1.2, gamma=0.9),
            b.op("Celu", ["x"], alpha=0.7), b.op("ThresholdedRelu", ["x"], alpha=0.3), b.op("Mish", [xs]),
            b.op("Gelu", ["x"]), b.op("Gelu", ["x"], approximate="tanh"), b.op("Ceil", [xs]), b.op("Floor", [xs]),
            b.op("Round", [xs]), b.op("Sign", ["x"]), b.op("Sum", ["x", b.w([5]), b.w([3, 1])]), b.op("Mean", ["x", b.w([4, 1, 1])])]
    made.append(b.save([("x", ["N", 4, 3, 5])], outs, opset=20))

    # data movement and normalisation: Concat (several axes, symbolic batch axis), Transpose,
    # Softmax (opset 13 single axis)
    b = B("ops_layout", 29)
    c1 = b.op("Concat", ["x", b.op("Relu", ["x"])], axis=1)
    c2 = b.op("Concat", ["x", b.op("Neg", ["x"]), "x"], axis=-1)
    c3 = b.op("Concat", ["x", b.op("Abs", ["x"])], axis=0)
    t1 = b.op("Transpose", ["x"], perm=[0, 2, 3, 1])
    t2 = b.op("Transpose", ["x"])
    s1 = b.op("Softmax", ["x"], axis=1)
    s2 = b.op("Softmax", ["x"])
    made.append(b.save([("x", ["N", 3, 4, 5])], [c1, c2, c3, t1, t2, s1, s2], opset=13, out_dims=[
        ["N", 6, 4, 5], ["N", 3, 4, 15], ["M", 3, 4, 5], ["N", 4, 5, 3], [5, 4, 3, "N"], ["N", 3, 4, 5], ["N", 3, 4, 5]]))

    # Pad: constant (with value), reflect, edge; pads on the spatial axes and the channel axis
    b = B("ops_pad", 32)
    p1 = b.op("Pad", ["x", b.i64([0, 1, 2, 0, 0, 0, 1, 3]), b.scalar(-1.5)], mode="constant")
    p2 = b.op("Pad", ["x", b.i64([0, 0, 2, 1, 0, 0, 1, 2])], mode="reflect")
    p3 = b.op("Pad", ["x", b.i64([0, 0, 3, 2, 0, 0, 1, 4])], mode="edge")
    made.append(b.save([("x", ["N", 3, 4, 5])], [p1, p2, p3], opset=13, out_dims=[
        ["N", 4, 7, 8], ["N", 3, 7, 8], ["N", 3, 8, 11]]))

    # float operands computed at run time (graph inputs and computed tensors): Clip bounds,
    # Pad's fill value (one folded back to a constant by const-fold), BatchNormalization's
    # parameters (the variance computed, so it stays positive on random inputs)
    b = B("ops_runtime_operands", 43)
    c1 = b.op("Clip", ["x", "lo", "hi"])
    c2 = b.op("Clip", ["x", "lo"])
    c3 = b.op("Clip", ["x", b.scalar(-0.5), "hi"])
    pads = b.i64([0, 1, 2, 0, 0, 0, 1, 3])
    p1 = b.op("Pad", ["x", pads, "lo"], mode="constant")
    p2 = b.op("Pad", ["x", pads, b.op("Mul", ["hi", b.scalar(2.0)])], mode="constant")
    p3 = b.op("Pad", ["x", pads, b.op("Add", [b.scalar(0.25), b.scalar(0.5)])], mode="constant")
    var = b.op("Add", [b.op("Mul", ["bv", "bv"]), b.scalar(0.1)])
    n1 = b.op("BatchNormalization", ["x", "bs", "bb", "bm", var], epsilon=1e-3)
    n2 = b.op("BatchNormalization", [b.op("Relu", ["x"]), b.w([3], 0.5), "bb", b.w([3]), var])
    made.append(b.save([("x", ["N", 3, 5, 7]), ("lo", []), ("hi", []), ("bs", [3]), ("bb", [3]),
                        ("bm", [3]), ("bv", [3])], [c1, c2, c3, p1, p2, p3, n1, n2], opset=15, out_dims=[
        ["N", 3, 5, 7], ["N", 3, 5, 7], ["N", 3, 5, 7], ["N", 4, 8, 10], ["N", 4, 8, 10], ["N", 4, 8, 10],
        ["N", 3, 5, 7], ["N", 3, 5, 7]]))

    # MaxPool's Indices (int64): pads, ceil_mode with dilations, column-major storage order,
    # SAME padding, a 1-D pool; one Indices output returned twice (an int64 copy)
    b = B("ops_maxpool_indices", 44)
    I64 = TensorProto.INT64
    y1, i1 = b.op("MaxPool", ["x"], n_out=2, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y2, i2 = b.op("MaxPool", ["x"], n_out=2, kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1,
                  dilations=[2, 1], storage_order=1)
    y3, i3 = b.op("MaxPool", ["x"], n_out=2, kernel_shape=[3, 2], auto_pad="SAME_UPPER", strides=[2, 3])
    y4, i4 = b.op("MaxPool", ["s"], n_out=2, kernel_shape=[4], strides=[3], pads=[2, 1])
    i5 = b.op("Identity", [i1])
    made.append(b.save([("x", ["N", 3, 11, 10]), ("s", ["N", 4, 29])], [y1, i1, y2, i2, y3, i3, y4, i4, i5],
                       opset=12, out_dims=[["N", 3, 6, 5], ["N", 3, 6, 5], ["N", 3, 5, 5], ["N", 3, 5, 5],
                                           ["N", 3, 6, 4], ["N", 3, 6, 4], ["N", 4, 10], ["N", 4, 10], ["N", 3, 6, 5]],
                       out_types=[F, I64, F, I64, F, I64, F, I64, I64]))

    # shapes a model returns (int64): Shape with the symbolic batch, a sliced Shape, Size
    b = B("ops_shape_output", 45)
    s1 = b.op("Shape", ["x"])
    s2 = b.op("Shape", ["x"], start=1, end=-1)
    s3 = b.op("Size", ["x"])
    r = b.op("Relu", ["x"])
    made.append(b.save([("x", ["N", 3, 4, 5])], [s1, s2, s3, r], opset=15, out_dims=[[4], [2], [], ["N", 3, 4, 5]],
                       out_types=[TensorProto.INT64, TensorProto.INT64, TensorProto.INT64, F]))

    # LayerNormalization (opset 17, lowered to existing ops) and Pow with constant exponents
    b = B("ops_layernorm_pow", 33)
    l1 = b.op("LayerNormalization", ["x", b.w([5]), b.w([5])], axis=-1, epsilon=1e-5)
    l2 = b.op("LayerNormalization", ["x", b.w([4, 5])], axis=2)
    q1 = b.op("Pow", ["x", b.scalar(2.0)])
    q2 = b.op("Pow", [b.op("Abs", ["x"]), b.scalar(0.5)])
    q3 = b.op("Pow", [b.op("Add", [b.op("Abs", ["x"]), b.scalar(0.5)]), b.scalar(-1.0)])
    q4 = b.op("Pow", ["x", b.scalar(3.0)])
    made.append(b.save([("x", ["N", 3, 4, 5])], [l1, l2, q1, q2, q3, q4], opset=17))

    # float data movement: Slice (axes, negative steps, clamped ends), Split (sizes input,
    # even split), Gather with constant indices (scalar, progression, arbitrary, negative),
    # Expand (PyTorch's Shape/ConstantOfShape/Equal/Where pattern), Cast to float,
    # comparisons + Where, Pow with a tensor exponent
    b = B("ops_slice_gather", 34)
    s1 = b.op("Slice", ["x", b.i64([1, 7]), b.i64([100, -1]), b.i64([1, 3]), b.i64([2, 3])])
    s2 = b.op("Slice", ["x", b.i64([-1]), b.i64([-1000]), b.i64([2]), b.i64([-2])])
    sp = b.op("Split", ["x", b.i64([1, 4])], n_out=2, axis=1)
    sq = b.op("Split", ["x"], n_out=3, axis=-1)
    g1 = b.op("Gather", ["x", b.i64(2)], axis=1)
    g2 = b.op("Gather", ["x", b.i64([0, 2, 4])], axis=1)
    g3 = b.op("Gather", ["x", b.i64([[4, -1], [0, 2]])], axis=3)
    shp = b.i64([3, 1, 1, 1])
    ones = b.op("ConstantOfShape", [b.i64([4])], value=helper.make_tensor("v", TensorProto.INT64, [1], [1]))
    want = b.op("Where", [b.op("Equal", [shp, b.i64([-1, -1, -1, -1])]), ones, shp])
    e1 = b.op("Expand", [b.op("ReduceMean", ["x"], axes=[0, 1], keepdims=1), want])
    e2 = b.op("Expand", [b.w([4, 1]), b.op("Shape", ["x"])])
    c1 = b.op("Cast", ["x"], to=TensorProto.FLOAT)
    lt = b.op("Less", ["x", b.w([9])])
    wh = b.op("Where", [lt, "x", b.op("Neg", ["x"])])
    wc = b.op("Where", [b.op("Greater", ["x", b.scalar(0.3)]), b.scalar(1.5), b.op("Neg", ["x"])])
    pw = b.op("Pow", [b.op("Add", [b.op("Abs", ["x"]), b.scalar(0.1)]), b.w([9], 1.0)])
    pn = b.op("Pow", ["x", b.i64(3)])
    made.append(b.save([("x", ["N", 5, 4, 9])], [s1, s2, sp[0], sp[1], sq[0], sq[2], g1, g2, g3, e1, e2, c1, wh, wc, pw, pn],
                       opset=17, out_dims=[["N", 2, 4, 1], ["N", 5, 2, 9], ["N", 1, 4, 9], ["N", 4, 4, 9],
                                           ["N", 5, 4, 3], ["N", 5, 4, 3], ["N", 4, 9], ["N", 3, 4, 9],
                                           ["N", 5, 4, 2, 2], [3, 1, 4, 9], ["N", 5, 4, 9], ["N", 5, 4, 9],
                                           ["N", 5, 4, 9], ["N", 5, 4, 9], ["N", 5, 4, 9], ["N", 5, 4, 9]]))

    # Resize as exporters write it: PyTorch nearest (asymmetric/floor, scales), bilinear
    # (pytorch_half_pixel, sizes from a shape subgraph; align_corners), TF half_pixel
    # downscale, tf_half_pixel_for_nn/round_prefer_ceil, odd extents throughout
    b = B("ops_resize", 35)
    empty = b.inits.append(numpy_helper.from_array(np.zeros([0], np.float32), "empty")) or "empty"
    def scales(v):
        n = b.uid("scales"); b.inits.append(numpy_helper.from_array(np.array(v, np.float32), n)); return n
    r1 = b.op("Resize", ["x", "", scales([1, 1, 2, 2])], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    nc = b.op("Slice", [b.op("Shape", ["x"]), b.i64([0]), b.i64([2])])
    sz = b.op("Concat", [nc, b.i64([11, 4])], axis=0)
    r2 = b.op("Resize", ["x", "", "", sz], mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
    # (align_corners with in*scale not an integer: ONNX Runtime divides by the rounded
    # output extent, the ONNX spec and its reference by in*scale; secc follows the spec)
    r3 = b.op("Resize", ["x", empty, scales([1, 1, 2, 3])], mode="linear",
              coordinate_transformation_mode="align_corners")
    r4 = b.op("Resize", ["x", "", scales([1, 1, 0.6, 0.5])], mode="linear")
    r5 = b.op("Resize", ["x", "", scales([1, 1, 3, 1.7])], mode="nearest",
              coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="round_prefer_ceil")
    r6 = b.op("Resize", ["x", "", scales([1, 1, 0.5, 0.4])], mode="nearest")
    made.append(b.save([("x", ["N", 3, 5, 7])], [r1, r2, r3, r4, r5, r6], opset=13, out_dims=[
        ["N", 3, 10, 14], ["N", 3, 11, 4], ["N", 3, 10, 21], ["N", 3, 3, 3], ["N", 3, 15, 11], ["N", 3, 2, 2]]))

    # Upsample (opset 9, scales input): nearest and linear, as older exporters wrote it
    b = B("ops_upsample9", 36)
    u1 = b.op("Upsample", ["x", scales_init(b, [1, 1, 2, 3])], mode="nearest")
    u2 = b.op("Upsample", ["x", scales_init(b, [1, 1, 2, 2])], mode="linear")
    made.append(b.save([("x", ["N", 2, 3, 5])], [u1, u2], opset=9, out_dims=[["N", 2, 6, 15], ["N", 2, 6, 10]]))

    # ConvTranspose: stride 2 + pads + output_padding (decoder upsampling), groups with
    # dilation, SAME_UPPER, output_shape, no bias
    b = B("ops_conv_transpose", 37)
    t1 = b.op("ConvTranspose", ["x", b.w([6, 4, 3, 3], 0.2), b.w([4])], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    t2 = b.op("ConvTranspose", ["x", b.w([6, 2, 3, 2], 0.2)], group=3, dilations=[2, 1], strides=[1, 2], pads=[0, 1, 1, 0])
    t3 = b.op("ConvTranspose", ["x", b.w([6, 3, 4, 4], 0.2), b.w([3])], strides=[2, 2], auto_pad="SAME_UPPER")
    t4 = b.op("ConvTranspose", ["x", b.w([6, 5, 3, 3], 0.2)], strides=[3, 2], output_shape=[16, 14])
    made.append(b.save([("x", ["N", 6, 5, 7])], [t1, t2, t3, t4], opset=17, out_dims=[
        ["N", 4, 10, 14], ["N", 6, 8, 13], ["N", 3, 10, 14], ["N", 5, 16, 14]]))

    # opset 11 Softmax coerces to 2-D at `axis`
    b = B("ops_softmax11", 30)
    s1 = b.op("Softmax", ["x"], axis=1)
    s2 = b.op("Softmax", ["x"], axis=2)
    made.append(b.save([("x", ["N", 3, 4, 5])], [s1, s2], opset=11))

    # shape ops: Flatten axes, Squeeze without axes, Unsqueeze, Reshape with 0 and -1, an
    # output that is a reshape of the input, and an output that is the input itself
    b = B("ops_shape", 26)
    f0 = b.op("Flatten", ["x"], axis=0)
    f2 = b.op("Flatten", [b.op("Relu", ["x"])], axis=2)
    s = b.op("Squeeze", [b.op("ReduceMean", ["x"], axes=[2], keepdims=1)])
    u = b.op("Unsqueeze", [s, b.i64([0, 3])])
    rs = b.op("Reshape", ["x", b.i64([0, -1, 2])])
    idn = b.op("Identity", ["x"])
    made.append(b.save([("x", [2, 3, 1, 4])], [f0, f2, u, rs, idn],
                       out_dims=[[1, 24], [6, 4], [1, 2, 3, 1, 4], [2, 6, 2], [2, 3, 1, 4]]))
    return made


def bad_models():
    """Models the importer must reject (or, for external data, accept) with clear errors."""
    bad = os.path.join(HERE, "bad")
    os.makedirs(bad, exist_ok=True)
    x = helper.make_tensor_value_info("x", F, ["N", 8, 4, 4])
    y = helper.make_tensor_value_info("y", F, ["N", 8, 4, 4])

    def model(nodes, inits=(), opset=17, name="bad"):
        g = helper.make_graph(nodes, name, [x], [y], list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m

    # three unsupported ops in one model: all must be reported at once
    m = model([
        helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
        helper.make_node("LRN", ["a"], ["b"], name="my_lrn", size=3),
        helper.make_node("TopK", ["b", "k"], ["c", "ci"], name="my_topk"),
        helper.make_node("LpNormalization", ["c"], ["d"], name="my_lpnorm"),
        helper.make_node("Relu", ["d"], ["y"], name="after"),
    ], [numpy_helper.from_array(np.array([2], dtype=np.int64), "k")])
    onnx.save(m, os.path.join(bad, "unsupported_ops.onnx"))

    # Gather with an index out of range
    m = model([helper.make_node("Gather", ["x", "idx"], ["y"], name="float_gather", axis=1)],
              [numpy_helper.from_array(np.array([0, 1, 2, 3, 4, 5, 6, 99], dtype=np.int64), "idx")])
    onnx.save(m, os.path.join(bad, "float_gather.onnx"))

    # Conv with a 3-element pads attribute
    w = numpy_helper.from_array(np.ones([8, 8, 1, 1], dtype=np.float32), "w")
    m = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_bad_pads", pads=[0, 0, 0])], [w])
    onnx.save(m, os.path.join(bad, "bad_pads.onnx"))

    # dynamic image size: the convolution cannot be sized until H and W are fixed
    w = numpy_helper.from_array(np.ones([4, 3, 3, 3], dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_dyn", pads=[1, 1, 1, 1])], "dyn",
                          [helper.make_tensor_value_info("x", F, ["N", 3, "height", "width"])],
                          [helper.make_tensor_value_info("y", F, ["N", 4, "height", "width"])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, os.path.join(bad, "dynamic_hw.onnx"))

    # 1 GiB tensors at batch 1: refused at compile time under a smaller memory limit
    big_in = helper.make_tensor_value_info("x", F, ["N", 256, 1024, 1024])
    big_out = helper.make_tensor_value_info("y", F, ["N", 256, 1024, 1024])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="big_relu"),
                           helper.make_node("Sigmoid", ["r"], ["y"], name="big_sigmoid")], "big", [big_in], [big_out])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, os.path.join(bad, "huge_tensors.onnx"))

    # int64 MaxPool indices used as float data, or returned as a float output
    pool = helper.make_node("MaxPool", ["x"], ["p", "i"], name="pool", kernel_shape=[1, 1])
    m = model([pool, helper.make_node("Cast", ["i"], ["y"], name="cast_indices", to=TensorProto.FLOAT)])
    onnx.save(m, os.path.join(bad, "int64_cast.onnx"))
    m = model([pool, helper.make_node("Identity", ["i"], ["y"], name="idn")])
    onnx.save(m, os.path.join(bad, "int64_as_float.onnx"))

    # run-time operands of the wrong shape: a tensor as Clip bound, per-pixel BatchNorm mean
    m = model([helper.make_node("Relu", ["x"], ["r"], name="r"),
               helper.make_node("Clip", ["x", "r"], ["y"], name="clip_tensor_min")])
    onnx.save(m, os.path.join(bad, "clip_tensor_bound.onnx"))
    c8 = [numpy_helper.from_array(np.ones([8], np.float32), n) for n in ["s", "b", "v"]]
    m = model([helper.make_node("BatchNormalization", ["x", "s", "b", "x", "v"], ["y"], name="bn_pixel_mean")], c8)
    onnx.save(m, os.path.join(bad, "bn_pixel_mean.onnx"))

    # opset 6 is outside the supported range (numpy broadcasting starts at opset 7)
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], opset=6)
    onnx.save(m, os.path.join(bad, "old_opset.onnx"))

    # external data: one model whose data lives next to it, one that points outside its folder
    rng = np.random.default_rng(0)
    for name, loc in [("external_ok", "external_ok.weights"), ("external_escape", "../secret.weights")]:
        b = numpy_helper.from_array(rng.standard_normal([1, 8, 1, 1]).astype(np.float32), "bias")
        b.data_location = TensorProto.EXTERNAL
        raw = numpy_helper.from_array(rng.standard_normal([1, 8, 1, 1]).astype(np.float32), "bias").raw_data
        del b.external_data[:]
        for k, v in [("location", loc), ("offset", "0"), ("length", str(len(raw)))]:
            e = b.external_data.add(); e.key = k; e.value = v
        b.ClearField("raw_data")
        if name == "external_ok":
            with open(os.path.join(bad, loc), "wb") as f:
                f.write(raw)
        m = model([helper.make_node("Add", ["x", "bias"], ["y"], name="add_bias")], [b])
        with open(os.path.join(bad, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())

    # not a model at all, and a truncated one
    with open(os.path.join(bad, "garbage.onnx"), "wb") as f:
        f.write(b"this is not an onnx file\x00\xff" * 8)
    good = open(os.path.join(HERE, "se_torchvision.onnx"), "rb").read()
    with open(os.path.join(bad, "truncated.onnx"), "wb") as f:
        f.write(good[: len(good) // 2])


def cli_models():
    """Models for the CLI tests (tests/models/cli/): no ONNX Runtime outputs needed."""
    cli = os.path.join(HERE, "cli")
    os.makedirs(cli, exist_ok=True)
    # outputs whose names are not file names, and that collide under a lossy sanitiser
    # ("a/b", "a:b" -> "a_b"); "a%2Fb" checks that the escaping itself is escaped
    x = helper.make_tensor_value_info("x", F, ["N", 3, 2, 2])
    names = ["a/b", "a:b", "a_b", "a%2Fb"]
    ops = ["Relu", "Sigmoid", "Tanh", "Exp"]
    nodes = [helper.make_node(op, ["x"], [n], name=f"{op.lower()}_out") for op, n in zip(ops, names)]
    outs = [helper.make_tensor_value_info(n, F, ["N", 3, 2, 2]) for n in names]
    g = helper.make_graph(nodes, "awkward_names", [x], outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="secc-fixtures")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(cli, "awkward_names.onnx"))
    # a 3x3 stride-1 convolution with 40 channels after a 1x1: the Winograd form by default,
    # direct with --no-winograd
    rng = np.random.default_rng(818)
    w1 = (rng.standard_normal([40, 32, 1, 1]) / np.sqrt(32)).astype(np.float32)
    w3 = (rng.standard_normal([40, 40, 3, 3]) / np.sqrt(360)).astype(np.float32)
    b3 = (rng.standard_normal([40]) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w3, "w3"),
             numpy_helper.from_array(b3, "b3")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[1, 1], name="conv1x1"),
             helper.make_node("Relu", ["a"], ["r"], name="relu1"),
             helper.make_node("Conv", ["r", "w3", "b3"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              name="conv3x3"),
             helper.make_node("Relu", ["c"], ["y"], name="relu2")]
    g = helper.make_graph(nodes, "conv3x3", [helper.make_tensor_value_info("x", F, ["N", 32, 9, 10])],
                          [helper.make_tensor_value_info("y", F, ["N", 40, 9, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="secc-fixtures")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(cli, "conv3x3.onnx"))


if __name__ == "__main__":
    main()
