"""The journal for people: what was made, what it cost, and finishing what was left undone.

``history()`` lists submissions newest first, ``spent()`` adds up their cost, ``resume()``
settles uncertain submissions and waits for and downloads every task that was submitted but not
finished or not downloaded, on the server each went to, without ever submitting again.

**The key goes only where it belongs.** The journal remembers every server a task went to (the
real API, a sandbox on this machine, a test stub, a typo). ``resume`` sends the configured key
only to the server it was configured for: ``WAVESPEED_API_KEY`` to the official host (or to
``WAVENB_BASE_URL`` when both are set), a key passed here to the base URL passed with it (or to
the official host). Rows of a wavenb sandbox get the placeholder key (no secret). Rows of any
other server are reported as needing that server's credentials; they are never sent someone
else's key.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wavenb.client.sync import Client
from wavenb.core.config import DEFAULT_BASE_URL, SANDBOX_BASE_URL
from wavenb.core.errors import AuthenticationError, InputError, JournalError, WavenbError
from wavenb.core.phase import Phase
from wavenb.jobs.events import ProgressCallback
from wavenb.jobs.resume import Resumed
from wavenb.journal.rows import STATUSES, JournalRow, format_table, to_pandas
from wavenb.journal.store import Journal

__all__ = ["History", "credentials_for", "history", "resume", "spent", "unresolved"]


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
    """Every recorded submission, newest first, filtered by status, date or prompt/id text.

    ``status`` takes the stored words (``completed``, ``failed``...) and the phase words every
    view shows (``downloaded``, ``queued``, ``gone``, ``stopped``...).

    Raises:
        InputError: a word that is neither.
    """
    wanted = None if status is None else ([status] if isinstance(status, str) else list(status))
    stored = [s for s in wanted or () if s in STATUSES]
    phases = {s for s in wanted or () if s not in STATUSES}
    if unknown := [s for s in phases if s not in {p.value for p in Phase}]:
        words = ", ".join(sorted({*STATUSES, *(p.value for p in Phase)}))
        raise InputError(f"unknown status {unknown[0]!r}; one of: {words}")
    with Journal() as journal:
        with contextlib.suppress(JournalError):  # a read-only journal can still be read
            journal.mark_lost_sandbox_rows()  # an embedded sandbox's rows died with its kernel
        if not phases:
            return History(journal.rows(status=stored or None, since=since, text=text,
                                        limit=limit))  # fmt: skip
        rows = [row for row in journal.rows(since=since, text=text)
                if row.status in stored or row.phase.value in phases]  # fmt: skip
        return History(rows[:limit] if limit is not None else rows)


def spent(since: datetime | None = None) -> float:
    """US dollars spent on the real API (including runs that may have been charged)."""
    with Journal() as journal:
        return journal.spent(since)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What to send to one server.

    A key (``None``: the sandbox placeholder), and whether the environment's key may be read.
    """

    api_key: str | None
    from_env: bool


def credentials_for(
    server: str, rows: Iterable[JournalRow], api_key: str | None, base_url: str | None
) -> Credentials | None:
    """The credentials ``resume`` may use for ``server``; ``None`` if it has none for it."""
    server = server.rstrip("/")
    given = (base_url or "").rstrip("/") or None
    env_url = (os.environ.get("WAVENB_BASE_URL") or os.environ.get("WAVESPEED_BASE_URL") or "")
    env_server = env_url.rstrip("/") or DEFAULT_BASE_URL
    if server == SANDBOX_BASE_URL:
        return Credentials(None, from_env=False)
    if api_key is not None and server == (given or DEFAULT_BASE_URL):
        return Credentials(api_key, from_env=False)
    if api_key is None and os.environ.get("WAVESPEED_API_KEY") and server == env_server:
        return Credentials(None, from_env=True)
    if all(row.backend == "sandbox" for row in rows):
        return Credentials(None, from_env=False)  # a wavenb sandbox: the placeholder, no secret
    return None


def resume(
    api_key: str | None = None,
    base_url: str | None = None,
    *,
    on_update: ProgressCallback | None = None,
) -> list[Resumed]:
    """Settle, wait for and download everything the journal says is unfinished; never resubmits.

    Each row is resumed against the server it went to (``base_url`` limits it to one), with the
    credentials that belong to that server (see the module docstring); rows of a server with no
    credentials come back with an ``AuthenticationError`` saying how to give them.
    """
    with Journal() as journal:
        by_server: dict[str, list[JournalRow]] = defaultdict(list)
        for row in [*journal.resumable(), *journal.unresolved()]:
            by_server[row.base_url].append(row)
        wanted = (base_url or "").rstrip("/")
        done: list[Resumed] = []
        for server in sorted(by_server):
            if wanted and server != wanted:
                continue
            rows = by_server[server]
            credentials = credentials_for(server, rows, api_key, base_url)
            if credentials is None:
                done += [Resumed(row, None, _needs_credentials(server)) for row in rows
                         if row.prediction_id is not None]  # fmt: skip
                continue
            try:
                with Client(credentials.api_key, server, journal=journal,
                            key_from_env=credentials.from_env) as client:  # fmt: skip
                    done += client.resume(on_update=on_update)
            except WavenbError as error:
                done += [Resumed(row, None, error) for row in rows if row.prediction_id]
        return done


def unresolved() -> list[JournalRow]:
    """Submissions sent without a clear answer that the account's history could not settle.

    Each uncertain row is first looked up in its server's history (with that server's
    credentials); what is left may have been charged. Never resent.
    """
    with Journal() as journal:
        rows = journal.unresolved()
        by_server: dict[str, list[JournalRow]] = defaultdict(list)
        for row in rows:
            by_server[row.base_url].append(row)
        for server, server_rows in sorted(by_server.items()):
            credentials = credentials_for(server, server_rows, None, None)
            if credentials is None or server == SANDBOX_BASE_URL:
                continue
            try:
                with Client(credentials.api_key, server, journal=journal,
                            key_from_env=credentials.from_env) as client:  # fmt: skip
                    client.reconcile()
            except WavenbError:
                continue  # stays unresolved; the next call tries again
        return journal.unresolved()


def _needs_credentials(server: str) -> AuthenticationError:
    return AuthenticationError(
        f"tasks on {server} need that server's API key, which wavenb does not have (the "
        "configured key belongs to another server and is never sent elsewhere). Run: "
        f"wavenb resume --base-url {server} --api-key-file PATH",
        status=401,
    )
