"""Test code that uses wavenb, offline: a pytest plugin with sandbox fixtures.

Installing wavenb registers this plugin with pytest (entry point ``pytest11``; switch it off
with ``-p no:wavenb``). Its fixtures need the sandbox extra (``pip install 'wavenb[sandbox]'``):

==========================  =================================================================
``wavenb_sandbox``          a ``Sandbox``: a fresh in-process sandbox, with an
                            ``AsyncClient`` (``.client``) and a blocking ``Client``
                            (``.sync_client``) bound to it
``wavenb_sandbox_url``      the URL of a sandbox served over HTTP on 127.0.0.1 (a free port),
                            for code that builds its own client; nothing global points at it
``wavenb_sandbox_factory``  a ``SandboxFactory``: more sandboxes, with other settings
                            (``submit_rate``, ``api_keys``, ``max_concurrent``, ``faults``...)
``wavenb_offline``          the isolation all of the above use, alone
==========================  =================================================================

Every one of them makes the test **isolated**: ``WAVESPEED_API_KEY`` and the base-URL variables
are unset (nothing can reach the real API or spend money), ``WAVENB_HOME`` is a temporary
folder (journal, outputs), and a client made without arguments uses the embedded sandbox at
``instant`` speed. Each test gets a **fresh runtime** (``wavenb.Runtime``): nothing one test's
clients learn (durations, embedded sandboxes, notices) reaches the next. And **fast**: the
runtime is ``Runtime.scaled(TEST_SCALE)`` (0.02), so the production code runs with its production
retry and poll control flow (the same attempts, the same checks) while every wait takes a
fiftieth of the time (read retries' back-off and ``Retry-After`` waits included: stamina's
waits are given in runtime seconds, with no test-only mode); sandboxes render 1 s clips at
``instant`` speed. All is restored after the test.

    import wavenb

    async def test_my_pipeline(wavenb_sandbox):               # with pytest-asyncio
        video = await make_clip(wavenb_sandbox.client, "cat.jpg")
        assert video.path.exists()
        assert wavenb_sandbox.state.accepted == 1              # the sandbox's counters

    def test_rate_limit(wavenb_sandbox_factory):               # a plain test works too
        sandbox = wavenb_sandbox_factory(submit_rate=(1, 600.0))
        sandbox.sync_client.submit("cat.jpg", "Camera slowly zooms in")
        with pytest.raises(wavenb.RateLimitError):
            sandbox.sync_client.submit("cat.jpg", "Camera pans left")

    def test_wrong_key(wavenb_sandbox_factory):
        sandbox = wavenb_sandbox_factory(api_keys=frozenset({"right"}), api_key="wrong")
        with pytest.raises(wavenb.AuthenticationError):
            sandbox.sync_client.balance()

Record once, replay in CI (pytest-recording)
--------------------------------------------
The in-process sandbox answers under the real API's address (``https://api.wavespeed.ai``),
and vcrpy records ``httpx.ASGITransport`` traffic like any other: a cassette recorded from the
sandbox has the real API's shape, and replays with no sandbox, no key and no network::

    # conftest.py
    @pytest.fixture(scope="module")
    def vcr_config():
        return {
            # keep the header, drop the key; "body": two submits must not swap answers
            "filter_headers": [("authorization", "Bearer REDACTED")],
            "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
        }

    # test_pipeline.py
    @pytest.mark.vcr
    async def test_my_pipeline(wavenb_sandbox):
        video = await make_clip(wavenb_sandbox.client, "cat.jpg")
        assert video.prediction.status is wavenb.Status.COMPLETED

    $ pytest --record-mode=once     # records cassettes/test_pipeline/test_my_pipeline.yaml
    $ pytest --block-network        # CI: replays it (the default record mode is "none")

While a ``vcr`` test records, wavenb's waits are real (a few polls per task, not hundreds); in
replays they are scaled like any test's, and every recorded answer is played once, in order.
Never set ``allow_playback_repeats``. Record with ``wavenb_sandbox``, not ``wavenb_sandbox_url``
(its port changes from run to run). To record the real API instead (it costs $0.50 a video),
read the key at import (these fixtures unset it) and give your code a real client while
recording::

    REAL_KEY = os.environ.get("WAVESPEED_API_KEY")

    @pytest.fixture
    def client(request, wavenb_sandbox):
        if REAL_KEY and request.config.getoption("--record-mode") == "rewrite":
            return wavenb.AsyncClient(REAL_KEY)
        return wavenb_sandbox.client
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast

import httpx
import pytest

from wavenb.client.async_client import AsyncClient
from wavenb.client.sync import Client
from wavenb.core import runtime as runtimes
from wavenb.core.config import DEFAULT_BASE_URL, SANDBOX_KEY
from wavenb.core.polling import SANDBOX

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from wavenb.sandbox import SandboxConfig, SandboxState, ServedSandbox

__all__ = [
    "TEST_SANDBOX",
    "Sandbox",
    "SandboxFactory",
    "ServedSandbox",
    "serve_sandbox",
    "wavenb_offline",
    "wavenb_sandbox",
    "wavenb_sandbox_factory",
    "wavenb_sandbox_url",
]

TEST_SCALE: Final = 0.02
"""How long a runtime second takes in tests: a 5 s poll interval is 100 ms, the 900 s wait 18 s."""
TEST_SANDBOX: Final[Mapping[str, Any]] = MappingProxyType({"speed": "instant", "duration": 1.0})
"""What the fixtures' sandboxes default to: no simulated queue or processing, 1 s clips."""
_CLEARED: Final = (
    "WAVESPEED_API_KEY",
    "WAVENB_BASE_URL",
    "WAVESPEED_BASE_URL",
    "WAVENB_MAX_SPEND",
)


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A fresh in-process sandbox and clients bound to it: what ``wavenb_sandbox`` gives.

    The clients use the real API's base URL; the transport sends every request to ``app``
    instead, so nothing leaves the process.
    """

    app: Starlette
    """The sandbox's ASGI app."""
    client: AsyncClient
    """An ``AsyncClient`` bound to the sandbox, with key ``api_key``."""
    sync_client: Client
    """A blocking ``Client`` bound to the same sandbox, for tests that don't await."""
    api_key: str
    """The key the clients send."""
    base_url: str = DEFAULT_BASE_URL
    """The address the clients believe they talk to."""

    @property
    def state(self) -> SandboxState:
        """The sandbox's jobs and counters (``requests``, ``accepted``, ``balance``...)."""
        return cast("SandboxState", self.app.state.sandbox)

    @property
    def config(self) -> SandboxConfig:
        """The settings this sandbox was made with."""
        return self.state.config

    def transport(self) -> httpx.ASGITransport:
        """A new transport into the sandbox, for a client of your own.

        >>> client = wavenb.AsyncClient("any-key", transport=sandbox.transport())  # doctest: +SKIP
        """
        return httpx.ASGITransport(app=self.app)


