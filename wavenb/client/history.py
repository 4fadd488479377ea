"""The journal for people: what was made, what it cost, and finishing what was left undone.

``history()`` lists submissions newest first, ``spent()`` adds up their cost, ``resume()``
waits for and downloads every task that was submitted but not finished or not downloaded, on
the server each went to, without ever submitting again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from wavenb.client.async_client import ProgressCallback, Resumed
from wavenb.client.sync import Client
from wavenb.journal.store import Journal, JournalRow, format_table, to_pandas

__all__ = ["History", "history", "resume", "spent"]


class History(list[JournalRow]):
    """Journal rows, newest first; ``to_pandas()`` for a DataFrame, a table when displayed."""

    def to_pandas(self) -> Any:  # noqa: ANN401  (pandas is optional: no type to name)
        """The rows as a ``pandas.DataFrame`` (needs pandas installed)."""
        return to_pandas(self)

    def __str__(self) -> str:
        return format_table(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # noqa: ANN401, FBT001
        printer.text(format_table(self))


def history(
    *,
    status: str | Iterable[str] | None = None,
    since: datetime | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> History:
    """Every recorded submission, newest first, filtered by status, date or prompt/id text."""
    with Journal() as journal:
        return History(journal.rows(status=status, since=since, text=text, limit=limit))


def spent(since: datetime | None = None) -> float:
    """US dollars spent on the real API (including runs that may have been charged)."""
    with Journal() as journal:
        return journal.spent(since)


def resume(
    api_key: str | None = None,
    base_url: str | None = None,
    *,
    on_update: ProgressCallback | None = None,
) -> list[Resumed]:
    """Finish every task the journal says is unfinished or not downloaded; never resubmits.

    Each row is resumed against the server it went to (``base_url`` limits it to one). The key
    is ``api_key`` or ``WAVESPEED_API_KEY``. Submissions whose fate is unknown are listed by
    ``unresolved()`` and left alone: they may have been charged.
    """
    with Journal() as journal:
        by_server: dict[str, list[JournalRow]] = defaultdict(list)
        for row in journal.resumable(base_url):
            by_server[row.base_url].append(row)
        done: list[Resumed] = []
        for server in sorted(by_server):
            with Client(api_key, server, journal=journal) as client:
                done += client.resume(on_update=on_update)
        return done


def unresolved() -> list[JournalRow]:
    """Submissions sent without a clear answer: they may have been charged; never resent."""
    with Journal() as journal:
        return journal.unresolved()
