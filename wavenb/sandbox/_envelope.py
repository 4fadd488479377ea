"""The API's envelope and error answers: what every sandbox route and middleware sends.

Every answer is ``{"code": <int>, "message": "<text>", "data": ...}``; an error repeats its
HTTP status as ``code`` (as the real API does) with ``data: null``. Route code raises
``ApiError``; the app's exception handlers turn it (and Starlette's own 404/405, and any
bug) into the envelope. This module imports nothing else of the sandbox, so every other module
(the fault injector included) can use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "SANDBOX_BANNER",
    "SANDBOX_HEADER",
    "ApiError",
    "envelope",
    "error_envelope",
    "exception_handlers",
    "labelled",
]

SANDBOX_BANNER: Final = "wavenb SANDBOX — not Runway; videos are local renders"
SANDBOX_HEADER: Final = "X-Wavenb-Sandbox"
"""The header (value ``1``) on every answer the sandbox gives."""


class ApiError(Exception):
    """An error answer: HTTP ``status`` and a message, sent in the API's envelope."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def envelope(data: object, status: int = 200) -> JSONResponse:
    """Answer success: ``{"code": 200, "message": "success", "data": ...}``."""
    return JSONResponse({"code": 200, "message": "success", "data": data}, status_code=status)


def error_envelope(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Answer an error; ``code`` repeats the HTTP status, as the real API does."""
    body = {"code": status, "message": message, "data": None}
    return JSONResponse(body, status_code=status, headers=headers)


async def labelled(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """Send ``response`` with the sandbox header, from code outside the labelling middleware."""
    response.headers[SANDBOX_HEADER] = "1"
    await response(scope, receive, send)


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


def exception_handlers() -> dict[type[Exception] | int, object]:
    """The app's handlers: ``ApiError`` and Starlette's errors as envelopes, bugs as a 500."""
    return {
        ApiError: _on_api_error,
        HTTPException: _on_http_exception,
        Exception: _on_server_error,
    }
