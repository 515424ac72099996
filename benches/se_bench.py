#!/usr/bin/env python3
"""SE-block benchmark: secc fused vs secc unfused vs ONNX Runtime (all graph optimisations
on, and off) vs the memory-traffic floor, side by side in one run.

    bash scripts/setup.sh && cargo build --release -p secc
    .venv/bin/python benches/se_bench.py [--threads 2] [--quick] [--md docs/benchmarks.md]

Floor = 3 * |X| bytes (read X to pool, read X to scale, write Y) / bandwidth, where the
bandwidth is measured in the same run with a secc-compiled streaming kernel (y = relu(x)
over 64 MiB, out of cache, same thread count): 2 * 64 MiB / time.
All times are medians over many runs of the run call alone (no load, no file I/O). The
machine is shared (2 vCPUs), so every engine is measured in several interleaved rounds and the
best median of the rounds is kept, for every engine alike.
"""
import argparse, json, os, subprocess, sys, tempfile, time
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECC = os.path.join(ROOT, "target", "release", "secc")
SHAPES = [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


def se_model(path, c, h, w, r):
    rng = np.random.default_rng(c * 1000 + h)
    t = lambda s, n: numpy_helper.from_array((rng.standard_normal(s) * 0.1).astype(np.float32), n)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Conv", ["p", "w1", "b1"], ["h"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Conv", ["hr", "w2", "b2"], ["g"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["g"], ["gs"]),
        helper.make_node("Mul", ["x", "gs"], ["y"]),
    ]
    g = helper.make_graph(nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, h, w])],
                          [t([r, c, 1, 1], "w1"), t([r], "b1"), t([c, r, 1, 1], "w2"), t([c], "b2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def relu_model(path, n):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "stream",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def secc_compile(onnx_path, art, extra=()):
    subprocess.run([SECC, onnx_path, "-o", art, *extra], check=True, capture_output=True)


def secc_time(onnx_path, art, npy, threads, iters, extra=()):
    if not os.path.exists(art):
        secc_compile(onnx_path, art, extra)
    out = subprocess.run([SECC, "run", art, "--input", f"x={npy}", "--threads", str(threads),
                          "--bench", str(iters), "--warmup", str(max(5, iters // 10)), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_us"]


def ort_session(onnx_path, threads, opt):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if opt else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])


def ort_time(s, x, iters):
    feed = {"x": x}
    for _ in range(max(5, iters // 10)):
        s.run(None, feed)
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        s.run(None, feed)
        ts.append((time.perf_counter() - t0) * 1e6)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--md", help="write the markdown table to this file (between markers)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best median is kept")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="secc-bench-")
    # bandwidth
    n = 16 * 1024 * 1024
    relu_model(os.path.join(tmp, "stream.onnx"), n)
    np.save(os.path.join(tmp, "stream.npy"), np.random.default_rng(0).standard_normal([1, n]).astype(np.float32))
    t = min(secc_time(os.path.join(tmp, "stream.onnx"), os.path.join(tmp, "stream.bin"), os.path.join(tmp, "stream.npy"), a.threads, 20 if a.quick else 60) for _ in range(a.rounds))
    bw = 2 * n * 4 / (t * 1e-6)
    print(f"# streaming bandwidth ({a.threads} threads): {bw / 1e9:.2f} GB/s", flush=True)
    rows = []
    for (c, h, w) in SHAPES:
        r = max(1, c // 16)
        path = os.path.join(tmp, f"se_{c}_{h}.onnx")
        se_model(path, c, h, w, r)
        for batch in (1, 8):
            x = np.random.default_rng(batch).standard_normal([batch, c, h, w]).astype(np.float32)
            npy = os.path.join(tmp, f"x_{c}_{batch}.npy")
            np.save(npy, x)
            xbytes = x.nbytes
            iters = max(30, min(2000, int(2e8 / max(xbytes, 1))))
            if a.quick:
                iters = max(20, iters // 4)
            floor = 3 * xbytes / bw * 1e6
            fb, ub = os.path.join(tmp, f"f_{c}.bin"), os.path.join(tmp, f"u_{c}.bin")
            secc_compile(path, fb)
            secc_compile(path, ub, ["--no-fuse"])
            s_all, s_none = ort_session(path, a.threads, True), ort_session(path, a.threads, False)
            res = {"fused": [], "unfused": [], "ort_all": [], "ort_none": []}
            for _ in range(a.rounds):
                time.sleep(0.2)  # let ORT's spinning pool threads go idle
                res["fused"].append(secc_time(path, fb, npy, a.threads, iters))
                res["unfused"].append(secc_time(path, ub, npy, a.threads, iters))
                res["ort_all"].append(ort_time(s_all, x, iters))
                res["ort_none"].append(ort_time(s_none, x, iters))
            del s_all, s_none
            fused, unfused, ort_all, ort_none = (min(res[k]) for k in ("fused", "unfused", "ort_all", "ort_none"))
            row = dict(c=c, h=h, w=w, batch=batch, floor=floor, fused=fused, unfused=unfused, ort_all=ort_all, ort_none=ort_none)
            rows.append(row)
            print(f"C={c:5} {h}x{w} N={batch}: floor {floor:8.1f}  fused {fused:8.1f}  unfused {unfused:8.1f}  "
                  f"ORT(all) {ort_all:8.1f}  ORT(none) {ort_none:8.1f}  fused/floor {fused / floor:5.2f}  "
                  f"fused/ORT-best {fused / min(ort_all, ort_none):5.2f}", flush=True)
    lines = [f"Streaming bandwidth measured in this run: {bw / 1e9:.2f} GB/s ({a.threads} threads).", "",
             "| C x H x W | N | floor µs | secc fused µs | secc unfused µs | ORT all-opt µs | ORT no-opt µs | fused / floor | fused / best ORT | unfused / fused |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = min(r["ort_all"], r["ort_none"])
        lines.append(f"| {r['c']}x{r['h']}x{r['w']} | {r['batch']} | {r['floor']:.1f} | {r['fused']:.1f} | {r['unfused']:.1f} | "
                     f"{r['ort_all']:.1f} | {r['ort_none']:.1f} | {r['fused'] / r['floor']:.2f} | {r['fused'] / best:.2f} | {r['unfused'] / r['fused']:.2f} |")
    table = "\n".join(lines)
    print(table)
    if a.md:
        text = open(a.md).read()
        s, e = "<!-- bench:se:start -->", "<!-- bench:se:end -->"
        i, j = text.index(s) + len(s), text.index(e)
        open(a.md, "w").write(text[:i] + "\n" + table + "\n" + text[j:])


if __name__ == "__main__":
    main()
