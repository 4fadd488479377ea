"""The sandbox's HTTP face: the WaveSpeedAI routes, as one Starlette app (``create_app``).

Routes (all ``/api/v3`` routes need ``Authorization: Bearer <any non-empty key>``)::

    POST /api/v3/runwayml/gen4-turbo            submit a video task       -> prediction (created)
    POST /api/v3/wavespeed-ai/prompt-optimizer  enhance a prompt          -> prediction
    GET  /api/v3/predictions/{id}/result        poll a task               -> prediction
    GET  /api/v3/predictions/{id}               the same                  -> prediction
    POST /api/v3/predictions                    this key's history        -> {page, items, ...}
    POST /api/v3/predictions/delete             forget predictions        -> {deleted, not_found}
    POST /api/v3/media/upload/binary            upload an image (file)    -> {download_url, ...}
    POST /api/v3/media/uploads                  announce an upload        -> {download_url, upload}
    PUT  /sandbox-upload/{name}?token=...       its bytes (no key: token) -> {download_url, ...}
    GET  /api/v3/balance                        fake money                -> {balance}
    GET  /api/v3/models                         the model catalog         -> [model, ...]
    POST /api/v3/model/price                    a price quote             -> {price, ...}
    POST /api/v3/model/pricing                  the same, legacy name     -> {unit_price, ...}
    GET  /sandbox-cdn/predictions/{id}/1.mp4    a rendered video (public, like a CDN URL)
    GET  /sandbox-media/{name}                  an uploaded image (public)
    GET  /                                      a page saying this is the sandbox

Submits take ``enable_sync_mode`` and ``?webhook=`` (``wavenb.sandbox._routes_tasks``).
Every answer uses the API's envelope ``{"code", "message", "data"}``, errors included, and
carries ``X-Wavenb-Sandbox: 1``; every prediction carries ``"sandbox": true``. The balance is
fake money: it starts at ``SandboxConfig.balance`` and goes down by the price of each accepted
run; a run it cannot pay is refused with a 402 (``wavenb.sandbox._state``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Route

from wavenb.core.types import ENHANCER_MODEL_ID, MODEL_ID
from wavenb.sandbox._config import SandboxConfig
from wavenb.sandbox._envelope import (
    SANDBOX_BANNER,
    SANDBOX_HEADER,
    ApiError,
    envelope,
    error_envelope,
    exception_handlers,
)
from wavenb.sandbox._faults import install
from wavenb.sandbox._keys import key_digest, owner_of
from wavenb.sandbox._middleware import SandboxMiddleware
from wavenb.sandbox._prediction import prediction_json
from wavenb.sandbox._requestlog import RequestRecorder
from wavenb.sandbox._routes_account import get_balance, index, list_models, price, pricing
from wavenb.sandbox._routes_media import (
    create_upload,
    put_upload,
    serve_media,
    serve_video,
    upload_binary,
)
from wavenb.sandbox._routes_tasks import (
    delete_predictions,
    get_prediction,
    list_predictions,
    optimize_prompt,
    submit_video,
)
from wavenb.sandbox._state import SandboxState, request_digest
from wavenb.sandbox._storage import MAX_UPLOAD_BYTES, Storage

__all__ = [
    "MAX_UPLOAD_BYTES",
    "SANDBOX_BANNER",
    "SANDBOX_HEADER",
    "ApiError",
    "SandboxConfig",
    "SandboxState",
    "create_app",
    "envelope",
    "error_envelope",
    "key_digest",
    "prediction_json",
    "request_digest",
]


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """Build a sandbox app: the WaveSpeedAI API, served locally with rendered videos.

    Use it in-process with ``httpx.ASGITransport(app)`` or serve it with uvicorn; its state
    and counters are at ``app.state.sandbox`` (a ``SandboxState``).

    Raises:
        ValueError: never for a valid ``SandboxConfig`` (which checks itself when made).

    >>> import httpx
    >>> app = create_app(SandboxConfig(speed="instant"))
    >>> client = httpx.AsyncClient(
    ...     transport=httpx.ASGITransport(app), base_url="https://api.wavespeed.ai"
    ... )
    """
    state = SandboxState(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Only servers run the lifespan (ASGITransport does not): stop deliveries and queued
        # renders on exit.
        yield
        await state.webhooks.aclose()
        await run_in_threadpool(state.close)

    app = Starlette(
        lifespan=lifespan,
        routes=_routes(),
        middleware=[*_recorder(state), Middleware(SandboxMiddleware, state=state)],
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
    )
    app.state.sandbox = state
    if state.config.faults is not None:
        install(app, state)
    return app


def _routes() -> list[Route]:
    return [
        Route(f"/api/v3/{MODEL_ID}", submit_video, methods=["POST"]),
        Route(f"/api/v3/{ENHANCER_MODEL_ID}", optimize_prompt, methods=["POST"]),
        Route("/api/v3/predictions", list_predictions, methods=["POST"]),
        Route("/api/v3/predictions/delete", delete_predictions, methods=["POST"]),
        Route("/api/v3/predictions/{id}/result", get_prediction, methods=["GET"]),
        Route("/api/v3/predictions/{id}", get_prediction, methods=["GET"]),
        Route("/api/v3/media/upload/binary", upload_binary, methods=["POST"]),
        Route("/api/v3/media/uploads", create_upload, methods=["POST"]),
        Route(Storage.UPLOAD_ROUTE + "{name}", put_upload, methods=["PUT"]),
        Route("/api/v3/balance", get_balance, methods=["GET"]),
        Route("/api/v3/models", list_models, methods=["GET"]),
        Route("/api/v3/model/price", price, methods=["POST"]),
        Route("/api/v3/model/pricing", pricing, methods=["POST"]),
        Route(Storage.CDN_ROUTE + "{id}/1.mp4", serve_video, methods=["GET"]),
        Route(Storage.MEDIA_ROUTE + "{name}", serve_media, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]


def _recorder(state: SandboxState) -> list[Middleware]:
    """The outermost middleware, when asked for: it sees every request, refused ones too."""
    if not state.config.record_requests:
        return []
    return [
        Middleware(RequestRecorder, log=state.request_log, clock=state.config.clock, owner=owner_of)
    ]