class SandboxFactory:
    """Makes sandboxes with other settings: what ``wavenb_sandbox_factory`` gives.

    Settings are ``SandboxConfig`` fields (a config, or fields as keywords on top of the test
    defaults, ``speed="instant"`` and ``duration=1.0``). Everything made is stopped after the
    test.

        limited = wavenb_sandbox_factory(submit_rate=(1, 600.0))  # a 429 after one submit
        locked = wavenb_sandbox_factory(api_keys=frozenset({"k"}), api_key="bad")   # 401
        url, app = wavenb_sandbox_factory.serve(max_concurrent=2)  # over HTTP, 2 at once
    """

    def __init__(self, storage: Path) -> None:
        self._storage = storage
        self._count = itertools.count(1)
        self._made: list[Sandbox] = []
        self._stack = contextlib.ExitStack()

    def __call__(
        self,
        config: SandboxConfig | None = None,
        /,
        *,
        api_key: str = SANDBOX_KEY,
        **fields: object,
    ) -> Sandbox:
        """Make an in-process sandbox and clients that send ``api_key``.

        Raises:
            TypeError / ValueError: a field ``SandboxConfig`` does not have, or a bad value.
        """
        from wavenb.sandbox import create_app  # noqa: PLC0415  (the sandbox extra: only when used)

        app = create_app(self._config(config, fields))
        sandbox = Sandbox(
            app=app,
            client=AsyncClient(api_key, DEFAULT_BASE_URL, transport=_asgi(app), poll=SANDBOX),
            sync_client=Client(api_key, DEFAULT_BASE_URL, transport=_asgi(app), poll=SANDBOX),
            api_key=api_key,
        )
        self._made.append(sandbox)
        return sandbox

    def serve(self, config: SandboxConfig | None = None, /, **fields: object) -> ServedSandbox:
        """Serve a sandbox over HTTP on 127.0.0.1 until the test ends; return ``(url, app)``."""
        return self._stack.enter_context(serve_sandbox(self._config(config, fields)))

    def _config(self, config: SandboxConfig | None, fields: Mapping[str, Any]) -> SandboxConfig:
        """The config asked for, on top of the test defaults, with files under ``tmp_path``.

        Files there stay for a look after a failure, and no temporary folder is left for the
        garbage collector to remove (with a ``ResourceWarning``, an error under ``-W error``).
        """
        from wavenb.sandbox import SandboxConfig  # noqa: PLC0415

        if config is None:
            config = SandboxConfig(**{**TEST_SANDBOX, **fields})
        elif fields:
            config = dataclasses.replace(config, **fields)
        if config.storage_dir is None:
            storage = self._storage / f"sandbox-{next(self._count)}"
            config = dataclasses.replace(config, storage_dir=storage)
        return config

    def close(self) -> None:
        """Stop every sandbox made: servers shut down, queued renders are cancelled."""
        for sandbox in self._made:
            sandbox.sync_client.close()
            sandbox.state.close()
        self._made.clear()
        self._stack.close()


