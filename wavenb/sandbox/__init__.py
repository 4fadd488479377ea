"""wavenb's local sandbox: the WaveSpeedAI API for Runway Gen4 Turbo, answered on this machine.

It speaks the same routes, envelopes, statuses and errors as the real service, renders real
MP4s from the source image with a simple camera move read from the prompt, and labels
everything it makes: predictions carry ``"sandbox": true`` and answers the header
``X-Wavenb-Sandbox: 1``. Its balance is fake money. Prompts with the moderation trigger words
listed in :mod:`wavenb.sandbox._jobs` fail like a content-policy rejection.

>>> import httpx
>>> from wavenb.sandbox import SandboxConfig, create_app
>>> app = create_app(SandboxConfig(speed="instant"))
>>> client = httpx.AsyncClient(
...     transport=httpx.ASGITransport(app), base_url="https://api.wavespeed.ai"
... )

Importing this package is cheap: the renderer (PyAV, numpy) loads with the first render, and
uvicorn only when serving.
"""

from __future__ import annotations

from wavenb.sandbox._app import SANDBOX_BANNER, SandboxConfig, SandboxState, create_app
from wavenb.sandbox._faults import FaultPlan
from wavenb.sandbox._server import serve

__all__ = ["SANDBOX_BANNER", "FaultPlan", "SandboxConfig", "SandboxState", "create_app", "serve"]

for _exported in (FaultPlan, SandboxConfig, SandboxState, create_app, serve):
    _exported.__module__ = __name__
del _exported
