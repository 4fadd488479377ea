"""Sandbox render throughput and API latency under render load.

``python -m bench.sandbox_throughput [--renders 8] [--seconds 5]``

1. Renders: ``--renders`` clips of 1280x720, ``--seconds`` long, from a real photo:
   - one after another, each rendered inline in this process (``_renderjob.run``);
   - the same clips in two threads at once (how the sandbox rendered before the pool);
   - all submitted at once to the sandbox's process pool (``_pool.submit_render``), after one
     warm-up render that starts the workers.
2. API latency: a sandbox served by ``wavenb sandbox`` (speed instant, 5 s clips) in its own
   process; this process asks ``GET /api/v3/predictions/{id}/result`` every 20 ms, first while
   idle, then while ``--renders`` videos render, and reports p50/p99/max.

Prints a JSON summary as its last line. Figures depend on the machine (2 cores here).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from wavenb.sandbox import _pool
from wavenb.sandbox._renderjob import RenderTask, run

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"
KEY = {"Authorization": "Bearer bench-key"}
CHECK_EVERY = 10
PROMPTS = ("slow pan right", "zoom in", "crane up", "pull back", "pan left", "tilt down")


def image_uri() -> str:
    return "data:image/jpeg;base64," + base64.b64encode(IMAGE.read_bytes()).decode()


def tasks(folder: Path, count: int, seconds: float, tag: str) -> list[RenderTask]:
    uri = image_uri()
    return [
        RenderTask(
            prompt=PROMPTS[n % len(PROMPTS)],
            image=uri,
            aspect_ratio="16:9",
            duration=seconds,
            path=folder / f"{tag}{n}" / "1.mp4",
            media_dir=folder,
            url_path=f"/{tag}{n}.mp4",
        )
        for n in range(count)
    ]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def check(outputs: list[tuple[str | None, str | None]]) -> None:
    errors = [error for _, error in outputs if error]
    if errors:
        raise SystemExit(f"render failed: {errors[0]}")


def bench_renders(count: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        started, cpu = time.perf_counter(), own_cpu()
        check([run(task) for task in tasks(folder, count, seconds, "seq")])
        sequential = time.perf_counter() - started
        sequential_cpu = own_cpu() - cpu

        started = time.perf_counter()
        with ThreadPoolExecutor(2) as threads:
            check(list(threads.map(run, tasks(folder, count, seconds, "thr"))))
        two_threads = time.perf_counter() - started

        warm = tasks(folder, 1, seconds, "warm")[0]
        _pool.submit_render(warm, time.monotonic).result()
        started, cpu = time.perf_counter(), children_cpu()
        futures = [
            _pool.submit_render(t, time.monotonic) for t in tasks(folder, count, seconds, "pool")
        ]
        outcomes = [future.result() for future in futures]
        pooled = time.perf_counter() - started
        if any(o.error for o in outcomes):
            raise SystemExit(f"pool render failed: {outcomes[0].error}")
        _pool.shutdown()
    return {
        "renders": count,
        "clip_seconds": seconds,
        "cpus": _pool.process_count(),
        "sequential_s": round(sequential, 2),
        "sequential_cpu_s_per_render": round(sequential_cpu / count, 2),
        "two_threads_s": round(two_threads, 2),
        "process_pool_s": round(pooled, 2),
        "speedup_vs_sequential": round(sequential / pooled, 2),
        "speedup_vs_two_threads": round(two_threads / pooled, 2),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "wavenb", "sandbox", "--port", str(port), "--speed", "instant"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the sandbox server did not start")


def latencies(client: httpx.Client, path: str, until: Any, interval: float = 0.02) -> list[float]:
    """Time ``GET path`` every ``interval`` s while ``until()`` is false."""
    times = []
    while not until():
        started = time.perf_counter()
        response = client.get(path, headers=KEY)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        time.sleep(max(0.0, interval - (time.perf_counter() - started)))
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/api/v3/runwayml/gen4-turbo", json=body, headers=KEY)
    response.raise_for_status()
    return str(response.json()["data"]["id"])


def bench_latency(count: int) -> dict[str, Any]:
    port = free_port()
    server = serve(port)
    body = {"prompt": "slow pan right", "image": image_uri(), "aspect_ratio": "16:9"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            # Warm the worker processes with one render, off the clock.
            first = client.post("/api/v3/runwayml/gen4-turbo", json=body, headers=KEY).json()[
                "data"
            ]
            probe = f"/api/v3/predictions/{first['id']}/result"
            while client.get(probe, headers=KEY).json()["data"]["status"] != "completed":
                time.sleep(0.1)
            idle_until = time.monotonic() + 3.0
            idle = latencies(client, probe, lambda: time.monotonic() > idle_until)
            ids = [
                client.post("/api/v3/runwayml/gen4-turbo", json=body, headers=KEY).json()["data"][
                    "id"
                ]
                for _ in range(count)
            ]
            started = time.monotonic()
            pending = set(ids)

            def all_done() -> bool:
                # Every CHECK_EVERY looks, check the renders (these checks are not timed).
                for job_id in list(pending):
                    data = client.get(f"/api/v3/predictions/{job_id}/result", headers=KEY).json()
                    if data["data"]["status"] in ("completed", "failed"):
                        pending.discard(job_id)
                return not pending

            looks = iter(range(10**9))
            loaded = latencies(client, probe, lambda: next(looks) % CHECK_EVERY == 0 and all_done())
            busy = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(30)
    return {
        "idle": summary(idle),
        "while_rendering": summary(loaded),
        "renders": count,
        "render_wall_s": round(busy, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    result = {
        "renders": bench_renders(args.renders, args.seconds),
        "api_latency": bench_latency(args.renders),
        "machine": {"cpus": os.cpu_count()},
    }
    print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
