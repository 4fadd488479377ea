"""Reading requests as the real API would: bounded JSON bodies, typed fields, the model schemas.

Every check raises ``wavenb.sandbox._envelope.ApiError`` (400, or 413 for a body over its
limit) with a message that names the field and says what is allowed, as the real service's
schema validation does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import Message

from wavenb.core.types import ASPECT_RATIOS, MODEL_ID
from wavenb.sandbox._envelope import ApiError
from wavenb.sandbox._jobs import VideoRequest
from wavenb.sandbox._keys import OWNER_KEY

if TYPE_CHECKING:
    from wavenb.sandbox._state import SandboxState

__all__ = [
    "MAX_DATA_URI_BYTES",
    "MAX_JSON_BODY",
    "MAX_PROMPT_CHARS",
    "VIDEO_FIELDS",
    "base_of",
    "choice",
    "field",
    "json_object",
    "limited",
    "owner_in",
    "parse_video_request",
    "reject_unknown",
    "state_of",
]

MAX_PROMPT_CHARS: Final = 1000
MAX_DATA_URI_BYTES: Final = 5 * 1024 * 1024
"""Runway's limit on an image sent inline as a data URI."""
MAX_JSON_BODY: Final = MAX_DATA_URI_BYTES + 1024 * 1024
"""A 5 MB data URI plus room for the other fields; anything larger is refused unread."""
VIDEO_FIELDS: Final = ("prompt", "image", "aspect_ratio", "enable_sync_mode")
"""The fields a gen4-turbo submission may have (``enable_sync_mode`` is every model's)."""


def limited(request: Request, limit: int) -> Request:
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


async def json_object(request: Request) -> dict[str, Any]:
    """Read the body as a JSON object, or raise a 400 saying why not."""
    raw = await limited(request, MAX_JSON_BODY).body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Invalid JSON body: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON body: expected an object.")
    return body


def reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...], model: str) -> None:
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


def field(body: Mapping[str, Any], name: str, kind: type, default: object = None) -> Any:  # noqa: ANN401
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
    reject_unknown(body, VIDEO_FIELDS, MODEL_ID)
    prompt: str = field(body, "prompt", str)
    if not prompt.strip():
        raise ApiError(400, "Invalid parameters: 'prompt' must not be empty.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(
            400,
            f"Invalid parameters: 'prompt' has {len(prompt)} characters; "
            f"the limit is {MAX_PROMPT_CHARS}.",
        )
    image: str = field(body, "image", str)
    _check_image_field(image)
    ratio: str = field(body, "aspect_ratio", str, default="")
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


def choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value: str = field(body, name, str, default=default)
    if value not in allowed:
        raise ApiError(
            400, f"Invalid parameters: '{name}' must be one of {', '.join(allowed)}; got {value!r}."
        )
    return value


# --------------------------------------------------------------------------- the request's context


def state_of(request: Request) -> SandboxState:
    """The app's ``wavenb.sandbox._state.SandboxState``."""
    return cast("SandboxState", request.app.state.sandbox)


def base_of(request: Request) -> str:
    """Return the request's own base URL, so links work under whatever host reached us."""
    return str(request.base_url).rstrip("/")


def owner_in(request: Request) -> str:
    """Return the key digest the middleware checked and left in the scope."""
    return cast("str", request.scope[OWNER_KEY])
