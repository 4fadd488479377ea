"""Serve the sandbox over HTTP with uvicorn, for notebooks on other kernels or other tools.

The server is for this machine: it binds to loopback by default and warns loudly when asked
to listen anywhere else (it accepts any API key and fetches any image URL it is given). Served,
it also drops connections whose request head takes longer than ``header_timeout`` seconds, and,
bound to loopback, answers only requests addressed to this machine by name (against DNS
rebinding); see :mod:`wavenb.sandbox._hardening`.
"""

from __future__ import annotations

import ipaddress
import sys
import warnings
from typing import TYPE_CHECKING, Final

from wavenb.sandbox._app import create_app
from wavenb.sandbox._config import HEADER_TIMEOUT, SandboxConfig
from wavenb.sandbox._envelope import SANDBOX_BANNER

if TYPE_CHECKING:
    import uvicorn


__all__ = ["DEFAULT_PORT", "HEADER_TIMEOUT", "build_server", "serve"]

DEFAULT_PORT: Final = 8765


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
