"""Fault injection for the sandbox: the failures of a real service, on purpose and on a seed.

A ``FaultPlan`` (in ``wavenb.sandbox._faultplan``, re-exported here) says how often
(probabilities) or exactly when (scripted "the next 2 submits get a 429") each fault happens.
``SandboxConfig(faults=plan)`` switches it on;
``create_app`` then wraps the whole app in a ``FaultInjector``, outside Starlette's own
error handling, so a connection can be cut before anything is answered.

Request faults, and what a client sees:

- ``429``: a 429 envelope, ``Retry-After`` as seconds, an HTTP date, or absent
  (``retry_after_form``). The request was not handled.
- ``5xx``: a 500 envelope, or a 502 / 503 HTML page from a "proxy". Not handled.
- ``reset``: the connection is closed without an answer (a TCP RST). Not handled.
- ``timeout``: no answer for ``slow`` seconds; a client that gives up first leaves the request
  unhandled, one that waits longer gets its answer late.
- ``truncate``: handled, then half the body is sent: JSON cut short, or a video cut off
  mid-stream with the connection closed.
- ``drop``: handled (a submit is accepted and charged), then the connection is closed without
  the answer: "accepted, then the connection dropped".

Every accepted submission also draws a fate: ``fail`` (the task ends ``failed`` with an error
message once its render is done), ``nsfw`` (completed with ``has_nsfw_contents: [true]``) or
``expire`` (completed, but its output URL answers 403 AccessDenied or 404 NoSuchKey as S3 /
CloudFront do for a deleted object). The 429 of ``submit_rate`` and the ``created`` queue of
``max_concurrent`` are ``SandboxConfig`` options, not faults.

Served by uvicorn, a reset really closes the socket (with ``SO_LINGER`` 0, so the peer gets a
RST) and a timeout really holds the request. In-process, under ``httpx.ASGITransport``, there
is no socket and no clock that httpx watches, so the injector raises what httpx raises for a
real socket instead: ``httpx.ReadError`` for a reset or a drop, ``httpx.ReadTimeout`` for a
timeout, ``httpx.RemoteProtocolError`` for a video cut off mid-stream.

Decisions come from one ``random.Random(seed)`` drawn in the order requests arrive, under a
lock: the same seed and the same sequence of requests give the same faults. Everything that
fired is counted per route in ``app.state.sandbox.faults.stats``.

Tests and tools can read the counters and change the plan over HTTP, from loopback with a
bearer key the sandbox accepts: ``GET /sandbox-admin/stats``, ``GET`` / ``POST
/sandbox-admin/faults`` (a JSON plan, as in ``FaultPlan.from_mapping``). Those routes exist
only on apps made with a plan (``FaultPlan()`` injects nothing but enables them).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import httpx
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wavenb.core.types import ENHANCER_MODEL_ID, MODEL_ID
from wavenb.sandbox._envelope import SANDBOX_HEADER, envelope, error_envelope, labelled
from wavenb.sandbox._faultplan import (
    ROUTES,
    FaultPlan,
    Faults,
    FaultStats,
    RouteName,
    Scripted,
    json_object_in,
)
from wavenb.sandbox._keys import owner_of
from wavenb.sandbox._storage import MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD, Storage

if TYPE_CHECKING:
    from wavenb.sandbox._state import SandboxState

__all__ = [
    "ADMIN_PREFIX",
    "FAILURE_MESSAGE",
    "ROUTES",
    "FaultInjector",
    "FaultPlan",
    "FaultStats",
    "Faults",
    "Scripted",
    "install",
    "route_of",
]

ADMIN_PREFIX: Final = "/sandbox-admin/"

FAILURE_MESSAGE: Final = (
    "Internal error: the model could not generate this video (sandbox injected fault). "
    "Please try again."
)
"""The ``error`` of a task that draws the ``fail`` fate: worded like the real service's vague
failures, and free of moderation words (it must not read as a content-policy refusal)."""
_PROXY_PAGES: Final = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
}
_S3_ERRORS: Final = {
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
}
_PREDICTION_PATH: Final = re.compile(r"/api/v3/predictions/([^/]+)(?:/result)?")
_DOWNLOAD_PATH: Final = re.compile(re.escape(Storage.CDN_ROUTE) + r"([^/]+)/1\.mp4")
_FIXED_ROUTES: Final[dict[str, RouteName]] = {
    f"/api/v3/{MODEL_ID}": "submit",
    "/api/v3/media/upload/binary": "upload",
    "/api/v3/media/uploads": "upload",
    "/api/v3/balance": "balance",
    f"/api/v3/{ENHANCER_MODEL_ID}": "enhance",
    "/api/v3/predictions/delete": "other",
}
_HISTORY_PATH: Final = "/api/v3/predictions"
_HOLD_BODY_LIMIT: Final = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
"""A held request's body is kept in memory to be replayed; past this it is dropped instead."""


