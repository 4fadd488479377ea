"""Sandbox render throughput and API latency under render load.

``python -m bench.sandbox_throughput [--renders 8] [--seconds 5] [--rounds 3]``

1. Renders: ``--renders`` clips of 1280x720, ``--seconds`` long, from a real photo, in
   ``--rounds`` rounds; each round runs every way once, one after the other:
   - ``inline``: one after another in this process (``_renderjob.run``);
   - ``pool_one_by_one``: submitted to the sandbox's process pool one at a time, each waited
     for: the same workers and priority as the next way;
   - ``pool_all_at_once``: all submitted at once to the pool.
   The pool's workers are started (one render each) before the first round, off the clock.
   Each way reports its wall time, the CPU-seconds per render its processes used (the
   workers' for the pool), the cores that makes on average, and how many cores *other*
   programs kept busy meanwhile (the machine's busy time from ``/proc/stat`` minus ours): on
   a shared machine, a way with ``foreign_cores`` near 0 is a measurement, one near 1 is
   noise. Medians over rounds. All at once can take no less than the CPU-seconds of all
   renders over the cores (``lower_bound_all_at_once_s``); the best possible speedup over
   ``inline`` follows from it.
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
from collections.abc import Callable
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
TICK = os.sysconf("SC_CLK_TCK")
WAYS = ("inline", "pool_one_by_one", "pool_all_at_once")


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


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def workers_cpu() -> float:
    """CPU-seconds the pool's live worker processes have used, all their threads."""
    total = 0.0
    # The workers are subprocesses of the sandbox's own pool (``python -m ...``), not
    # multiprocessing children: ask the pool for their pids.
    pool = _pool._processes  # the bench measures the pool's insides
    for pid in pool.pids if pool is not None else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def machine_busy() -> float:
    """CPU-seconds the whole machine has been busy (every CPU; idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def check(outputs: list[tuple[str | None, str | None]]) -> None:
    errors = [error for _, error in outputs if error]
    if errors:
        raise SystemExit(f"render failed: {errors[0]}")


def measured(work: Callable[[], None], count: int, *, in_pool: bool) -> dict[str, float]:
    """Run ``work``: its wall time, CPU-s per render, and the cores others used meanwhile."""
    cpu = workers_cpu if in_pool else own_cpu
    started, ours, busy = time.perf_counter(), cpu(), machine_busy()
    others_before = own_cpu() if in_pool else workers_cpu()
    work()
    wall = time.perf_counter() - started
    used = cpu() - ours
    others = (own_cpu() if in_pool else workers_cpu()) - others_before  # our other half
    foreign = max(0.0, machine_busy() - busy - used - others)
    return {
        "wall_s": round(wall, 2),
        "cpu_s_per_render": round(used / count, 2),
        "cores_used": round(used / wall, 2),
        "foreign_cores": round(foreign / wall, 2),
    }


def one_round(folder: Path, count: int, seconds: float, n: int) -> dict[str, dict[str, float]]:
    def inline() -> None:
        check([run(t) for t in tasks(folder, count, seconds, f"r{n}i")])

    def one_by_one() -> None:
        for t in tasks(folder, count, seconds, f"r{n}p"):
            outcome = _pool.submit_render(t, time.monotonic).result()
            check([(outcome.output, outcome.error)])

    def all_at_once() -> None:
        futures = [
            _pool.submit_render(t, time.monotonic) for t in tasks(folder, count, seconds, f"r{n}a")
        ]
        check([(o.output, o.error) for o in (future.result() for future in futures)])

    return {
        "inline": measured(inline, count, in_pool=False),
        "pool_one_by_one": measured(one_by_one, count, in_pool=True),
        "pool_all_at_once": measured(all_at_once, count, in_pool=True),
    }


def bench_renders(count: int, seconds: float, rounds: int) -> dict[str, Any]:
    cores = _pool.process_count()
    try:
        with tempfile.TemporaryDirectory() as temp:
            folder = Path(temp)
            # Start every worker and warm it, off the clock.
            warm = tasks(folder, cores, seconds, "warm")
            for future in [_pool.submit_render(t, time.monotonic) for t in warm]:
                future.result()
            runs = [one_round(folder, count, seconds, n) for n in range(rounds)]
    finally:
        _pool.shutdown()
    median = {
        way: {key: statistics.median(r[way][key] for r in runs) for key in runs[0][way]}
        for way in WAYS
    }
    at_once = median["pool_all_at_once"]["wall_s"]
    lower_bound = count * median["pool_all_at_once"]["cpu_s_per_render"] / cores
    return {
        "renders": count,
        "clip_seconds": seconds,
        "cores": cores,
        "rounds": runs,
        "median": median,
        "lower_bound_all_at_once_s": round(lower_bound, 2),
        "speedup_vs_inline": round(median["inline"]["wall_s"] / at_once, 2),
        "speedup_vs_pool_one_by_one": round(median["pool_one_by_one"]["wall_s"] / at_once, 2),
        "best_possible_speedup_vs_inline": round(median["inline"]["wall_s"] / lower_bound, 2),
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-latency", action="store_true", help="skip the API latency part")
    args = parser.parse_args()
    result: dict[str, Any] = {"renders": bench_renders(args.renders, args.seconds, args.rounds)}
    if not args.no_latency:
        result["api_latency"] = bench_latency(args.renders)
    result["machine"] = {"cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
