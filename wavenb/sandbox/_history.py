"""The account's history: ``POST /api/v3/predictions`` reads a query, answers one page.

Body (every field optional)::

    {"page": 1, "page_size": 20, "created_after": "2026-11-25T00:00:00Z",
     "created_before": "...", "model": "runwayml/gen4-turbo", "status": "completed",
     "include_inputs": true}

``page`` counts from 1; ``page_size`` from 1, and above ``MAX_PAGE_SIZE`` it is lowered to
it (the answer says the size used). Times are ISO-8601 (``Z``, an offset, or none for UTC) and
bound ``created_at``: after is inclusive, before exclusive. ``model`` and ``status`` match
exactly. ``include_inputs`` defaults to **true** in the sandbox, a choice: the desktop client
that documents this route always asks for them, and a lesson wants to see what each task was
asked. A ``null`` field counts as absent; unknown fields are a 400 (typos, here; the real
service may ignore them).

Answer: ``data = {"page", "page_size", "total", "total_pages", "items": [...]}``, newest first;
each item is a prediction (as the result route shows it) plus ``execution_time`` (ms) and,
with ``include_inputs``, ``input``: the submitted body's model fields. Each API key sees only
its own predictions (the sandbox keys them by the key's digest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from wavenb.sandbox._envelope import ApiError
from wavenb.sandbox._jobs import Job
from wavenb.sandbox._parsing import field, reject_unknown
from wavenb.sandbox._prediction import history_item

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "HistoryQuery", "page_of"]

DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
_FIELDS: Final = (
    "page",
    "page_size",
    "created_after",
    "created_before",
    "model",
    "status",
    "include_inputs",
)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A checked history query."""

    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    created_after: datetime | None = None
    created_before: datetime | None = None
    model: str | None = None
    status: str | None = None
    include_inputs: bool = True

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> HistoryQuery:
        """Read a request body; raise ``ApiError`` (400) naming the field at fault.

        A field given as ``null`` counts as absent.
        """
        reject_unknown(body, _FIELDS, "the history route")
        body = {name: value for name, value in body.items() if value is not None}
        page: int = field(body, "page", int, default=1)
        size: int = field(body, "page_size", int, default=DEFAULT_PAGE_SIZE)
        if page < 1 or size < 1:
            raise ApiError(400, "Invalid parameters: 'page' and 'page_size' start at 1.")
        return cls(
            page=page,
            page_size=min(size, MAX_PAGE_SIZE),
            created_after=_time(body, "created_after"),
            created_before=_time(body, "created_before"),
            model=_text(body, "model"),
            status=_text(body, "status"),
            include_inputs=field(body, "include_inputs", bool, default=True),
        )

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes the filters (model, status, creation window)."""
        if self.model is not None and job.model != self.model:
            return False
        if self.status is not None and job.status != self.status:
            return False
        created = parse_time(job.created_at)
        if self.created_after is not None and created < self.created_after:
            return False
        return self.created_before is None or created < self.created_before


def page_of(query: HistoryQuery, jobs: Sequence[Job], base: str) -> dict[str, Any]:
    """The answer's ``data`` for ``query`` over ``jobs`` (one key's, newest first)."""
    chosen = [job for job in jobs if query.matches(job)]
    start = (query.page - 1) * query.page_size
    items = [
        history_item(job, base, include_inputs=query.include_inputs)
        for job in chosen[start : start + query.page_size]
    ]
    return {
        "page": query.page,
        "page_size": query.page_size,
        "total": len(chosen),
        "total_pages": math.ceil(len(chosen) / query.page_size),
        "items": items,
    }


def parse_time(text: str) -> datetime:
    """Read an ISO-8601 time; one without an offset is UTC. Raises ``ValueError``."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _time(body: Mapping[str, Any], name: str) -> datetime | None:
    text = _text(body, name)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ApiError(
            400, f"Invalid parameters: '{name}' must be an ISO-8601 time; got {text[:64]!r}."
        ) from None


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value: str = field(body, name, str, default="")
    return value or None
