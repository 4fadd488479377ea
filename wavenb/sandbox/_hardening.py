"""Defences of the served sandbox: a deadline for request heads, and a Host check.

Both are for a sandbox served by uvicorn (``wavenb.sandbox._server.build_server``); the
in-process sandbox has no socket to defend. This module imports uvicorn, so only serving
loads it.

- **Header-read deadline.** uvicorn's ``timeout_keep_alive`` only runs between requests and
  stops at the first byte of the next one, so a client that sends half a request line (or
  connects and sends nothing) holds its connection, and a file descriptor, forever; a few
  thousand of them exhaust the server (slowloris). ``protocol_with_header_timeout`` makes
  an h11 protocol that closes a connection whose request head is not complete
  ``header_timeout`` seconds after it began. Bodies are not limited (uploads may be slow).
- **Host check against DNS rebinding.** A web page on any site can make a browser resolve its
  own host name to 127.0.0.1 and then talk to a loopback server as if same-origin. Bound to
  loopback, the server answers only requests whose ``Host`` is ``localhost``, ``127.0.0.1``
  or ``[::1]`` with the server's port (or the embedded sandbox's name,
  ``sandbox.wavenb.invalid``); anything else gets a 421 envelope.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any, Final

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from wavenb.core.config import SANDBOX_BASE_URL
from wavenb.sandbox._config import HEADER_TIMEOUT
from wavenb.sandbox._envelope import error_envelope, labelled

__all__ = ["LOCAL_HOSTS", "HostGuard", "protocol_with_header_timeout"]

LOCAL_HOSTS: Final = frozenset(
    {"localhost", "127.0.0.1", "[::1]", SANDBOX_BASE_URL.removeprefix("http://")}
)
"""Host names a loopback-bound sandbox answers to."""


class HostGuard:
    """ASGI middleware: on a loopback-bound server, refuse requests for any other host (421)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not _host_allowed(scope):
            refused = error_envelope(
                421,
                "Misdirected request: this sandbox listens on loopback and answers only "
                "Host localhost, 127.0.0.1 or [::1] with its port.",
            )
            if scope["type"] == "http":
                await labelled(refused, scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


def _host_allowed(scope: Scope) -> bool:
    server = scope.get("server")
    if not server or not _loopback(str(server[0])):
        return True  # bound beyond loopback (warned about) or a unix socket: no rebinding risk
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    name, port = _split_host(host)
    if name not in LOCAL_HOSTS:
        return False
    return port == server[1] or (port is None and server[1] == 80)  # noqa: PLR2004


def _split_host(host: str) -> tuple[str, int | None]:
    """``("[::1]", 8765)`` from ``[::1]:8765``; the port is ``None`` when absent or bad."""
    name, sep, port = host.rpartition(":")
    if not sep or (name.count(":") and not name.endswith("]")):
        return host, None  # no port (a bare IPv6 address is not a valid Host anyway)
    return name, int(port) if port.isdigit() else -1


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head takes too long."""

    header_timeout: float = HEADER_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # connected and silent is the same attack as half a request line

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # h11 leaves IDLE only once a whole request head has been parsed.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._deadline is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.abort()


def protocol_with_header_timeout(seconds: float) -> type[Any]:
    """An h11 protocol class for ``uvicorn.Config(http=...)`` with this header deadline."""
    if not seconds > 0:
        raise ValueError(f"header_timeout must be positive; got {seconds}")
    return type("HeaderDeadlineH11Protocol", (_HeaderDeadline,), {"header_timeout": seconds})
