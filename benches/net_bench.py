#!/usr/bin/env python3
"""Whole-network latency: secc vs ONNX Runtime, batch 1, side by side in one run.

    bash scripts/setup.sh && cargo build --release -p secc
    .venv/bin/python tests/models/gen_networks.py
    .venv/bin/python benches/net_bench.py [--threads 2] [--md docs/benchmarks.md]
"""
import argparse, json, os, subprocess, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECC = os.path.join(ROOT, "target", "release", "secc")
NETS = os.path.join(ROOT, "tests", "models", "networks")


def main():
    import onnxruntime as ort
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--md")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="secc-netbench-")
    rows = []
    for name in ["se_resnet50", "mobilenetv3_large", "efficientnet_b0"]:
        model = os.path.join(NETS, name + ".onnx")
        npy = os.path.join(NETS, name + ".in0.npy")
        art = os.path.join(tmp, name + ".bin")
        t0 = time.perf_counter()
        subprocess.run([SECC, model, "-o", art], check=True, capture_output=True)
        compile_s = time.perf_counter() - t0
        insp = json.loads(subprocess.run([SECC, "inspect", art, "--json"], check=True, capture_output=True, text=True).stdout)
        out = subprocess.run([SECC, "run", art, "--input", f"x={npy}", "--threads", str(a.threads), "--bench", "10", "--warmup", "2", "--json"],
                             check=True, capture_output=True, text=True).stdout
        secc_ms = json.loads(out)["median_us"] / 1e3
        x = np.load(npy)
        res = {}
        for label, level in [("all", ort.GraphOptimizationLevel.ORT_ENABLE_ALL), ("none", ort.GraphOptimizationLevel.ORT_DISABLE_ALL)]:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads, so.graph_optimization_level = a.threads, 1, level
            s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            for _ in range(3):
                s.run(None, {"x": x})
            ts = []
            for _ in range(20):
                t = time.perf_counter()
                s.run(None, {"x": x})
                ts.append((time.perf_counter() - t) * 1e3)
            res[label] = float(np.median(ts))
            del s
        rows.append((name, insp["se_blocks"], len(insp["kernels"]), compile_s, secc_ms, res["all"], res["none"]))
        print(rows[-1], flush=True)
    lines = ["| network | SE blocks fused | kernels | compile s | secc ms | ORT all-opt ms | ORT no-opt ms | secc / best ORT |", "|---|---|---|---|---|---|---|---|"]
    for n, se, k, c, s_ms, oa, on in rows:
        lines.append(f"| {n} | {se} | {k} | {c:.1f} | {s_ms:.1f} | {oa:.1f} | {on:.1f} | {s_ms / min(oa, on):.1f} |")
    table = "\n".join(lines)
    print(table)
    if a.md:
        text = open(a.md).read()
        st, en = "<!-- bench:net:start -->", "<!-- bench:net:end -->"
        i, j = text.index(st) + len(st), text.index(en)
        open(a.md, "w").write(text[:i] + "\n" + table + "\n" + text[j:])


if __name__ == "__main__":
    main()
