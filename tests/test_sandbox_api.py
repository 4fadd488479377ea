"""The sandbox server speaks the WaveSpeedAI API: routes, envelopes, lifecycle, errors, labels."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import shutil
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from wavenb.core.types import ASPECT_RATIOS, OUTPUT_SIZES, PRICE_PER_VIDEO
from wavenb.sandbox import SANDBOX_BANNER, SandboxConfig, create_app
from wavenb.sandbox._jobs import CANCELLED_ERROR, MODERATION_ERROR, JobStore, Outcome
from wavenb.sandbox._render import VideoProbe, probe_video
from wavenb.sandbox._server import announce, build_server, warn_if_exposed

API = "https://api.wavespeed.ai"
KEY = "wsk-sandbox-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SUBMIT = "/api/v3/runwayml/gen4-turbo"
ENHANCE = "/api/v3/wavespeed-ai/prompt-optimizer"
UPLOAD = "/api/v3/media/upload/binary"
RENDER_TIMEOUT = 60.0
"""Seconds a test may wait for one real render (about 0.3 s for a 1 s clip)."""


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png(size: tuple[int, int] = (160, 90), color: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size in its header: a decompression bomb, without the bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def data_uri(content: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode()}"


def body(**overrides: Any) -> dict[str, Any]:
    return {"prompt": "Slow push in on the lighthouse", "image": data_uri(png()), **overrides}


@pytest.fixture
def allowed_hosts() -> list[str]:
    """Under ``--block-network``, still let the sandbox reach loopback (never the internet)."""
    return ["127.0.0.1"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(app: Any, base_url: str = API) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@asynccontextmanager
async def sandbox(config: SandboxConfig) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app and a client under the real API's base URL; queued renders cancelled after."""
    app = create_app(config)
    try:
        async with make_client(app) as client:
            yield app, client
    finally:
        await asyncio.to_thread(app.state.sandbox.close)


@pytest.fixture
async def instant() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app whose jobs complete as soon as their 1-second clip is rendered."""
    async with sandbox(SandboxConfig(speed="instant", duration=1.0)) as pair:
        yield pair


@pytest.fixture
async def timed(clock: FakeClock) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A ``fast`` app on a fake clock."""
    async with sandbox(SandboxConfig(speed="fast", clock=clock, duration=1.0)) as pair:
        yield pair


