"""Serve the sandbox over HTTP with uvicorn, for notebooks on other kernels or other tools.

The server is for this machine: it binds to loopback by default and warns loudly when asked
to listen anywhere else (it accepts any API key and fetches any image URL it is given). Served,
it also drops connections whose request head takes longer than ``header_timeout`` seconds, and,
bound to loopback, answers only requests addressed to this machine by name (against DNS
rebinding); see ``wavenb.sandbox._hardening``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, NamedTuple, cast

from wavenb.sandbox._app import create_app
from wavenb.sandbox._config import HEADER_TIMEOUT, SandboxConfig
from wavenb.sandbox._envelope import SANDBOX_BANNER

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

    from wavenb.sandbox._state import SandboxState


__all__ = ["DEFAULT_PORT", "HEADER_TIMEOUT", "ServedSandbox", "build_server", "serve", "serving"]

DEFAULT_PORT: Final = 8765
START_TIMEOUT: Final = 10.0


class ServedSandbox(NamedTuple):
    """A sandbox served over HTTP: ``url`` and ``app`` (it unpacks as ``url, app``)."""

    url: str
    """``http://127.0.0.1:<port>``: a client's base URL (any key works, unless ``api_keys``)."""
    app: Starlette
    """The served app (its ``app.state.sandbox`` has the counters)."""

    @property
    def state(self) -> SandboxState:
        """The sandbox's jobs and counters."""
        return cast("SandboxState", self.app.state.sandbox)


@contextlib.contextmanager
def serving(config: SandboxConfig | None = None, *, port: int = 0) -> Iterator[ServedSandbox]:
    """Serve a sandbox on 127.0.0.1 in a background thread while in the block.

    The same server ``serve`` runs (Host check, header-read timeout), on a free port unless
    ``port`` is given: for a notebook that needs a real URL (webhooks, another kernel, the
    official SDK) without blocking its kernel.

        >>> with serving(SandboxConfig(speed="fast")) as (url, app):   # doctest: +SKIP
        ...     client = wavenb.AsyncClient(base_url=url)

    Raises:
        RuntimeError: the server did not start within 10 s.
    """
    server = build_server("127.0.0.1", port, config, log_level="warning")
    served = server.config.app
    app = cast("Starlette", getattr(served, "app", served))  # the sandbox behind the Host check
    thread = threading.Thread(target=server.run, name="wavenb-sandbox-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the wavenb sandbox server did not start on 127.0.0.1")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield ServedSandbox(f"http://127.0.0.1:{bound}", app)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    config: SandboxConfig | None = None,
    *,
    log_level: str = "info",
) -> None:
    """Run a sandbox with ``config`` at ``http://host:port`` until interrupted (blocking).

    Prints a banner saying this is the sandbox, not Runway (and which faults it injects, if
    any), and warns when ``host`` is not a loopback address. Point a client at it with
    ``WAVENB_BASE_URL=http://host:port``.

    >>> serve(port=8765, config=SandboxConfig(speed="realistic"))  # doctest: +SKIP
    """
    config = config or SandboxConfig()
    server = build_server(host, port, config, log_level=log_level)
    announce(host, port, config)
    server.run()


def build_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    config: SandboxConfig | None = None,
    *,
    log_level: str = "info",
    header_timeout: float = HEADER_TIMEOUT,
) -> uvicorn.Server:
    """Build a uvicorn server for a fresh sandbox app, not yet started (``serve`` runs one).

    Bound to loopback, the app is wrapped in a Host check (421 for other hosts); every
    connection must send its request head within ``header_timeout`` seconds.

    Raises:
        ValueError: ``header_timeout`` is not positive.
    """
    import uvicorn  # noqa: PLC0415  (only the served sandbox needs it)

    from wavenb.sandbox._hardening import HostGuard, protocol_with_header_timeout  # noqa: PLC0415

    warn_if_exposed(host)
    protocol = protocol_with_header_timeout(header_timeout)
    app = create_app(config or SandboxConfig())
    served = HostGuard(app) if _is_loopback(host) else app
    return uvicorn.Server(
        uvicorn.Config(served, host=host, port=port, log_level=log_level, http=protocol)
    )


def announce(host: str, port: int, config: SandboxConfig) -> None:
    """Print the banner: whoever reads the console must know these videos are not Runway's.

    With a fault plan, a line says so: failures that follow are injected, not real.
    """
    shown = f"[{host}]" if ":" in host else host
    injected = ""
    if config.faults is not None:
        injected = (
            f"\n  INJECTING FAULTS: {config.faults.describe()} "
            f"(counters at http://{shown}:{port}/sandbox-admin/stats)"
        )
    print(  # noqa: T201  (the banner is for the person at the console)
        f"{SANDBOX_BANNER}\n"
        f"  serving the WaveSpeedAI API at http://{shown}:{port} ({config.describe()})\n"
        f"  use it with WAVENB_BASE_URL=http://{shown}:{port}; any API key is accepted"
        f"{injected}",
        file=sys.stderr,
        flush=True,
    )


def warn_if_exposed(host: str) -> None:
    """Warn (loudly, on stderr) when the server would listen beyond this machine."""
    if _is_loopback(host):
        return
    message = (
        f"wavenb sandbox: listening on {host!r}, not loopback. Anyone who can reach this "
        "address can use it: it accepts any API key and downloads any image URL it is sent."
    )
    print(f"WARNING: {message}", file=sys.stderr, flush=True)  # noqa: T201
    warnings.warn(message, stacklevel=3)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve anywhere
