"""The embedded sandbox: the in-process server a client talks to when no key is set.

One sandbox app per speed and per runtime (``Runtime.sandboxes``), so every client of a process
sees the same tasks (a Studio and ``generate`` in the same kernel), and a test's fresh runtime
gets fresh sandboxes. The "using the SANDBOX" notice is given once per runtime: a warning in a
script or a terminal (Python prints it on stderr), but only an INFO record under a Jupyter kernel,
where front ends draw stderr as a red error box and the Studio's SANDBOX badge and every sandbox
video's label already say it.
"""

from __future__ import annotations

import logging
import sys
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
        logger.log(logging.INFO if _under_a_kernel() else logging.WARNING, NOTICE)
    return httpx.ASGITransport(app=_app(speed, runtime))


def _under_a_kernel() -> bool:
    """Whether this process is a Jupyter kernel (JupyterLab, Notebook 7, Voila, VS Code, Colab)."""
    return "ipykernel" in sys.modules


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
