"""One client under test, in its own process: ``python -m bench.clients '<json spec>'``.

Clients: ``wavenb`` (``AsyncClient``; with ``studio`` the batch goes through a headless
``wavenb.Studio``), ``official`` (the ``wavespeed`` 2.0.5 SDK's ``Client.run``) and ``naive``
(``requests`` + ``sleep``, like the docs' example). The last two need bench/.deps on the path.

Scenarios:
``poll``   jobs submitted ``stagger`` (model) seconds apart, each waited for and downloaded;
           wavenb first runs ``warmup`` jobs so its duration history has a few runs in it.
``batch``  ``jobs`` jobs at once against a per-key concurrency limit and submit-rate cap;
           wavenb submits them all (the server queues them), the baselines use a pool of
           ``workers`` threads (one per concurrency slot). A ticker coroutine measures
           event-loop lag throughout.

Time scaling: with ``scale`` s < 1 every duration in the server is multiplied by s, and so is
every client's clock-driven wait: wavenb's poll policy (``PollPolicy.scaled``), the SDK's
``poll_interval`` (1 s * s) and the naive loop's sleep (1 s * s). Results are reported in real
seconds here; the orchestrator divides by s.

Prints one JSON object (the result) as its last line of stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODEL = "runwayml/gen4-turbo"
PROMPTS = (
    "Camera slowly zooms in",
    "Gentle camera pan to the right",
    "Slow tilt up, revealing the sky",
    "Camera pulls back slowly",
)
POLL_CAP = 5000
"""No client loop polls one task more often than this (a bound, never reached)."""
USER_RETRY_MODEL_SECONDS = 10.0
"""What a careful user's hand-written retry waits after a 429, in model seconds."""


def prompt_for(index: int, tag: str) -> str:
    return f"{PROMPTS[index % len(PROMPTS)]}, {tag} {index}"