async def submit(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post(SUBMIT, json=body(**overrides), headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def poll(client: httpx.AsyncClient, prediction_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v3/predictions/{prediction_id}/result", headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def rendered(app: Any, prediction_id: str) -> None:
    """Wait (bounded) for the job's real render to finish in its worker thread."""
    await asyncio.to_thread(app.state.sandbox.wait_for_render, prediction_id, RENDER_TIMEOUT)


async def settle(app: Any, client: httpx.AsyncClient, prediction_id: str) -> dict[str, Any]:
    await rendered(app, prediction_id)
    return await poll(client, prediction_id)


def assert_error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status
    assert response.headers["x-wavenb-sandbox"] == "1"
    envelope = response.json()
    assert envelope["code"] == status
    assert envelope["data"] is None
    message: str = envelope["message"]
    for word in words:
        assert word in message
    return message


def probe(content: bytes, folder: Path) -> VideoProbe:
    path = folder / "downloaded.mp4"
    path.write_bytes(content)
    return probe_video(path)


# -- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}, {"Authorization": KEY},
     {"Authorization": f"Basic {KEY}"}],
    ids=["missing", "empty-bearer", "bare-scheme", "no-scheme", "basic"],
)
async def test_api_routes_need_a_bearer_key(instant, headers) -> None:
    _, client = instant
    response = await client.post(SUBMIT, json=body(), headers=headers)
    message = assert_error(response, 401, "Bearer")
    assert KEY not in message


async def test_any_non_empty_key_is_accepted(instant) -> None:
    _, client = instant
    response = await client.get("/api/v3/balance", headers={"Authorization": "bearer x"})
    assert response.status_code == 200


async def test_only_configured_keys_are_accepted_when_given() -> None:
    config = SandboxConfig(speed="instant", api_keys=frozenset({KEY}))
    assert KEY not in repr(config)
    async with sandbox(config) as (_, client):
        assert (await client.get("/api/v3/balance", headers=AUTH)).status_code == 200
        wrong = await client.get("/api/v3/balance", headers={"Authorization": "Bearer other"})
    assert_error(wrong, 401, "invalid API key")


async def test_auth_applies_to_every_api_route(instant) -> None:
    _, client = instant
    for path in ("/api/v3/balance", f"/api/v3/predictions/{'0' * 32}/result", "/api/v3/nope"):
        assert (await client.get(path)).status_code == 401


# -- submit --------------------------------------------------------------------------------


async def test_submit_answers_a_created_prediction_shaped_like_the_real_one(instant) -> None:
    _, client = instant
    response = await client.post(SUBMIT, json=body(aspect_ratio="16:9"), headers=AUTH)
    assert response.status_code == 200
    assert response.headers["x-wavenb-sandbox"] == "1"
    envelope = response.json()
    assert (envelope["code"], envelope["message"]) == (200, "success")
    data = envelope["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["model"] == "runwayml/gen4-turbo"
    assert data["status"] == "created"
    assert data["outputs"] == []
    assert data["has_nsfw_contents"] == []
    assert data["urls"] == {"get": f"{API}/api/v3/predictions/{data['id']}/result"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["created_at"])
    assert data["error"] == ""
    assert data["executionTime"] == 0
    assert data["timings"] == {"inference": 0}
    assert data["sandbox"] is True


@pytest.mark.parametrize("hook", ["ftp://example.com/hook", "file:///etc/passwd", "http://"])
async def test_a_webhook_must_be_an_http_url(instant, hook: str) -> None:
    """Delivery itself is tested in ``test_sandbox_sync.py``."""
    app, client = instant
    response = await client.post(SUBMIT, params={"webhook": hook}, json=body(), headers=AUTH)
    assert_error(response, 400, "webhook")
    assert app.state.sandbox.accepted == 0


async def test_urls_follow_the_base_url_the_request_used() -> None:
    app = create_app(SandboxConfig(speed="instant", duration=1.0))
    async with make_client(app, "http://localhost:9999") as client:
        data = await submit(client)
        assert data["urls"]["get"].startswith("http://localhost:9999/api/v3/predictions/")
        done = await settle(app, client, data["id"])
    assert done["outputs"][0] == f"http://localhost:9999/sandbox-cdn/predictions/{data['id']}/1.mp4"


async def test_ids_never_repeat_even_for_the_same_seed() -> None:
    """Journals outlive a sandbox: an id from one run must not name a task of another."""
    ids = []
    for _ in range(2):
        async with sandbox(SandboxConfig(speed="instant", seed=7, duration=1.0)) as (_, client):
            ids += [(await submit(client))["id"] for _ in range(2)]
    assert len(set(ids)) == 4


async def test_generic_sync_flag_answers_the_finished_prediction(instant) -> None:
    """Both outcomes of sync mode are tested in ``test_sandbox_sync.py``."""
    _, client = instant
    response = await client.post(SUBMIT, json=body(enable_sync_mode=True), headers=AUTH)
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "completed"


async def test_submissions_over_the_rate_cap_get_429_with_retry_after() -> None:
    config = SandboxConfig(speed="instant", duration=1.0, submit_rate=(2, 60.0))
    async with sandbox(config) as (app, client):
        await submit(client)
        await submit(client)
        response = await client.post(SUBMIT, json=body(), headers=AUTH)
        assert_error(response, 429, "Rate limit")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert app.state.sandbox.accepted == 2


@pytest.mark.parametrize("field", ["seed", "duration", "resolution"])
async def test_unknown_fields_are_refused_by_name(instant, field) -> None:
    _, client = instant
    response = await client.post(SUBMIT, json=body(**{field: 1}), headers=AUTH)
    assert_error(response, 400, f"'{field}'")


async def test_bad_aspect_ratio_names_the_allowed_values(instant) -> None:
    _, client = instant
    response = await client.post(SUBMIT, json=body(aspect_ratio="21:9"), headers=AUTH)
    assert_error(response, 400, "aspect_ratio", "21:9", *ASPECT_RATIOS)


async def test_empty_aspect_ratio_means_match_the_image(instant) -> None:
    _, client = instant
    assert (await submit(client, aspect_ratio=""))["status"] == "created"


async def test_prompt_over_1000_characters_is_refused(instant) -> None:
    _, client = instant
    response = await client.post(SUBMIT, json=body(prompt="a" * 1001), headers=AUTH)
    assert_error(response, 400, "1001", "1000")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"image": data_uri(png())}, ["'prompt'", "required"]),
        (body(prompt="   "), ["'prompt'", "empty"]),
        (body(prompt=5), ["'prompt'", "string", "number"]),
        ({"prompt": "zoom in"}, ["'image'", "required"]),
        (body(image=["https://x/y.png"]), ["'image'", "string", "array"]),
        (body(image="ftp://example.com/a.png"), ["'image'", "http"]),
        (body(image="data:text/plain;base64,aGk="), ["'image'", "data:image"]),
        (body(aspect_ratio=None), ["'aspect_ratio'", "string", "null"]),
    ],
    ids=["no-prompt", "blank-prompt", "prompt-number", "no-image", "image-list", "ftp-image",
         "text-data-uri", "null-ratio"],
)
async def test_invalid_fields_are_refused_with_a_reason(instant, payload, words) -> None:
    _, client = instant
    assert_error(await client.post(SUBMIT, json=payload, headers=AUTH), 400, *words)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_refused(instant, raw) -> None:
    _, client = instant
    response = await client.post(SUBMIT, content=raw, headers=AUTH)
    assert_error(response, 400, "JSON")


