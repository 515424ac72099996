#!/usr/bin/env python3
"""Dynamic image sizes: what one artifact for every size costs (issue 10), side by side in
one run, rounds interleaved.

1. MobileNetV3-Large exported with input [N, 3, H, W], compiled once dynamic and once
   specialised to 1x3x224x224 (`--input-shape x=1,3,224,224`); latency of each at 224x224,
   at every thread count, and the ratio dynamic / specialised.
2. The per-call cost of a new size (the runtime binds the symbols, checks the constraints
   and plans memory for that binding) and of switching back to a cached size: for the same
   network and for a small SE model (tests/models/dynamic/se_dynamic_hw.onnx, where the
   run itself is short enough for a few microseconds to show).

    bash scripts/setup.sh && .venv/bin/pip install ./python
    .venv/bin/python tests/models/gen_networks.py
    .venv/bin/python benches/dynamic_bench.py [--threads 2,1] [--rounds 3] [--md docs/benchmarks.md]

Latencies are the best over rounds of the median over `--runs` calls through the Python
package (the same small call overhead in every figure); only ratios within one run count.
"""
import argparse, os, tempfile, time
import numpy as np
import secc
from net_bench import cpu_model, timed  # same directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = os.path.join(ROOT, "tests", "models", "networks", "dynamic", "mobilenetv3_large_dyn.onnx")
SMALL = os.path.join(ROOT, "tests", "models", "dynamic", "se_dynamic_hw.onnx")


def median_us(f, runs):
    return timed(f, runs) * 1e3


def image(shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def binding_costs(art, c, sizes, threads, runs):
    """(steady us at sizes[0], switch cost us, new-binding cost us) on one model object."""
    m = secc.Model(art, threads=threads)
    name = m.inputs[0].name
    a = {name: image((1, c) + sizes[0], 1)}
    b = {name: image((1, c) + sizes[1], 2)}
    steady = median_us(lambda: m.run(a), runs)
    # alternating two cached bindings: each call switches
    alt = []
    for i in range(runs):
        t = time.perf_counter()
        m.run(a if i % 2 == 0 else b)
        if i % 2 == 0:
            alt.append((time.perf_counter() - t) * 1e6)
    switch = float(np.median(alt)) - steady
    # fresh sizes: the first call binds and plans, the second reuses; the cache holds 8
    # bindings, so each size is new when first seen
    first = []
    for k in range(min(runs, 24)):
        h, w = sizes[0][0] + 8 * (k + 1), sizes[0][1] + 8 * (k % 3)
        x = {name: image((1, c, h, w), 3 + k)}
        t = time.perf_counter()
        m.run(x)
        t1 = (time.perf_counter() - t) * 1e6
        t = time.perf_counter()
        m.run(x)
        t2 = (time.perf_counter() - t) * 1e6
        first.append(t1 - t2)
    return steady, switch, float(np.median(first))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--md")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    tmp = tempfile.mkdtemp()
    dyn, spec, small = (os.path.join(tmp, n) for n in ("dyn.bin", "spec.bin", "small.bin"))
    secc.compile(NET, dyn)
    secc.compile(NET, spec, input_shape={"x": (1, 3, 224, 224)})
    secc.compile(SMALL, small)
    x = {"x": image((1, 3, 224, 224), 0)}
    rows = []
    for t in threads:
        md, ms = secc.Model(dyn, threads=t), secc.Model(spec, threads=t)
        best = {"dyn": float("inf"), "spec": float("inf")}
        for _ in range(args.rounds):
            best["dyn"] = min(best["dyn"], median_us(lambda: md.run(x), args.runs))
            best["spec"] = min(best["spec"], median_us(lambda: ms.run(x), args.runs))
        net = binding_costs(dyn, 3, [(224, 224), (320, 256)], t, args.runs)
        sm = binding_costs(small, 24, [(56, 56), (28, 40)], t, args.runs * 10)
        rows.append((t, best["dyn"], best["spec"], net, sm))
    lines = [f"CPU: {cpu_model()}", "",
             "| threads | dynamic [N,3,H,W] at 224x224 ms | specialised 1x3x224x224 ms | dynamic / specialised | new size, MobileNetV3 us | switch to cached size, MobileNetV3 us | SE model run us | new size, SE model us | switch, SE model us |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t, d, s, net, sm in rows:
        lines.append(f"| {t} | {d/1e3:.2f} | {s/1e3:.2f} | {d/s:.3f} | {net[2]:.0f} | {net[1]:.0f} | {sm[0]:.1f} | {sm[2]:.1f} | {sm[1]:.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.md:
        with open(args.md, "a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
