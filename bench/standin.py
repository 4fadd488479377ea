"""A cheap stand-in for the WaveSpeed API, for scale runs: ``python -m bench.standin '<spec>'``.

The sandbox renders a real video per task; a thousand renders would measure PyAV, not the
client. This server only keeps the clock: each accepted task has an exact, seeded duration, and
every answer is a few hundred bytes of JSON (or one tiny MP4, made once with PyAV and served for
every output). It answers like the real API, not like the sandbox: no ``X-Wavenb-Sandbox``
header and no ``"sandbox": true``, so a client keeps the real API's etiquette.

Routes (Bearer key required on ``/api/v3``; the key's SHA-256 names its owner)::

    POST /api/v3/runwayml/gen4-turbo           submit        -> prediction (created)
    GET  /api/v3/predictions/{id}/result       result check  -> prediction
    GET  /api/v3/predictions/{id}              the same
    POST /api/v3/media/upload/binary           upload        -> {download_url, ...}
    GET  /cdn/predictions/{id}/1.mp4           the output (public, like a CDN URL)
    GET  /cdn/media/{name}                     an uploaded image (public)
    GET  /_bench/state                         the request log, completions, planned jobs

Spec (JSON): ``low``/``high`` (model seconds of processing, uniform, drawn from
``random.Random(seed)`` per key in submit order), ``scale`` (every duration is multiplied by
it), ``seed``, optional ``max_concurrent`` (tasks one key runs at once; more wait in ``created``,
FIFO), optional ``submit_rate`` ``[n, seconds]`` with ``rate_window`` ``"sliding"`` (default) or
``"fixed"`` and ``retry_after`` (default true: send the header), and ``lifetime`` (s).

Every request is logged server-side with the fields of the sandbox's ``RequestRecord`` (time,
method, route, prediction_id, status, owner, connection, bytes_in, bytes_out), so
``bench.analysis`` reads both servers' logs alike. Times are ``time.monotonic()``, the clock
the client processes share.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import math
import random
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

MODEL = "runwayml/gen4-turbo"
SUBMIT = f"/api/v3/{MODEL}"
UPLOAD = "/api/v3/media/upload/binary"
RESULT_ROUTE = "/api/v3/predictions/{id}/result"
GET_ROUTE = "/api/v3/predictions/{id}"
CDN_ROUTE = "/cdn/predictions/{id}/1.mp4"
MEDIA_ROUTE = "/cdn/media/{name}"
LOG_FIELDS = (
    "time",
    "method",
    "route",
    "prediction_id",
    "status",
    "owner",
    "connection",
    "bytes_in",
    "bytes_out",
)


def tiny_mp4() -> bytes:
    """A valid H.264 MP4 of a few frames at 64x36 (about 2 kB), made once with PyAV."""
    import av
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
            for index in range(5):
                pixels = np.full((36, 64, 3), 40 * index, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path.read_bytes()


@dataclass
class Owner:
    """One key's jobs: its duration draws, its busy slots, its recent submits."""

    rng: random.Random
    slots: list[float] = field(default_factory=list)
    recent: deque[float] = field(default_factory=deque)
    window_start: float = 0.0
    window_count: int = 0


