#!/usr/bin/env python3
"""Threads under load: `secc run --threads 2` vs `--threads 1`, idle and with one CPU hog per
core, side by side in one run (rounds interleaved), optionally against an older secc binary.

    bash scripts/setup.sh && cargo build --release -p secc
    .venv/bin/python tests/models/gen_networks.py
    .venv/bin/python benches/load_bench.py [--baseline OLD_SECC] [--rounds 3] [--md docs/benchmarks.md]

A hog is a busy loop in its own process (`python3 -c 'while 1: pass'`), one per core this
process may use, started before and killed after each loaded measurement. Each cell is the
best median over the rounds (the machine is shared; only ratios within one run count).
"""
import argparse, json, os, platform, re, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECC = os.path.join(ROOT, "target", "release", "secc")
MODELS = os.path.join(ROOT, "tests", "models")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hogs(n):
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def stop(ps):
    for p in ps:
        p.send_signal(signal.SIGKILL)
        p.wait()


def bench(secc, art, inp, threads, iters):
    out = subprocess.run([secc, "run", art, "--input", inp, "--threads", str(threads),
                          "--bench", str(iters), "--warmup", "5", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_us"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="an older secc binary to measure beside this one")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--md")
    a = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    tmp = tempfile.mkdtemp(prefix="secc-loadbench-")
    cases = [("SE block 64x56x56", os.path.join(MODELS, "se_bench_64x56x56.onnx"), None, 400),
             ("MobileNetV3-Large", os.path.join(MODELS, "networks", "mobilenetv3_large.onnx"),
              os.path.join(MODELS, "networks", "mobilenetv3_large.in0.npy"), 60)]
    engines = [("secc", SECC)] + ([("baseline", a.baseline)] if a.baseline else [])
    import numpy as np
    arts = {}
    for name, model, npy, iters in cases:
        if npy is None:  # the SE block: made here, as benches/se_bench.py does
            npy = os.path.join(tmp, "se.npy")
            np.save(npy, np.random.default_rng(0).standard_normal((1, 64, 56, 56), dtype=np.float32))
            if not os.path.exists(model):
                model = make_se(tmp)
        for ename, exe in engines:
            art = os.path.join(tmp, f"{ename}-{len(arts)}.bin")
            subprocess.run([exe, model, "-o", art], check=True, capture_output=True)
            arts[(name, ename)] = (art, f"x={npy}", iters)
    best = {}
    for r in range(a.rounds):
        for load in ["idle", "loaded"]:
            ps = hogs(cores) if load == "loaded" else []
            time.sleep(0.3 if ps else 0)
            try:
                for name, _, _, _ in cases:
                    for ename, exe in engines:
                        art, inp, iters = arts[(name, ename)]
                        for t in [1, 2]:
                            us = bench(exe, art, inp, t, iters if load == "idle" else max(iters // 4, 10))
                            k = (name, ename, load, t)
                            best[k] = min(best.get(k, float("inf")), us)
            finally:
                stop(ps)
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    lines = [f"CPU: {cpu_model()}; {cores} usable cores; one busy-loop hog per core when loaded; "
             f"best median of {a.rounds} interleaved rounds; {time.strftime('%Y-%m-%d')}.", "",
             "| model | engine | idle 1T µs | idle 2T µs | loaded 1T µs | loaded 2T µs | idle 2T/1T | loaded 2T/1T |",
             "|---|---|---|---|---|---|---|---|"]
    for name, _, _, _ in cases:
        for ename, _ in engines:
            g = lambda load, t: best[(name, ename, load, t)]
            lines.append(f"| {name} | {ename} | {g('idle', 1):.1f} | {g('idle', 2):.1f} | {g('loaded', 1):.1f} | "
                         f"{g('loaded', 2):.1f} | {g('idle', 2) / g('idle', 1):.2f} | {g('loaded', 2) / g('loaded', 1):.2f} |")
    table = "\n".join(lines)
    print(table)
    if a.md:
        doc = open(a.md).read()
        block = f"<!-- bench:load:start -->\n{table}\n<!-- bench:load:end -->"
        if "<!-- bench:load:start -->" in doc:
            doc = re.sub(r"<!-- bench:load:start -->.*?<!-- bench:load:end -->", lambda _: block, doc, flags=re.S)
        else:
            doc += "\n" + block + "\n"
        open(a.md, "w").write(doc)


def make_se(tmp, c=64, h=56, w=56, r=4):
    """The torchvision-style SE block of benches/se_bench.py."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.1, n) for n, s in
             [("w1", (c // r, c, 1, 1)), ("b1", (c // r,)), ("w2", (c, c // r, 1, 1)), ("b2", (c,))]]
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Conv", ["p", "w1", "b1"], ["f1"]),
             helper.make_node("Relu", ["f1"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["f2"]),
             helper.make_node("Sigmoid", ["f2"], ["g"]),
             helper.make_node("Mul", ["x", "g"], ["y"])]
    g = helper.make_graph(nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", c, h, w])], inits)
    path = os.path.join(tmp, "se.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


if __name__ == "__main__":
    main()
