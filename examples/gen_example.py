#!/usr/bin/env python3
"""Writes examples/se_block.onnx (a torchvision-style SE block, 64 channels, 56x56, batch
symbolic) and examples/se_block.x.npy (one 1x64x56x56 input). Rerunnable, fixed seed."""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(2018)
c, r = 64, 4
w = lambda s, n: numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
nodes = [
    helper.make_node("GlobalAveragePool", ["x"], ["p"], name="se/pool"),
    helper.make_node("Conv", ["p", "fc1.w", "fc1.b"], ["h"], name="se/fc1", kernel_shape=[1, 1]),
    helper.make_node("Relu", ["h"], ["hr"], name="se/relu"),
    helper.make_node("Conv", ["hr", "fc2.w", "fc2.b"], ["g"], name="se/fc2", kernel_shape=[1, 1]),
    helper.make_node("Sigmoid", ["g"], ["gs"], name="se/gate"),
    helper.make_node("Mul", ["x", "gs"], ["y"], name="se/scale"),
]
g = helper.make_graph(nodes, "se_block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 56, 56])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, 56, 56])],
                      [w([r, c, 1, 1], "fc1.w"), w([r], "fc1.b"), w([c, r, 1, 1], "fc2.w"), w([c], "fc2.b")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="secc-example")
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, os.path.join(here, "se_block.onnx"))
np.save(os.path.join(here, "se_block.x.npy"), rng.standard_normal([1, c, 56, 56]).astype(np.float32))
