"""Reading the journal: what to resume, what is unresolved, history, cost, durations.

These are the ``Journal`` methods that only read (the few that tidy up as they read, such as
marking rows of a dead embedded sandbox "lost with the kernel", say so). Every read is one
statement: one consistent snapshot, even while another process writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from wavenb.core.config import SANDBOX_BASE_URL
from wavenb.journal.faults import guarded
from wavenb.journal.records import iso, owner, owner_alive, parse_time, row_of
from wavenb.journal.rows import LOST_WITH_KERNEL, STATUSES, JournalRow, file_ok, sha256_file
from wavenb.journal.schema import COLUMNS

__all__ = ["RETENTION", "STALE_SUBMIT", "Reads"]

RUNNING: Final = ("created", "pending", "processing")
STALE_SUBMIT: Final = timedelta(minutes=10)
"""A ``submitting`` row this old is unresolved even if its process may live: a submit gives up
long before (30 s per attempt, a few minutes of rate-limit pauses)."""
RETENTION: Final = timedelta(days=7)
"""The provider keeps tasks and outputs this long; older rows cannot be resumed."""
PRECISE_GAP_MS: Final = 120_000
"""A completion seen more than this after the previous check (a restart, a sleeping laptop)
says little about when the task really finished, so ``durations`` leaves it out."""

class Reads:
    """The reading half of ``Journal`` (it supplies ``_query``, ``_select``, ``_write``...)."""

    path: Path
    _clock: Callable[[], datetime]

    def _query(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        raise NotImplementedError

    def _select(self, tail: str, params: Sequence[object]) -> list[JournalRow]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _now(self) -> str:
        raise NotImplementedError

    def _unanswered(self, request_key: str, status: str, error: str) -> None:
        raise NotImplementedError

    def get(self, prediction_id: str, base_url: str | None = None) -> JournalRow | None:
        """The row of a task (on ``base_url`` when given), or ``None``; newest if ids repeat."""
        where = "WHERE prediction_id = ?"
        params: list[object] = [prediction_id]
        if base_url is not None:
            where += " AND base_url = ?"
            params.append(base_url.rstrip("/"))
        rows = self._select(where + " ORDER BY id DESC LIMIT 1", params)
        return rows[0] if rows else None

    def by_key(self, request_key: str) -> JournalRow | None:
        """The row with this request key, or ``None``."""
        rows = self._select("WHERE request_key = ?", (request_key,))
        return rows[0] if rows else None

    def find_reusable(self, request_hash: str, *, verify: bool = False) -> JournalRow | None:
        """The newest completed row for this request whose video is still on disk, or ``None``.

        The file must exist with the recorded size; with ``verify=True`` its SHA-256 is checked
        too (reads the whole file).
        """
        candidates = self._select(
            "WHERE request_hash = ? AND status = 'completed' AND path IS NOT NULL "
            "ORDER BY submitted_at DESC, id DESC",
            (request_hash,),
        )
        for row in candidates:
            if not file_ok(row.path, row.size):
                continue
            if verify and (row.path is None or sha256_file(Path(row.path))[0] != row.sha256):
                continue
            return row
        return None

    def resumable(self, base_url: str | None = None) -> list[JournalRow]:
        """Tasks to pick up again, oldest first: still running, or completed but not on disk.

        Only tasks from the provider's retention window (``RETENTION``) are listed. Rows of an
        embedded sandbox are listed only in the process that ran it (that sandbox lives and dies
        with its kernel); when that process is gone they are marked "lost with the kernel"
        (nothing was charged). ``base_url`` limits the list to one server.
        """
        self.mark_lost_sandbox_rows()
        marks = ", ".join("?" * len(RUNNING))
        where = f"WHERE prediction_id IS NOT NULL AND status IN ({marks}, 'completed') "
        where += "AND submitted_at >= ?"
        params: list[object] = [*RUNNING, iso(self._clock() - RETENTION)]
        if base_url is not None:
            where += " AND base_url = ?"
            params.append(base_url.rstrip("/"))
        found = self._query(
            f"SELECT {COLUMNS}, owner FROM jobs {where} ORDER BY submitted_at, id",  # noqa: S608  (constants only)
            params,
        )
        me = owner()
        rows = []
        for record in found:
            row = row_of(record)
            if row.embedded and record["owner"] != me:
                continue
            if row.resumable:
                rows.append(row)
        return rows

    def unresolved(self) -> list[JournalRow]:
        """Submissions whose fate is unknown, newest first: report them, never resubmit.

        That is ``unknown`` rows, and ``submitting`` rows that were *sent* by a process that
        died before the answer (or that are older than ``STALE_SUBMIT``). A row that was never
        sent (its process died during the upload) is released instead: it cost nothing.
        """
        self._release_abandoned()
        found = self._query(
            f"SELECT {COLUMNS}, owner FROM jobs WHERE status IN ('submitting', 'unknown') "  # noqa: S608  (constants only)
            "ORDER BY submitted_at DESC, id DESC",
            (),
        )
        limit = self._clock() - STALE_SUBMIT
        rows = [(row_of(record), record["owner"]) for record in found]
        return [
            row
            for row, writer in rows
            if row.status == "unknown" or row.submitted_at < limit or not owner_alive(writer)
        ]

    def rows(
        self,
        *,
        status: str | Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> list[JournalRow]:
        """Rows newest first, filtered (status, submitted since/until, text in prompt or id).

        Raises:
            ValueError: a status that does not exist.
        """
        clauses: list[str] = []
        params: list[object] = []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            if bad := [s for s in wanted if s not in STATUSES]:
                raise ValueError(f"unknown status {bad[0]!r}; one of: {', '.join(STATUSES)}")
            clauses.append(f"status IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if since is not None:
            clauses.append("submitted_at >= ?")
            params.append(iso(since))
        if until is not None:
            clauses.append("submitted_at < ?")
            params.append(iso(until))
        if text:
            # SQLite's LIKE and lower() fold ASCII only; Python's casefold handles any prompt.
            clauses.append(
                "(instr(casefold(prompt), ?) OR instr(casefold(COALESCE(prediction_id, '')), ?)"
                " OR instr(casefold(request_key), ?))"
            )
            params += [text.casefold()] * 3
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        tail = "ORDER BY submitted_at DESC, id DESC"
        if limit is not None:
            tail += " LIMIT ?"
            params.append(limit)
        return self._select(where + tail, params)

    def spent(self, since: datetime | None = None, *, include_unknown: bool = True) -> float:
        """US dollars spent on submissions made at or after ``since`` (all time by default).

        Accepted tasks count whatever their outcome (failed tasks may not be refunded, so the
        sum is an upper bound); refused and never-sent ones cost nothing. With
        ``include_unknown`` (the default) submissions that may have been charged, and
        reservations in flight, count too.
        """
        sql = "SELECT COALESCE(SUM(cost), 0) FROM jobs WHERE status != 'refused'"
        params: list[object] = []
        if not include_unknown:
            sql += " AND prediction_id IS NOT NULL"
        if since is not None:
            sql += " AND submitted_at >= ?"
            params.append(iso(since))
        ((total,),) = self._query(sql, params)
        return float(total)

    def durations(self, base_url: str, limit: int = 50) -> list[float]:
        """Seconds from submit to completion of the latest completed tasks on a server.

        Oldest first. The end of a task is known only to within one poll interval; each
        duration is taken at the middle of it. Completions seen long after the previous check
        (after a restart) are left out: they would teach the schedule that tasks take hours.
        """
        found = self._query(
            "SELECT COALESCE(sent_at, submitted_at), finished_at, seen_gap_ms FROM jobs "
            "WHERE base_url = ? AND status = 'completed' AND finished_at IS NOT NULL "
            "AND seen_gap_ms <= ? ORDER BY finished_at DESC, id DESC LIMIT ?",
            (base_url.rstrip("/"), PRECISE_GAP_MS, limit),
        )
        seconds = [
            (parse_time(finished) - parse_time(submitted)).total_seconds() - gap / 2000
            for submitted, finished, gap in found
        ]
        return seconds[::-1]

    def _identical(
        self, db: sqlite3.Connection, request_hash: str, server: str
    ) -> JournalRow | None:
        """The newest row of the same request that a new submission must join, if any."""
        found = db.execute(
            f"SELECT {COLUMNS}, owner FROM jobs WHERE request_hash = ? AND base_url = ? "  # noqa: S608  (constants only)
            "AND submitted_at >= ? AND status IN ('submitting', 'unknown', 'created', 'pending', "
            "'processing', 'completed') ORDER BY submitted_at DESC, id DESC LIMIT 20",
            (request_hash, server, iso(self._clock() - RETENTION)),
        ).fetchall()
        me = owner()
        for record in found:
            row = row_of(record)
            writer = record["owner"]
            if row.embedded and writer != me:
                continue  # another kernel's in-process sandbox: out of reach, and free
            if row.status == "submitting" and row.sent_at is None and not owner_alive(writer):
                continue  # abandoned before it was sent: it will be released
            if row.status == "completed" and not (file_ok(row.path, row.size) or row.output_url):
                continue
            return row
        return None

    def _release_abandoned(self) -> None:
        """Release reservations whose process died before sending anything."""
        found = self._query(
            "SELECT request_key, owner FROM jobs WHERE status = 'submitting' AND sent_at IS NULL",
            (),
        )
        for request_key, writer in found:
            if not owner_alive(writer):
                self._unanswered(request_key, "refused", "not sent: the process ended first")

    @guarded
    def mark_lost_sandbox_rows(self) -> None:
        """Mark the unfinished rows of embedded sandboxes whose process is gone as lost.

        Such a sandbox lived in its kernel: its tasks died with it, and nothing was charged.
        The rows become ``deleted`` ("lost with the kernel"), so no view shows them running.
        """
        found = self._query(
            "SELECT id, owner FROM jobs WHERE base_url = ? AND status IN "
            "('created', 'pending', 'processing', 'submitting', 'unknown', 'completed') "
            "AND (path IS NULL OR status != 'completed')",
            (SANDBOX_BASE_URL,),
        )
        dead = [row_id for row_id, writer in found if not owner_alive(writer)]
        if not dead:
            return
        now = self._now()
        with self._write() as db:
            db.executemany(
                "UPDATE jobs SET status = 'deleted', cost = 0, error = ?, finished_at = "
                "COALESCE(finished_at, ?), updated_at = ? WHERE id = ?",
                [(LOST_WITH_KERNEL, now, now, row_id) for row_id in dead],
            )