async def test_data_uri_over_5_mb_is_refused(instant) -> None:
    _, client = instant
    huge = "data:image/png;base64," + "A" * (5 * 1024 * 1024)
    assert_error(await client.post(SUBMIT, json=body(image=huge), headers=AUTH), 400, "5 MB")


async def test_rejected_submissions_are_not_charged_or_counted(instant) -> None:
    app, client = instant
    await client.post(SUBMIT, json=body(seed=1), headers=AUTH)
    assert app.state.sandbox.accepted == 0
    balance = (await client.get("/api/v3/balance", headers=AUTH)).json()["data"]["balance"]
    assert balance == pytest.approx(SandboxConfig().balance)


# -- lifecycle -----------------------------------------------------------------------------


async def test_fake_clock_walks_created_processing_completed_to_a_real_mp4(
    timed, clock, tmp_path
) -> None:
    app, client = timed
    data = await submit(client, aspect_ratio="1:1")
    assert (await poll(client, data["id"]))["status"] == "created"
    await rendered(app, data["id"])
    assert (await poll(client, data["id"]))["status"] == "created", "queue time not over yet"

    clock.advance(0.31)
    processing = await poll(client, data["id"])
    assert processing["status"] == "processing"
    assert processing["outputs"] == []

    clock.advance(3.0)
    done = await poll(client, data["id"])
    assert done["status"] == "completed"
    assert done["has_nsfw_contents"] == [False]
    assert 2000 <= done["executionTime"] <= 3000
    assert done["timings"] == {"inference": done["executionTime"]}
    assert done["outputs"] == [f"{API}/sandbox-cdn/predictions/{data['id']}/1.mp4"]

    video = await client.get(done["outputs"][0])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == len(video.content)
    info = probe(video.content, tmp_path)
    assert (info.codec, (info.width, info.height)) == ("h264", OUTPUT_SIZES["1:1"])
    assert (info.fps, info.duration) == (24.0, pytest.approx(1.0))


async def test_both_result_routes_answer_the_same(instant) -> None:
    app, client = instant
    data = await submit(client)
    await rendered(app, data["id"])
    short = await client.get(f"/api/v3/predictions/{data['id']}", headers=AUTH)
    assert short.json() == (await client.get(
        f"/api/v3/predictions/{data['id']}/result", headers=AUTH)).json()


async def test_aspect_ratio_defaults_to_the_closest_to_the_image(instant, tmp_path) -> None:
    app, client = instant
    data = await submit(client, image=data_uri(png((90, 160))))
    done = await settle(app, client, data["id"])
    video = await client.get(done["outputs"][0])
    info = probe(video.content, tmp_path)
    assert (info.width, info.height) == OUTPUT_SIZES["9:16"]


