"""The app's own middleware: labels every answer, checks the key on ``/api/v3``, counts routes.

Every ``/api/v3`` route needs ``Authorization: Bearer <key>`` (any non-empty key, or one of
``SandboxConfig.api_keys``); without it the answer is a 401 envelope and nothing else happens.
The checked key's digest is left in the ASGI scope for the routes (history is per key). The
two-step upload's ``PUT`` is outside ``/api/v3`` on purpose: its URL carries its own token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wavenb.sandbox._envelope import SANDBOX_HEADER, error_envelope
from wavenb.sandbox._keys import OWNER_KEY, owner_of

if TYPE_CHECKING:
    from wavenb.sandbox._state import SandboxState

__all__ = ["SandboxMiddleware"]


class SandboxMiddleware:
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
            owner = owner_of(scope)
            refusal = self.state.refusal(owner)
            if refusal is not None:
                self.state.requests[f"{scope['method']} (unauthorized)"] += 1
                await error_envelope(401, refusal)(scope, receive, send_labelled)
                return
            scope[OWNER_KEY] = owner
        try:
            await self.app(scope, receive, send_labelled)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else "(unmatched)"
            self.state.requests[f"{scope['method']} {template}"] += 1
