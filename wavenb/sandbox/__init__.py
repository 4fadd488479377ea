"""wavenb's local sandbox: the WaveSpeedAI API for Runway Gen4 Turbo, answered on this machine.

It speaks the same routes, envelopes, statuses and errors as the real service, renders real
MP4s from the source image with a simple camera move read from the prompt, and labels
everything it makes: predictions carry ``"sandbox": true``, answers the header
``X-Wavenb-Sandbox: 1``, and every video a SANDBOX mark in its corner. Its balance is fake
money. Prompts with the moderation trigger words listed in ``wavenb.sandbox._jobs`` fail
like a content-policy rejection.

Routes (every ``/api/v3`` route needs ``Authorization: Bearer <key>``; any key is accepted
unless ``SandboxConfig.api_keys`` says otherwise)::

    POST /api/v3/runwayml/gen4-turbo            submit a video task (?webhook=, sync mode)
    POST /api/v3/wavespeed-ai/prompt-optimizer  enhance a prompt
    GET  /api/v3/predictions/{id}/result        a task's prediction (also without /result)
    POST /api/v3/predictions                    this key's history, paged and filtered
    POST /api/v3/predictions/delete             remove predictions from the history
    POST /api/v3/media/upload/binary            upload an image (multipart ``file``)
    POST /api/v3/media/uploads                  announce an upload; then PUT it, no key
    GET  /api/v3/balance                        the fake balance
    GET  /api/v3/models                         the model catalog with request schemas
    POST /api/v3/model/price                    a price quote (legacy: /api/v3/model/pricing)
    GET  /sandbox-cdn/..., /sandbox-media/...   videos and uploads, public like CDN URLs
    /sandbox-admin/stats, /sandbox-admin/faults the fault injector's counters and plan

The exact shapes are in each route module's docstring (``_routes_tasks``, ``_routes_media``,
``_routes_account``, ``_history``, ``_catalog``).

>>> import httpx
>>> from wavenb.sandbox import SandboxConfig, create_app
>>> app = create_app(SandboxConfig(speed="instant"))
>>> client = httpx.AsyncClient(
...     transport=httpx.ASGITransport(app), base_url="https://api.wavespeed.ai"
... )

Importing this package is cheap: the renderer (PyAV, numpy) loads with the first render (in a
worker process for real clips, ``wavenb.sandbox._pool``), and uvicorn only when serving.
"""

from __future__ import annotations

from wavenb.sandbox._app import create_app
from wavenb.sandbox._config import SandboxConfig
from wavenb.sandbox._envelope import SANDBOX_BANNER
from wavenb.sandbox._faultplan import FaultPlan
from wavenb.sandbox._server import ServedSandbox, serve, serving
from wavenb.sandbox._state import SandboxState

__all__ = [
    "SANDBOX_BANNER",
    "FaultPlan",
    "SandboxConfig",
    "SandboxState",
    "ServedSandbox",
    "create_app",
    "serve",
    "serving",
]

for _exported in (FaultPlan, SandboxConfig, SandboxState, create_app, serve):
    _exported.__module__ = __name__
del _exported
