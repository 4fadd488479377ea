"""Serve the sandbox over HTTP with uvicorn, for notebooks on other kernels or other tools.

The server is for this machine: it binds to loopback by default and warns loudly when asked
to listen anywhere else (it accepts any API key and fetches any image URL it is given).
"""

from __future__ import annotations

import ipaddress
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Final

from wavenb.sandbox._app import SANDBOX_BANNER, SandboxConfig, create_app
from wavenb.sandbox._jobs import Speed

if TYPE_CHECKING:
    import uvicorn

    from wavenb.sandbox._faults import FaultPlan

__all__ = ["DEFAULT_PORT", "build_server", "serve"]

DEFAULT_PORT: Final = 8765


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    speed: Speed = "fast",
    *,
    max_concurrent: int | None = None,
    storage_dir: Path | None = None,
    log_level: str = "info",
    submit_rate: tuple[int, float] | None = None,
    faults: FaultPlan | None = None,
) -> None:
    """Run the sandbox at ``http://host:port`` until interrupted (blocking).

    Prints a banner saying this is the sandbox, not Runway (and which faults it injects, if
    any), and warns when ``host`` is not a loopback address. Point a client at it with
    ``WAVENB_BASE_URL=http://host:port``. ``max_concurrent``, ``submit_rate`` and ``faults``
    are the ``SandboxConfig`` options of the same names.

    >>> serve(port=8765, speed="realistic")  # doctest: +SKIP
    """
    server = build_server(
        host,
        port,
        speed,
        max_concurrent=max_concurrent,
        storage_dir=storage_dir,
        log_level=log_level,
        submit_rate=submit_rate,
        faults=faults,
    )
    announce(host, port, speed, faults=faults)
    server.run()


def build_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    speed: Speed = "fast",
    *,
    max_concurrent: int | None = None,
    storage_dir: Path | None = None,
    log_level: str = "info",
    submit_rate: tuple[int, float] | None = None,
    faults: FaultPlan | None = None,
) -> uvicorn.Server:
    """Build a uvicorn server for a fresh sandbox app, not yet started (``serve`` runs one)."""
    import uvicorn  # noqa: PLC0415  (only the served sandbox needs it)

    warn_if_exposed(host)
    config = SandboxConfig(
        speed=speed,
        max_concurrent=max_concurrent,
        storage_dir=storage_dir,
        submit_rate=submit_rate,
        faults=faults,
    )
    app = create_app(config)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))


def announce(host: str, port: int, speed: Speed, *, faults: FaultPlan | None = None) -> None:
    """Print the banner: whoever reads the console must know these videos are not Runway's.

    With a fault plan, a line says so: failures that follow are injected, not real.
    """
    shown = f"[{host}]" if ":" in host else host
    injected = ""
    if faults is not None:
        injected = (
            f"\n  INJECTING FAULTS: {faults.describe()} "
            f"(counters at http://{shown}:{port}/sandbox-admin/stats)"
        )
    print(  # noqa: T201  (the banner is for the person at the console)
        f"{SANDBOX_BANNER}\n"
        f"  serving the WaveSpeedAI API at http://{shown}:{port} (speed: {speed})\n"
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
