"""How rows are stored and read back: times as fixed-width UTC text, and who wrote a row.

A row records the ``host:pid`` that began it (``owner``) so that a submission left by a process
that died can be told from one in flight, and a download claim from a live one.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from datetime import UTC, datetime
from typing import cast

from wavenb.core.models import Prediction, Status
from wavenb.journal.rows import JournalRow, JournalStatus

__all__ = [
    "casefold",
    "iso",
    "owner",
    "owner_alive",
    "owner_token",
    "parse_time",
    "row_of",
    "status_of",
    "switch_to_wal",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 in UTC, so comparing the text compares the times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    """A time stored by ``iso``."""
    return datetime.fromisoformat(text)


def casefold(text: str | None) -> str | None:
    """SQLite's ``casefold()``: Python's full case folding (SQLite's folds ASCII only)."""
    return None if text is None else text.casefold()


def status_of(prediction: Prediction) -> JournalStatus:
    """The stored status for a provider's answer."""
    # The API's unrecognised status parses as Status.UNKNOWN, "still running": it must not be
    # stored as the journal's own "unknown", which means "maybe charged, fate unknown".
    if prediction.status is Status.UNKNOWN:
        return "processing"
    return cast("JournalStatus", prediction.status.value)


def switch_to_wal(db: sqlite3.Connection, busy_timeout_ms: int) -> str:
    """Put the file in WAL mode (it stays so) and return the mode it is in.

    Switching a new file takes an exclusive lock for a moment, and SQLite does not wait for it
    (busy_timeout does not apply): two kernels opening a new journal at once would see
    "database is locked". So the switch is retried, briefly, until the other one is done.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def owner_token() -> str:
    """``host:pid`` of this process: who began a row or holds a claim."""
    return owner()


def owner() -> str:
    """``host:pid`` of this process."""
    # Asked each time, not at import: a forked child is another process with another pid.
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """Whether the process that wrote a row may still be running (if in doubt: yes).

    Only a process on this machine can be checked, and only on POSIX: on Windows
    ``os.kill(pid, 0)`` would terminate the process.
    """
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or os.name != "posix":
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to another user
    return True


def row_of(record: sqlite3.Row) -> JournalRow:
    """A ``JournalRow`` from a record selected with ``schema.COLUMNS``."""
    values = {name: record[name] for name in JournalRow.__slots__}
    for name in ("submitted_at", "accepted_at", "finished_at", "downloaded_at", "updated_at",
                 "sent_at"):  # fmt: skip
        if values[name] is not None:
            values[name] = parse_time(values[name])
    return JournalRow(**values)
