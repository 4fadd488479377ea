"""Exact job timings (``SandboxConfig.timing``) and the request log (``record_requests``)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from PIL import Image

from wavenb.sandbox import SandboxConfig, create_app
from wavenb.sandbox._app import key_digest
from wavenb.sandbox._jobs import JobStore, Outcome, finished

API = "https://api.wavespeed.ai"
KEY = "wsk-timing-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SUBMIT = "/api/v3/runwayml/gen4-turbo"
RESULT = "/api/v3/predictions/{id}/result"


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def image_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), "teal").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@asynccontextmanager
async def sandbox(config: SandboxConfig) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=API) as client:
            yield app, client
    finally:
        await asyncio.to_thread(app.state.sandbox.close)


async def submit(client: httpx.AsyncClient, prompt: str = "Slow push in") -> str:
    response = await client.post(
        SUBMIT, json={"prompt": prompt, "image": image_uri()}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def status(client: httpx.AsyncClient, job_id: str) -> str:
    response = await client.get(RESULT.format(id=job_id), headers=AUTH)
    return str(response.json()["data"]["status"])


def store_with(
    clock: FakeClock, timings: dict[str, tuple[float, float]], max_concurrent: int | None = None
) -> JobStore:
    """A store whose video jobs take exactly the given (queue, processing) times."""
    return JobStore(
        clock=clock,
        seed=0,
        speed="realistic",
        max_concurrent=max_concurrent,
        timing=lambda job_id, _owner: timings[job_id],
    )


def status_of(store: JobStore, job_id: str) -> str:
    job = store.get(job_id)
    assert job is not None
    return job.status


def add_done(store: JobStore, clock: FakeClock, job_id: str, owner: str = "k") -> None:
    """Add a video job whose render is already done."""
    store.add(job_id, "m", owner, finished(Outcome(clock(), output="/x.mp4")), timed=True)


# -- exact timings --------------------------------------------------------------------------


def test_timing_sets_the_exact_queue_and_processing_times(clock: FakeClock) -> None:
    store = store_with(clock, {"a": (2.0, 7.5)})
    add_done(store, clock, "a")
    clock.advance(1.999)
    assert status_of(store, "a") == "created"
    clock.advance(0.001)
    assert status_of(store, "a") == "processing"
    clock.advance(7.499)
    assert status_of(store, "a") == "processing"
    clock.advance(0.001)
    assert status_of(store, "a") == "completed"
    assert store.completion_times() == {"a": pytest.approx(109.5)}


def test_completion_time_is_exact_even_when_first_seen_much_later(clock: FakeClock) -> None:
    """The log of completions says when the job ended, not when someone looked."""
    store = store_with(clock, {"a": (0.0, 30.0), "b": (0.0, 45.25)})
    add_done(store, clock, "a")
    add_done(store, clock, "b")
    clock.advance(1000)
    assert store.completion_times() == {"a": pytest.approx(130.0), "b": pytest.approx(145.25)}


def test_timing_gets_the_job_id_and_the_key_digest(clock: FakeClock) -> None:
    calls: list[tuple[str, str]] = []

    def timing(job_id: str, owner: str) -> tuple[float, float]:
        calls.append((job_id, owner))
        return (0.0, 1.0)

    store = JobStore(clock=clock, seed=0, speed="fast", max_concurrent=None, timing=timing)
    add_done(store, clock, "a", owner="digest-1")
    add_done(store, clock, "b", owner="digest-2")
    assert calls == [("a", "digest-1"), ("b", "digest-2")]


def test_untimed_jobs_ignore_timing(clock: FakeClock) -> None:
    """The prompt enhancer finishes at once whatever the benchmark's timings say."""
    store = store_with(clock, {})
    store.add("e", "enhancer", "k", finished(Outcome(clock(), output="text")), timed=False)
    assert status_of(store, "e") == "completed"


def test_a_queued_job_processes_for_exactly_its_time_once_a_slot_frees(clock: FakeClock) -> None:
    store = store_with(clock, {"a": (0.0, 10.0), "b": (0.0, 4.0)}, max_concurrent=1)
    add_done(store, clock, "a")
    add_done(store, clock, "b")
    clock.advance(12)
    assert status_of(store, "b") == "processing"
    clock.advance(2)
    assert store.completion_times() == {"a": pytest.approx(110.0), "b": pytest.approx(114.0)}


