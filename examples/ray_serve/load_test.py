"""Throughput of a secc artifact served by Ray Serve on this machine: starts a local Ray,
deploys examples/ray_serve/serve_secc.py with each replica count given, sends REQUESTS
requests (random batch-1 inputs, .npz over HTTP) from CLIENTS concurrent clients, prints
requests/s and latency percentiles, and shuts down. docs/serving.md records its output.

    .venv/bin/python examples/ray_serve/load_test.py model.bin [--replicas 1,2]
        [--requests 400] [--clients 8] [--threads 1]
"""
import argparse, os, socket, statistics, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import ray
from ray import serve

import secc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import serve_secc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    m = secc.Model(a.artifact, threads=1)
    io = m.inputs[0]
    shape = tuple(1 if isinstance(d, str) else d for d in io.shape)
    body = serve_secc.encode({io.name: np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"working_dir": HERE})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/secc"

    def call(_):
        t = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=120) as r:
            r.read()
        return (time.perf_counter() - t) * 1e3

    print(f"{os.path.basename(a.artifact)}: {a.requests} requests from {a.clients} clients, {a.threads} thread(s) per run")
    print("| replicas | requests/s | p50 ms | p99 ms |\n|---|---|---|---|")
    try:
        for n in [int(x) for x in a.replicas.split(",")]:
            serve.run(serve_secc.app(a.artifact, replicas=n, threads=a.threads), name="secc", route_prefix="/secc")
            for _ in range(2 * a.clients):
                call(0)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(a.clients) as pool:
                lat = sorted(pool.map(call, range(a.requests)))
            dt = time.perf_counter() - t0
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            print(f"| {n} | {a.requests / dt:.1f} | {statistics.median(lat):.1f} | {p99:.1f} |", flush=True)
            serve.delete("secc")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
