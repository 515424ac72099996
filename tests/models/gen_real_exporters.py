#!/usr/bin/env python3
"""Small SE networks written by the REAL exporters (not hand-built look-alikes), committed under
tests/models/exporters/ with an input batch, ONNX Runtime's output and the number of SE blocks
(`<name>.onnx`, `<name>.in0.npy`, `<name>.ort0.npy`, `<name>.se_blocks`). CI never runs this:
the tests only load the committed files.

Made with (Python 3.11, CPU):
  torch part:  torch 2.15.0, timm 1.0.31, onnxscript 0.7.2, onnx 1.23.2, onnxruntime 1.32.0
  tf part:     tensorflow(-cpu) 2.21.0, tf-keras 2.21.0, tf2onnx 1.17.0, onnx 1.23.2,
               onnxruntime 1.32.0
each in its own virtual environment outside the repository (tf2onnx and torch disagree on
protobuf):

    python3 -m venv /work/venv-export
    /work/venv-export/bin/pip install torch timm onnx onnxruntime onnxscript numpy
    /work/venv-export/bin/python tests/models/gen_real_exporters.py torch
    python3 -m venv /work/venv-tf
    /work/venv-tf/bin/pip install tensorflow-cpu tf2onnx tf-keras onnxruntime
    TF_USE_LEGACY_KERAS=1 /work/venv-tf/bin/python tests/models/gen_real_exporters.py tf

Models (batch dimension dynamic in every one):
- torch_script_se_glue / torch_dynamo_se_glue: one PyTorch module, exported by the
  TorchScript exporter (dynamo=False, opset 17) and by the dynamo exporter (opset 18). Five SE
  blocks in the spellings found in the wild: `x.mean((2, 3))` + nn.Linear + `g[:, :, None,
  None]`; the classic SENet `avg_pool(x).view(b, c)` / `.view(b, c, 1, 1)` with bias-free
  Linears; `adaptive_avg_pool2d(x, 1).flatten(1)` + Hardsigmoid + `unsqueeze(-1).unsqueeze(-1)`;
  a channels-last FC (`permute(0, 2, 3, 1)`, Linear on 4-D = MatMul + Add, permute back); and
  `x.mean((2, 3))[:, :, None, None]` into 1x1-conv FCs.
- timm_efficientnet_same: timm EfficientNet blocks with pad_type='same' (TF "same" padding
  computed at run time from x.size(), which the TorchScript exporter writes as a Shape / Slice /
  arithmetic subgraph feeding Pad) and timm's SqueezeExcite (mean keepdim, 1x1 convs, SiLU,
  sigmoid). TorchScript exporter, opset 17.
- timm_mobilenetv3_same: timm MobileNetV3 blocks, pad_type='same', SE with ReLU and timm's
  hard_sigmoid gate. TorchScript exporter, opset 17.
- tf2onnx_keras_se / tf2onnx_keras_se_noopt: a Keras MobileNetV3-style network (NHWC) with
  three SE spellings: keras.applications' `GlobalAveragePooling2D(keepdims=True)` + 1x1 Conv2D
  + ReLU + 1x1 Conv2D + hard sigmoid `ReLU(6)(x + 3) * (1/6)`; the older
  `GlobalAveragePooling2D()` + `Reshape((1, 1, c))` before the 1x1 convs; and Dense FCs with a
  `Reshape((1, 1, c))` before the Multiply. Converted by tf2onnx (opset 13) with its default
  optimizers, and with optimizers={} (true NHWC graph: ReduceMean over axes [1, 2], Transposes
  around every Conv).
"""
import os
import sys
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exporters")
BATCH = 2


def reference(path, xname, x, se_blocks):
    """Runs ONNX Runtime (graph optimisations off) and writes input, output and SE count."""
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(onnx.load(path))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    y = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {xname: x})[0]
    base = path[:-5]
    np.save(base + ".in0.npy", x)
    np.save(base + ".ort0.npy", y)
    with open(base + ".se_blocks", "w") as f:
        f.write(str(se_blocks))
    print(f"{os.path.basename(base)}: {se_blocks} SE blocks, output {list(y.shape)} std {y.std():.4f}, "
          f"{os.path.getsize(path) / 1e3:.0f} kB")


# ---------------------------------------------------------------------------------------- torch

