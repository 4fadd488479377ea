"""The sandbox's HTTP face: the WaveSpeedAI routes, auth and envelopes, as a Starlette app.

Routes (all ``/api/v3`` routes need ``Authorization: Bearer <any non-empty key>``)::

    POST /api/v3/runwayml/gen4-turbo              submit a video job       -> prediction (created)
    POST /api/v3/wavespeed-ai/prompt-optimizer    enhance a prompt         -> prediction
    GET  /api/v3/predictions/{id}/result          poll a job               -> prediction
    GET  /api/v3/predictions/{id}                 the same                 -> prediction
    POST /api/v3/media/upload/binary              upload an image (file)   -> {download_url, ...}
    GET  /api/v3/balance                          fake money               -> {balance}
    GET  /sandbox-cdn/predictions/{id}/1.mp4      the rendered video (public, like a CDN URL)
    GET  /sandbox-media/{name}                    an uploaded image (public)
    GET  /                                        a page saying this is the sandbox

Every answer uses the API's envelope ``{"code", "message", "data"}``, errors included, and
carries ``X-Wavenb-Sandbox: 1``; every prediction carries ``"sandbox": true``. The sandbox's
balance is fake money: it starts at ``SandboxConfig.balance`` and only goes down by the real
price of each accepted video, so client code that checks it behaves as it would for real.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wavenb.core.types import ASPECT_RATIOS, MODEL_ID, PRICE_PER_VIDEO
from wavenb.sandbox import _enhancer
from wavenb.sandbox._jobs import (
    IMAGE_FORMATS,
    MODERATION_ERROR,
    Job,
    JobStore,
    Outcome,
    Speed,
    Storage,
    Timing,
    VideoRequest,
    finished,
    flagged,
    render_executor,
    render_job,
)
from wavenb.sandbox._requestlog import RequestRecord, RequestRecorder

if TYPE_CHECKING:
    from wavenb.sandbox._faults import FaultPlan, Faults

__all__ = ["SANDBOX_BANNER", "SANDBOX_HEADER", "SandboxConfig", "SandboxState", "create_app"]

SANDBOX_BANNER: Final = "wavenb SANDBOX — not Runway; videos are local renders"
SANDBOX_HEADER: Final = "X-Wavenb-Sandbox"
ENHANCER_MODEL: Final = "wavespeed-ai/prompt-optimizer"

MAX_PROMPT_CHARS: Final = 1000
MAX_DATA_URI_BYTES: Final = 5 * 1024 * 1024
"""Runway's limit on an image sent inline as a data URI."""
MAX_JSON_BODY: Final = MAX_DATA_URI_BYTES + 1024 * 1024
"""A 5 MB data URI plus room for the other fields; anything larger is refused unread."""
MAX_UPLOAD_BYTES: Final = 32 * 1024 * 1024
_MULTIPART_OVERHEAD: Final = 64 * 1024
_SPEEDS: Final = ("instant", "fast", "realistic")
_OWNER_KEY: Final = "wavenb.key_digest"
"""Where the middleware leaves the checked key's digest in the ASGI scope for the endpoints."""


