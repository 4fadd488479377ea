"""Shared fixtures: an isolated environment, the sandbox, and the cassette settings."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings
from PIL import Image

from wavenb.client.async_client import AsyncClient
from wavenb.testing import Sandbox, SandboxFactory, ServedSandbox, serve_sandbox

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "API",
    "ASSETS",
    "CANARY_KEY",
    "CASSETTES",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "MP4",
    "PID",
    "ROOT",
    "png_bytes",
    "prediction",
    "serve_sandbox",
    "widget_states",
]

# Which extra brings each optional module: a test module that needs one that is absent is
# reported as skipped, with the extra to install, instead of failing to be collected.
EXTRA_OF = {
    "ipywidgets": "notebook", "anywidget": "notebook", "IPython": "notebook",
    "av": "sandbox", "numpy": "sandbox", "starlette": "sandbox", "uvicorn": "sandbox",
    "multipart": "sandbox", "pandas": "pandas", "matplotlib": "plot",
    "nbclient": "test", "nbformat": "test", "playwright": "test", "wavespeed": "test",
}  # fmt: skip
_MISSING = re.compile(r"ModuleNotFoundError: (?:No module named '|import of )([\w.]+)")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A test module whose optional dependency is not installed is skipped, saying which extra."""
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        found = _MISSING.search(str(report.longrepr))
        top = found.group(1).split(".")[0] if found else ""
        if top in EXTRA_OF:
            report.outcome = "skipped"
            reason = f"Skipped: needs {top}: pip install 'wavenb[{EXTRA_OF[top]}]'"
            report.longrepr = (str(collector.path), 0, reason)
    return report


# CI runs `pytest --hypothesis-profile=ci`: the same examples on every run, so a red build is
# reproducible and a green one is not luck. Locally the default profile keeps exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "notebooks" / "assets"
CASSETTES = ROOT / "cassettes"
API = "https://api.wavespeed.ai"
CANARY_KEY = "wsk-canary-0123456789abcdef"
"""A fake key that tests pass around; no output anywhere may contain it."""
MP4 = (
    b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"  # ftyp, 24 bytes
    + b"\x00\x00\x00\x10moov" + b"\x00" * 8  # an (empty) index
    + b"\x00\x00\x13\x90mdat" + b"\x07" * 5000  # media data
)
"""A structurally whole MP4 (ISO-BMFF boxes ftyp, moov, mdat): what downloads are checked for.
It does not decode; tests of transport and bookkeeping need no pixels."""
PID = "0123456789abcdef0123456789abcdef"
"""The task id of scripted API answers."""
CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium: the only browser tests may drive (never one a tool downloads)."""
CHROMIUM_ARGS = (
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-background-networking",  # no connections to the outside
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
)


def prediction(status: str = "created", **extra: object) -> dict[str, object]:
    """A scripted API answer: the envelope around a gen4-turbo prediction ``PID``."""
    data: dict[str, object] = {
        "id": PID,
        "model": "runwayml/gen4-turbo",
        "outputs": [],
        "status": status,
        "urls": {"get": f"{API}/api/v3/predictions/{PID}/result"},
        "has_nsfw_contents": [],
        "created_at": "2026-11-25T10:00:00.123Z",
        "error": "",
        "executionTime": 0,
        "timings": {"inference": 0},
    }
    data.update(extra)
    return {"code": 200, "message": "success", "data": data}


def widget_states(root: Any) -> Iterator[dict[str, Any]]:
    """The state of ``root`` and of every widget it refers to (children, layouts, styles)."""
    from ipywidgets.widgets.widget import _instances

    seen: set[str] = set()
    todo = [root.model_id]
    while todo:
        model_id = todo.pop()
        if model_id in seen:
            continue
        seen.add(model_id)
        state = _instances[model_id].get_state()
        yield state
        todo.extend(re.findall(r"IPY_MODEL_([0-9a-f]+)", repr(state)))


@pytest.fixture(autouse=True)
def _isolated_env(wavenb_offline: Path) -> None:
    """No test sees the developer's key, server or data folder; no test waits for real.

    wavenb's own pytest plugin does it (``wavenb.testing``): WAVENB_HOME is
    ``tmp_path / "wavenb-home"``, the embedded sandbox is instant, test mode is on.
    """


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
def canary_sandbox(wavenb_sandbox_factory: SandboxFactory) -> Sandbox:
    """The plugin's in-process sandbox (instant, 1 s clips); its clients send the canary key."""
    return wavenb_sandbox_factory(api_key=CANARY_KEY)


@pytest.fixture
def sandbox_app(canary_sandbox: Sandbox) -> Starlette:
    """A fresh sandbox app that renders as fast as it can (no simulated queue or processing)."""
    return canary_sandbox.app


@pytest.fixture
def sandbox_client(canary_sandbox: Sandbox) -> AsyncClient:
    """An AsyncClient talking to the in-process sandbox under the real API's base URL."""
    return canary_sandbox.client


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


@pytest.fixture
def served_sandbox(wavenb_sandbox_factory: SandboxFactory) -> ServedSandbox:
    """A sandbox served over real HTTP on loopback that takes only the canary key; (url, app)."""
    return wavenb_sandbox_factory.serve(api_keys=frozenset({CANARY_KEY}))