def torch_models():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class SeIndex(nn.Module):
        """mean over (2, 3), nn.Linear FCs, gate reshaped with g[:, :, None, None]."""
        def __init__(self, c, r):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(c, r), nn.Linear(r, c)

        def forward(self, x):
            s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
            return x * s[:, :, None, None]

    class SeView(nn.Module):
        """The classic SENet spelling: avg_pool(x).view(b, c), bias-free FCs, .view(b, c, 1, 1)."""
        def __init__(self, c, r):
            super().__init__()
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Sequential(nn.Linear(c, r, bias=False), nn.ReLU(inplace=True),
                                    nn.Linear(r, c, bias=False), nn.Sigmoid())

        def forward(self, x):
            b, c, _, _ = x.size()
            y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
            return x * y.expand_as(x)

    class SeFlatten(nn.Module):
        """adaptive_avg_pool2d(x, 1).flatten(1), SiLU and Hardsigmoid, unsqueeze per axis."""
        def __init__(self, c, r):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(c, r), nn.Linear(r, c)

        def forward(self, x):
            s = F.adaptive_avg_pool2d(x, 1).flatten(1)
            s = F.hardsigmoid(self.fc2(F.silu(self.fc1(s))))
            return s.unsqueeze(-1).unsqueeze(-1) * x

    class SeChannelsLast(nn.Module):
        """FCs applied channels-last on the 4-D pooled map: Linear on [N,1,1,C] (MatMul + Add)."""
        def __init__(self, c, r):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(c, r), nn.Linear(r, c)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True).permute(0, 2, 3, 1)
            s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
            return x * s.permute(0, 3, 1, 2)

    class SeMeanConv(nn.Module):
        """A flat mean unsqueezed back with [:, :, None, None] into 1x1-conv FCs."""
        def __init__(self, c, r):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)

        def forward(self, x):
            s = x.mean((2, 3))[:, :, None, None]
            return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))

    def cbr(cin, cout, k, s=1, g=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = cbr(3, 16, 3, 2)
            self.se1 = SeIndex(16, 4)
            self.b2 = nn.Sequential(cbr(16, 24, 1), cbr(24, 24, 3, 2, 24))
            self.se2 = SeView(24, 8)
            self.b3 = nn.Sequential(cbr(24, 32, 1), cbr(32, 32, 3, 1, 32))
            self.se3 = SeFlatten(32, 8)
            self.b4 = cbr(32, 32, 3, 2, 32)
            self.se4 = SeChannelsLast(32, 8)
            self.b5 = cbr(32, 32, 3, 1, 32)
            self.se5 = SeMeanConv(32, 8)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            x = self.se1(self.stem(x))
            x = self.se2(self.b2(x))
            x = self.se3(self.b3(x))
            x = self.se4(self.b4(x))
            x = self.se5(self.b5(x))
            return self.head(x.mean((2, 3)))

    torch.manual_seed(0)
    net = randomise_bn(Net().eval())
    x = torch.randn(BATCH, 3, 32, 32)
    export_ts(net, x, "torch_script_se_glue", 5)
    export_dynamo(net, x, "torch_dynamo_se_glue", 5)
    timm_models()


def randomise_bn(net):
    """Non-trivial BatchNorm statistics so folding them is visible in the numbers."""
    import torch
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            m.running_var.copy_(1 + 0.2 * torch.rand(c, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(c, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=g))
    return net


def export_ts(net, x, name, se_blocks):
    import torch
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    reference(path, "x", x.numpy(), se_blocks)


def export_dynamo(net, x, name, se_blocks):
    import torch
    path = os.path.join(OUT, name + ".onnx")
    prog = torch.onnx.export(net, (x,), dynamo=True, opset_version=18, input_names=["x"],
                             output_names=["y"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    prog.save(path, external_data=False)
    reference(path, "x", x.numpy(), se_blocks)


def timm_models():
    import torch
    from timm.models.efficientnet import EfficientNet
    from timm.models.mobilenetv3 import MobileNetV3
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models._efficientnet_blocks import SqueezeExcite
    from functools import partial

    torch.manual_seed(2)
    # stride-2 stages use timm's Conv2dSame (padding computed from the input size at run time)
    arch = [["ds_r1_k3_s1_e1_c8_se0.25"], ["ir_r1_k3_s2_e4_c12_se0.25"], ["ir_r1_k5_s2_e3_c16_se0.25"]]
    net = EfficientNet(decode_arch_def(arch), num_classes=10, num_features=32, stem_size=8,
                       pad_type="same", act_layer=torch.nn.SiLU).eval()
    x = torch.randn(BATCH, 3, 33, 31)  # odd sizes: asymmetric "same" pads
    export_ts(randomise_bn(net), x, "timm_efficientnet_same", 3)

    torch.manual_seed(3)
    arch = [["ds_r1_k3_s2_e1_c8_se0.25_nre"], ["ir_r1_k3_s2_e4_c12_se0.25_nre"], ["ir_r1_k5_s1_e3_c16_se0.25"]]
    se = partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=torch.nn.ReLU,
                 rd_round_fn=lambda c: max(4, int(c)))
    net = MobileNetV3(decode_arch_def(arch), num_classes=10, num_features=32, stem_size=8,
                      pad_type="same", act_layer=torch.nn.Hardswish,
                      se_layer=se).eval()
    x = torch.randn(BATCH, 3, 32, 30)
    export_ts(randomise_bn(net), x, "timm_mobilenetv3_same", 3)


# ------------------------------------------------------------------------------------------- tf

def tf_models():
    import tensorflow as tf
    import tf_keras as keras
    import tf2onnx
    L = keras.layers

    def hard_sigmoid(x):  # keras.applications.mobilenet_v3.hard_sigmoid
        return L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)

    def hard_swish(x):
        return L.Multiply()([x, hard_sigmoid(x)])

    def se_keepdims(x, c, r):  # keras.applications.mobilenet_v3._se_block
        s = L.GlobalAveragePooling2D(keepdims=True)(x)
        s = L.ReLU()(L.Conv2D(r, 1, padding="same")(s))
        return L.Multiply()([x, hard_sigmoid(L.Conv2D(c, 1, padding="same")(s))])

    def se_reshape(x, c, r):  # older Keras: pool to [N, C] and Reshape((1, 1, C))
        s = L.Reshape((1, 1, c))(L.GlobalAveragePooling2D()(x))
        s = L.ReLU()(L.Conv2D(r, 1, padding="same")(s))
        s = L.Activation("sigmoid")(L.Conv2D(c, 1, padding="same")(s))
        return L.Multiply()([x, s])

    def se_dense(x, c, r):  # Dense FCs, Reshape before the Multiply
        s = L.GlobalAveragePooling2D()(x)
        s = L.Dense(c, activation="hard_sigmoid")(L.Dense(r, activation="relu")(s))  # Keras 2: clip(0.2x + 0.5)
        return L.Multiply()([x, L.Reshape((1, 1, c))(s)])

    def block(x, cin, exp, cout, k, s, se):
        h = hard_swish(L.BatchNormalization()(L.Conv2D(exp, 1, use_bias=False)(x)))
        h = L.DepthwiseConv2D(k, s, padding="same", use_bias=False)(h)
        h = hard_swish(L.BatchNormalization()(h))
        h = se(h, exp, max(4, exp // 4))
        h = L.BatchNormalization()(L.Conv2D(cout, 1, use_bias=False)(h))
        return L.Add()([x, h]) if (s == 1 and cin == cout) else h

    keras.utils.set_random_seed(4)
    inp = keras.Input((32, 32, 3), name="input")
    x = hard_swish(L.BatchNormalization()(L.Conv2D(8, 3, 2, padding="same", use_bias=False)(inp)))
    x = block(x, 8, 16, 8, 3, 1, se_keepdims)
    x = block(x, 8, 24, 16, 3, 2, se_reshape)
    x = block(x, 16, 32, 16, 5, 1, se_dense)
    x = L.GlobalAveragePooling2D()(x)
    y = L.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(5)
    for layer in model.layers:  # non-trivial BatchNorm statistics and biases (Keras starts at 0)
        if isinstance(layer, L.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([1 + 0.1 * rng.standard_normal(g.shape), 0.1 * rng.standard_normal(b.shape),
                               0.1 * rng.standard_normal(m.shape), 1 + 0.2 * rng.random(v.shape)])
        elif isinstance(layer, (L.Conv2D, L.Dense)) and layer.use_bias:
            w, b = layer.get_weights()
            layer.set_weights([w, 0.1 * rng.standard_normal(b.shape)])
    x = rng.standard_normal((BATCH, 32, 32, 3)).astype(np.float32)
    sig = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="input"),)
    for name, opt in (("tf2onnx_keras_se", None), ("tf2onnx_keras_se_noopt", {})):
        path = os.path.join(OUT, name + ".onnx")
        tf2onnx.convert.from_keras(model, input_signature=sig, opset=13, output_path=path, optimizers=opt)
        reference(path, "input", x, 3)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    if part == "torch":
        torch_models()
    elif part == "tf":
        tf_models()
    else:
        sys.exit("usage: gen_real_exporters.py torch|tf (see the module docstring)")
