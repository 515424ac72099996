#!/usr/bin/env python3
"""Generates SE-ResNet-50 (Hu et al. 2018), MobileNetV3-Large (Howard et al. 2019) and
EfficientNet-B0 (Tan & Le 2019) as ONNX files with fixed-seed random weights and
BatchNormalization nodes left as torch.onnx.export leaves them in eval mode (opset 17,
dynamic batch "N"), plus an input and ONNX Runtime's output for each, into
tests/models/networks/ (git-ignored: 20-110 MB each; .ci/run regenerates them).

mobilenetv3_large_dyn is MobileNetV3-Large again (the same weights) with a symbolic image
size, input ["N", 3, "H", "W"] (issue 10), in networks/dynamic/, with inputs and ONNX Runtime outputs at two
sizes: `.s0.*` at 1x3x224x224 and `.s1.*` at 2x3x320x256 (H 320, W 256).

    .venv/bin/python tests/models/gen_networks.py
    .venv/bin/python tests/models/gen_networks.py --no-se-twins   # networks/nose/ only

`--no-se-twins` writes the same three networks with every SE block removed (the block's
input passed on) into networks/nose/, for benches/net_bench.py --se-overhead (issue 9).
"""
import os
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "networks")


class Net:
    def __init__(self, name, seed, with_se=True):
        self.name, self.rng, self.with_se = name, np.random.default_rng(seed), with_se
        self.nodes, self.inits, self.n, self.se_count = [], [], 0, 0

    def uid(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, arr, p):
        name = self.uid(p)
        self.inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def op(self, t, ins, **a):
        out = self.uid(t.lower())
        self.nodes.append(helper.make_node(t, ins, [out], name=self.uid(t), **a))
        return out

    def conv(self, x, cin, cout, k, s=1, groups=1, bias=False):
        fan_in = cin // groups * k * k
        w = self.const(self.rng.standard_normal([cout, cin // groups, k, k]) * np.sqrt(2.0 / fan_in), "w")
        ins = [x, w] + ([self.const(self.rng.standard_normal(cout) * 0.05, "b")] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=groups)

    def bn(self, x, c, gamma=1.0):
        r = self.rng
        return self.op("BatchNormalization", [
            x, self.const(gamma * (1 + 0.1 * r.standard_normal(c)), "gamma"), self.const(0.05 * r.standard_normal(c), "beta"),
            self.const(0.05 * r.standard_normal(c), "mean"), self.const(1 + 0.1 * r.random(c), "var")], epsilon=1e-5)

    def act(self, x, kind):
        if kind == "relu":
            return self.op("Relu", [x])
        if kind == "hswish":
            return self.op("HardSwish", [x])
        if kind == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        return x

    def se(self, x, c, sq, inner, gate):
        if not self.with_se:
            return x  # the no-SE twin: the block removed, its input passed on
        self.se_count += 1
        p = self.op("GlobalAveragePool", [x])
        h = self.act(self.conv(p, c, sq, 1, bias=True), inner)
        g = self.conv(h, sq, c, 1, bias=True)
        g = self.op("Sigmoid", [g]) if gate == "sigmoid" else self.op("HardSigmoid", [g], alpha=1.0 / 6.0, beta=0.5)
        return self.op("Mul", [x, g])

    def head(self, x, cin, hidden=None, hidden_act=None):
        x = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        if hidden:
            x = self.op("Gemm", [x, self.const(self.rng.standard_normal([hidden, cin]) * np.sqrt(1.0 / cin), "fc"),
                                 self.const(np.zeros(hidden), "fcb")], transB=1)
            x = self.act(x, hidden_act)
            cin = hidden
        x = self.op("Dropout", [x])
        return self.op("Gemm", [x, self.const(self.rng.standard_normal([1000, cin]) * np.sqrt(1.0 / cin), "fc"),
                                self.const(np.zeros(1000), "fcb")], transB=1)

    def save(self, x_name, y, in_dims=("N", 3, 224, 224)):
        g = helper.make_graph(self.nodes, self.name,
                              [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, list(in_dims))],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", 1000])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="secc-networks")
        m.ir_version = 8
        onnx.checker.check_model(m)
        # a dynamic-size twin goes to networks/dynamic/, out of the static networks' folder
        # that the check and network tests walk (its tests are in tests/tests/dynamic.rs)
        folder = OUT if in_dims[2:] == (224, 224) else os.path.join(OUT, "dynamic")
        if not self.with_se:
            folder = os.path.join(OUT, "nose")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, self.name + ".onnx")
        onnx.save(m, path)
        return path


def se_resnet50(with_se=True):
    n = Net("se_resnet50", 50, with_se)
    x = n.op("MaxPool", [n.act(n.bn(n.conv("x", 3, 64, 7, 2), 64), "relu")], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = width * 4
            h = n.act(n.bn(n.conv(x, cin, width, 1), width), "relu")
            h = n.act(n.bn(n.conv(h, width, width, 3, s), width), "relu")
            h = n.bn(n.conv(h, width, out, 1), out, gamma=0.3)
            h = n.se(h, out, out // 16, "relu", "sigmoid")
            sc = x if (s == 1 and cin == out) else n.bn(n.conv(x, cin, out, 1, s), out)
            x = n.act(n.op("Add", [sc, h]), "relu")
            cin = out
    return n, n.save("x", n.head(x, 2048))


def make_divisible(v, d=8):
    nv = max(d, int(v + d / 2) // d * d)
    return nv + d if nv < 0.9 * v else nv


def mobilenetv3_large(name="mobilenetv3_large", in_dims=("N", 3, 224, 224), with_se=True):
    n = Net(name, 3, with_se)
    cfg = [(16, 3, 16, 16, False, "relu", 1), (16, 3, 64, 24, False, "relu", 2), (24, 3, 72, 24, False, "relu", 1),
           (24, 5, 72, 40, True, "relu", 2), (40, 5, 120, 40, True, "relu", 1), (40, 5, 120, 40, True, "relu", 1),
           (40, 3, 240, 80, False, "hswish", 2), (80, 3, 200, 80, False, "hswish", 1), (80, 3, 184, 80, False, "hswish", 1),
           (80, 3, 184, 80, False, "hswish", 1), (80, 3, 480, 112, True, "hswish", 1), (112, 3, 672, 112, True, "hswish", 1),
           (112, 5, 672, 160, True, "hswish", 2), (160, 5, 960, 160, True, "hswish", 1), (160, 5, 960, 160, True, "hswish", 1)]
    x = n.act(n.bn(n.conv("x", 3, 16, 3, 2), 16), "hswish")
    for cin, k, exp, out, use_se, a, s in cfg:
        h = x
        if exp != cin:
            h = n.act(n.bn(n.conv(h, cin, exp, 1), exp), a)
        h = n.act(n.bn(n.conv(h, exp, exp, k, s, groups=exp), exp), a)
        if use_se:
            h = n.se(h, exp, make_divisible(exp // 4, 8), "relu", "hardsigmoid")
        h = n.bn(n.conv(h, exp, out, 1), out, gamma=0.5)
        x = n.op("Add", [x, h]) if (s == 1 and cin == out) else h
    x = n.act(n.bn(n.conv(x, 160, 960, 1), 960), "hswish")
    return n, n.save("x", n.head(x, 960, 1280, "hswish"), in_dims)


def efficientnet_b0(with_se=True):
    n = Net("efficientnet_b0", 0, with_se)
    cfg = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
           (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    x = n.act(n.bn(n.conv("x", 3, 32, 3, 2), 32), "silu")
    for ratio, k, stride, cin0, out, layers in cfg:
        for i in range(layers):
            cin, s = (cin0, stride) if i == 0 else (out, 1)
            exp = cin * ratio
            h = x
            if ratio != 1:
                h = n.act(n.bn(n.conv(h, cin, exp, 1), exp), "silu")
            h = n.act(n.bn(n.conv(h, exp, exp, k, s, groups=exp), exp), "silu")
            h = n.se(h, exp, max(1, cin // 4), "silu", "sigmoid")
            h = n.bn(n.conv(h, exp, out, 1), out, gamma=0.5)
            x = n.op("Add", [x, h]) if (s == 1 and cin == out) else h
    x = n.act(n.bn(n.conv(x, 320, 1280, 1), 1280), "silu")
    return n, n.save("x", n.head(x, 1280))


def no_se_twins():
    """The same three networks with every SE block removed, into networks/nose/ (for
    benches/net_bench.py --se-overhead; no test reads them). The removed blocks' weights are
    not drawn, so later layers get other random values: latency does not depend on them."""
    for make in (se_resnet50, mobilenetv3_large, efficientnet_b0):
        net, path = make(with_se=False)
        print(f"{net.name} without SE: {os.path.getsize(path) / 1e6:.1f} MB -> {path}")


def main():
    import onnxruntime as ort
    if "--no-se-twins" in sys.argv[1:]:
        return no_se_twins()
    os.makedirs(OUT, exist_ok=True)
    for make in (se_resnet50, mobilenetv3_large, efficientnet_b0):
        net, path = make()
        x = np.random.default_rng(224).standard_normal([1, 3, 224, 224]).astype(np.float32)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        y = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.save(path[:-5] + ".in0.npy", x)
        np.save(path[:-5] + ".ort0.npy", y)
        with open(path[:-5] + ".se_blocks", "w") as f:
            f.write(str(net.se_count))
        print(f"{net.name}: {net.se_count} SE blocks, logits std {y.std():.3f}, {os.path.getsize(path) / 1e6:.1f} MB")
    # the dynamic-size twin: the same network and weights, H and W symbolic
    net, path = mobilenetv3_large("mobilenetv3_large_dyn", ("N", 3, "H", "W"))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for k, shape in enumerate([[1, 3, 224, 224], [2, 3, 320, 256]]):
        x = np.random.default_rng(224 + k).standard_normal(shape).astype(np.float32)
        y = sess.run(None, {"x": x})[0]
        np.save(f"{path[:-5]}.s{k}.in0.npy", x)
        np.save(f"{path[:-5]}.s{k}.ort0.npy", y)
        print(f"{net.name} s{k}: input {shape}, logits std {y.std():.3f}")
    with open(path[:-5] + ".se_blocks", "w") as f:
        f.write(str(net.se_count))


if __name__ == "__main__":
    main()