# --------------------------------------------------------------------------- config and state


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How a sandbox app behaves. Every field has a default that suits a notebook.

    >>> app = create_app(SandboxConfig(speed="instant"))
    """

    speed: Speed = "fast"
    """``instant`` (done when rendered), ``fast`` (a few seconds), ``realistic`` (20-60 s)."""
    storage_dir: Path | None = None
    """Where uploads and videos are kept; ``None`` makes a temporary directory per app."""
    clock: Callable[[], float] = field(default=time.monotonic)
    """Seconds on a monotonic clock; tests inject a fake one to walk the lifecycle."""
    seed: int = 0
    """Makes ids and simulated timings repeat from run to run."""
    max_concurrent: int | None = None
    """Tasks one key may have processing at once; more wait in ``created`` (real default: 2)."""
    duration: float = 5.0
    """Length of each rendered clip, in seconds."""
    balance: float = 10.0
    """Starting balance in (fake) US dollars."""
    api_keys: frozenset[str] | None = field(default=None, repr=False)
    """Keys to accept; ``None`` (the default) accepts any non-empty key. Any other key gets a
    401, so tests can drive the wrong-key path. Kept out of ``repr``; only digests are used."""
    submit_rate: tuple[int, float] | None = None
    """At most ``n`` video submissions per ``seconds`` for one key, as ``(n, seconds)``; more
    get a 429 with ``Retry-After`` (the real Bronze level: 2 a minute). ``None``: no cap."""
    timing: Timing | None = None
    """Exact timings for benchmarks: called as ``timing(job_id, key_digest)`` for each accepted
    video, it returns ``(queue delay, processing time)`` in seconds, replacing ``speed``'s random
    ones. A job still never completes before its render is done (keep clips short)."""
    record_requests: bool = False
    """Keep a ``RequestRecord`` of every request in ``state.request_log`` (grows without end:
    for benchmarks and tests)."""
    faults: FaultPlan | None = None
    """Inject failures (429s, 5xx, resets, timeouts, failed tasks...) per this plan, and serve
    the ``/sandbox-admin/`` routes; see ``wavenb.sandbox._faults``. ``None``: no faults."""

    def describe(self) -> str:
        """The settings a person needs to know, e.g. ``speed fast, 5 s clips, 2 at once``."""
        parts = [f"speed {self.speed}", f"{self.duration:g} s clips"]
        if self.max_concurrent is not None:
            parts.append(f"{self.max_concurrent} at once per key")
        if self.submit_rate is not None:
            parts.append(f"{self.submit_rate[0]} submissions per {self.submit_rate[1]:g} s")
        return ", ".join(parts)

    def __post_init__(self) -> None:
        if self.speed not in _SPEEDS:
            raise ValueError(f"speed must be one of {', '.join(_SPEEDS)}; got {self.speed!r}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be 1 or more (or None): {self.max_concurrent}")
        if not self.duration > 0:
            raise ValueError(f"duration must be positive; got {self.duration}")
        if self.submit_rate is not None and (self.submit_rate[0] < 1 or self.submit_rate[1] <= 0):
            raise ValueError(f"submit_rate must be (n >= 1, seconds > 0); got {self.submit_rate}")


class SandboxState:
    """A sandbox app's state, at ``app.state.sandbox``: its jobs, storage and counters.

    Counters, for tests and benchmarks:
    ``requests`` (``Counter`` of ``"METHOD /route/{template}"``), ``accepted`` (video
    submissions accepted), ``balance``, ``peak_processing`` and ``completion_times``.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        if config.storage_dir is None:
            self.storage = Storage.temporary()
        else:
            self.storage = Storage(config.storage_dir)
        self.jobs = JobStore(
            clock=config.clock,
            seed=config.seed,
            speed=config.speed,
            max_concurrent=config.max_concurrent,
            timing=config.timing,
        )
        self.requests: Counter[str] = Counter()
        self.request_log: list[RequestRecord] = []
        """Every request, when ``config.record_requests`` is on (see ``_requestlog``)."""
        self._recent_submits: dict[str, deque[float]] = {}
        self.accepted = 0
        self.submissions: list[tuple[str, str]] = []
        """``(prediction id, request_digest)`` of every accepted video submission, in order."""
        self.faults: Faults | None = None
        """The fault plan in force and its counters, when ``config.faults`` is set."""
        self.balance = config.balance
        self._money = threading.Lock()
        self._key_digests = (
            None if config.api_keys is None else frozenset(map(key_digest, config.api_keys))
        )
        # A dropped app must not leave its queued renders to the shared pool.
        weakref.finalize(self, self.jobs.cancel_waiting)

    def refusal(self, owner: str | None) -> str | None:
        """Say why a request with this key digest is refused (401), or ``None`` to let it in."""
        if owner is None:
            return "Unauthorized: send your API key as 'Authorization: Bearer <key>'."
        if self._key_digests is not None and owner not in self._key_digests:
            return "Unauthorized: invalid API key."
        return None

    def close(self, timeout: float = 30.0) -> None:
        """Cancel queued renders (their jobs fail), then wait for running ones; blocking.

        Safe to call more than once. Raises ``TimeoutError`` if renders outlast ``timeout``.
        """
        self.jobs.cancel_waiting()
        self.jobs.wait_all(timeout)

    @property
    def peak_processing(self) -> int:
        """The most video tasks that were ever processing at the same moment."""
        return self.jobs.peak_processing()

    @property
    def completion_times(self) -> dict[str, float]:
        """Prediction id -> clock time it completed (or failed), for jobs finished so far."""
        return self.jobs.completion_times()

    def wait_for_render(self, job_id: str, timeout: float = 60.0) -> None:
        """Block until the job's render is done (its status still follows the clock).

        Raises ``KeyError`` for an unknown id, ``TimeoutError`` after ``timeout`` seconds.
        """
        self.jobs.wait_for_work(job_id, timeout)

    def check_rate(self, owner: str) -> None:
        """Refuse (429 with ``Retry-After``) a submission over the key's per-window cap."""
        if self.config.submit_rate is None:
            return
        limit, window = self.config.submit_rate
        now = self.config.clock()
        with self._money:
            recent = self._recent_submits.setdefault(owner, deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= limit:
                wait = max(1, math.ceil(recent[0] + window - now))
                raise ApiError(
                    429,
                    f"Rate limit exceeded: at most {limit} video submissions per {window:g} s "
                    "for this account level.",
                    headers={"Retry-After": str(wait)},
                )
            recent.append(now)

    def submit_video(self, video: VideoRequest, owner: str) -> Job:
        """Accept a video job: start its render (unless moderated) and charge for it."""
        self.check_rate(owner)
        job_id = self.jobs.new_id()
        if flagged(video.prompt):
            outcome = finished(Outcome(finished_at=self.config.clock(), error=MODERATION_ERROR))
        else:
            outcome = render_executor().submit(
                render_job,
                video,
                self.storage,
                self.storage.video_path(job_id),
                clock=self.config.clock,
                duration=self.config.duration,
                url_path=self.storage.video_url_path(job_id),
            )
        job = self.jobs.add(job_id, MODEL_ID, owner, outcome, timed=True)
        with self._money:
            self.accepted += 1
            self.submissions.append((job_id, request_digest(video)))
            self.balance = round(self.balance - PRICE_PER_VIDEO, 6)
        return job

    def output_sha256(self, job_id: str) -> str | None:
        """The SHA-256 of a job's rendered video, or ``None`` while (or if) there is none."""
        try:
            path = self.storage.video_path(job_id)
            with path.open("rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest()
        except (OSError, ValueError):
            return None

    def submit_enhancement(self, text: str, owner: str) -> Job:
        """Record a prompt-optimizer run whose answer (``text``) is already known."""
        job_id = self.jobs.new_id()
        outcome = finished(Outcome(finished_at=self.config.clock(), output=text))
        return self.jobs.add(job_id, ENHANCER_MODEL, owner, outcome, timed=False)

    def store_upload(self, file: IO[bytes], filename: str | None) -> dict[str, Any]:
        """Check an uploaded file is an image, store it under its digest; blocking.

        Raises ``ApiError`` (400) when Pillow cannot read it as one of the documented formats.
        """
        fmt = _image_format(file)
        digest, size, temp = _copy_hashing(file, self.storage.root / "media")
        name = self.storage.media_name(digest, fmt)
        temp.replace(self.storage.new_media_path(name))
        filename = _basename(filename) or name
        return {"type": "image", "name": name, "filename": filename, "size": size}


def request_digest(video: VideoRequest) -> str:
    """The SHA-256 of what a submission asked for: equal digests mean the same request."""
    canonical = json.dumps(
        [video.prompt, video.image, video.aspect_ratio], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _image_format(file: IO[bytes]) -> str:
    """Pillow's format name for the file, judged by content, never by the extension."""
    try:
        with Image.open(file) as image:
            fmt = image.format or ""
            image.verify()
    except Image.DecompressionBombError:
        raise ApiError(400, "Invalid file: the image has too many pixels.") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        fmt = ""
    if fmt not in IMAGE_FORMATS:
        raise ApiError(
            400, "Invalid file: not an image. Supported formats: JPG, PNG, WebP, GIF, BMP, TIFF."
        )
    return fmt


def _copy_hashing(file: IO[bytes], directory: Path) -> tuple[str, int, Path]:
    """Copy to a temporary file in ``directory``; return the SHA-256, the size and the path."""
    file.seek(0)
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".part", delete=False) as out:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size, Path(out.name)


def _basename(filename: str | None) -> str:
    return (filename or "").replace("\\", "/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- envelopes and errors


class ApiError(Exception):
    """An error answer: HTTP ``status`` and a message, sent in the API's envelope."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def envelope(data: object) -> JSONResponse:
    """Answer success: ``{"code": 200, "message": "success", "data": ...}``."""
    return JSONResponse({"code": 200, "message": "success", "data": data})


def error_envelope(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Answer an error; ``code`` repeats the HTTP status, as the real API does."""
    body = {"code": status, "message": message, "data": None}
    return JSONResponse(body, status_code=status, headers=headers)


async def _on_api_error(_request: Request, exc: Exception) -> Response:
    error = cast("ApiError", exc)
    return error_envelope(error.status, error.message, error.headers)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (and multipart 400s), in the envelope."""
    error = cast("HTTPException", exc)
    where = f"{request.method} {request.url.path}"
    messages = {
        404: f"Not found: no such route {where}.",
        405: f"Method not allowed: {where}; allowed: {(error.headers or {}).get('Allow', '')}.",
    }
    message = messages.get(error.status_code, str(error.detail))
    return error_envelope(error.status_code, message, headers=error.headers)


async def _on_server_error(_request: Request, exc: Exception) -> Response:
    # The outermost handler: the labelling middleware is not around it, so label here.
    message = f"Internal sandbox error: {type(exc).__name__}."
    return error_envelope(500, message, headers={SANDBOX_HEADER: "1"})


# --------------------------------------------------------------------------- middleware


class _SandboxMiddleware:
    """Labels every answer, checks the bearer key on ``/api/v3``, counts requests by route."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_labelled(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[SANDBOX_HEADER] = "1"
            await send(message)

        path: str = scope["path"]
        if path == "/api/v3" or path.startswith("/api/v3/"):
            owner = _owner(scope)
            refusal = self.state.refusal(owner)
            if refusal is not None:
                self.state.requests[f"{scope['method']} (unauthorized)"] += 1
                await error_envelope(401, refusal)(scope, receive, send_labelled)
                return
            scope[_OWNER_KEY] = owner
        try:
            await self.app(scope, receive, send_labelled)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else "(unmatched)"
            self.state.requests[f"{scope['method']} {template}"] += 1


def _owner(scope: Scope) -> str | None:
    """Return a digest of the bearer key, or ``None`` if the header is missing or malformed.

    Only the digest is kept (concurrency is per key), so the key never lands in state or logs.
    """
    headers = dict(scope.get("headers") or [])
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key_digest(key.strip())


def key_digest(key: str) -> str:
    """Return the SHA-256 of an API key: what the sandbox keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


# --------------------------------------------------------------------------- request parsing


def _limited(request: Request, limit: int) -> Request:
    """Wrap the request so that reading more than ``limit`` body bytes raises a 413.

    Checked while streaming, so an oversized body is never held (or spooled) whole.
    """
    too_large = ApiError(413, f"Request body too large: the limit is {limit // (1024 * 1024)} MB.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large
        return message

    return Request(request.scope, receive)


async def _json_object(request: Request) -> dict[str, Any]:
    """Read the body as a JSON object, or raise a 400 saying why not."""
    raw = await _limited(request, MAX_JSON_BODY).body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Invalid JSON body: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON body: expected an object.")
    return body


def _reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...], model: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ApiError(
            400,
            f"Invalid parameters: unknown field {names}; {model} accepts only "
            f"{', '.join(allowed)}.",
        )


_JSON_TYPES: Final[dict[type, str]] = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "value")


def _field(body: Mapping[str, Any], name: str, kind: type, default: object = None) -> Any:  # noqa: ANN401
    """Return the field if it has JSON type ``kind``, the default if absent; else raise 400."""
    if name not in body:
        if default is None:
            raise ApiError(400, f"Invalid parameters: '{name}' is required.")
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(
            400,
            f"Invalid parameters: '{name}' must be a {_JSON_TYPES[kind]}, not {_json_type(value)}.",
        )
    return value


def parse_video_request(body: Mapping[str, Any]) -> VideoRequest:
    """Validate a gen4-turbo body as the model's schema would; raise ``ApiError`` (400)."""
    # enable_sync_mode is a generic flag of every model; the sandbox answers asynchronously
    # regardless (the docs advise against sync mode for video).
    _reject_unknown(body, ("prompt", "image", "aspect_ratio", "enable_sync_mode"), MODEL_ID)
    prompt: str = _field(body, "prompt", str)
    if not prompt.strip():
        raise ApiError(400, "Invalid parameters: 'prompt' must not be empty.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(
            400,
            f"Invalid parameters: 'prompt' has {len(prompt)} characters; "
            f"the limit is {MAX_PROMPT_CHARS}.",
        )
    image: str = _field(body, "image", str)
    _check_image_field(image)
    ratio: str = _field(body, "aspect_ratio", str, default="")
    if ratio and ratio not in ASPECT_RATIOS:
        raise ApiError(
            400,
            f"Invalid parameters: 'aspect_ratio' must be one of {', '.join(ASPECT_RATIOS)} "
            f"(or empty to match the image); got {ratio!r}.",
        )
    return VideoRequest(prompt, image, ratio or None)


def _check_image_field(image: str) -> None:
    """``image`` must be an http(s) URL or a base64 ``data:image/...`` URI of at most 5 MB."""
    if image.startswith("data:"):
        header = image.partition(",")[0]
        if not (header.startswith("data:image/") and header.endswith(";base64")):
            raise ApiError(
                400, "Invalid parameters: 'image' data URI must be 'data:image/<type>;base64,...'."
            )
        if len(image) > MAX_DATA_URI_BYTES:
            raise ApiError(400, "Invalid parameters: 'image' data URI is larger than 5 MB.")
        return
    parts = urlsplit(image)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(
            400, "Invalid parameters: 'image' must be an http(s) URL or a data:image/ URI."
        )


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value: str = _field(body, name, str, default=default)
    if value not in allowed:
        raise ApiError(
            400, f"Invalid parameters: '{name}' must be one of {', '.join(allowed)}; got {value!r}."
        )
    return value


# --------------------------------------------------------------------------- endpoints


def _state(request: Request) -> SandboxState:
    return cast("SandboxState", request.app.state.sandbox)


def _base(request: Request) -> str:
    """Return the request's own base URL, so links work under whatever host reached us."""
    return str(request.base_url).rstrip("/")


def prediction_json(job: Job, base: str) -> dict[str, Any]:
    """Shape a prediction as the real API does, plus ``"sandbox": true``."""
    outputs: list[str] = []
    if job.status == "completed" and job.output is not None:
        outputs = [base + job.output if job.output_is_path else job.output]
    elapsed = 0
    if job.started is not None and job.finished is not None:
        elapsed = round((job.finished - job.started) * 1000)
    return {
        "id": job.id,
        "model": job.model,
        "outputs": outputs,
        "urls": {"get": f"{base}/api/v3/predictions/{job.id}/result"},
        "has_nsfw_contents": [False] * len(outputs),
        "status": job.status,
        "created_at": job.created_at,
        "error": job.error,
        "executionTime": elapsed,
        "timings": {"inference": elapsed},
        "sandbox": True,
    }


def _request_owner(request: Request) -> str:
    """Return the key digest the middleware checked and left in the scope."""
    return cast("str", request.scope[_OWNER_KEY])


async def submit_video(request: Request) -> Response:
    """``POST /api/v3/runwayml/gen4-turbo``; the ``webhook`` query parameter is ignored."""
    video = parse_video_request(await _json_object(request))
    job = _state(request).submit_video(video, _request_owner(request))
    return envelope(prediction_json(job, _base(request)))


async def optimize_prompt(request: Request) -> Response:
    """``POST /api/v3/wavespeed-ai/prompt-optimizer``: sync answers come back completed."""
    body = await _json_object(request)
    _reject_unknown(body, ("text", "mode", "style", "image", "enable_sync_mode"), ENHANCER_MODEL)
    text: str = _field(body, "text", str)
    if not text.strip():
        raise ApiError(400, "Invalid parameters: 'text' must not be empty.")
    mode = _choice(body, "mode", _enhancer.MODES, "image")
    style = _choice(body, "style", _enhancer.STYLES, "default")
    _field(body, "image", str, default="")
    sync: bool = _field(body, "enable_sync_mode", bool, default=False)
    enhanced = await run_in_threadpool(
        _enhancer.enhance,
        text,
        style=cast("_enhancer.Style", style),
        mode=cast("_enhancer.Mode", mode),
    )
    state = _state(request)
    job = state.submit_enhancement(enhanced, _request_owner(request))
    if sync:
        job = state.jobs.get(job.id) or job  # advanced: completed already
    return envelope(prediction_json(job, _base(request)))


async def get_prediction(request: Request) -> Response:
    """``GET /api/v3/predictions/{id}/result`` and ``GET /api/v3/predictions/{id}``."""
    job_id: str = request.path_params["id"]
    job = _state(request).jobs.get(job_id)
    if job is None:
        raise ApiError(404, f"Prediction not found: {job_id[:64]!r}.")
    return envelope(prediction_json(job, _base(request)))


async def upload_media(request: Request) -> Response:
    """``POST /api/v3/media/upload/binary``: multipart field ``file``, an image of ≤ 32 MB."""
    limited = _limited(request, MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD)
    async with limited.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "Invalid parameters: multipart field 'file' is required.")
        if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
            raise ApiError(413, "File too large: the limit is 32 MB.")
        stored = await run_in_threadpool(_state(request).store_upload, upload.file, upload.filename)
    name = stored.pop("name")
    return envelope({**stored, "download_url": f"{_base(request)}{Storage.MEDIA_ROUTE}{name}"})


async def get_balance(request: Request) -> Response:
    """``GET /api/v3/balance``: the sandbox's fake dollars."""
    return envelope({"balance": _state(request).balance})


async def serve_video(request: Request) -> Response:
    """Serve the rendered MP4 of a completed job; 404 until then. No auth, like a CDN URL."""
    state = _state(request)
    job = state.jobs.get(request.path_params["id"])
    if job is None or job.status != "completed" or not job.output_is_path:
        raise ApiError(404, "Not found: no finished video at this URL.")
    return FileResponse(state.storage.video_path(job.id), media_type="video/mp4")


async def serve_media(request: Request) -> Response:
    """Serve an uploaded image by its server-generated name; anything else is 404."""
    path = _state(request).storage.media_path(request.path_params["name"])
    if path is None:
        raise ApiError(404, "Not found: no uploaded file by this name.")
    return FileResponse(path)


async def index(request: Request) -> Response:
    """Tell whoever opens the server's address in a browser what it is, and how it is set."""
    return PlainTextResponse(
        f"{SANDBOX_BANNER}.\nThis server speaks the WaveSpeedAI API (/api/v3/...) for wavenb; "
        "nothing here reaches Runway, and its balance is not real money.\n"
        f"Settings: {_state(request).config.describe()}.\n"
    )


# --------------------------------------------------------------------------- the app


def _recorder(state: SandboxState) -> list[Middleware]:
    """The outermost middleware, when asked for: it sees every request, refused ones too."""
    if not state.config.record_requests:
        return []
    return [
        Middleware(RequestRecorder, log=state.request_log, clock=state.config.clock, owner=_owner)
    ]


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """Build a sandbox app: the WaveSpeedAI API, served locally with rendered videos.

    Use it in-process with ``httpx.ASGITransport(app)`` or serve it with uvicorn; its state
    and counters are at ``app.state.sandbox`` (a :class:`SandboxState`).

    >>> import httpx
    >>> app = create_app(SandboxConfig(speed="instant"))
    >>> client = httpx.AsyncClient(
    ...     transport=httpx.ASGITransport(app), base_url="https://api.wavespeed.ai"
    ... )
    """
    state = SandboxState(config or SandboxConfig())
    routes = [
        Route(f"/api/v3/{MODEL_ID}", submit_video, methods=["POST"]),
        Route(f"/api/v3/{ENHANCER_MODEL}", optimize_prompt, methods=["POST"]),
        Route("/api/v3/predictions/{id}/result", get_prediction, methods=["GET"]),
        Route("/api/v3/predictions/{id}", get_prediction, methods=["GET"]),
        Route("/api/v3/media/upload/binary", upload_media, methods=["POST"]),
        Route("/api/v3/balance", get_balance, methods=["GET"]),
        Route(Storage.CDN_ROUTE + "{id}/1.mp4", serve_video, methods=["GET"]),
        Route(Storage.MEDIA_ROUTE + "{name}", serve_media, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Only servers run the lifespan (ASGITransport does not): stop queued renders on exit.
        yield
        await run_in_threadpool(state.close)

    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        middleware=[
            *_recorder(state),
            Middleware(_SandboxMiddleware, state=state),
        ],
        exception_handlers={
            ApiError: _on_api_error,
            HTTPException: _on_http_exception,
            Exception: _on_server_error,
        },
    )
    app.state.sandbox = state
    if state.config.faults is not None:
        from wavenb.sandbox._faults import install  # noqa: PLC0415  (only fault-injecting apps)

        install(app, state)
    return app
