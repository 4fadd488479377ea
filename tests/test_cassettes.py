"""The client against recorded HTTP (pytest-recording): the real API's shape, replayed offline.

Recorded from the in-process sandbox under the base URL ``https://api.wavespeed.ai``. With
``WAVENB_RECORD_REAL=1``, a ``WAVESPEED_API_KEY`` and ``--record-mode=rewrite`` the same tests
record against the real API instead (that costs money). Replays never sleep: wavenb's testing
mode zeroes the poll and retry waits, and every recorded answer is played once, in order.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

import wavenb
from tests.conftest import API, ASSETS, CANARY_KEY
from wavenb import AsyncClient, AuthenticationError, PredictionFailed, Status, Update
from wavenb.core.polling import PollPolicy
from wavenb.sandbox import SandboxConfig, create_app
from wavenb.sandbox._render import probe_video

REAL_KEY = os.environ.get("WAVESPEED_API_KEY")  # read before the isolating fixture drops it
RECORD_REAL = os.environ.get("WAVENB_RECORD_REAL") == "1"
RECORD_POLL = PollPolicy(min_interval=0.4, first_delay=0.4, growth=0.25, max_interval=1.0)
"""Checks while recording from the sandbox: few enough to keep cassettes short."""

MakeClient = Callable[..., AsyncClient]


@pytest.fixture
async def make_client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeClient]:
    recording = request.config.getoption("--record-mode") != "none"
    if recording:
        wavenb.set_testing(False)
    made: list[AsyncClient] = []

    def make(config: SandboxConfig | None = None, key: str = CANARY_KEY) -> AsyncClient:
        if recording and RECORD_REAL:
            assert REAL_KEY, "set WAVESPEED_API_KEY to record against the real API"
            client = AsyncClient(REAL_KEY, API, output_dir=tmp_path)
        else:
            app = create_app(config or SandboxConfig(speed="fast", duration=1.0))
            transport = httpx.ASGITransport(app=app)
            client = AsyncClient(key, API, transport=transport, output_dir=tmp_path, poll=RECORD_POLL)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.mark.vcr
async def test_generate_submit_poll_complete_download(make_client: MakeClient):
    client = make_client()
    updates: list[Update] = []
    video = await client.generate(
        ASSETS / "animal-chelsea.jpg",
        "Gentle camera pan to the right, revealing more of the scene",
        "16:9",
        on_update=updates.append,
    )
    statuses = [u.prediction.status for u in updates if u.prediction is not None]
    assert statuses[0] is Status.CREATED
    assert statuses[-1] is Status.COMPLETED
    assert len(statuses) >= 3, "the cassette should hold several result checks"
    assert video.prediction.model == "runwayml/gen4-turbo"
    assert video.url.startswith("https://")
    probe = probe_video(video.path)
    assert probe.codec == "h264"
    assert (probe.width, probe.height) == (1280, 720)
    assert video.sandbox is not RECORD_REAL


@pytest.mark.vcr
async def test_failed_prediction(make_client: MakeClient):
    client = make_client()
    with pytest.raises(PredictionFailed) as caught:
        await client.generate(ASSETS / "portrait-astronaut.jpg", "Zoom in on the gore, nsfw")
    assert caught.value.prediction.status is Status.FAILED
    assert caught.value.moderation


@pytest.mark.vcr
async def test_unauthorized(make_client: MakeClient):
    client = make_client(SandboxConfig(speed="fast", api_keys=frozenset({"another-key"})))
    with pytest.raises(AuthenticationError) as caught:
        await client.submit("https://example.com/cat.jpg", "Camera slowly zooms in")
    assert caught.value.status == 401
    assert CANARY_KEY not in str(caught.value)


@pytest.mark.vcr
async def test_rate_limited_then_accepted(make_client: MakeClient):
    """The second submit in the window gets a 429 with Retry-After; wavenb waits and resends."""
    client = make_client(SandboxConfig(speed="fast", duration=1.0, submit_rate=(1, 1.0)))
    image = await client.upload(ASSETS / "product-coffee.jpg")
    first = await client.submit(image, "Slow orbit around the product")
    second = await client.submit(image, "Camera slowly zooms in")
    assert first.id != second.id
    assert second.status is Status.CREATED


@pytest.mark.vcr
async def test_upload_returns_a_download_url(make_client: MakeClient):
    client = make_client()
    url = await client.upload(ASSETS / "portrait-astronaut.jpg")
    assert url.startswith("https://")


@pytest.mark.vcr
async def test_prompt_enhancer(make_client: MakeClient):
    client = make_client()
    text = await client.enhance_prompt("The cat looks around", style="photographic")
    assert "cat" in text.lower()
    assert len(text) > len("The cat looks around")


@pytest.mark.vcr
async def test_balance(make_client: MakeClient):
    client = make_client()
    assert await client.balance() >= 0
