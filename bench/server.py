"""The bench's sandbox server process: exact job timings, a request log, and bench-only routes.

Run as ``python -m bench.server '<json spec>'``; it prints ``PORT <n>`` once it listens on
127.0.0.1 and stops by itself after ``lifetime`` seconds (or on SIGTERM/SIGINT).

Job durations: each key's k-th accepted video takes ``uniform(low, high) * scale`` seconds of
processing, drawn from ``random.Random(seed)`` - the same sequence for every key, so each client
in a run gets the same jobs in the same order. Queue delay is 0 (a job waits in ``created`` only
for a free slot when ``max_concurrent`` is set).

Bench-only routes, outside the sandbox app (and so not in its request log):
``GET /_bench/state`` (request log, completions, planned jobs) and ``GET /_bench/big`` (a
synthetic ``big_bytes`` MP4 streamed in 1 MiB chunks, for the download-memory figure: an
``ftyp`` and an empty ``moov`` box, then one ``mdat`` box of zeros to the last byte, so a client
that checks the box structure of what it downloads accepts it; ``/_bench/small`` is the same at
64 kB, to warm a client up).
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from wavenb.sandbox import SandboxConfig, create_app

CHUNK = 1 << 20


class Plan:
    """Draws each key's job durations in submit order, and remembers them."""

    def __init__(self, low: float, high: float, scale: float, seed: int) -> None:
        self.low, self.high, self.scale, self.seed = low, high, scale, seed
        self._rngs: dict[str, random.Random] = {}
        self.jobs: dict[str, list[tuple[str, float, float]]] = {}
        self._lock = threading.Lock()

    def __call__(self, job_id: str, owner: str) -> tuple[float, float]:
        with self._lock:
            rng = self._rngs.setdefault(owner, random.Random(self.seed))
            seconds = rng.uniform(self.low, self.high) * self.scale
            self.jobs.setdefault(owner, []).append((job_id, time.monotonic(), seconds))
        return (0.0, seconds)


def mp4_head(size: int) -> bytes:
    """An ``ftyp`` box, an empty ``moov`` box and the header of an ``mdat`` box filling the
    rest of a ``size``-byte file (32-bit sizes: up to 4 GiB)."""
    ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 512, b"isom", b"mp41")
    moov = struct.pack(">I4s", 8, b"moov")
    mdat = struct.pack(">I4s", size - len(ftyp) - len(moov), b"mdat")
    return ftyp + moov + mdat


def build(spec: dict[str, Any]) -> tuple[Any, Plan]:
    plan = Plan(spec["low"], spec["high"], spec["scale"], spec["seed"])
    rate = spec.get("submit_rate")
    config = SandboxConfig(
        speed="instant",
        seed=spec["seed"],
        duration=spec.get("clip_seconds", 0.2),
        max_concurrent=spec.get("max_concurrent"),
        submit_rate=None if rate is None else (int(rate[0]), float(rate[1])),
        balance=1e9,
        timing=plan,
        record_requests=True,
    )
    sandbox = create_app(config)
    state = sandbox.state.sandbox
    big_bytes = int(spec.get("big_bytes", 0))

    async def bench_state(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "log": [list(asdict(r).values()) for r in state.request_log],
                "log_fields": list(asdict(state.request_log[0]).keys())
                if state.request_log
                else [],
                "completions": state.completion_times,
                "planned": plan.jobs,
                "accepted": state.accepted,
                "peak_processing": state.peak_processing,
            }
        )

    def synthetic(size: int) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            head = mp4_head(size)
            yield head
            block = bytes(CHUNK)
            sent = len(head)
            while sent < size:
                piece = block[: min(CHUNK, size - sent)]
                sent += len(piece)
                yield piece

        headers = {"Content-Length": str(size)}
        return StreamingResponse(body(), media_type="video/mp4", headers=headers)

    async def big(_request: Request) -> StreamingResponse:
        return synthetic(big_bytes)

    async def small(_request: Request) -> StreamingResponse:
        return synthetic(1 << 16)

    routes = {"/_bench/state": bench_state, "/_bench/big": big, "/_bench/small": small}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in routes:
            response = await routes[scope["path"]](Request(scope, receive))
            await response(scope, receive, send)
            return
        await sandbox(scope, receive, send)

    return app, plan


async def serve(spec: dict[str, Any]) -> None:
    app, _plan = build(spec)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        # Longer than httpx's own 5-s idle expiry, as on real servers (nginx: 75 s): with a
        # shorter one the server may close a pooled connection just as a submit reuses it.
        timeout_keep_alive=65,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise SystemExit("the bench sandbox did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    lifetime = float(spec.get("lifetime", 1800))
    try:
        await asyncio.wait_for(asyncio.shield(task), lifetime)
    except TimeoutError:
        server.should_exit = True
        await task


def main() -> None:
    asyncio.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
