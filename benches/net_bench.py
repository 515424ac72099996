#!/usr/bin/env python3
"""Whole-network latency, batch 1: secc vs ONNX Runtime (all optimisations) vs OpenVINO
(CPU plugin, f32, latency hint, one stream), side by side in one run, rounds interleaved,
at each thread count; plus the machine's FMA peak measured in the same run and a per-layer
table for SE-ResNet-50 (GFLOP/s per convolution vs that peak).

    bash scripts/setup.sh && cargo build --release -p secc
    .venv/bin/python tests/models/gen_networks.py
    .venv/bin/python benches/net_bench.py [--threads 2,1] [--rounds 3] [--baseline OLD_SECC]
                                          [--md docs/benchmarks.md] [--se-overhead]

--se-overhead also times each network's no-SE twin (written by
`tests/models/gen_networks.py --no-se-twins`) and reports latency(net) / latency(twin) per
engine, the SE overhead of issue 9.

Each figure is the best over rounds of the median over `--runs` calls; only ratios taken
within one run mean anything on a shared machine.
"""
import argparse, json, os, platform, subprocess, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECC = os.path.join(ROOT, "target", "release", "secc")
NETS = os.path.join(ROOT, "tests", "models", "networks")
NAMES = ["se_resnet50", "mobilenetv3_large", "efficientnet_b0"]


def cpu_model():
    info = open("/proc/cpuinfo").read()
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    simd = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "SSE")
    return f"{name}, {os.cpu_count()} logical CPUs, {simd}"


def fma_peak(threads):
    """GFLOP/s of pure FMAs for 1..threads threads (benches/fma_peak.c, built here)."""
    exe = os.path.join(tempfile.gettempdir(), "secc_fma_peak")
    subprocess.run(["cc", "-O3", "-march=native", "-pthread", os.path.join(ROOT, "benches", "fma_peak.c"), "-o", exe], check=True)
    return json.loads(subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True).stdout)["gflops"]


def secc_ms(exe, art, npy, threads, runs):
    out = subprocess.run([exe, "run", art, "--input", f"x={npy}", "--threads", str(threads), "--bench", str(runs), "--warmup", "3", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_us"] / 1e3


def timed(f, runs):
    for _ in range(3):
        f()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts))


def ort_session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ov_compiled(model, threads):
    import openvino as ov
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)}
    return core.compile_model(core.read_model(model), "CPU", cfg)