async def test_video_url_is_404_until_the_job_completes(timed, clock) -> None:
    app, client = timed
    data = await submit(client)
    await rendered(app, data["id"])
    url = f"/sandbox-cdn/predictions/{data['id']}/1.mp4"
    assert_error(await client.get(url), 404)
    clock.advance(10)
    assert (await client.get(url)).status_code == 200


async def test_video_supports_range_requests(instant) -> None:
    app, client = instant
    done = await settle(app, client, (await submit(client))["id"])
    part = await client.get(done["outputs"][0], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert len(part.content) == 100


async def test_realistic_timings_are_drawn_within_their_ranges(clock) -> None:
    config = SandboxConfig(speed="realistic", clock=clock, duration=1.0)
    async with sandbox(config) as (app, client):
        data = await submit(client)
        await rendered(app, data["id"])
        clock.advance(0.99)
        assert (await poll(client, data["id"]))["status"] == "created"
        clock.advance(3.02)
        assert (await poll(client, data["id"]))["status"] == "processing"
        clock.advance(16.9)  # started by 4 s, so not 20 s in yet
        assert (await poll(client, data["id"]))["status"] == "processing"
        clock.advance(44)  # past 4 + 60 s
        done = await poll(client, data["id"])
    assert done["status"] == "completed"
    assert 20_000 <= done["executionTime"] <= 60_000


def test_the_app_serves_requests_from_loops_that_come_and_go() -> None:
    """No state is tied to an event loop: each ``asyncio.run`` gets a fresh one."""
    app = create_app(SandboxConfig(speed="instant", duration=1.0))

    async def first() -> str:
        async with make_client(app) as client:
            return str((await submit(client))["id"])

    async def then(prediction_id: str) -> str:
        async with make_client(app) as client:
            return str((await settle(app, client, prediction_id))["status"])

    prediction_id = asyncio.run(first())
    assert asyncio.run(then(prediction_id)) == "completed"


# -- failures ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


async def test_unreachable_image_url_fails_like_the_real_service(instant) -> None:
    app, client = instant
    url = f"http://127.0.0.1:{closed_port()}/cat.png"
    done = await settle(app, client, (await submit(client, image=url))["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith(f"Failed to download image from URL: {url}")
    assert done["outputs"] == []


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (data_uri(b"this is not an image"), ["could not be decoded"]),
        ("data:image/png;base64,!!!", ["base64"]),
        (data_uri(png((300, 100))), ["aspect ratio", "3.00"]),
        (data_uri(png((8000, 4000))), ["8000x4000", "7999"]),
        (data_uri(png_header_only(30_000, 30_000)), ["too many pixels"]),
    ],
    ids=["text-bytes", "bad-base64", "too-wide", "too-large", "decompression-bomb"],
)
async def test_unusable_images_fail_with_a_clear_error(instant, image, words) -> None:
    app, client = instant
    done = await settle(app, client, (await submit(client, image=image))["id"])
    assert done["status"] == "failed"
    for word in words:
        assert word in done["error"]


async def test_moderation_words_fail_the_job(timed, clock) -> None:
    app, client = timed
    data = await submit(client, prompt="A NSFW scene, slow zoom")
    clock.advance(10)
    done = await settle(app, client, data["id"])
    assert (done["status"], done["error"]) == ("failed", MODERATION_ERROR)
    assert app.state.sandbox.completion_times[data["id"]] > 0


async def test_upload_with_a_missing_file_fails_on_its_own_url(instant) -> None:
    app, client = instant
    url = f"{API}/sandbox-media/{'a' * 32}.png"
    done = await settle(app, client, (await submit(client, image=url))["id"])
    assert done["error"].startswith("Failed to download image from URL")


@pytest.mark.parametrize("prediction_id", ["0" * 32, "nope", "../../etc/passwd"])
async def test_unknown_prediction_is_404(instant, prediction_id) -> None:
    _, client = instant
    for path in (f"/api/v3/predictions/{prediction_id}/result",
                 f"/api/v3/predictions/{prediction_id}"):
        assert_error(await client.get(path, headers=AUTH), 404)


async def test_unknown_api_route_is_a_404_envelope(instant) -> None:
    _, client = instant
    assert_error(await client.get("/api/v3/models/nothing", headers=AUTH), 404, "/api/v3/models")


async def test_wrong_method_is_a_405_envelope(instant) -> None:
    _, client = instant
    response = await client.get(SUBMIT, headers=AUTH)
    assert_error(response, 405, "POST")
    assert response.headers["allow"] == "POST"


# -- uploads -------------------------------------------------------------------------------


async def test_uploaded_image_can_be_fetched_and_submitted(instant) -> None:
    app, client = instant
    content = png((120, 90))
    response = await client.post(
        UPLOAD, files={"file": ("dir/photo.png", content, "application/octet-stream")},
        headers=AUTH,
    )
    assert response.status_code == 200
    envelope = response.json()
    assert (envelope["code"], envelope["message"]) == (200, "success")
    data = envelope["data"]
    assert data["type"] == "image"
    assert data["filename"] == "photo.png"
    assert data["size"] == len(content)
    assert re.fullmatch(rf"{API}/sandbox-media/[0-9a-f]{{32}}\.png", data["download_url"])

    assert (await client.get(data["download_url"])).content == content
    done = await settle(app, client, (await submit(client, image=data["download_url"]))["id"])
    assert done["status"] == "completed"


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF", "BMP", "TIFF"])
async def test_upload_accepts_the_documented_formats(instant, fmt) -> None:
    _, client = instant
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format=fmt)
    response = await client.post(
        UPLOAD, files={"file": ("x.bin", buffer.getvalue())}, headers=AUTH
    )
    assert response.status_code == 200, response.text