# --------------------------------------------------------------------------- the middleware


def install(app: Any, state: SandboxState) -> None:  # noqa: ANN401  (a Starlette app)
    """Wrap ``app`` in a ``FaultInjector`` for ``state.config.faults``; called by ``create_app``.

    The injector goes outside Starlette's middleware stack (which it builds now), because a
    reset must close the connection before Starlette's error middleware could answer a 500.
    """
    plan = state.config.faults
    if plan is None:
        raise ValueError("install needs a SandboxConfig with faults")
    state.faults = Faults(plan)
    app.middleware_stack = FaultInjector(app.build_middleware_stack(), state)


class FaultInjector:
    """ASGI middleware that injects the faults of ``state.faults`` and serves the admin routes."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        if state.faults is None:
            raise ValueError("FaultInjector needs state.faults")
        self.app = app
        self.state = state
        self.faults: Faults = state.faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            await self._admin(scope, receive, send)
            return
        route = route_of(path)
        fault = self.faults.request_fault(route)
        link = _Link(send)
        if fault == "429":
            await self._rate_limited(scope, receive, send)
        elif fault in ("500", "502", "503"):
            await _server_error(int(fault), scope, receive, send)
        elif fault == "reset":
            await link.reset()
        elif fault == "timeout":
            await self._hold(route, scope, receive, link)
        elif fault == "truncate":
            await self._truncated(route, scope, receive, link)
        elif fault == "drop":
            await self._handle(route, scope, receive, _discard)
            await link.reset()
        else:
            await self._handle(route, scope, receive, send)

    # -- handling, with fates ----------------------------------------------------------------

    async def _handle(self, route: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the app answer, applying task fates: the one path every handled request takes."""
        if route == "submit":
            answer = await _capture(self.app, scope, receive)
            drawn = self._note_submission(answer)
            if drawn in ("fail", "nsfw"):  # a sync-mode answer may be the finished prediction
                shown: str = str(drawn)
                answer = answer.rewritten(lambda data: _apply_fate(data, shown))
            await answer.replay(send)
            return
        if scope["path"] == _HISTORY_PATH:
            answer = await _capture(self.app, scope, receive)
            await answer.rewritten(self._fated_page).replay(send)
            return
        prediction_id = _id_in(path=scope["path"], route=route)
        fate = None if prediction_id is None else self.faults.fate(prediction_id)
        if fate is None:
            await self.app(scope, receive, send)
        elif route == "download" and fate.startswith("expire"):
            self.faults.count("download expire")
            await _expired(int(fate.partition(":")[2]), scope, receive, send)
        elif route == "result" and fate in ("fail", "nsfw"):
            answer = await _capture(self.app, scope, receive)
            await answer.rewritten(lambda data: _apply_fate(data, fate)).replay(send)
        else:
            await self.app(scope, receive, send)

    def _note_submission(self, answer: _Answer) -> str | None:
        """Draw the fate of an accepted submission; return it (``None``: no fate)."""
        if answer.status != 200:  # noqa: PLR2004
            return None
        prediction_id = _json_path(answer.body, "data", "id")
        if not isinstance(prediction_id, str):
            return None
        self.faults.decide_fate(prediction_id)
        return self.faults.fate(prediction_id)

    def _fated_page(self, data: dict[str, Any]) -> dict[str, Any]:
        """A history page whose items show their fates, as their result routes do."""
        items = data.get("items")
        if not isinstance(items, list):
            return data
        shown = []
        for item in items:
            fate = self.faults.fate(str(item.get("id"))) if isinstance(item, dict) else None
            shown.append(_apply_fate(item, fate) if fate in ("fail", "nsfw") else item)
        return {**data, "items": shown}

    # -- the faults ----------------------------------------------------------------------------

    async def _rate_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        form, value = self.faults.retry_after()
        headers = {SANDBOX_HEADER: "1"}
        if value is not None:
            headers["Retry-After"] = value
        message = f"Too many requests (sandbox injected fault, Retry-After as {form}): slow down."
        await error_envelope(429, message, headers)(scope, receive, send)

    async def _hold(self, route: str, scope: Scope, receive: Receive, link: _Link) -> None:
        """Answer nothing for ``slow`` seconds; then drop the request if the client left.

        In-process there is no client timeout to outlast: raise what httpx raises for one.
        """
        if not link.served:
            raise httpx.ReadTimeout("timed out (sandbox injected fault)")
        body = await _read_body(receive, _HOLD_BODY_LIMIT)
        if body is None:
            await link.reset()
            return
        try:
            await asyncio.wait_for(_disconnected(receive), self.faults.plan.slow)
        except TimeoutError:
            # The client waited longer than we held it: answer, late.
            await self._handle(route, scope, _replay(body, receive), link.send)
        # else: the client gave up; the request was never handled, and nothing is sent.

    async def _truncated(self, route: str, scope: Scope, receive: Receive, link: _Link) -> None:
        if route == "download":
            await self._handle(route, scope, receive, _CutOff(link))
            return
        answer = await _capture_handled(self, route, scope, receive)
        cut = answer.body[: len(answer.body) // 2]
        await replace(answer, body=cut).replay(link.send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/sandbox-admin/stats`` and ``/sandbox-admin/faults``: loopback and a key only."""
        client = scope.get("client")
        if not _loopback(client[0] if client else None):
            refused = error_envelope(403, "Forbidden: the admin routes answer loopback only.")
            await labelled(refused, scope, receive, send)
            return
        refusal = self.state.refusal(owner_of(scope))
        if refusal is not None:
            await labelled(error_envelope(401, refusal), scope, receive, send)
            return
        name, method = scope["path"].removeprefix(ADMIN_PREFIX), scope["method"]
        if (name, method) == ("stats", "GET"):
            response: Response = envelope(self.stats())
        elif (name, method) == ("faults", "GET"):
            response = envelope(self.faults.plan.as_dict())
        elif (name, method) == ("faults", "POST"):
            response = await self._set_plan(receive)
        elif name in ("stats", "faults"):
            response = error_envelope(405, f"Method not allowed: {method} {scope['path']}.")
        else:
            response = error_envelope(404, f"Not found: no admin route {scope['path']}.")
        await labelled(response, scope, receive, send)

    async def _set_plan(self, receive: Receive) -> Response:
        body = await _read_body(receive, 64 * 1024)
        try:
            text = (body or b"").decode("utf-8", "replace")
            plan = FaultPlan.from_mapping(json_object_in(text, "the plan"))
        except ValueError as error:
            return error_envelope(400, f"Invalid fault plan: {error}")
        self.faults.set_plan(plan)
        return envelope(plan.as_dict())

    def stats(self) -> dict[str, Any]:
        """Everything a test asserts on: plan, fault counters, routes, accepted submissions."""
        state = self.state
        return {
            "plan": self.faults.plan.as_dict(),
            "faults": self.faults.stats.as_dict(),
            "routes": dict(state.requests),
            "accepted": state.accepted,
            "submissions": [{"id": i, "request_sha256": h} for i, h in state.submissions],
            "outputs": {i: state.output_sha256(i) for i, _ in state.submissions},
        }


async def _capture_handled(
    injector: FaultInjector, route: str, scope: Scope, receive: Receive
) -> _Answer:
    """Handle the request (fates included) and keep the whole answer instead of sending it."""
    captured: list[Message] = []

    async def keep(message: Message) -> None:
        captured.append(message)

    await injector._handle(route, scope, receive, keep)
    return _Answer.of(captured)


# --------------------------------------------------------------------------- connections


class _Link:
    """The client connection behind ``send``: a real socket under uvicorn, or nothing in-process.

    uvicorn's ``send`` is a bound method of its per-request cycle object, which keeps the
    asyncio transport as ``.transport`` (true of its h11 and httptools protocols alike; the
    tests check it). In-process (``httpx.ASGITransport``) there is no transport.
    """

    def __init__(self, send: Send) -> None:
        self.send = send
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        self.transport = transport if isinstance(transport, asyncio.Transport) else None

    @property
    def served(self) -> bool:
        """Whether a real socket is behind this request."""
        return self.transport is not None

    async def reset(self) -> None:
        """Cut the connection without a word: a TCP RST served, ``httpx.ReadError`` in-process."""
        if self.transport is None:
            raise httpx.ReadError("[Errno 104] Connection reset by peer (sandbox injected fault)")
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends a RST rather than a FIN, as a crashed proxy would.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        # One turn of the loop lets uvicorn see the connection lost, so it neither answers a
        # 500 nor logs "returned without starting response".
        await asyncio.sleep(0)

    async def hang_up(self) -> None:
        """Close after what was sent so far (a FIN): the peer reads a body that stops short."""
        if self.transport is None:
            raise httpx.RemoteProtocolError("peer closed connection (sandbox injected fault)")
        self.transport.close()
        await asyncio.sleep(0)


class _CutOff:
    """A ``send`` that lets half the promised body through, then cuts the connection."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.expected: int | None = None
        self.sent = 0
        self.cut = False

    async def __call__(self, message: Message) -> None:
        if self.cut:
            return  # the connection is gone: what the app still sends goes nowhere
        if message["type"] == "http.response.start":
            length = MutableHeaders(scope=message).get("content-length", "")
            self.expected = int(length) if length.isdigit() else None
            await self.link.send(message)
            return
        chunk: bytes = message.get("body", b"")
        # With no length promised, cut this chunk in half.
        limit = self.sent + len(chunk) // 2 if self.expected is None else self.expected // 2
        if self.sent + len(chunk) < limit and message.get("more_body", False):
            self.sent += len(chunk)
            await self.link.send(message)
            return
        keep = max(0, limit - self.sent)
        self.cut = True
        if self.link.served:
            await self.link.send(
                {"type": "http.response.body", "body": chunk[:keep], "more_body": True}
            )
            await self.link.hang_up()
            return
        received = self.sent + keep
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {received} bytes, expected {self.expected}) (sandbox injected fault)"
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """A whole answer, kept instead of sent, so it can be read, changed or cut."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def of(cls, messages: list[Message]) -> _Answer:
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        if start is None:
            return cls(500, [], b"")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return cls(int(start["status"]), list(start.get("headers", [])), body)

    def rewritten(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> _Answer:
        """The answer with its envelope's ``data`` passed through ``change`` (if it is JSON)."""
        try:
            document = json.loads(self.body)
        except ValueError:
            return self
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            return self
        document["data"] = change(document["data"])
        body = json.dumps(document, separators=(",", ":")).encode()
        return replace(self, body=body)

    async def replay(self, send: Send) -> None:
        headers = [(k, v) for k, v in self.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> _Answer:
    captured: list[Message] = []

    async def keep(message: Message) -> None:
        captured.append(message)

    await app(scope, receive, keep)
    return _Answer.of(captured)


async def _discard(_message: Message) -> None:
    """A ``send`` for answers that will never be delivered."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; ``None`` if the client left first or it is over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (the body must have been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the real one says."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


# --------------------------------------------------------------------------- canned answers


async def _server_error(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    """A 500 from the API itself (its envelope), or a 502 / 503 page from a proxy in front."""
    if status == 500:  # noqa: PLR2004
        message = "Internal server error (sandbox injected fault). Please try again later."
        await error_envelope(500, message, {SANDBOX_HEADER: "1"})(scope, receive, send)
        return
    title = _PROXY_PAGES[status]
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    response = Response(page, status_code=status, media_type="text/html")
    await labelled(response, scope, receive, send)


async def _expired(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    """What S3 behind CloudFront answers for a deleted object: XML, not the API's envelope."""
    code, message = _S3_ERRORS[status]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    await labelled(Response(body, status_code=status, media_type="application/xml"),
                    scope, receive, send)  # fmt: skip


def _apply_fate(data: dict[str, Any], fate: str) -> dict[str, Any]:
    """The prediction as its fate shows it: ``failed`` with a message, or flagged NSFW."""
    if data.get("status") != "completed":
        return data  # the fate shows once the render is over, as the real outcome would
    if fate == "fail":
        return {**data, "status": "failed", "outputs": [], "has_nsfw_contents": [],
                "error": FAILURE_MESSAGE}  # fmt: skip
    outputs = data.get("outputs") or []
    return {**data, "has_nsfw_contents": [True] * len(outputs)}


# --------------------------------------------------------------------------- helpers


def route_of(path: str) -> RouteName:
    """Name the route a path belongs to (method aside: a wrong method is still that route)."""
    if path in _FIXED_ROUTES:
        return _FIXED_ROUTES[path]
    if _PREDICTION_PATH.fullmatch(path):
        return "result"
    if _DOWNLOAD_PATH.fullmatch(path):
        return "download"
    if path.startswith(Storage.UPLOAD_ROUTE):
        return "upload"
    return "media" if path.startswith(Storage.MEDIA_ROUTE) else "other"


def _id_in(*, path: str, route: str) -> str | None:
    pattern = {"result": _PREDICTION_PATH, "download": _DOWNLOAD_PATH}.get(route)
    match = pattern.fullmatch(path) if pattern is not None else None
    return match.group(1) if match else None


def _json_path(body: bytes, *keys: str) -> object:
    try:
        value: object = json.loads(body)
    except ValueError:
        return None
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
