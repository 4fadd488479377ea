"""A record of every request a sandbox app answered: when, what, about which task, how big.

Switched on by ``SandboxConfig(record_requests=True)``; the records are at
``app.state.sandbox.request_log``. Benchmarks read it to count the checks each client made per
task and the bytes they cost, and to time checks against the jobs' exact completion times.

Sizes are HTTP/1.1 bytes as the app sees them: request line, headers and body in; status line,
headers and body out. Headers the server adds itself (uvicorn's ``date`` and ``server``, about
60 bytes) and chunked-encoding framing are not seen, so ``bytes_out`` is a little low.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestRecord", "RequestRecorder"]

_PEEK_LIMIT: Final = 16 * 1024
"""Answers up to this size are read for the id of the task they describe (a submit's answer)."""
_STATUS_LINE: Final = len("HTTP/1.1 200 OK\r\n")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request and its answer."""

    time: float
    """When the request arrived, on the app's clock (``SandboxConfig.clock``)."""
    method: str
    route: str
    """The route's template (``/api/v3/predictions/{id}/result``), or ``(unmatched)``."""
    prediction_id: str | None
    """The task the request is about: the path's ``{id}``, or the id in the answer (a submit)."""
    status: int
    """The HTTP status answered (500 when the app raised before answering)."""
    owner: str | None
    """The SHA-256 of the bearer key, or ``None`` without one (downloads, bad headers)."""
    connection: str
    """The client's address and port: one value per TCP connection the client opened."""
    bytes_in: int
    bytes_out: int


class RequestRecorder:
    """ASGI middleware appending a ``RequestRecord`` to ``log`` for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        log: list[RequestRecord],
        clock: Callable[[], float],
        owner: Callable[[Scope], str | None],
    ) -> None:
        self.app = app
        self.log = log
        self.clock = clock
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = self.clock()
        tally = _Tally(scope)

        async def counted_receive() -> Message:
            message = await receive()
            tally.bytes_in += len(message.get("body", b""))
            return message

        async def counted_send(message: Message) -> None:
            tally.sent(message)
            await send(message)

        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            self.log.append(tally.record(arrived, self.owner(scope)))


class _Tally:
    """What one request has cost so far."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        query = scope.get("query_string", b"")
        target = scope.get("raw_path") or scope["path"].encode()
        line = len(scope["method"]) + 1 + len(target) + (len(query) + 1 if query else 0)
        line += len(f" HTTP/{scope.get('http_version', '1.1')}\r\n")
        self.bytes_in = line + _headers_size(scope.get("headers", []))
        self.bytes_out = 0
        self.status = 500
        self.peek: list[bytes] | None = []

    def sent(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.bytes_out += _STATUS_LINE + _headers_size(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            self.bytes_out += len(body)
            if self.peek is not None:
                self.peek.append(body)
                if sum(map(len, self.peek)) > _PEEK_LIMIT:
                    self.peek = None

    def record(self, arrived: float, owner: str | None) -> RequestRecord:
        route = self.scope.get("route")
        params: dict[str, Any] = self.scope.get("path_params") or {}
        prediction_id = params.get("id")
        if prediction_id is None and self.peek:
            prediction_id = _answered_id(b"".join(self.peek))
        client = self.scope.get("client") or ("", 0)
        return RequestRecord(
            time=arrived,
            method=self.scope["method"],
            route=route.path if isinstance(route, Route) else "(unmatched)",
            prediction_id=prediction_id if isinstance(prediction_id, str) else None,
            status=self.status,
            owner=owner,
            connection=f"{client[0]}:{client[1]}",
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )


def _headers_size(headers: Any) -> int:  # noqa: ANN401  (ASGI header lists are loosely typed)
    """Bytes of the ``name: value`` header lines (with their CRLFs) and the blank line after."""
    return sum(len(name) + len(value) + 4 for name, value in headers) + 2


def _answered_id(body: bytes) -> str | None:
    """The ``data.id`` of an answer that describes a task, if it is one."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    data = answer.get("data") if isinstance(answer, dict) else None
    if isinstance(data, dict) and isinstance(data.get("id"), str) and "status" in data:
        return str(data["id"])
    return None
