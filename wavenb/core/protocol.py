"""The API's rules as pure functions: no I/O, no clock, no globals.

Building the submit request, checking prompts and aspect ratios, reading the ``{code,
message, data}`` envelope, turning an error answer into the right exception, reading a
prediction leniently, and parsing ``Retry-After``. The async client calls these; tests call
them directly.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, cast

from wavenb.core.errors import (
    APIError,
    AuthenticationError,
    InputError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from wavenb.core.models import Prediction, Status
from wavenb.core.redact import redact, redact_data
from wavenb.core.types import ASPECT_RATIOS, MODEL_ID, PRICE_PER_VIDEO, AspectRatio

__all__ = [
    "ENHANCER_PATH",
    "MAX_PROMPT_CHARS",
    "SUBMIT_PATH",
    "UPLOAD_PATH",
    "build_enhance_body",
    "build_submit_body",
    "error_for",
    "parse_envelope",
    "parse_prediction",
    "parse_retry_after",
    "result_path",
    "validate_aspect_ratio",
    "validate_prompt",
]

API_PREFIX: Final = "/api/v3"
SUBMIT_PATH: Final = f"{API_PREFIX}/{MODEL_ID}"
UPLOAD_PATH: Final = f"{API_PREFIX}/media/upload/binary"
ENHANCER_PATH: Final = f"{API_PREFIX}/wavespeed-ai/prompt-optimizer"
BALANCE_PATH: Final = f"{API_PREFIX}/balance"
HISTORY_PATH: Final = f"{API_PREFIX}/predictions"
DELETE_PATH: Final = f"{API_PREFIX}/predictions/delete"
PRICE_PATH: Final = f"{API_PREFIX}/model/price"
LEGACY_PRICE_PATH: Final = f"{API_PREFIX}/model/pricing"
MODELS_PATH: Final = f"{API_PREFIX}/models"
HISTORY_PAGE_SIZE: Final = 100
"""The largest history page wavenb asks for."""
MAX_PROMPT_CHARS: Final = 1000
"""Runway's own limit on the prompt."""
ENHANCER_STYLES: Final = ("default", "artistic", "photographic", "technical", "anime", "realistic")
MAX_RETRY_AFTER: Final = 3600.0
"""A server asking for more than an hour is treated as asking for an hour."""


_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""What a task id may look like: it goes into URL paths."""


def result_path(prediction_id: str) -> str:
    """The path every official client polls for a task's result."""
    if not _ID.fullmatch(prediction_id):
        raise InputError(f"not a prediction id: {prediction_id!r}")
    return f"{API_PREFIX}/predictions/{prediction_id}/result"


def validate_prompt(prompt: object) -> str:
    """Return the prompt trimmed, or raise ``InputError`` saying what is wrong with it.

    Line breaks and tabs are kept; other control characters (NUL, escapes) are refused, since
    they are never meant and some servers choke on them.
    """
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be text, got {type(prompt).__name__}")
    text = prompt.replace("\r\n", "\n").strip()
    if not text:
        raise InputError("prompt is empty: describe the motion, e.g. 'Camera slowly zooms in'")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(
            f"prompt has {len(text)} characters; the model takes at most {MAX_PROMPT_CHARS}. "
            "Shorten it."
        )
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cs":
            raise InputError(
                f"prompt has a broken character (a lone surrogate) at position {index}"
            )
        if char not in "\n\t" and unicodedata.category(char) == "Cc":
            raise InputError(
                f"prompt has a control character {char!r} at position {index}; remove it"
            )
    return text


