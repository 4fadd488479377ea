"""The async client against httpx.MockTransport: every error path, retries, no blind resubmit."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import wavenb
from tests.conftest import API, CANARY_KEY, MP4, PID, png_bytes, prediction
from wavenb import (
    AsyncClient,
    AuthenticationError,
    Client,
    InputError,
    PredictionFailed,
    PredictionTimeout,
    RateLimitError,
    ServerError,
    Status,
    SubmissionUncertain,
    TransportError,
    Update,
)

CDN = "https://cdn.example.net"


COMPLETED = prediction(
    "completed",
    outputs=[f"{CDN}/predictions/{PID}/1.mp4"],
    has_nsfw_contents=[False],
    timings={"inference": 4000},
)


class FakeAPI:
    """A scripted server: answers each route from a queue, records every request."""

    def __init__(self, script: dict[str, list[object]]) -> None:
        self.script = script
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        answers = self.script.get(key)
        if not answers:
            return httpx.Response(404, json={"code": 404, "message": f"no script for {key}"})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    def calls(self, route: str) -> list[httpx.Request]:
        """The requests made to ``route`` ("METHOD /path"), in order."""
        return [r for r in self.requests if f"{r.method} {r.url.path}" == route]

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)


SUBMIT = "POST /api/v3/runwayml/gen4-turbo"
RESULT = f"GET /api/v3/predictions/{PID}/result"
UPLOAD = "POST /api/v3/media/upload/binary"


def client_for(api: Callable[[httpx.Request], httpx.Response], tmp_path: Path) -> AsyncClient:
    return AsyncClient(CANARY_KEY, API, transport=httpx.MockTransport(api), output_dir=tmp_path)


async def test_submit_sends_documented_body_with_bearer(tmp_path):
    api = FakeAPI({SUBMIT: [prediction()]})
    async with client_for(api, tmp_path) as client:
        result = await client.submit(
            "https://img.example/cat.jpg", "Camera slowly zooms in", "9:16"
        )
    (request,) = api.calls(SUBMIT)
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert json.loads(request.content) == {
        "prompt": "Camera slowly zooms in",
        "image": "https://img.example/cat.jpg",
        "aspect_ratio": "9:16",
    }
    assert result.id == PID and result.status is Status.CREATED


async def test_local_image_is_uploaded_first(tmp_path, portrait):
    upload = {
        "code": 200,
        "message": "success",
        "data": {
            "type": "image",
            "download_url": f"{CDN}/media/p.jpg",
            "filename": "p.jpg",
            "size": 1,
        },
    }
    api = FakeAPI({UPLOAD: [upload], SUBMIT: [prediction()]})
    async with client_for(api, tmp_path) as client:
        await client.submit(portrait, "zoom in")
    # The price is quoted first (404 here: the list price is used), then upload, then submit.
    assert [r.url.path for r in api.requests if "/model/" not in r.url.path] == [
        "/api/v3/media/upload/binary",
        "/api/v3/runwayml/gen4-turbo",
    ]
    assert b'name="file"; filename="portrait-astronaut.jpg"' in api.calls(UPLOAD)[0].content
    assert json.loads(api.calls(SUBMIT)[0].content)["image"] == f"{CDN}/media/p.jpg"


@pytest.mark.parametrize(
    ("image", "prompt", "ratio"),
    [
        ("https://x/a.jpg", "", None),
        ("https://x/a.jpg", "zoom", "2:1"),
        (b"not an image", "zoom", None),
        ("/no/such/file.jpg", "zoom", None),
    ],
)
async def test_bad_input_raises_before_any_request(tmp_path, image, prompt, ratio):
    api = FakeAPI({SUBMIT: [prediction()]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(InputError):
            await client.submit(image, prompt, ratio)
    assert api.requests == []


async def test_submit_is_retried_after_429_honouring_retry_after(tmp_path):
    limited = httpx.Response(
        429, json={"code": 429, "message": "too many"}, headers={"Retry-After": "0"}
    )
    api = FakeAPI({SUBMIT: [limited, prediction()]})
    async with client_for(api, tmp_path) as client:
        assert (await client.submit("https://x/a.jpg", "zoom in")).id == PID
    assert api.count("POST", "/api/v3/runwayml/gen4-turbo") == 2


async def test_submit_is_retried_when_the_connection_was_never_made(tmp_path):
    api = FakeAPI({SUBMIT: [httpx.ConnectError("refused"), prediction()]})
    async with client_for(api, tmp_path) as client:
        assert (await client.submit("https://x/a.jpg", "zoom in")).id == PID
    assert api.count("POST", "/api/v3/runwayml/gen4-turbo") == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"code": 500, "message": "boom"}),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed"),
    ],
    ids=["500", "502-html", "read-timeout", "dropped"],
)
async def test_submit_is_never_resent_when_it_may_have_been_accepted(tmp_path, failure):
    api = FakeAPI({SUBMIT: [failure, prediction()]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(SubmissionUncertain, match="may have been accepted"):
            await client.submit("https://x/a.jpg", "zoom in")
    assert api.count("POST", "/api/v3/runwayml/gen4-turbo") == 1


async def test_401_is_an_authentication_error_without_the_key(tmp_path):
    api = FakeAPI({SUBMIT: [httpx.Response(401, json={"code": 401, "message": "Invalid API key"})]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.submit("https://x/a.jpg", "zoom in")
    assert "WAVESPEED_API_KEY" in str(caught.value)
    assert CANARY_KEY not in str(caught.value) + repr(caught.value)
    assert api.count("POST", "/api/v3/runwayml/gen4-turbo") == 1


async def test_result_checks_are_retried_on_5xx_429_and_broken_connections(tmp_path):
    api = FakeAPI(
        {
            RESULT: [
                httpx.Response(503, json={"code": 503, "message": "busy"}),
                httpx.Response(
                    429, json={"code": 429, "message": "slow"}, headers={"Retry-After": "0"}
                ),
                httpx.ReadError("reset"),
                prediction("processing"),
            ]
        }
    )
    async with client_for(api, tmp_path) as client:
        assert (await client.get(PID)).status is Status.PROCESSING
    assert len(api.requests) == 4


async def test_result_check_gives_up_with_the_last_error(tmp_path):
    api = FakeAPI({RESULT: [httpx.Response(500, json={"code": 500, "message": "down"})]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(ServerError, match="down"):
            await client.get(PID)
    assert len(api.requests) == 6  # production's 6 attempts (tests skip only the back-off waits)


async def test_wait_reports_each_check_and_returns_completed(tmp_path):
    api = FakeAPI({RESULT: [prediction("created"), prediction("processing"), COMPLETED]})
    updates: list[Update] = []
    async with client_for(api, tmp_path) as client:
        done = await client.wait(PID, on_update=updates.append)
    assert done.status is Status.COMPLETED and done.inference_ms == 4000
    assert [u.prediction.status.value for u in updates] == ["created", "processing", "completed"]
    assert updates[-1].next_check is None
    assert [u.checks for u in updates] == [1, 2, 3]  # every result request counts


async def test_async_on_update_is_awaited(tmp_path):
    seen: list[str] = []

    async def hook(update: Update) -> None:
        seen.append(update.prediction.status.value)

    api = FakeAPI({RESULT: [prediction("processing"), COMPLETED]})
    async with client_for(api, tmp_path) as client:
        await client.wait(PID, on_update=hook)
    assert seen == ["processing", "completed"]


async def test_failed_prediction_raises_with_the_server_reason(tmp_path):
    failed = prediction("failed", error="Content policy violation: flagged by the safety filter")
    api = FakeAPI({RESULT: [prediction("processing"), failed]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(PredictionFailed, match="Content policy") as caught:
            await client.wait(PID)
    assert caught.value.prediction.id == PID
    assert caught.value.moderation


async def test_deadline_raises_timeout_carrying_the_id(tmp_path):
    api = FakeAPI({RESULT: [prediction("processing")]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(PredictionTimeout, match=PID) as caught:
            await client.wait(PID, timeout=0.0)
    assert caught.value.prediction.id == PID


async def test_unknown_status_keeps_waiting(tmp_path):
    api = FakeAPI({RESULT: [prediction("warming-up"), COMPLETED]})
    async with client_for(api, tmp_path) as client:
        assert (await client.wait(PID)).status is Status.COMPLETED


async def test_completed_without_outputs_is_a_failure(tmp_path):
    api = FakeAPI({RESULT: [prediction("completed", outputs=None)]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(PredictionFailed, match="completed without an output"):
            await client.wait(PID)


async def test_download_streams_to_disk_without_sending_the_key(tmp_path):
    mp4 = MP4
    api = FakeAPI(
        {RESULT: [COMPLETED], f"GET /predictions/{PID}/1.mp4": [httpx.Response(200, content=mp4)]}
    )
    async with client_for(api, tmp_path) as client:
        path = await client.download(await client.get(PID))
    assert path == tmp_path / f"{PID}.mp4"
    assert path.read_bytes() == mp4
    cdn_request = api.requests[-1]
    assert cdn_request.url.host == "cdn.example.net"
    assert "authorization" not in cdn_request.headers
    assert not list(tmp_path.glob("*.part"))


async def test_expired_output_is_not_found(tmp_path):
    api = FakeAPI({f"GET /predictions/{PID}/1.mp4": [httpx.Response(404, text="gone")]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(Exception, match="404") as caught:
            await client.download(f"{CDN}/predictions/{PID}/1.mp4")
    assert type(caught.value).__name__ == "NotFoundError"


async def test_generate_is_submit_wait_download(tmp_path):
    api = FakeAPI(
        {
            SUBMIT: [prediction()],
            RESULT: [prediction("processing"), COMPLETED],
            f"GET /predictions/{PID}/1.mp4": [httpx.Response(200, content=MP4)],
        }
    )
    async with client_for(api, tmp_path) as client:
        video = await client.generate("https://x/a.jpg", "zoom in", output=tmp_path / "v.mp4")
    assert video.path == tmp_path / "v.mp4" and video.path.read_bytes() == MP4
    assert video.id == PID and video.url.endswith("/1.mp4")


async def test_enhance_prompt_returns_the_text(tmp_path):
    answer = prediction(
        "completed",
        outputs=["A slow push-in on the cat, soft light."],
        model="wavespeed-ai/prompt-optimizer",
    )
    api = FakeAPI({"POST /api/v3/wavespeed-ai/prompt-optimizer": [answer]})
    async with client_for(api, tmp_path) as client:
        text = await client.enhance_prompt("a cat", style="photographic")
    assert text == "A slow push-in on the cat, soft light."
    assert json.loads(api.requests[0].content)["mode"] == "video"


async def test_balance(tmp_path):
    api = FakeAPI(
        {"GET /api/v3/balance": [{"code": 200, "message": "success", "data": {"balance": 12.5}}]}
    )
    async with client_for(api, tmp_path) as client:
        assert await client.balance() == 12.5


async def test_connection_refused_on_reads_is_a_transport_error(tmp_path):
    api = FakeAPI({RESULT: [httpx.ConnectError("refused")]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(TransportError, match="could not connect"):
            await client.get(PID)


async def test_rate_limit_on_reads_gives_up_as_rate_limit_error(tmp_path):
    api = FakeAPI({RESULT: [httpx.Response(429, json={"code": 429, "message": "slow"})]})
    async with client_for(api, tmp_path) as client:
        with pytest.raises(RateLimitError):
            await client.get(PID)


def test_reprs_never_show_the_key(tmp_path):
    client = Client(
        CANARY_KEY, API, transport=httpx.MockTransport(FakeAPI({})), output_dir=tmp_path
    )
    with client:
        text = (
            repr(client) + repr(client.aio) + repr(vars(client.aio)) + str(client.aio.session.http._client.headers)
        )
    assert CANARY_KEY not in text
    assert client.backend == "api" and client.price_per_video == 0.5


def test_blocking_client_works_in_a_script(tmp_path):
    api = FakeAPI({RESULT: [COMPLETED]})
    with Client(CANARY_KEY, API, transport=httpx.MockTransport(api), output_dir=tmp_path) as client:
        assert client.wait(PID).status is Status.COMPLETED
        assert client.get(PID).id == PID


async def test_blocking_client_works_inside_a_running_loop(tmp_path):
    """As in a Jupyter cell: the loop is already running; nest-asyncio makes it re-entrant."""
    api = FakeAPI({RESULT: [COMPLETED]})
    client = Client(CANARY_KEY, API, transport=httpx.MockTransport(api), output_dir=tmp_path)
    assert client.get(PID).status is Status.COMPLETED
    client.close()


def test_no_key_means_the_embedded_sandbox_announced_once(caplog):
    from wavenb.client import async_client as _client

    _client._sandbox_announced = False
    with caplog.at_level(logging.WARNING, logger="wavenb"):
        first, second = Client(), Client()
    messages = [r.getMessage() for r in caplog.records if "SANDBOX" in r.getMessage()]
    assert len(messages) == 1
    assert first.backend == second.backend == "sandbox"
    assert first.price_per_video == 0.0
    first.close()
    second.close()


def test_upload_of_non_image_bytes_is_refused_locally(tmp_path):
    api = FakeAPI({})
    with Client(CANARY_KEY, API, transport=httpx.MockTransport(api), output_dir=tmp_path) as client:
        with pytest.raises(InputError):
            client.upload(b"%PDF-1.4")
        assert png_bytes()  # the helper makes real images; the refusal is about content
    assert api.requests == []


async def test_timeline_records_every_request_in_order(tmp_path):
    api = FakeAPI(
        {
            SUBMIT: [prediction()],
            RESULT: [prediction("created"), prediction("processing"), COMPLETED],
        }
    )
    async with client_for(api, tmp_path) as client:
        done = await client.wait(await client.submit("https://x/a.jpg", "zoom in"))
    timeline = done.timeline()
    assert [(e.kind, e.status.value) for e in timeline.events] == [
        ("submit", "created"),
        ("check", "created"),
        ("check", "processing"),
        ("check", "completed"),
    ]
    assert timeline.checks == 3
    times = [e.at for e in timeline.events]
    assert times == sorted(times) and times[0] == 0.0
    assert [p[0].value for p in timeline.phases()] == ["created", "processing", "completed"]
    assert timeline.phases()[0][2] == timeline.events[2].at
    assert timeline.rows()[0]["kind"] == "submit"
    assert client.timeline(PID) == timeline
    assert client.timeline("never-seen").events == ()


async def test_blocking_client_never_reenters_the_running_loop(tmp_path):
    """Re-entering Jupyter's loop (nest-asyncio) stalls ipykernel 7; the facade must not."""
    ran: list[bool] = []

    async def other_message() -> None:
        ran.append(True)

    pending = asyncio.get_running_loop().create_task(other_message())
    api = FakeAPI({RESULT: [COMPLETED]})
    with Client(CANARY_KEY, API, transport=httpx.MockTransport(api), output_dir=tmp_path) as client:
        assert client.get(PID).status is Status.COMPLETED
        assert ran == [], "the running loop was re-entered during a blocking call"
    await pending
    assert ran == [True]


def test_the_blocking_client_offers_everything_the_async_one_does() -> None:
    """Every public method and property, but the two that hand out coroutine objects
    (``aio``, the async client underneath, is how to reach those)."""
    not_blocking = {"aclose", "job", "follow"}  # ``close``; a Job's steps are coroutines
    names_async = {n for n in dir(wavenb.AsyncClient) if not n.startswith("_")} - not_blocking
    names_sync = {n for n in dir(wavenb.Client) if not n.startswith("_")} - {"close", "aio"}
    assert names_async == names_sync
    with wavenb.Client() as client:
        assert client.runtime is client.aio.runtime
