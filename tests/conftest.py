"""Shared fixtures: an isolated environment, the sandbox, and the cassette settings."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import wavenb
from wavenb._client import AsyncClient

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "notebooks" / "assets"
CASSETTES = ROOT / "cassettes"
API = "https://api.wavespeed.ai"
CANARY_KEY = "wsk-canary-0123456789abcdef"
"""A fake key that tests pass around; no output anywhere may contain it."""


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's key, server or data folder; no test waits for real."""
    for name in (
        "WAVESPEED_API_KEY",
        "WAVENB_BASE_URL",
        "WAVESPEED_BASE_URL",
        "WAVENB_SANDBOX_SPEED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAVENB_HOME", str(tmp_path / "wavenb-home"))
    wavenb.set_testing(True)
    yield
    wavenb.set_testing(False)


@pytest.fixture
def portrait() -> Path:
    return ASSETS / "portrait-astronaut.jpg"


@pytest.fixture
def landscape() -> Path:
    return ASSETS / "product-coffee.jpg"


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "orange") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def sandbox_app() -> Any:
    """A fresh sandbox app that renders as fast as it can (no simulated queue or processing)."""
    from wavenb.sandbox import SandboxConfig, create_app

    return create_app(SandboxConfig(speed="instant", duration=1.0))


@pytest.fixture
async def sandbox_client(sandbox_app: Any, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    """An AsyncClient talking to the in-process sandbox under the real API's base URL."""
    transport = httpx.ASGITransport(app=sandbox_app)
    async with AsyncClient(
        CANARY_KEY, API, transport=transport, output_dir=tmp_path / "out"
    ) as client:
        yield client


# -- cassettes (pytest-recording) ----------------------------------------------------------


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """Replay-only by default (see addopts); the key is replaced, never stored."""
    return {
        "filter_headers": [("authorization", "Bearer <REDACTED>")],
        "filter_query_parameters": ["api_key", "key", "token"],
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """``cassettes/<test module>/``, at the top of the repository."""
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


@contextlib.contextmanager
def serve_sandbox(config: Any) -> Iterator[tuple[str, Any]]:
    """Serve a sandbox app with uvicorn on 127.0.0.1 (a free port) in a thread."""
    import uvicorn

    from wavenb.sandbox import create_app

    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the sandbox server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def served_sandbox() -> Iterator[tuple[str, Any]]:
    """A sandbox served over real HTTP on loopback; yields (base URL, app)."""
    from wavenb.sandbox import SandboxConfig

    with serve_sandbox(SandboxConfig(speed="instant", duration=1.0, api_keys=frozenset({CANARY_KEY}))) as served:
        yield served
