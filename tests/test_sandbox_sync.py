"""Sync mode (both outcomes), webhooks (delivered, retried) and the fake balance."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.test_sandbox_api import (
    AUTH,
    ENHANCE,
    SUBMIT,
    FakeClock,
    assert_error,
    body,
    closed_port,
    poll,
    rendered,
    sandbox,
)
from wavenb.core.errors import InsufficientCreditsError
from wavenb.core.protocol import error_for
from wavenb.sandbox import SandboxConfig

HISTORY = "/api/v3/predictions"
WAIT = 30.0
"""Seconds a test waits (bounded) for a delivery or a render that takes milliseconds."""


@pytest.fixture
def allowed_hosts() -> list[str]:
    """Under ``--block-network``, still let the sandbox reach the local receiver."""
    return ["127.0.0.1"]


class Receiver:
    """A webhook receiver on 127.0.0.1: answers the scripted statuses in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, payload))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/video?tag=1"


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    made = Receiver(getattr(request, "param", []))
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.server.shutdown()
        made.server.server_close()
        thread.join(WAIT)


@pytest.fixture
async def instant() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    config = SandboxConfig(speed="instant", duration=0.2, webhook_backoff=0.01)
    async with sandbox(config) as pair:
        yield pair


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fast(clock: FakeClock) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Tasks that take 2-3 s of a fake clock; sync mode waits up to 5 s of it."""
    config = SandboxConfig(speed="fast", clock=clock, duration=0.2, sync_wait=5.0)
    async with sandbox(config) as pair:
        yield pair


async def accepted(app: Any) -> str:
    """The id of the first accepted submission, once the app (on this loop) has made it."""
    state = app.state.sandbox
    for _ in range(10_000):  # turns of the event loop, not time: the handler runs in between
        if state.submissions:
            return str(state.submissions[0][0])
        await asyncio.sleep(0)
    raise AssertionError("the submission was never accepted")


# -- sync mode -------------------------------------------------------------------------------


async def test_sync_mode_holds_the_submit_until_the_task_ends(fast, clock) -> None:
    app, client = fast
    answer = asyncio.create_task(
        client.post(SUBMIT, json=body(enable_sync_mode=True), headers=AUTH)
    )
    job_id = await accepted(app)
    await rendered(app, job_id)
    assert not answer.done()  # rendered, but the clock says it is still processing
    clock.advance(4.0)  # past any fast task's 0.3 s queue + 3 s processing; within the wait
    response = await asyncio.wait_for(answer, WAIT)
    data = response.json()["data"]
    assert (response.status_code, data["id"], data["status"]) == (200, job_id, "completed")
    assert data["outputs"] and "code" not in data


async def test_sync_mode_past_its_limit_answers_5004_and_the_task_goes_on(fast, clock) -> None:
    app, client = fast
    answer = asyncio.create_task(
        client.post(SUBMIT, json=body(enable_sync_mode=True), headers=AUTH)
    )
    job_id = await accepted(app)
    clock.advance(1.0)  # inside the wait: still held
    await asyncio.sleep(0)
    assert not answer.done()
    clock.advance(5.0)  # the wait (5 s from accept) is over; render maybe not
    response = await asyncio.wait_for(answer, WAIT)
    envelope = response.json()
    assert (response.status_code, envelope["code"]) == (200, 200)
    data = envelope["data"]
    assert (data["code"], data["id"]) == (5004, job_id)
    assert data["status"] in ("created", "processing")
    assert "Sync mode timed out" in data["error"]
    await rendered(app, job_id)
    clock.advance(10.0)
    assert (await poll(client, job_id))["status"] == "completed"


async def test_a_zero_wait_answers_5004_at_once(clock) -> None:
    config = SandboxConfig(speed="fast", clock=clock, duration=0.2, sync_wait=0.0)
    async with sandbox(config) as (_, client):
        response = await client.post(SUBMIT, json=body(enable_sync_mode=True), headers=AUTH)
    assert response.json()["data"]["code"] == 5004


async def test_a_failed_task_in_sync_mode_answers_failed(instant) -> None:
    _, client = instant
    sent = body(prompt="zoom in on the gore", enable_sync_mode=True)
    data = (await client.post(SUBMIT, json=sent, headers=AUTH)).json()["data"]
    assert data["status"] == "failed" and "Content policy" in data["error"]
    assert "code" not in data


async def test_the_sync_flag_must_be_a_boolean(instant) -> None:
    _, client = instant
    response = await client.post(SUBMIT, json=body(enable_sync_mode="yes"), headers=AUTH)
    assert_error(response, 400, "enable_sync_mode", "boolean")


def test_sync_waits_follow_the_speed() -> None:
    assert SandboxConfig(speed="realistic").sync_limit == 30.0
    assert SandboxConfig(speed="fast").sync_limit < 2.0  # shorter than any fast task
    assert SandboxConfig(speed="fast", sync_wait=7.0).sync_limit == 7.0
    with pytest.raises(ValueError, match="sync_wait"):
        SandboxConfig(sync_wait=-1.0)


# -- webhooks --------------------------------------------------------------------------------


async def test_a_webhook_gets_the_final_envelope(instant, receiver: Receiver) -> None:
    app, client = instant
    response = await client.post(
        SUBMIT, params={"webhook": receiver.url}, json=body(), headers=AUTH
    )
    job_id = response.json()["data"]["id"]
    await asyncio.wait_for(app.state.sandbox.webhooks.join(), WAIT)
    ((headers, payload),) = receiver.received
    assert (payload["code"], payload["message"]) == (200, "success")
    assert (payload["data"]["id"], payload["data"]["status"]) == (job_id, "completed")
    assert payload["data"]["outputs"] and payload["data"]["sandbox"] is True
    assert headers["x-wavenb-sandbox"] == "1"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers
    (delivery,) = app.state.sandbox.webhooks.deliveries
    assert (delivery.prediction_id, delivery.url, delivery.attempt, delivery.status) == (
        job_id, receiver.url, 1, 200,
    )  # fmt: skip
    assert delivery.ok


@pytest.mark.parametrize("receiver", [[500, 503]], indirect=True)
async def test_a_failing_receiver_is_retried_with_backoff(instant, receiver: Receiver) -> None:
    app, client = instant
    await client.post(SUBMIT, params={"webhook": receiver.url}, json=body(), headers=AUTH)
    await asyncio.wait_for(app.state.sandbox.webhooks.join(), WAIT)
    deliveries = app.state.sandbox.webhooks.deliveries
    assert [(d.attempt, d.status, d.error) for d in deliveries] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None),
    ]  # fmt: skip
    assert len({json.dumps(p, sort_keys=True) for _, p in receiver.received}) == 1


@pytest.mark.parametrize("receiver", [[500] * 5], indirect=True)
async def test_webhook_retries_stop_after_the_configured_attempts(receiver: Receiver) -> None:
    config = SandboxConfig(speed="instant", duration=0.2, webhook_backoff=0.0, webhook_attempts=2)
    async with sandbox(config) as (app, client):
        await client.post(SUBMIT, params={"webhook": receiver.url}, json=body(), headers=AUTH)
        webhooks = app.state.sandbox.webhooks
        await asyncio.wait_for(webhooks.join(), WAIT)
    assert [d.attempt for d in webhooks.deliveries] == [1, 2]
    assert not any(d.ok for d in webhooks.deliveries)
    assert len(receiver.received) == 2


async def test_an_unreachable_receiver_is_logged_as_failed_attempts() -> None:
    config = SandboxConfig(speed="instant", duration=0.2, webhook_backoff=0.0, webhook_attempts=2)
    async with sandbox(config) as (app, client):
        hook = f"http://127.0.0.1:{closed_port()}/hook"
        await client.post(SUBMIT, params={"webhook": hook}, json=body(), headers=AUTH)
        webhooks = app.state.sandbox.webhooks
        await asyncio.wait_for(webhooks.join(), WAIT)
    assert [(d.attempt, d.status, d.error) for d in webhooks.deliveries] == [
        (1, None, "ConnectError"), (2, None, "ConnectError"),
    ]  # fmt: skip


async def test_a_deleted_task_sends_no_webhook(clock, receiver: Receiver) -> None:
    config = SandboxConfig(speed="fast", clock=clock, duration=0.2)
    async with sandbox(config) as (app, client):
        response = await client.post(
            SUBMIT, params={"webhook": receiver.url}, json=body(), headers=AUTH
        )
        job_id = response.json()["data"]["id"]
        await client.post(f"{HISTORY}/delete", json={"ids": [job_id]}, headers=AUTH)
        clock.advance(10.0)
        webhooks = app.state.sandbox.webhooks
        await asyncio.wait_for(webhooks.join(), WAIT)
        assert webhooks.pending() == 0
    assert receiver.received == [] and webhooks.deliveries == []


async def test_the_enhancer_takes_a_webhook_too(instant, receiver: Receiver) -> None:
    app, client = instant
    await client.post(
        ENHANCE, params={"webhook": receiver.url}, json={"text": "a cat"}, headers=AUTH
    )
    await asyncio.wait_for(app.state.sandbox.webhooks.join(), WAIT)
    assert receiver.received[0][1]["data"]["outputs"][0].startswith("a cat")


# -- the balance -------------------------------------------------------------------------------


async def test_each_run_is_charged_its_price(instant) -> None:
    app, client = instant
    start = app.state.sandbox.balance
    await client.post(SUBMIT, json=body(), headers=AUTH)
    await client.post(ENHANCE, json={"text": "a cat"}, headers=AUTH)
    balance = (await client.get("/api/v3/balance", headers=AUTH)).json()["data"]["balance"]
    assert balance == pytest.approx(start - 0.5 - 0.001)


async def test_a_submit_the_balance_cannot_pay_is_refused_before_any_task() -> None:
    async with sandbox(SandboxConfig(speed="instant", duration=0.2, balance=1.0)) as (app, client):
        for _ in range(2):
            assert (await client.post(SUBMIT, json=body(), headers=AUTH)).status_code == 200
        refused = await client.post(SUBMIT, json=body(), headers=AUTH)
        message = assert_error(refused, 402, "Insufficient balance")
        assert app.state.sandbox.accepted == 2
        assert app.state.sandbox.balance == 0.0
        page = (await client.post(HISTORY, json={}, headers=AUTH)).json()["data"]
        assert page["total"] == 2
        assert_error(await client.post(ENHANCE, json={"text": "a cat"}, headers=AUTH), 402)
    assert isinstance(error_for(402, message), InsufficientCreditsError)


async def test_a_balance_of_exactly_the_price_pays() -> None:
    async with sandbox(SandboxConfig(speed="instant", duration=0.2, balance=0.5)) as (app, client):
        assert (await client.post(SUBMIT, json=body(), headers=AUTH)).status_code == 200
    assert app.state.sandbox.balance == 0.0


def test_the_default_balance_is_generous() -> None:
    assert SandboxConfig().balance >= 100.0
    with pytest.raises(ValueError, match="balance"):
        SandboxConfig(balance=-1.0)
