"""Many videos in flight from one process: ``python -m bench.fleet '<json spec>'``.

The child of the scale curve (``bench.scale``). ``client`` is ``wavenb`` (all ``n`` videos at
once through ONE ``wavenb.AsyncClient`` on ONE event loop: submit, wait, download each), or
``official`` / ``naive`` (one thread per video, as their users would write it; see
``bench.clients``). ``variant`` picks wavenb as found (``today``) or with the bench's prototype
of the recommended changes (``proposed``, ``bench.prototype``).

Measured in this process, from the first submit to the last video on disk:
event-loop lag (a coroutine asking to sleep 10 ms and noting how late it wakes: p50, p99, max),
CPU seconds, RSS growth (peak VmHWM over the RSS at the start, with the peak reset just before),
and each job's submit / accepted / result / done times (``time.monotonic()``, shared with the
server). With ``profile`` set, the run is profiled with cProfile and the functions with the
most time are returned.

Prints one JSON object (the result) as its last line of stdout.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.clients import Baseline, cpu_seconds, now, prompt_for


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class GcTimer:
    """How long the garbage collector stopped the process: every collection, per generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # Thread CPU time: what the collection costs, not how long the machine made it take.
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.pauses[info["generation"]].append(time.thread_time() - self._started)

    def summary(self) -> dict[str, Any]:
        return {
            f"gen{gen}": {
                "n": len(p),
                "max_ms": max(p, default=0) * 1000,
                "total_ms": sum(p) * 1000,
            }
            for gen, p in self.pauses.items()
        }


class SlowCallbacks(logging.Handler):
    """asyncio's debug mode names every callback that held the loop over 50 ms: keep them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
        logging.getLogger("asyncio").addHandler(self)
        logging.getLogger("asyncio").setLevel(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage()[:400])

    def summary(self) -> list[str]:
        return self.seen[:40]


class Ticker:
    """Event-loop lag: a coroutine asks to sleep ``period`` s and notes how late it wakes.

    Two figures per tick: the wall-clock lateness, and the main thread's CPU time spent while
    it slept, minus the period ("CPU lag": what the lateness would be on an idle core). On a
    machine shared with other work the first grows with the load; the second does not.
    """

    def __init__(self, period: float = 0.010) -> None:
        self.period = period
        self.lags: list[float] = []
        self.cpu_lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, time.perf_counter() - before - self.period))
            self.cpu_lags.append(max(0.0, time.thread_time() - cpu - self.period))

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        if not self.lags:
            return {}
        out: dict[str, float] = {"n": len(self.lags)}
        for name, values in (("", self.lags), ("cpu_", self.cpu_lags)):
            ordered = sorted(values)

            def pick(q: float, ordered: list[float] = ordered) -> float:
                return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

            out[f"{name}p50"] = pick(0.5)
            out[f"{name}p99"] = pick(0.99)
            out[f"{name}max"] = ordered[-1]
            out[f"{name}over_250ms"] = sum(1 for lag in ordered if lag > 0.25)  # noqa: PLR2004
        return out


async def wavenb_fleet(spec: dict[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    from wavenb import AsyncClient
    from wavenb.core.polling import REAL_API

    if spec.get("variant") == "proposed":
        from bench import prototype

        prototype.install(spec)
    out = Path(tempfile.mkdtemp(prefix="wavenb-fleet-out-"))
    policy = REAL_API.scaled(spec["scale"])
    client = AsyncClient(spec["key"], spec["base_url"], poll=policy, output_dir=out)
    image_url = await client.upload(spec["image_url"])  # a URL passes through

    async def one(index: int, job: dict[str, Any]) -> None:
        try:
            job["submit"] = now()
            prediction = await client.submit(image_url, prompt_for(index, "fleet"))
            job["id"], job["accepted"] = prediction.id, now()
            done = await client.wait(prediction, timeout=3600 * spec["scale"] + 120)
            job["result"] = now()
            await client.download(done)
            job["done"] = now()
        except Exception as error:  # noqa: BLE001  (recorded, reported)
            job["error"] = f"{type(error).__name__}: {str(error)[:300]}"

    try:
        await asyncio.gather(*(one(i, job) for i, job in enumerate(jobs)))
    finally:
        await client.aclose()
    journal = client.journal
    return {"journal": str(journal.path) if journal is not None else None}


async def baseline_fleet(spec: dict[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    base = Baseline({**spec, "client": spec["client"]})
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        await asyncio.gather(
            *(loop.run_in_executor(pool, base.job, i, "fleet", job) for i, job in enumerate(jobs))
        )
    return {"refused_429": base.refused}


async def fleet(spec: dict[str, Any]) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [{"phase": "measured"} for _ in range(spec["n"])]
    runner = wavenb_fleet if spec["client"] == "wavenb" else baseline_fleet
    rss0 = status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # noqa: ASYNC240  (before any task starts)
    slow = SlowCallbacks() if spec.get("slow_callbacks") else None
    ticker = Ticker()
    ticker.start()
    collector = GcTimer()
    gc.callbacks.append(collector)
    cpu0, started = cpu_seconds(), now()
    try:
        extra = await runner(spec, jobs)
    finally:
        lag = ticker.stop()
        gc.callbacks.remove(collector)
    ended, cpu = now(), cpu_seconds() - cpu0
    return {
        "client": spec["client"],
        "variant": spec.get("variant", "today"),
        "n": spec["n"],
        "jobs": jobs,
        "started": started,
        "ended": ended,
        "ticker": lag,
        "cpu": cpu,
        "rss_start_kb": rss0,
        "rss_growth_kb": status_kb("VmHWM") - rss0,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "gc": collector.summary(),
        "load": os.getloadavg()[0],
        "gc_objects": len(gc.get_objects()),
        "gc_types": Counter(type(o).__name__ for o in gc.get_objects()).most_common(15),
        "slow_callbacks": slow.summary() if slow is not None else None,
        **extra,
    }


def profiled(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the fleet under cProfile; add the top functions by own and cumulative time."""
    profiler = cProfile.Profile()
    result = profiler.runcall(asyncio.run, fleet(spec))
    top: dict[str, list[dict[str, Any]]] = {}
    stats = pstats.Stats(profiler, stream=io.StringIO())
    for order in ("tottime", "cumulative"):
        rows = []
        for func, (_cc, calls, tottime, cumtime, _callers) in sorted(
            stats.stats.items(),  # type: ignore[attr-defined]
            key=lambda item: item[1][2 if order == "tottime" else 3],
            reverse=True,
        )[:25]:
            filename, line, name = func
            short = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
            rows.append(
                {
                    "function": f"{short}:{line}({name})",
                    "calls": calls,
                    "own_s": round(tottime, 3),
                    "cum_s": round(cumtime, 3),
                }
            )
        top[order] = rows
    result["profile"] = top
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    os.environ.pop("WAVESPEED_API_KEY", None)
    result = profiled(spec) if spec.get("profile") else asyncio.run(fleet(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
