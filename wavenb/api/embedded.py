"""The embedded sandbox: the in-process server a client talks to when no key is set.

One sandbox app per speed and per runtime (``Runtime.sandboxes``), so every client of a process
sees the same tasks (a Studio and ``generate`` in the same kernel), and a test's fresh runtime
gets fresh sandboxes. The "using the SANDBOX" notice is given once per runtime.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from wavenb.core.config import SandboxSpeed
from wavenb.core.errors import WavenbError
from wavenb.core.runtime import Runtime

__all__ = ["embedded_transport"]

logger = logging.getLogger("wavenb")

NOTICE = (
    "wavenb: no WAVESPEED_API_KEY set, using the local SANDBOX (free, offline; videos are local "
    "renders, not Runway). Set WAVESPEED_API_KEY to use the real API."
)


def embedded_transport(speed: SandboxSpeed, runtime: Runtime) -> httpx.AsyncBaseTransport:
    """An ASGI transport to this runtime's in-process sandbox of the given speed.

    Raises:
        WavenbError: the ``sandbox`` extra is not installed (says how to install it).
    """
    if runtime.once("sandbox-notice"):
        logger.warning(NOTICE)
    return httpx.ASGITransport(app=_app(speed, runtime))


def _app(speed: SandboxSpeed, runtime: Runtime) -> Any:  # noqa: ANN401  (a Starlette app; optional)
    with runtime.lock:
        if speed in runtime.sandboxes:
            return runtime.sandboxes[speed]
    try:
        from wavenb.sandbox import SandboxConfig, create_app  # noqa: PLC0415  (heavy, optional)
    except ImportError as error:
        raise WavenbError(
            "the embedded sandbox needs the 'sandbox' extra: pip install 'wavenb[sandbox]' "
            f"(or set WAVESPEED_API_KEY to use the real API). Missing: {error.name}"
        ) from None
    app = create_app(SandboxConfig(speed=speed))
    with runtime.lock:
        return runtime.sandboxes.setdefault(speed, app)
