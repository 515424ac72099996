"""Serve a secc artifact with Ray Serve: each replica loads the model once and runs every
request on a worker thread of its own (the model keeps one session per concurrent request,
and the GIL is released while it runs), so one replica serves several requests at once.

    pip install ./python "ray[serve]"
    python examples/ray_serve/serve_secc.py model.bin --replicas 2 --threads 1
    # then POST an .npz of the inputs (np.savez) to http://127.0.0.1:8000/secc; the answer
    # is an .npz of the outputs

On a Ray cluster, start it with `ray start --head` on one machine and `ray start
--address=HEAD:6379` on the others, copy the artifact to the same path on each (or to
shared storage), then run this script with `--address auto` on the head: Serve spreads the
replicas over the cluster (docs/serving.md).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

import secc


def encode(arrays: Dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode(body: bytes) -> Dict[str, np.ndarray]:
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@serve.deployment
class SeccModel:
    """One replica: a loaded secc.Model and a thread pool for its requests."""

    def __init__(self, artifact: str, threads: int = 1, request_threads: int = 4):
        self.model = secc.Model(artifact, threads=threads)
        self.pool = ThreadPoolExecutor(max_workers=request_threads, thread_name_prefix="secc")

    async def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """For DeploymentHandle callers: {input name: array} -> {output name: array}."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self.model.run, inputs)

    async def __call__(self, request: Request) -> Response:
        """HTTP: the body is an .npz of the inputs; the answer an .npz of the outputs."""
        try:
            inputs = decode(await request.body())
            outputs = await self.run(inputs)
        except (secc.InvalidInputError, ValueError, OSError) as e:
            return Response(str(e).encode(), status_code=400, media_type="text/plain")
        return Response(encode(outputs), media_type="application/octet-stream")


def app(artifact: str, replicas: int = 1, threads: int = 1, request_threads: int = 4):
    """The Serve application for `artifact` (an absolute path every replica can read)."""
    return SeccModel.options(
        num_replicas=replicas,
        max_ongoing_requests=2 * request_threads,
        ray_actor_options={"num_cpus": threads},
    ).bind(os.path.abspath(artifact), threads, request_threads)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artifact")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="threads per run (and CPUs per replica)")
    p.add_argument("--request-threads", type=int, default=4, help="concurrent requests per replica")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--port", type=int, default=8000)
    a = p.parse_args()
    import ray

    # the replicas import this module from the working dir Ray ships to them
    here = os.path.dirname(os.path.abspath(__file__))
    ray.init(address=a.address, runtime_env={"working_dir": here})
    serve.start(http_options={"host": "0.0.0.0", "port": a.port})
    serve.run(app(a.artifact, a.replicas, a.threads, a.request_threads), name="secc", route_prefix="/secc")
    print(f"serving {a.artifact} at http://127.0.0.1:{a.port}/secc (Ctrl-C stops)")
    try:
        while True:
            import time

            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