async def test_upload_judges_by_content_not_by_extension(instant) -> None:
    _, client = instant
    response = await client.post(
        UPLOAD, files={"file": ("fake.png", b"%PDF-1.7 not an image")}, headers=AUTH
    )
    assert_error(response, 400, "not an image")


async def test_upload_without_a_file_field_is_refused(instant) -> None:
    _, client = instant
    response = await client.post(UPLOAD, files={"other": ("a.png", png())}, headers=AUTH)
    assert_error(response, 400, "'file'")


async def test_upload_over_32_mb_is_refused(instant) -> None:
    _, client = instant
    response = await client.post(
        UPLOAD, files={"file": ("big.png", b"\0" * (33 * 1024 * 1024))}, headers=AUTH
    )
    assert_error(response, 413, "32 MB")


async def test_oversized_body_is_refused_while_streaming(instant) -> None:
    """Without a Content-Length the limit still holds: the body is counted as it arrives."""
    _, client = instant

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * (1024 * 1024)

    response = await client.post(SUBMIT, content=chunks(), headers=AUTH)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too large")


async def asgi_get(app: Any, path: str) -> tuple[int, dict[bytes, bytes]]:
    """GET a path exactly as written (httpx would normalise ``..`` away before sending)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"sandbox")], "server": ("sandbox", 80),
        "client": ("127.0.0.1", 1),
    }
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "..", "../media/x.png", "..%2F..%2Fetc%2Fpasswd", "passwd",
     f"{'a' * 32}.png", f"{'A' * 32}.png", f"{'a' * 32}.mp4", f"../{'a' * 32}.png",
     f"{'a' * 32}.png/..", "%2e%2e"],
)
async def test_media_route_serves_only_names_it_generated(instant, name) -> None:
    app, _ = instant
    status, headers = await asgi_get(app, f"/sandbox-media/{name}")
    assert status == 404
    assert headers[b"x-wavenb-sandbox"] == b"1"


async def test_an_upload_is_served_only_by_its_exact_name(instant, tmp_path) -> None:
    app, client = instant
    response = await client.post(UPLOAD, files={"file": ("a.png", png())}, headers=AUTH)
    name = response.json()["data"]["download_url"].rsplit("/", 1)[1]
    assert (await asgi_get(app, f"/sandbox-media/{name}"))[0] == 200
    assert (await asgi_get(app, f"/sandbox-media/../media/{name}"))[0] == 404
    assert (await asgi_get(app, f"/sandbox-media/{name.upper()}"))[0] == 404


# -- enhancer, balance, labels, counters ---------------------------------------------------


async def test_enhancer_in_sync_mode_answers_the_completed_prompt(instant) -> None:
    _, client = instant
    response = await client.post(
        ENHANCE,
        json={"text": "A cat on a windowsill", "mode": "video", "style": "anime",
              "enable_sync_mode": True},
        headers=AUTH,
    )
    data = response.json()["data"]
    assert data["model"] == "wavespeed-ai/prompt-optimizer"
    assert data["status"] == "completed"
    assert data["sandbox"] is True
    [enhanced] = data["outputs"]
    assert enhanced.startswith("A cat on a windowsill.")
    assert "Camera:" in enhanced
    assert "anime" in enhanced


async def test_enhancer_without_sync_completes_on_the_first_poll(instant) -> None:
    _, client = instant
    response = await client.post(ENHANCE, json={"text": "A red kite"}, headers=AUTH)
    created = response.json()["data"]
    assert (created["status"], created["outputs"]) == ("created", [])
    done = await poll(client, created["id"])
    assert done["status"] == "completed"
    assert done["outputs"][0].startswith("A red kite.")
    assert "Composition:" in done["outputs"][0], "mode defaults to image, as the API does"


@pytest.mark.parametrize(
    ("payload", "status"),
    [({"mode": "video"}, 400), ({"text": ""}, 400), ({"text": "x", "style": "noir"}, 400),
     ({"text": "x", "mode": "audio"}, 400), ({"text": "x", "seed": 1}, 400),
     ({"text": "x", "enable_sync_mode": "yes"}, 400)],
)
async def test_enhancer_validates_its_body(instant, payload, status) -> None:
    _, client = instant
    assert_error(await client.post(ENHANCE, json=payload, headers=AUTH), status)


async def test_balance_goes_down_by_the_price_of_each_accepted_video(instant) -> None:
    app, client = instant
    for _ in range(3):
        await submit(client)
    response = await client.get("/api/v3/balance", headers=AUTH)
    assert response.json() == {
        "code": 200, "message": "success", "data": {"balance": SandboxConfig().balance - 3 * PRICE_PER_VIDEO}
    }
    assert app.state.sandbox.accepted == 3


async def test_max_concurrent_keeps_the_third_task_created(clock) -> None:
    config = SandboxConfig(speed="fast", clock=clock, max_concurrent=2, duration=1.0)
    async with sandbox(config) as (app, client):
        ids = [(await submit(client))["id"] for _ in range(3)]
        other_key = await client.post(
            SUBMIT, json=body(), headers={"Authorization": "Bearer another-key"}
        )
        for prediction_id in [*ids, other_key.json()["data"]["id"]]:
            await rendered(app, prediction_id)
        clock.advance(0.5)
        statuses = [(await poll(client, i))["status"] for i in ids]
        assert statuses == ["processing", "processing", "created"]
        assert (await poll(client, other_key.json()["data"]["id"]))["status"] == "processing"

        clock.advance(3.0)  # the first two finish; the third takes a freed slot
        statuses = [(await poll(client, i))["status"] for i in ids]
        assert statuses == ["completed", "completed", "processing"]
        clock.advance(3.0)
        assert (await poll(client, ids[2]))["status"] == "completed"

    state = app.state.sandbox
    assert state.peak_processing == 3  # two for the first key, one for the other
    times = state.completion_times
    assert times[ids[2]] > max(times[ids[0]], times[ids[1]])


async def test_every_answer_is_labelled_as_the_sandbox(instant) -> None:
    _, client = instant
    answers = [
        await client.get("/"),
        await client.get("/api/v3/balance"),
        await client.get("/api/v3/balance", headers=AUTH),
        await client.get("/no/such/page"),
        await client.delete("/api/v3/balance", headers=AUTH),
    ]
    assert all(a.headers["x-wavenb-sandbox"] == "1" for a in answers)
    assert SANDBOX_BANNER in answers[0].text


async def test_requests_are_counted_by_route(instant) -> None:
    app, client = instant
    data = await submit(client)
    await poll(client, data["id"])
    await poll(client, data["id"])
    await client.get("/api/v3/balance")
    requests = app.state.sandbox.requests
    assert requests["POST /api/v3/runwayml/gen4-turbo"] == 1
    assert requests["GET /api/v3/predictions/{id}/result"] == 2
    assert requests["GET (unauthorized)"] == 1


async def test_an_internal_error_is_a_labelled_500_envelope() -> None:
    app = create_app(SandboxConfig(speed="instant"))
    shutil.rmtree(app.state.sandbox.storage.root / "media")  # uploads now have nowhere to go
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=API) as client:
        response = await client.post(UPLOAD, files={"file": ("a.png", png())}, headers=AUTH)
    assert_error(response, 500, "Internal sandbox error")


# -- the job store, without HTTP -----------------------------------------------------------


def test_a_job_completes_only_once_its_work_is_done(clock) -> None:
    """Time alone is not enough: a slow render keeps the job processing."""
    store = JobStore(clock=clock, seed=0, speed="fast", max_concurrent=None)
    work: Future[Outcome] = Future()
    job = store.add(store.new_id(), "m", "owner", work, timed=True)
    clock.advance(100)
    assert store.get(job.id).status == "processing"
    work.set_result(Outcome(finished_at=clock(), output="/out.mp4"))
    assert store.get(job.id).status == "completed"
    assert store.completion_times() == {job.id: 100}


def test_queued_work_cancelled_at_shutdown_fails_the_job(clock) -> None:
    store = JobStore(clock=clock, seed=0, speed="instant", max_concurrent=None)
    job = store.add(store.new_id(), "m", "owner", Future(), timed=True)
    store.cancel_waiting()
    assert (store.get(job.id).status, store.get(job.id).error) == ("failed", CANCELLED_ERROR)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="speed"):
        SandboxConfig(speed="warp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_concurrent"):
        SandboxConfig(max_concurrent=0)
    with pytest.raises(ValueError, match="duration"):
        SandboxConfig(duration=0)


def test_storage_dir_is_used_when_given(tmp_path: Path) -> None:
    app = create_app(SandboxConfig(storage_dir=tmp_path))
    assert app.state.sandbox.storage.root == tmp_path
    assert (tmp_path / "media").is_dir()


# -- served by uvicorn ---------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[str]:
    """A real uvicorn server on a free loopback port, for the length of one test."""
    server = build_server("127.0.0.1", 0, SandboxConfig(speed="instant"), log_level="warning")
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        for _ in range(500):  # uvicorn has no "started" event to wait on: poll, bounded (5 s)
            if server.started:
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_served_app_links_to_its_own_host_and_port(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        response = client.post(SUBMIT, json=body(), headers=AUTH)
        data = response.json()["data"]
    assert response.headers["x-wavenb-sandbox"] == "1"
    assert data["urls"]["get"] == f"{served}/api/v3/predictions/{data['id']}/result"


def test_banner_says_sandbox_not_runway(capsys: pytest.CaptureFixture[str]) -> None:
    announce("127.0.0.1", 8787, SandboxConfig(speed="realistic", max_concurrent=2))
    err = capsys.readouterr().err
    assert "wavenb SANDBOX — not Runway; videos are local renders" in err
    assert "http://127.0.0.1:8787 (speed realistic, 5 s clips, 2 at once per key)" in err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com", "::"])  # noqa: S104
def test_serving_beyond_loopback_warns(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(UserWarning, match="not loopback"):
        warn_if_exposed(host)
    assert "WARNING" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_does_not_warn(host: str, recwarn: pytest.WarningsRecorder) -> None:
    warn_if_exposed(host)
    # Only this warning counts: the garbage collector may report another test's leftovers here.
    assert not [w for w in recwarn.list if "not loopback" in str(w.message)]


async def test_the_key_appears_in_no_answer_and_no_counter(instant) -> None:
    """The key is hashed on arrival; nothing the sandbox says or keeps can contain it."""
    app, client = instant
    texts = [(await client.post(SUBMIT, json=body(seed=1), headers=AUTH)).text]
    data = await submit(client)
    texts.append(json.dumps(await settle(app, client, data["id"])))
    texts.append(json.dumps(app.state.sandbox.requests))
    texts.append(repr(vars(app.state.sandbox)))
    assert not any(KEY in text for text in texts)
