#!/usr/bin/env python3
"""Throughput of concurrent sessions on one model, and the Python call overhead.

1. Images/s (batch 1) of N sessions (1, 2, 4) running one shared secc.Model at once, one
   thread each (Python threads calling Model.run: the GIL is released while the model runs,
   so this is the runtime's concurrency), against one session alone; also one session with
   all cores (the latency setting) for scale. Rounds interleave the settings.
2. The Python call overhead on the SE block (examples/se_block.onnx): the median of
   Model.run called from Python (dict in, numpy conversion, dict out) minus the median of
   the same run timed inside the runtime (Model.bench, the Rust API's Session::bench).

    bash scripts/setup.sh && .venv/bin/pip install ./python
    .venv/bin/python tests/models/gen_networks.py
    .venv/bin/python benches/sessions_bench.py [--seconds 3] [--rounds 3] [--md docs/benchmarks.md]
"""
import argparse, os, platform, statistics, tempfile, threading, time
import numpy as np
import secc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = os.path.join(ROOT, "tests", "models", "networks")


def cpu_model():
    info = open("/proc/cpuinfo").read()
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    return f"{name}, {len(os.sched_getaffinity(0))} usable CPUs"


def feed(model, seed=0):
    io = model.inputs[0]
    shape = tuple(1 if isinstance(d, str) else d for d in io.shape)
    return {io.name: np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)}


def throughput(model, x, sessions, seconds):
    """Images/s of `sessions` threads calling model.run for `seconds`."""
    counts = [0] * sessions
    stop = time.perf_counter() + seconds
    start = threading.Barrier(sessions + 1)

    def work(i):
        start.wait()
        while time.perf_counter() < stop:
            model.run(x)
            counts[i] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(sessions)]
    for t in ts:
        t.start()
    t0 = time.perf_counter()
    start.wait()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def median_us(f, iters):
    runs = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        runs.append((time.perf_counter() - t) * 1e6)
    return statistics.median(runs)


def python_overhead(model, x, iters):
    """Medians: run() (new output arrays), run(out=) (caller's arrays), Session::bench."""
    out = model.output_arrays()
    return (median_us(lambda: model.run(x), iters), median_us(lambda: model.run(x, out=out), iters),
            model.bench(x, iters=iters, warmup=10)["median_us"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nets", default="mobilenetv3_large,se_resnet50")
    ap.add_argument("--md", help="append the tables to this markdown file")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    cores = len(os.sched_getaffinity(0))
    lines = [f"CPU: {cpu_model()}; {a.rounds} interleaved rounds of {a.seconds:.0f} s, best round kept", "",
             "| network | setting | images/s | vs one session |", "|---|---|---|---|"]
    for net in a.nets.split(","):
        art = os.path.join(tmp, net + ".bin")
        secc.compile(os.path.join(NETS, net + ".onnx"), art)
        one = secc.Model(art, threads=1)
        wide = secc.Model(art, threads=cores)
        x = feed(one)
        one.run(x), wide.run(x)
        settings = [("1 session, 1 thread", one, 1), ("2 sessions, 1 thread each", one, 2),
                    ("4 sessions, 1 thread each", one, 4), (f"1 session, {cores} threads", wide, 1)]
        best = {s[0]: 0.0 for s in settings}
        for _ in range(a.rounds):
            for label, m, n in settings:
                best[label] = max(best[label], throughput(m, x, n, a.seconds))
        base = best[settings[0][0]]
        for label, _, _ in settings:
            lines.append(f"| {net} | {label} | {best[label]:.1f} | {best[label] / base:.2f} |")
            print(lines[-1], flush=True)
    se = os.path.join(tmp, "se_block.bin")
    secc.compile(os.path.join(ROOT, "examples", "se_block.onnx"), se)
    lines += ["", "| SE block (examples/se_block.onnx), batch 1, 1 thread | median µs | overhead vs Rust µs |",
              "|---|---|---|"]
    m = secc.Model(se, threads=1)
    x = feed(m)
    rows = [python_overhead(m, x, 2000) for _ in range(a.rounds)]
    py, into, rs = (min(r[i] for r in rows) for i in range(3))
    lines.append(f"| Session::bench (Rust API, no Python) | {rs:.1f} | - |")
    lines.append(f"| Python Model.run(inputs): new output arrays | {py:.1f} | {py - rs:.1f} |")
    lines.append(f"| Python Model.run(inputs, out=arrays): written in place | {into:.1f} | {into - rs:.1f} |")
    print("\n".join(lines))
    if a.md:
        with open(a.md, "a") as f:
            f.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