def conv_flops(model):
    """FLOPs (2 per multiply-add) of every Conv node, by node name."""
    import onnx
    from onnx import shape_inference
    m = shape_inference.infer_shapes(onnx.load(model))
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim] for v in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
    init = {t.name: list(t.dims) for t in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        if n.op_type != "Conv" or n.output[0] not in shapes:
            continue
        w = init.get(n.input[1])
        y = shapes[n.output[0]]
        if w is None:
            continue
        out[n.name] = 2 * int(np.prod(y)) * w[1] * w[2] * w[3], y, w
    return out


def layer_table(art, model, peak1):
    prof = json.loads(subprocess.run([SECC, "run", art, "--input", f"x={os.path.join(NETS, 'se_resnet50.in0.npy')}", "--threads", "1", "--profile", "10", "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    flops = conv_flops(model)
    # a convolution may run as several kernels (Winograd: input transform, GEMM, output
    # transform): its time is theirs together
    per = {}
    for k in prof["kernels"]:
        if k["origin"] in flops:
            e = per.setdefault(k["origin"], [0.0, []])
            e[0] += k["mean_us"]
            e[1].append(k["kind"])
    rows = []
    for origin, (us, kinds) in per.items():
        f = flops[origin]
        g = f[0] / (us * 1e3)
        kind = "winograd" if "wino_gemm" in kinds else "+".join(kinds)
        rows.append((origin, kind, f[2], f[1], us, g, g / peak1))
    rows.sort(key=lambda r: -r[4])
    total = sum(r[4] for r in rows)
    lines = [f"Convolutions: {total / 1e3:.1f} ms of the 1-thread run; peak {peak1:.0f} GFLOP/s per core (FMA loop, same run). "
             "GFLOP/s counts a direct convolution's FLOPs, so a Winograd one's is its effective rate (it may pass the peak).", "",
             "| conv | kernel | weights OIHW | output | µs | GFLOP/s | of peak |", "|---|---|---|---|---|---|---|"]
    for o, kind, w, y, us, g, frac in rows:
        lines.append(f"| {o} | {kind} | {'x'.join(map(str, w))} | {'x'.join(map(str, y[1:]))} | {us:.0f} | {g:.0f} | {frac:.0%} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--baseline", help="an older secc binary to compare with in the same run")
    ap.add_argument("--md")
    ap.add_argument("--se-overhead", action="store_true",
                    help="also run each network's no-SE twin (tests/models/gen_networks.py --no-se-twins) "
                         "and report latency(net) / latency(twin) per engine")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    tmp = tempfile.mkdtemp(prefix="secc-netbench-")
    cpu = cpu_model()
    peak = fma_peak(max(threads))
    print(cpu, "FMA peak GFLOP/s by threads:", peak, flush=True)
    engines = ["secc"] + (["baseline"] if a.baseline else []) + ["ort", "openvino"]
    arts, kernels, best = {}, {}, {}
    # key -> (model, input): the networks, and with --se-overhead their no-SE twins
    models = {n: (os.path.join(NETS, n + ".onnx"), os.path.join(NETS, n + ".in0.npy")) for n in NAMES}
    if a.se_overhead:
        for n in NAMES:
            twin = os.path.join(NETS, "nose", n + ".onnx")
            if not os.path.exists(twin):
                raise SystemExit(f"{twin} missing: run tests/models/gen_networks.py --no-se-twins")
            models[n + " (no SE)"] = (twin, models[n][1])
    for name, (model, _) in models.items():
        for label, exe in [("secc", SECC), ("baseline", a.baseline)]:
            if exe is None:
                continue
            art = os.path.join(tmp, f"{name.replace(' ', '_')}.{label}.bin")
            subprocess.run([exe, model, "-o", art], check=True, capture_output=True)
            arts[name, label] = art
        kernels[name] = len(json.loads(subprocess.run([SECC, "inspect", arts[name, "secc"], "--json"], check=True, capture_output=True, text=True).stdout)["kernels"])
    for r in range(a.rounds):
        for name, (model, npy) in models.items():
            x = np.load(npy)
            for t in threads:
                # each round starts with another engine, and each measurement after a pause:
                # the peers run in this process, and their thread pools may still spin for
                # a moment after a run, which slows whatever runs next
                order = engines[r % len(engines):] + engines[:r % len(engines)]
                for e in order:
                    time.sleep(0.2)
                    if e in ("secc", "baseline"):
                        ms = secc_ms(SECC if e == "secc" else a.baseline, arts[name, e], npy, t, a.runs)
                    elif e == "ort":
                        s = ort_session(model, t)
                        ms = timed(lambda: s.run(None, {"x": x}), a.runs)
                        del s
                    else:
                        c = ov_compiled(model, t)
                        req = c.create_infer_request()
                        ms = timed(lambda: req.infer({0: x}), a.runs)
                        del req, c
                    k = (name, t, e)
                    best[k] = min(best.get(k, float("inf")), ms)
            print(f"round {r + 1}: {name} done", flush=True)
    head = "| network | threads | kernels | secc ms |" + (" baseline ms |" if a.baseline else "") + " ORT all-opt ms | OpenVINO f32 ms | secc / best peer |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in models:
        for t in threads:
            s, o, v = best[name, t, "secc"], best[name, t, "ort"], best[name, t, "openvino"]
            b = f" {best[name, t, 'baseline']:.2f} |" if a.baseline else ""
            lines.append(f"| {name} | {t} | {kernels[name]} | {s:.2f} |{b} {o:.2f} | {v:.2f} | {s / min(o, v):.2f} |")
    table = "\n".join(lines)
    if a.se_overhead:
        eng = [e for e in engines]
        head = "| network | threads | " + " | ".join(f"{e} SE overhead" for e in eng) + " |"
        rows = [head, "|" + "---|" * (head.count("|") - 1)]
        for n in NAMES:
            for t in threads:
                cells = " | ".join(f"{best[n, t, e] / best[n + ' (no SE)', t, e]:.3f}" for e in eng)
                rows.append(f"| {n} | {t} | {cells} |")
        table += "\n\nSE overhead = latency(net) / latency(the net with every SE block removed), same run:\n\n" + "\n".join(rows)
    layers = layer_table(arts["se_resnet50", "secc"], os.path.join(NETS, "se_resnet50.onnx"), peak[0])
    when = time.strftime("%Y-%m-%d")
    text = (f"Measured {when} on {cpu}; FMA peak {', '.join(f'{g:.0f}' for g in peak)} GFLOP/s at 1..{len(peak)} threads; "
            f"batch 1, best of {a.rounds} interleaved rounds of the median of {a.runs} runs.\n\n{table}\n\n{layers}\n")
    print(text)
    if a.md:
        md = open(a.md).read()
        st, en = "<!-- bench:net:start -->", "<!-- bench:net:end -->"
        if st in md:
            i, j = md.index(st) + len(st), md.index(en)
            md = md[:i] + "\n" + text + md[j:]
        else:
            md += f"\n## Whole networks\n\n{st}\n{text}{en}\n"
        open(a.md, "w").write(md)


if __name__ == "__main__":
    main()
