"""The API key never lands in a cassette, a log line, an error or a repr."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
import yaml

from tests.conftest import API, ASSETS, CANARY_KEY, CASSETTES
from wavenb import AsyncClient, WavenbError
from wavenb.sandbox import SandboxConfig, create_app

BEARER = re.compile(r"Bearer\s+(\S+)")
REDACTED = "Bearer <REDACTED>"


def cassette_files() -> list:
    return sorted(CASSETTES.rglob("*.yaml"))


def test_there_are_cassettes_to_scan():
    assert len(cassette_files()) >= 6


@pytest.mark.parametrize("path", cassette_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cassette_holds_no_key(path):
    text = path.read_text()
    assert CANARY_KEY not in text
    assert {m.group(1) for m in BEARER.finditer(text)} <= {"<REDACTED>"}
    for interaction in yaml.safe_load(text)["interactions"]:
        headers = {k.lower(): v for k, v in interaction["request"]["headers"].items()}
        assert headers.get("authorization", [REDACTED]) == [REDACTED]
        assert "api_key" not in interaction["request"]["uri"]


async def test_debug_logs_and_errors_hold_no_key(caplog, tmp_path):
    """Drive success and failure paths with every logger at DEBUG; scan what they said."""
    caplog.set_level(logging.DEBUG)
    app = create_app(SandboxConfig(speed="instant", duration=1.0, api_keys=frozenset({CANARY_KEY})))
    said: list[str] = []
    async with AsyncClient(
        CANARY_KEY, API, transport=httpx.ASGITransport(app=app), output_dir=tmp_path
    ) as client:
        said.append(repr(client))
        video = await client.generate(ASSETS / "animal-chelsea.jpg", "Camera slowly zooms in")
        said.append(repr(video))
        for image, prompt in [("https://example.invalid/x.jpg", "zoom"), (b"junk", "zoom"),
                              (ASSETS / "animal-chelsea.jpg", "the gore")]:
            with pytest.raises(WavenbError) as caught:
                await client.generate(image, prompt)
            said += [str(caught.value), repr(caught.value)]
    async with AsyncClient(
        "wrong-" + CANARY_KEY, API, transport=httpx.ASGITransport(app=app), output_dir=tmp_path
    ) as stranger:
        with pytest.raises(WavenbError) as caught:
            await stranger.balance()
        said += [str(caught.value), repr(caught.value)]
    assert caplog.records, "DEBUG logging captured nothing: the scan would prove nothing"
    assert CANARY_KEY not in caplog.text
    assert not [s for s in said if CANARY_KEY in s]