def now() -> float:
    return time.monotonic()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Ticker:
    """Event-loop lag: a coroutine asks to sleep ``period`` s and notes how late it wakes."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - before - self.period))

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        lags = sorted(self.lags)
        if not lags:
            return {}

        def pick(q: float) -> float:
            return lags[min(len(lags) - 1, int(q * len(lags)))]

        return {"n": len(lags), "p50": pick(0.5), "p99": pick(0.99), "max": lags[-1]}


# --------------------------------------------------------------------------- wavenb


def wavenb_policy(spec: dict[str, Any]) -> Any:
    """The real API's schedule, as shipped (the client's runtime scales it like the server)."""
    from wavenb.core.polling import REAL_API

    return REAL_API


async def wavenb_main(spec: dict[str, Any]) -> dict[str, Any]:
    from wavenb import AsyncClient, Runtime

    out = Path(tempfile.mkdtemp(prefix="wavenb-bench-out-"))
    policy = wavenb_policy(spec)
    # Every clock of the client scaled like the server's: its poll schedule, its retry pauses
    # and its submit pacer's one-minute window (a real-time window could not learn a cap that
    # the server counts in scaled minutes).
    scale = spec["scale"]
    runtime = Runtime.scaled(scale, real_time_servers=True) if scale < 1 else Runtime()
    client = AsyncClient(spec["key"], spec["base_url"], poll=policy, output_dir=out,
                         runtime=runtime)
    jobs: list[dict[str, Any]] = []
    ticker = Ticker()
    ticker.start()
    cpu0 = cpu_seconds()
    mode = "client"
    try:
        for seconds in spec.get("seed_history", []):
            client.durations.add(seconds)

        async def one(index: int, phase: str, delay: float) -> None:
            await asyncio.sleep(delay)
            job: dict[str, Any] = {"phase": phase, "history": len(client.durations)}
            jobs.append(job)
            try:
                job["submit"] = now()
                prediction = await client.submit(spec["image_url"], prompt_for(index, phase))
                job["id"], job["accepted"] = prediction.id, now()
                done = await client.wait(prediction, timeout=3600 * spec["scale"] + 60)
                job["result"] = now()
                await client.download(done)
                job["done"] = now()
            except Exception as error:  # noqa: BLE001  (recorded, reported)
                job["error"] = f"{type(error).__name__}: {error}"

        if spec["scenario"] == "poll":
            await asyncio.gather(*(one(i, "warmup", 0.0) for i in range(spec.get("warmup", 0))))
            gap = spec["stagger"] * spec["scale"]
            await asyncio.gather(*(one(i, "measured", i * gap) for i in range(spec["jobs"])))
            started = min(j["submit"] for j in jobs if j["phase"] == "measured")
        elif spec.get("studio") and _has_studio():
            mode = "studio"
            started = now()
            jobs = await studio_batch(client, spec, out)
        else:
            started = now()
            await asyncio.gather(*(one(i, "measured", 0.0) for i in range(spec["jobs"])))
        ended = now()
    finally:
        lag = ticker.stop()
        await client.aclose()
    return {
        "client": "wavenb",
        "mode": mode,
        "jobs": jobs,
        "started": started,
        "ended": ended,
        "ticker": lag,
        "cpu": cpu_seconds() - cpu0,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "refused_429": 0,
    }


async def studio_batch(client: Any, spec: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """Click Generate ``jobs`` times in a headless Studio (one prompt each); wait for all."""
    import wavenb

    studio = wavenb.Studio(client=client, save_dir=out)
    image = await asyncio.to_thread(Path(spec["image_path"]).read_bytes)
    await studio.set_image(image)
    tasks = []
    for i in range(spec["jobs"]):
        studio.prompt = prompt_for(i, "batch")
        tasks.append(studio.generate())
    await asyncio.wait_for(asyncio.gather(*tasks), 3600 * spec["scale"] + 120)
    return [
        {
            "phase": "measured",
            "id": run.prediction_id,
            "error": None if run.error is None else repr(run.error),
        }
        for run in studio.history
    ]


def _has_studio() -> bool:
    try:
        import wavenb.studio.widget  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- baselines


class Baseline:
    """The official SDK or the naive loop, each job on a worker thread."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.scale = spec["scale"]
        self.base = spec["base_url"]
        self.out = Path(tempfile.mkdtemp(prefix=f"{spec['client']}-bench-out-"))
        self.refused = 0
        self._lock = threading.Lock()
        if spec["client"] == "official":
            from wavespeed import Client

            self.sdk = Client(api_key=spec["key"], base_url=self.base)

    def job(self, index: int, phase: str, job: dict[str, Any]) -> None:
        prompt = prompt_for(index, phase)
        try:
            job["submit"] = now()
            url, job_id = self.run_retrying(prompt, job)
            job["result"] = now()
            job["id"] = job_id
            self.download(url, job_id)
            job["done"] = now()
        except Exception as error:  # noqa: BLE001  (recorded, reported)
            job["error"] = f"{type(error).__name__}: {error}"

    def run_retrying(self, prompt: str, job: dict[str, Any]) -> tuple[str, str]:
        """``run_one``, with a careful user's hand-written retry after a 429 (bounded)."""
        for _ in range(100):
            try:
                return self.run_one(prompt, job)
            except RateLimited:
                with self._lock:
                    self.refused += 1
                time.sleep(USER_RETRY_MODEL_SECONDS * self.scale)
        raise RuntimeError("still refused after 100 tries")

    def run_one(self, prompt: str, job: dict[str, Any]) -> tuple[str, str]:
        body = {"prompt": prompt, "image": self.spec["image_url"]}
        if self.spec["client"] == "official":
            try:
                output = self.sdk.run(
                    MODEL, body, poll_interval=1.0 * self.scale, timeout=3600 * self.scale + 60
                )
            except RuntimeError as error:
                if "HTTP 429" in str(error) and "submit" in str(error):
                    raise RateLimited from None
                raise
            url = output["outputs"][0]
            return url, url.rstrip("/").split("/")[-2]
        return self.naive(body, job)

    def naive(self, body: dict[str, Any], job: dict[str, Any]) -> tuple[str, str]:
        """The docs' loop: POST, then GET the result every second until it is completed."""
        import requests

        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.spec['key']}",
        }
        response = requests.post(
            f"{self.base}/api/v3/{MODEL}", headers=headers, json=body, timeout=60
        )
        if response.status_code == 429:  # noqa: PLR2004
            raise RateLimited
        response.raise_for_status()
        request_id = response.json()["data"]["id"]
        job["accepted"] = now()
        deadline = now() + 3600 * self.scale + 60
        for _ in range(POLL_CAP):
            result = requests.get(
                f"{self.base}/api/v3/predictions/{request_id}/result", headers=headers, timeout=60
            )
            data = result.json()["data"]
            if data["status"] == "completed":
                return data["outputs"][0], request_id
            if data["status"] == "failed" or now() > deadline:
                raise RuntimeError(f"task {request_id}: {data['status']} {data.get('error')}")
            time.sleep(1.0 * self.scale)
        raise RuntimeError(f"task {request_id}: still running after {POLL_CAP} checks")

    def download(self, url: str, job_id: str) -> None:
        """What a user of either does with the output URL: fetch it and write the file."""
        import requests

        response = requests.get(url, timeout=60)
        response.raise_for_status()
        (self.out / f"{job_id}.mp4").write_bytes(response.content)


class RateLimited(Exception):
    """The submit got a 429 (nothing was created)."""


async def baseline_main(spec: dict[str, Any]) -> dict[str, Any]:
    base = Baseline(spec)
    jobs: list[dict[str, Any]] = []
    ticker = Ticker()
    ticker.start()
    cpu0 = cpu_seconds()
    loop = asyncio.get_running_loop()
    if spec["scenario"] == "poll":
        pool = ThreadPoolExecutor(max_workers=spec["jobs"] + 1)
        gap = spec["stagger"] * spec["scale"]
        started = now()
        futures = []
        for i in range(spec["jobs"]):
            await asyncio.sleep(max(0.0, started + i * gap - now()))
            job = {"phase": "measured"}
            jobs.append(job)
            futures.append(loop.run_in_executor(pool, base.job, i, "measured", job))
        await asyncio.gather(*futures)
    else:
        pool = ThreadPoolExecutor(max_workers=spec["workers"])
        started = now()
        jobs = [{"phase": "measured"} for _ in range(spec["jobs"])]
        await asyncio.gather(
            *(loop.run_in_executor(pool, base.job, i, "batch", job) for i, job in enumerate(jobs))
        )
    ended = now()
    pool.shutdown()
    return {
        "client": spec["client"],
        "mode": "threads",
        "jobs": jobs,
        "started": started,
        "ended": ended,
        "ticker": ticker.stop(),
        "cpu": cpu_seconds() - cpu0,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "refused_429": base.refused,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    os.environ.pop("WAVESPEED_API_KEY", None)
    runner = wavenb_main if spec["client"] == "wavenb" else baseline_main
    result = asyncio.run(asyncio.wait_for(runner(spec), spec.get("deadline", 1800)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