class StandIn:
    """The state and the ASGI app of the stand-in server."""

    def __init__(self, spec: dict[str, Any], video: bytes) -> None:
        self.spec = spec
        self.low, self.high = float(spec["low"]), float(spec["high"])
        self.scale = float(spec["scale"])
        self.seed = int(spec["seed"])
        self.max_concurrent = spec.get("max_concurrent")
        rate = spec.get("submit_rate")
        self.rate = None if rate is None else (int(rate[0]), float(rate[1]))
        self.fixed_window = spec.get("rate_window", "sliding") == "fixed"
        self.send_retry_after = bool(spec.get("retry_after", True))
        self.video = video
        self.owners: dict[str, Owner] = {}
        # id -> (owner, accepted, start, end): created until start, processing until end.
        self.jobs: dict[str, tuple[str, float, float, float]] = {}
        self.planned: dict[str, list[tuple[str, float, float]]] = {}
        self.log: list[tuple[Any, ...]] = []
        self._ids = random.Random(self.seed ^ 0x5EED)

    # -- the model ---------------------------------------------------------------------------

    def owner(self, key_digest: str) -> Owner:
        if key_digest not in self.owners:
            self.owners[key_digest] = Owner(random.Random(self.seed))
        return self.owners[key_digest]

    def refuse_rate(self, owner: Owner, now: float) -> float | None:
        """Seconds until a submit would be accepted, or ``None`` if it is accepted now."""
        if self.rate is None:
            return None
        limit, window = self.rate
        if self.fixed_window:
            if now - owner.window_start >= window:
                owner.window_start = now - (now - owner.window_start) % window
                owner.window_count = 0
            if owner.window_count >= limit:
                return owner.window_start + window - now
            owner.window_count += 1
            return None
        while owner.recent and owner.recent[0] <= now - window:
            owner.recent.popleft()
        if len(owner.recent) >= limit:
            return owner.recent[0] + window - now
        owner.recent.append(now)
        return None

    def accept(self, key_digest: str, now: float) -> str:
        owner = self.owner(key_digest)
        job_id = f"{self._ids.getrandbits(128):032x}"
        seconds = owner.rng.uniform(self.low, self.high) * self.scale
        start = now
        if self.max_concurrent is not None:
            # FIFO over the key's slots: known durations make every start time exact at submit.
            while len(owner.slots) >= self.max_concurrent and owner.slots[0] <= now:
                heapq.heappop(owner.slots)
            if len(owner.slots) >= self.max_concurrent:
                start = heapq.heappop(owner.slots)
            heapq.heappush(owner.slots, start + seconds)
        self.jobs[job_id] = (key_digest, now, start, start + seconds)
        self.planned.setdefault(key_digest, []).append((job_id, now, seconds))
        return job_id

    def prediction(self, job_id: str, base: str, now: float) -> dict[str, Any]:
        _owner, _accepted, start, end = self.jobs[job_id]
        status = "created" if now < start else "processing" if now < end else "completed"
        done = status == "completed"
        return {
            "id": job_id,
            "model": MODEL,
            "outputs": [f"{base}/cdn/predictions/{job_id}/1.mp4"] if done else [],
            "urls": {"get": f"{base}/api/v3/predictions/{job_id}/result"},
            "has_nsfw_contents": [False] if done else [],
            "status": status,
            "created_at": "2026-11-25T12:00:00.000Z",
            "error": "",
            "executionTime": round((end - start) * 1000) if done else 0,
            "timings": {"inference": round((end - start) * 1000) if done else 0},
        }

    def completions(self) -> dict[str, float]:
        now = time.monotonic()
        return {job_id: job[3] for job_id, job in self.jobs.items() if job[3] <= now}

    def state(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "log_fields": list(LOG_FIELDS),
            "completions": self.completions(),
            "planned": self.planned,
            "accepted": len(self.jobs),
            "ends": {job_id: job[3] for job_id, job in self.jobs.items()},
            "starts": {job_id: job[2] for job_id, job in self.jobs.items()},
        }

    # -- HTTP -------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        arrived = time.monotonic()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        status, payload, extra, route, job_id, owner = self.answer(scope, headers, body, arrived)
        content_type = b"video/mp4" if route == CDN_ROUTE and status == 200 else b"application/json"  # noqa: PLR2004
        out_headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(payload))]
        out_headers += extra
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": payload})
        if route == "/_bench/state":
            return
        bytes_in = len(scope["method"]) + len(scope["path"]) + 11
        bytes_in += sum(len(k) + len(v) + 4 for k, v in scope["headers"]) + 2 + len(body)
        bytes_out = 17 + sum(len(k) + len(v) + 4 for k, v in out_headers) + 2 + len(payload)
        client = scope.get("client") or ("", 0)
        self.log.append(
            (
                arrived,
                scope["method"],
                route,
                job_id,
                status,
                owner,
                f"{client[0]}:{client[1]}",
                bytes_in,
                bytes_out,
            )
        )

    def answer(  # noqa: PLR0911  (one return per route reads as a routing table)
        self, scope: Any, headers: dict[bytes, bytes], body: bytes, now: float
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], str, str | None, str | None]:
        """(status, body, extra headers, route template, task id, owner) for one request."""
        method, path = scope["method"], scope["path"]
        host = headers.get(b"host", b"127.0.0.1").decode()
        base = f"http://{host}"
        if path == "/_bench/state":
            return 200, json.dumps(self.state()).encode(), [], path, None, None
        if path.startswith("/cdn/"):
            parts = path.split("/")
            if path.startswith("/cdn/predictions/") and parts[3] in self.jobs:
                return 200, self.video, [], CDN_ROUTE, parts[3], None
            if path.startswith("/cdn/media/"):
                return 200, b"\xff\xd8\xff", [], MEDIA_ROUTE, None, None
            return 404, b"", [], "(unmatched)", None, None
        auth = headers.get(b"authorization", b"")
        if not auth.startswith(b"Bearer ") or len(auth) <= len(b"Bearer "):
            return *_error(401, "Unauthorized"), [], "(unauthorized)", None, None
        owner = hashlib.sha256(auth[7:]).hexdigest()
        if method == "POST" and path == SUBMIT:
            return self.submit(body, owner, base, now)
        if method == "GET" and path.startswith("/api/v3/predictions/"):
            parts = path.split("/")
            job_id = parts[4] if len(parts) > 4 else ""  # noqa: PLR2004
            route = RESULT_ROUTE if path.endswith("/result") else GET_ROUTE
            if job_id not in self.jobs:
                return *_error(404, "Prediction not found"), [], route, job_id, owner
            answer = {"code": 200, "message": "success", "data": self.prediction(job_id, base, now)}
            return 200, json.dumps(answer).encode(), [], route, job_id, owner
        if method == "POST" and path == UPLOAD:
            name = hashlib.sha256(body).hexdigest()[:32] + ".jpg"
            data = {"type": "image", "download_url": f"{base}/cdn/media/{name}", "size": len(body)}
            answer = {"code": 200, "message": "success", "data": data}
            return 200, json.dumps(answer).encode(), [], UPLOAD, None, owner
        return *_error(404, "Not found"), [], "(unmatched)", None, owner

    def submit(
        self, body: bytes, owner: str, base: str, now: float
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], str, str | None, str | None]:
        try:
            fields = json.loads(body)
        except ValueError:
            return *_error(400, "invalid JSON"), [], SUBMIT, None, owner
        if not isinstance(fields, dict) or not fields.get("prompt") or not fields.get("image"):
            return *_error(400, "prompt and image are required"), [], SUBMIT, None, owner
        wait = self.refuse_rate(self.owner(owner), now)
        if wait is not None:
            extra = [(b"retry-after", b"%d" % max(1, math.ceil(wait)))]
            text = "Rate limit exceeded for this account level."
            return *_error(429, text), extra if self.send_retry_after else [], SUBMIT, None, owner
        job_id = self.accept(owner, now)
        answer = {"code": 200, "message": "success", "data": self.prediction(job_id, base, now)}
        return 200, json.dumps(answer).encode(), [], SUBMIT, job_id, owner


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"code": status, "message": message}).encode()


async def serve(spec: dict[str, Any]) -> None:
    app = StandIn(spec, tiny_mp4())
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Longer than the client's idle expiry, as on real servers (nginx: 75 s).
        timeout_keep_alive=65,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise SystemExit("the stand-in server did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    try:
        await asyncio.wait_for(asyncio.shield(task), float(spec.get("lifetime", 1800)))
    except TimeoutError:
        server.should_exit = True
        await task


def main() -> None:
    asyncio.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
