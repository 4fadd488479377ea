"""Keeping the API key home: every text that leaves wavenb passes through ``redact``.

A hostile or careless server can echo the ``Authorization`` header in an error message, a task's
``error`` field or an output URL. wavenb never puts the key into a message itself, but it does
quote what servers say (that is often the only useful explanation), so every quoted text is
scrubbed here before it reaches an exception, the journal, a log line, the command line or a
widget:

- every key this process was given (``register``) is replaced, in plain, URL-encoded and
  base64 form;
- anything that looks like a bearer token or an ``Authorization`` / ``api_key`` value is
  replaced even when the key is not known (a key for another server, a token of the proxy).

``scrub_exception`` does the same for a whole exception chain (``__cause__``, ``__context__``,
groups), so a traceback printed by anyone shows no key. ``install_log_filter`` puts a filter on
the ``wavenb`` logger that redacts every record.

The registry is process-wide on purpose: a secret seen by any client of this process must be
kept out of every output of this process (logs and tracebacks are process-wide too).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import threading
from typing import Any, Final
from urllib.parse import quote

__all__ = ["REDACTED", "install_log_filter", "redact", "redact_data", "register", "scrub_exception"]

REDACTED: Final = "<REDACTED>"
MIN_SECRET: Final = 8
"""Shorter "keys" (``"k"`` in a test) are not worth replacing everywhere: they would mangle
ordinary words. Real keys are long; the patterns below catch short ones in headers."""

_PATTERNS: Final = (
    # "Bearer <token>" anywhere (an echoed header, a proxy's message).
    re.compile(r"(?i)(\bbearer\s+)[^\s\"'<>,;)\]}]{4,}"),
    # "Authorization: <anything up to the end of the value>".
    re.compile(r"(?i)(\bauthorization\b[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)[^\s\"'<>,;)\]}]{4,}"),
    # api_key=..., "apiKey": "...", x-api-key: ...
    re.compile(r"(?i)(\b(?:x-)?api[_-]?key\b[\"']?\s*[:=]\s*[\"']?)[^\s\"'<>,;&)\]}]{4,}"),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register(secret: str | None) -> None:
    """Remember a secret so that ``redact`` removes it from every text from now on."""
    if not secret or len(secret) < MIN_SECRET:
        return
    forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
    with _lock:
        _secrets.update(form for form in forms if len(form) >= MIN_SECRET)


def redact(text: str) -> str:
    """``text`` with every registered secret and anything that looks like a token replaced."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_data(data: Any) -> Any:  # noqa: ANN401  (any parsed JSON)
    """A copy of parsed JSON with ``redact`` applied to every string in it (keys included).

    For the server's answers that wavenb keeps whole (an error's ``body``, a prediction's
    ``raw``): they reach "details" views and widget state, so they are scrubbed like messages.
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(item) for item in data]
    return data


def scrub_exception(error: BaseException) -> BaseException:
    """Redact the messages of ``error`` and of every exception chained to it, in place.

    Walks ``__cause__``, ``__context__`` and exception groups; rewrites string arguments and
    notes. Returns ``error`` so it can be re-raised in one line.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(AttributeError, TypeError):  # a type with read-only args
            current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            current.__notes__ = [redact(n) if isinstance(n, str) else n for n in notes]
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
        stack.extend(getattr(current, "exceptions", ()) or ())
    return error


class _RedactingFilter(logging.Filter):
    """Formats each record once, redacted, so no handler ever sees the raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args or _suspicious(str(record.msg)):
            record.msg = redact(record.getMessage())
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_exception(record.exc_info[1])
            record.exc_text = None
        return True


def _suspicious(text: str) -> bool:
    with _lock:
        if any(secret in text for secret in _secrets):
            return True
    return any(pattern.search(text) for pattern in _PATTERNS)


_FILTER: Final = _RedactingFilter()


def install_log_filter(logger: logging.Logger) -> None:
    """Make ``logger`` (and so its records at every level) redact secrets. Idempotent."""
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