@contextlib.contextmanager
def serve_sandbox(config: SandboxConfig | None = None) -> Iterator[ServedSandbox]:
    """Serve a sandbox on 127.0.0.1 (a free port) in a thread, while in the block.

    ``wavenb.sandbox.serving`` with the test settings (``instant``, 1 s clips) by default.
    Without a ``storage_dir`` the sandbox keeps its files in a temporary folder that lives as
    long as the app (so they can still be read after the block).
    """
    from wavenb.sandbox import SandboxConfig, serving  # noqa: PLC0415  (the sandbox extra)

    with serving(config or SandboxConfig(**TEST_SANDBOX)) as served:
        yield served


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def wavenb_offline(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """Isolate the test from the real API and the user's files; yield its ``WAVENB_HOME``.

    Unsets ``WAVESPEED_API_KEY``, ``WAVENB_BASE_URL``, ``WAVESPEED_BASE_URL`` and
    ``WAVENB_MAX_SPEND``; points ``WAVENB_HOME`` at ``tmp_path / "wavenb-home"``; makes the
    embedded sandbox ``instant``; installs a fresh runtime, scaled (``TEST_SCALE``) except while
    a ``vcr`` test records (real waits: a few polls per task, not hundreds). Everything is
    restored afterwards.
    """
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "wavenb-home"
    monkeypatch.setenv("WAVENB_HOME", str(home))
    monkeypatch.setenv("WAVENB_SANDBOX_SPEED", "instant")
    recording = _recording(request)
    fresh = runtimes.Runtime() if recording else runtimes.Runtime.scaled(TEST_SCALE)
    previous = runtimes.install(fresh)
    try:
        yield home
    finally:
        runtimes.install(previous)


@pytest.fixture
def wavenb_sandbox_factory(wavenb_offline: Path, tmp_path: Path) -> Iterator[SandboxFactory]:
    """Make sandboxes with other settings: ``wavenb_sandbox_factory(submit_rate=(1, 600.0))``."""
    factory = SandboxFactory(tmp_path / "wavenb-sandboxes")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def wavenb_sandbox(wavenb_sandbox_factory: SandboxFactory) -> Sandbox:
    """A fresh in-process sandbox (instant, 1 s clips) with clients bound to it."""
    return wavenb_sandbox_factory()


@pytest.fixture
def wavenb_sandbox_url(wavenb_sandbox_factory: SandboxFactory) -> str:
    """The URL of a sandbox served on 127.0.0.1 (instant, 1 s clips, any key accepted)."""
    return wavenb_sandbox_factory.serve().url


def _recording(request: pytest.FixtureRequest) -> bool:
    """Whether this test is recording a cassette (pytest-recording, record mode not "none")."""
    if request.node.get_closest_marker("vcr") is None:
        return False
    mode = request.config.getoption("--record-mode", default="none")
    return mode not in (None, "none")


def _asgi(app: Starlette) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app)


def __getattr__(name: str) -> object:
    # ``ServedSandbox`` lives with the sandbox (an optional extra): this plugin loads in every
    # pytest session of a project that installed wavenb, so it imports the sandbox only when
    # asked for.
    if name == "ServedSandbox":
        from wavenb.sandbox import ServedSandbox  # noqa: PLC0415

        return ServedSandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
