"""Starts a local Ray instance, serves a secc artifact with examples/ray_serve/serve_secc.py
(2 replicas), sends 200 requests from 8 concurrent HTTP clients, checks every answer
against the model run here, reports the throughput, and shuts Ray down."""
import socket
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[serve]')")
serve = pytest.importorskip("ray.serve")
import secc  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import serve_secc  # noqa: E402

MODEL = HERE.parents[1] / "tests" / "models" / "se_residual.onnx"
REQUESTS, CLIENTS = 200, 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_answers_every_request_correctly(tmp_path):
    artifact = tmp_path / "se_residual.bin"
    secc.compile(MODEL, artifact)
    local = secc.Model(artifact, threads=1)
    name, out = local.inputs[0].name, local.outputs[0].name
    shape = tuple(1 if isinstance(d, str) else d for d in local.inputs[0].shape)
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-2, 2, size=shape).astype(np.float32) for _ in range(16)]
    want = [local.run({name: x})[out] for x in xs]

    port = free_port()
    # the replicas import serve_secc from the working dir Ray ships to them
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"working_dir": str(HERE)})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(serve_secc.app(str(artifact), replicas=2, threads=1), name="secc", route_prefix="/secc")
        url = f"http://127.0.0.1:{port}/secc"

        def call(i):
            body = serve_secc.encode({name: xs[i % len(xs)]})
            req = urllib.request.Request(url, data=body, method="POST")
            with urllib.request.urlopen(req, timeout=60) as r:
                got = serve_secc.decode(r.read())[out]
            return i, got

        call(0)  # warm-up: both replicas up
        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(call, range(REQUESTS)))
        dt = time.perf_counter() - t0
        assert len(answers) == REQUESTS
        for i, got in answers:
            assert np.array_equal(got, want[i % len(xs)]), f"request {i} answered wrongly"
        # a bad request is a 400 with the runtime's message, not a crash of the replica
        bad = serve_secc.encode({"bogus": xs[0]})
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=bad, method="POST"), timeout=60)
            raise AssertionError("a bad request was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and b"no input named" in e.read()
        # the deployment handle path too
        h = serve.get_app_handle("secc")
        got = h.run.remote({name: xs[3]}).result()[out]
        assert np.array_equal(got, want[3])
        print(f"\nray serve: {REQUESTS} requests from {CLIENTS} clients in {dt:.2f} s: {REQUESTS / dt:.0f} requests/s")
    finally:
        serve.shutdown()
        ray.shutdown()