async def test_config_timing_drives_the_served_lifecycle(clock: FakeClock) -> None:
    seen: list[str] = []

    def timing(_job_id: str, owner: str) -> tuple[float, float]:
        seen.append(owner)
        return (1.0, 20.0)

    config = SandboxConfig(speed="fast", clock=clock, duration=0.2, timing=timing)
    async with sandbox(config) as (app, client):
        job_id = await submit(client)
        await asyncio.to_thread(app.state.sandbox.wait_for_render, job_id)
        assert seen == [key_digest(KEY)]
        clock.advance(20.999)
        assert await status(client, job_id) == "processing"
        clock.advance(0.001)
        assert await status(client, job_id) == "completed"
        assert app.state.sandbox.completion_times == {job_id: pytest.approx(121.0)}


# -- the request log ------------------------------------------------------------------------


async def test_the_request_log_is_off_by_default(clock: FakeClock) -> None:
    async with sandbox(SandboxConfig(speed="instant", clock=clock)) as (app, client):
        await client.get("/api/v3/balance", headers=AUTH)
        assert app.state.sandbox.request_log == []


async def test_the_request_log_records_every_request_in_order(clock: FakeClock) -> None:
    config = SandboxConfig(
        speed="fast", clock=clock, duration=0.2, timing=lambda *_: (0.0, 5.0), record_requests=True
    )
    async with sandbox(config) as (app, client):
        job_id = await submit(client)
        clock.advance(2)
        await client.get(RESULT.format(id=job_id), headers=AUTH)
        await client.get(f"/api/v3/predictions/{job_id}", headers=AUTH)
        clock.advance(1)
        await client.get("/api/v3/balance")  # no key: refused
        await client.get("/nowhere", headers=AUTH)
        log = app.state.sandbox.request_log
    assert [(r.time, r.method, r.route, r.prediction_id, r.status) for r in log] == [
        (100.0, "POST", SUBMIT, job_id, 200),
        (102.0, "GET", RESULT, job_id, 200),
        (102.0, "GET", "/api/v3/predictions/{id}", job_id, 200),
        (103.0, "GET", "(unmatched)", None, 401),
        (103.0, "GET", "(unmatched)", None, 404),
    ]
    assert [r.owner for r in log] == [key_digest(KEY)] * 3 + [None, key_digest(KEY)]


async def test_the_request_log_counts_the_bytes_of_each_request(clock: FakeClock) -> None:
    config = SandboxConfig(speed="instant", clock=clock, record_requests=True)
    async with sandbox(config) as (app, client):
        response = await client.get("/api/v3/balance", headers=AUTH)
        payload = {"prompt": "x" * 5000, "image": "notaurl"}
        await client.post(SUBMIT, json=payload, headers=AUTH)
        balance, refused = app.state.sandbox.request_log
    assert balance.bytes_out > len(response.content) > 0
    assert balance.bytes_out - len(response.content) == pytest.approx(
        sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + 2 + 17, abs=1
    )
    assert refused.status == 400
    assert refused.bytes_in > len(json.dumps(payload)) > balance.bytes_in > 0


async def test_a_download_is_logged_with_its_task_and_no_key(clock: FakeClock) -> None:
    config = SandboxConfig(
        speed="fast", clock=clock, duration=0.2, timing=lambda *_: (0.0, 1.0), record_requests=True
    )
    async with sandbox(config) as (app, client):
        job_id = await submit(client)
        await asyncio.to_thread(app.state.sandbox.wait_for_render, job_id)
        clock.advance(1)
        response = await client.get(RESULT.format(id=job_id), headers=AUTH)
        video = await client.get(response.json()["data"]["outputs"][0])
        download = app.state.sandbox.request_log[-1]
    assert video.status_code == 200
    assert (download.prediction_id, download.owner, download.status) == (job_id, None, 200)
    assert download.bytes_out > len(video.content)