def validate_aspect_ratio(value: object) -> AspectRatio | None:
    """Return one of the five ratios, or ``None`` for "match the source image".

    ``None`` and ``""`` mean match the source. Anything else raises ``InputError`` naming the
    allowed values.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip() in ASPECT_RATIOS:
        return cast("AspectRatio", value.strip())
    allowed = ", ".join(ASPECT_RATIOS)
    raise InputError(
        f"aspect_ratio must be one of {allowed}, or None to match the source image; got {value!r}"
    )


def build_submit_body(
    image_url: str, prompt: str, aspect_ratio: AspectRatio | None
) -> dict[str, str]:
    """The JSON body of a gen4-turbo submit: only the documented fields (no seed, no duration)."""
    body = {"prompt": validate_prompt(prompt), "image": image_url}
    ratio = validate_aspect_ratio(aspect_ratio)
    if ratio is not None:
        body["aspect_ratio"] = ratio
    return body


def build_enhance_body(prompt: str, image_url: str | None, style: str | None) -> dict[str, Any]:
    """The JSON body of a prompt-optimizer call in video mode, answered synchronously."""
    text = validate_prompt(prompt)
    body: dict[str, Any] = {"text": text, "mode": "video", "enable_sync_mode": True}
    if style is not None:
        if style not in ENHANCER_STYLES:
            raise InputError(f"style must be one of {', '.join(ENHANCER_STYLES)}; got {style!r}")
        body["style"] = style
    if image_url is not None:
        body["image"] = image_url
    return body


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` when absent or unreadable; never negative; at most an hour.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parse_envelope(
    status: int,
    content: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> Any:  # noqa: ANN401  (``data`` is whatever the endpoint returns)
    """Return the envelope's ``data``, or raise the ``APIError`` the answer stands for.

    Reads all four documented error shapes: an HTTP error with the envelope, an HTTP error with
    a bare ``{"error": ...}``, a 200 whose envelope ``code`` is not 200, and bodies that are not
    JSON at all (a gateway's HTML page).
    """
    request_id = headers.get("x-request-id")
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
        snippet = redact(content[:80].decode("utf-8", "replace").strip())
        if status < 400:  # noqa: PLR2004
            raise ServerError(
                f"HTTP {status} with a body that is not JSON ({snippet!r}): not the API's envelope",
                status=status,
                request_id=request_id,
            ) from None
    retry_after = parse_retry_after(headers.get("retry-after"), now or datetime.now(UTC))
    if not isinstance(body, dict):
        if status >= 400:  # noqa: PLR2004
            raise error_for(status, None, request_id=request_id, retry_after=retry_after)
        raise ServerError(
            f"HTTP {status} with an answer that is not the API's envelope",
            status=status,
            request_id=request_id,
        )
    message = _text(body.get("message")) or _text(body.get("error"))
    message = None if message is None else redact(message[:2000])
    code = body.get("code") if isinstance(body.get("code"), int) else None
    if status >= 400:  # noqa: PLR2004
        raise error_for(
            status, message, code=code, request_id=request_id, body=body, retry_after=retry_after
        )
    if code is not None and code != 200:  # noqa: PLR2004
        http_like = code if 400 <= code < 600 else 500  # noqa: PLR2004
        raise error_for(
            http_like, message, code=code, request_id=request_id, body=body, retry_after=retry_after
        )
    if "data" not in body and "error" in body:
        raise error_for(
            400, message, code=code, request_id=request_id, body=body, retry_after=retry_after
        )
    return body.get("data")


def error_for(  # noqa: PLR0911  (one return per kind of error reads as a table)
    status: int,
    message: str | None,
    *,
    code: int | None = None,
    request_id: str | None = None,
    body: Mapping[str, Any] | None = None,
    retry_after: float | None = None,
) -> APIError:
    """The exception for an error answer, with a message that says what to do."""
    said = f": {message.rstrip('. ')}" if message else ""
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "request_id": request_id,
        "body": body,
    }
    lowered = (message or "").lower()
    if status == 402 or "insufficient" in lowered or "balance" in lowered:  # noqa: PLR2004
        return InsufficientCreditsError(
            f"insufficient balance (HTTP {status}){said}. Top up the account, then submit again.",
            **kwargs,
        )
    if status in (401, 403):
        return AuthenticationError(
            f"authentication failed (HTTP {status}){said}. Check WAVESPEED_API_KEY: keys work "
            "only after a top-up, and 403 means the account or key lacks access.",
            **kwargs,
        )
    if status in (400, 422):
        return InvalidRequestError(f"the API rejected the request (HTTP {status}){said}", **kwargs)
    if status == 404:  # noqa: PLR2004
        return NotFoundError(
            f"not found (HTTP 404){said}. Predictions are kept for 7 days.", **kwargs
        )
    if status == 429:  # noqa: PLR2004
        wait = f"; the server asked to wait {retry_after:g} s" if retry_after is not None else ""
        return RateLimitError(
            f"rate limited (HTTP 429){said}{wait}. Slow down or raise the account level.",
            retry_after=retry_after,
            **kwargs,
        )
    if status >= 500:  # noqa: PLR2004
        what = said or " (no JSON body: a gateway or proxy answered)"
        return ServerError(f"server error (HTTP {status}){what}. Try again later.", **kwargs)
    return APIError(f"unexpected answer (HTTP {status}){said}", **kwargs)


def parse_prediction(data: object, expected_id: str | None = None) -> Prediction:
    """Read a prediction leniently, as the real API sends it.

    Unknown statuses become ``Status.UNKNOWN`` (treated as running), ``outputs`` may be missing
    or null, ``error`` may be ``""``, timestamps have any number of fraction digits; anything
    extra stays in ``raw``. Texts from the server are redacted (see ``redact``).

    Raises:
        ServerError: no usable id, or (with ``expected_id``) the answer is about another task:
            a result answer is never allowed to change a task it was not asked about.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
        raise ServerError(
            "the API answered without a prediction id; cannot follow this task", status=200
        )
    if not _ID.fullmatch(data["id"]):
        raise ServerError(
            f"the API answered with an unusable task id {data['id'][:80]!r}", status=200
        )
    if expected_id is not None and data["id"] != expected_id:
        raise ServerError(
            f"asked about task {expected_id} but the answer is about task {data['id'][:40]}; "
            "the answer was ignored",
            status=200,
        )
    raw: Mapping[str, Any] = data
    timings = raw.get("timings")
    inference = timings.get("inference") if isinstance(timings, Mapping) else None
    urls = raw.get("urls")
    return Prediction(
        id=raw["id"],
        model=_text(raw.get("model")) or "",
        status=_status(raw.get("status")),
        outputs=tuple(redact(o) for o in _list(raw.get("outputs")) if isinstance(o, str)),
        urls={k: redact(v) for k, v in urls.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(urls, Mapping)
        else {},
        has_nsfw_contents=tuple(bool(f) for f in _list(raw.get("has_nsfw_contents"))),
        created_at=_timestamp(raw.get("created_at")),
        error=redact(_text(raw.get("error")) or "")[:2000] or None,
        inference_ms=_millis(inference),
        execution_ms=_millis(raw.get("executionTime")),
        sandbox=raw.get("sandbox") is True,
        raw=redact_data(raw),  # kept for "details" views and widget state
    )


_SYNONYMS: Final = {
    "succeeded": Status.COMPLETED,
    "success": Status.COMPLETED,
    "done": Status.COMPLETED,
    "error": Status.FAILED,
    "canceled": Status.CANCELLED,
    "queued": Status.PENDING,
    "waiting": Status.PENDING,
    "starting": Status.PENDING,
    "running": Status.PROCESSING,
}
"""Other words for the same statuses, as other WaveSpeed clients normalise them."""


def _status(value: object) -> Status:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _SYNONYMS:
            return _SYNONYMS[word]
        try:
            return Status(word)
        except ValueError:
            return Status.UNKNOWN
    return Status.UNKNOWN


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _millis(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# -- outputs, history, prices --------------------------------------------------------------

MAX_URL_CHARS: Final = 4096


def check_output_url(url: object, prediction_id: str) -> str:
    """Return ``url`` if it can be downloaded from: an ``http(s)`` URL with a host.

    Server data is untrusted: an output URL like ``http://[::1/x.mp4`` or ``file:///etc/passwd``
    is refused here, for this task only.

    Raises:
        ServerError: the URL is unusable (the message says why; the task stays resumable).
    """
    from urllib.parse import urlsplit  # noqa: PLC0415  (stdlib; kept local to this check)

    problem = None
    if not isinstance(url, str) or not url:
        problem = "no output URL"
    elif len(url) > MAX_URL_CHARS or any(c.isspace() or not c.isprintable() for c in url):
        problem = "an output URL with spaces, control characters or an absurd length"
    else:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            _ = parts.port  # raises on a port that is not a number
        except ValueError:
            problem = "a malformed output URL"
        else:
            if parts.scheme not in ("http", "https"):
                problem = f"an output URL with scheme {parts.scheme!r} (only http/https)"
            elif not host:
                problem = "an output URL without a host"
    if problem is not None:
        raise ServerError(
            f"task {prediction_id} completed with {problem}; it cannot be downloaded",
            status=200,
        )
    assert isinstance(url, str)  # noqa: S101  (narrowed above)
    return url


def inputs_of(prediction: Prediction) -> Mapping[str, Any]:
    """The inputs a prediction was made with, when the answer carries them (history items)."""
    for name in ("input", "inputs"):
        value = prediction.raw.get(name)
        if isinstance(value, Mapping):
            return value
    return {}


def build_history_body(
    *,
    page: int,
    created_after: datetime,
    created_before: datetime,
    model: str | None = MODEL_ID,
    status: str | None = None,
    page_size: int = HISTORY_PAGE_SIZE,
) -> dict[str, Any]:
    """The body of ``POST /api/v3/predictions``: one page of the account's history.

    A window is always given (the official desktop client always sends one, so the server may
    want it); times are ISO-8601 UTC.
    """
    body: dict[str, Any] = {
        "page": page,
        "page_size": page_size,
        "include_inputs": True,
        "created_after": created_after.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "created_before": created_before.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if model is not None:
        body["model"] = model
    if status is not None:
        body["status"] = status
    return body


def parse_history_page(data: object) -> tuple[tuple[Prediction, ...], int]:
    """The predictions on one history page and the total count the server reports.

    Items without a usable id are skipped (a lenient reader); ``total`` falls back to the
    number of items when absent.
    """
    if isinstance(data, list):
        raw_items: list[Any] = data
        total: object = len(data)
    elif isinstance(data, Mapping):
        found = data.get("items")
        raw_items = found if isinstance(found, list) else []
        total = data.get("total", len(raw_items))
    else:
        raise ServerError("the history answer has no list of predictions", status=200)
    items: list[Prediction] = []
    for item in raw_items:
        try:
            items.append(parse_prediction(item))
        except ServerError:
            continue
    count = total if isinstance(total, int) and not isinstance(total, bool) else len(items)
    return tuple(items), count


MICRO_DOLLARS: Final = 10_000
"""Price values this large are in millionths of a dollar (as a later official client reads
them); smaller ones are dollars."""


def parse_price(data: object) -> float:
    """US dollars from a price quote.

    The first of ``discounted_price``, ``price``, ``unit_price`` or ``base_price``; values of
    10,000 or more are millionths of a dollar.

    Raises:
        ServerError: no usable number in the answer.
    """
    if isinstance(data, Mapping):
        for name in ("discounted_price", "price", "unit_price", "base_price"):
            value = data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
                if math.isfinite(number) and number >= 0:
                    return number / 1_000_000 if number >= MICRO_DOLLARS else number
    raise ServerError("the price answer has no usable price", status=200)


def fallback_price(model: str = MODEL_ID) -> float:
    """The price used when no quote can be had: the seed page's flat $0.50 per video."""
    return PRICE_PER_VIDEO if model == MODEL_ID else 0.0
