"""The journal: a SQLite file that remembers every paid submission, so no video is ever lost.

Kernels restart mid-run and output URLs expire after 7 days. So a row is written *before*
anything is sent (the budget is reserved in the same transaction), and updated as the answers
come in; after a restart the journal says which tasks to wait for again, which videos still
need downloading, which submits may have been charged without an answer, and what was spent.

One row per submission, through these states::

               reserve()    budget reserved, identical requests in flight joined (one transaction)
                    │
               submitting ──released()──▶ refused    never sent (upload failed, cancelled): $0
                    │  sending()   (sent_at: the paid request goes out now)
                    ├───refused()───▶ refused        the server certainly did not take it: $0
                    ├───unknown()───▶ unknown        sent, no answer says if it was taken:
                    │                    │           maybe charged; never resent; settled later
               accepted() ◀──────────────┘           from the account's history (or "not charged")
                    ▼
   created / pending / processing ──update()──▶ completed ──downloaded()──▶ + path, sha256
                    │                                 └──gone()──▶ deleted (output expired)
                    └──update()──▶ failed / cancelled / timeout / deleted

Concurrency: one ``Journal`` may be used from many threads and several processes (two kernels)
may use one file. Each method is one short transaction under a per-journal lock; WAL mode lets
readers and the writer run side by side, and ``busy_timeout`` makes a writer wait for another
process's writer instead of failing. ``BEGIN IMMEDIATE`` makes check-then-write steps (the
budget, joining an identical request, claiming a download) atomic across processes. The file
must be on a local disk (WAL needs shared memory).

Faults are errors, not tracebacks: a corrupt, read-only or full journal raises ``JournalError``
naming the file and what to do. The API key is never given to the journal; it has no place
to put one, and every text it stores is redacted.
"""

from __future__ import annotations

import functools
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar, cast

from wavenb.core.config import data_dir
from wavenb.core.errors import BudgetExceeded, JournalError, WavenbError
from wavenb.core.models import Prediction, Status
from wavenb.core.redact import redact
from wavenb.journal import rescue
from wavenb.journal.rows import (
    LOST_WITH_KERNEL,
    STATUSES,
    TERMINAL,
    JournalRow,
    JournalStatus,
    file_ok,
)
from wavenb.journal.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION

__all__ = ["Journal", "Reservation", "TaskIdConflict"]

P = ParamSpec("P")
T = TypeVar("T")

_API_TERMINAL: Final = frozenset(s.value for s in Status if s.terminal)
_RUNNING: Final = ("created", "pending", "processing")
BUSY_TIMEOUT_MS: Final = 30_000
"""How long a write waits for another process's write before failing (they take milliseconds)."""
STALE_SUBMIT: Final = timedelta(minutes=10)
"""A ``submitting`` row this old is unresolved even if its process may live: a submit gives up
long before (30 s per attempt, a few minutes of rate-limit pauses)."""
CLAIM_TTL: Final = timedelta(minutes=15)
"""A download claim older than this is abandoned (its process hung) and may be taken over."""
RETENTION: Final = timedelta(days=7)
"""The provider keeps tasks and outputs this long; older rows cannot be resumed."""
_PRECISE_GAP_MS: Final = 120_000
"""A completion seen more than this after the previous check (a restart, a sleeping laptop)
says little about when the task really finished, so ``durations`` leaves it out."""
_EPSILON: Final = 1e-9


class TaskIdConflict(ValueError):  # noqa: N818  (reads as what happened)
    """The server gave a task id that another submission already has: it is not trusted."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``reserve`` decided: a new row to send, or an identical request to join."""

    key: str | None
    """The new row's request key (budget reserved); ``None`` when joining ``existing``."""
    existing: JournalRow | None = None
    """An identical request already in flight, uncertain, or done (see ``reserve``)."""


def _guarded(method: Callable[P, T]) -> Callable[P, T]:
    """Turn SQLite and file-system failures into ``JournalError`` naming the file."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as error:
            journal = cast("Journal", args[0])
            raise journal_error(journal.path, error) from None

    return run


def journal_error(path: Path, error: BaseException) -> JournalError:
    """The ``JournalError`` for a failure on the file at ``path``, saying what to do."""
    text = str(error).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        advice = (
            "is damaged. Move it aside (keep it: it lists your paid videos) and wavenb starts a "
            "new one; nothing was sent"
        )
    elif "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
        advice = (
            "cannot be written (read-only file or folder). Fix its permissions or set WAVENB_HOME "
            "to a writable folder; nothing was sent"
        )
    elif "full" in text or getattr(error, "errno", None) == 28:  # noqa: PLR2004  (ENOSPC)
        advice = "cannot be written: the disk is full. Free some space; nothing was sent"
    elif "locked" in text or "busy" in text:
        advice = "is locked by another process for too long. Try again; nothing was sent"
    else:
        advice = f"could not be used ({type(error).__name__}: {redact(str(error))[:200]})"
    return JournalError(f"the journal {path} {advice}.", path=str(path))


class Journal:
    """The record of every submission, in a SQLite file shared by threads and processes.

    Args:
        path: the database file; by default ``journal.sqlite3`` in ``data_dir()`` (which
            ``WAVENB_HOME`` sets). Created, with its folder, if absent.
        clock: returns the current time (aware); tests pass a fake one.

    Raises:
        JournalError: the file cannot be opened or set up (damaged, read-only, disk full, or
            written by a newer wavenb).
    """

    def __init__(
        self, path: str | Path | None = None, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.path: Path = Path(path) if path is not None else data_dir() / "journal.sqlite3"
        self._clock = clock or _utc_now
        self._lock = threading.Lock()
        # Last time each task was checked by this process: a completion first seen right after
        # a recent check dates the end well; one seen after a restart does not.
        self._seen: dict[str, datetime] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection shared by threads, serialised by self._lock. Autocommit mode:
            # transactions are opened explicitly.
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except (sqlite3.Error, OSError) as error:
            raise journal_error(self.path, error) from None
        try:
            self._setup()
            self._apply_rescued()
        except WavenbError:
            self._db.close()
            raise
        except (sqlite3.Error, OSError) as error:
            self._db.close()
            raise journal_error(self.path, error) from None

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file. Further calls fail."""
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------------

    @_guarded
    def reserve(  # noqa: PLR0913  (the row's fields)
        self,
        *,
        request_hash: str,
        model: str,
        prompt: str,
        aspect_ratio: str | None,
        image_sha256: str | None,
        image_source: str,
        backend: str,
        base_url: str,
        cost: float,
        max_spend: float | None = None,
        join: bool = True,
        variant: str | None = None,
        key: str | None = None,
    ) -> Reservation:
        """Reserve a submission before anything is sent: one transaction, across processes.

        With ``join`` (the default), an identical request (same ``request_hash`` on the same
        server, within the provider's retention) that is in flight, uncertain or done is
        returned instead of a new row: being sent by a live process, accepted and unfinished,
        ``unknown`` (maybe charged), or completed. ``join=False`` (``fresh=True``) always makes
        a new row, on purpose. ``key`` chooses the new row's request key (a caller that may be
        cancelled mid-call knows which row to release).

        With ``max_spend``, the row's ``cost`` is added to everything spent or possibly spent;
        if the sum would pass the limit, nothing is written.

        Raises:
            BudgetExceeded: the reservation would pass ``max_spend`` (nothing was written).
            ValueError: ``backend`` is not ``"sandbox"`` or ``"api"``, or ``cost`` < 0.
            JournalError: the file cannot be written.
        """
        if backend not in ("sandbox", "api"):
            raise ValueError(f"backend must be 'sandbox' or 'api', not {backend!r}")
        if cost < 0:
            raise ValueError(f"cost cannot be negative: {cost!r}")
        server = base_url.rstrip("/")
        now = self._now()
        with self._write() as db:
            if join and (found := self._identical(db, request_hash, server)) is not None:
                return Reservation(None, found)
            if max_spend is not None and cost > 0:
                ((spent,),) = db.execute(
                    "SELECT COALESCE(SUM(cost), 0) FROM jobs WHERE status != 'refused'"
                ).fetchall()
                if float(spent) + cost > max_spend + _EPSILON:
                    raise BudgetExceeded(
                        f"this video costs ${cost:.2f} and ${float(spent):.2f} is already spent "
                        f"or reserved; the limit is ${max_spend:.2f} (max_spend / "
                        "WAVENB_MAX_SPEND). Nothing was sent."
                    )
            key = key or uuid.uuid4().hex
            db.execute(
                "INSERT INTO jobs (request_key, status, model, prompt, aspect_ratio, "
                "image_sha256, image_source, request_hash, backend, base_url, price, cost, "
                "submitted_at, updated_at, owner, variant) "
                "VALUES (?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, prompt, aspect_ratio, image_sha256, image_source, request_hash,
                 backend, server, cost, cost, now, now, _owner(), variant),
            )  # fmt: skip
        return Reservation(key)

    def begin(self, **fields: Any) -> str:  # noqa: ANN401  (the fields of ``reserve``)
        """Record a submission about to be sent, without joining or a budget; returns its key.

        The short form of ``reserve(..., join=False)`` followed by ``sending()``.
        """
        reservation = self.reserve(**fields, join=False)
        assert reservation.key is not None  # noqa: S101  (join=False always makes a row)
        self.sending(reservation.key)
        return reservation.key

    @_guarded
    def sending(self, request_key: str, image_url: str | None = None) -> None:
        """Note that the paid request goes out now, carrying ``image_url``."""
        now = self._now()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET sent_at = ?, image_url = COALESCE(?, image_url), updated_at = ? "
                "WHERE request_key = ? AND prediction_id IS NULL",
                (now, image_url, now, request_key),
            )

    @_guarded
    def accepted(self, request_key: str, prediction: Prediction) -> None:
        """Record the provider's answer to a submit: the task id and its first state.

        Also valid on an ``unknown`` (or ``refused``) row whose task turns out to exist: the
        row then counts as accepted, with its cost. A sandbox answer makes the cost 0.

        Raises:
            KeyError: no row has that request key.
            ValueError: the row already belongs to another prediction id.
            TaskIdConflict: another submission on that server already has this task id (an
                untrusted server): nothing is overwritten.
        """
        now = self._now()
        with self._write() as db:
            row = db.execute(
                "SELECT id, prediction_id, base_url FROM jobs WHERE request_key = ?",
                (request_key,),
            ).fetchone()
            if row is None:
                raise KeyError(f"no journal row has request key {request_key!r}")
            if row["prediction_id"] not in (None, prediction.id):
                raise ValueError(
                    f"journal row {request_key} is task {row['prediction_id']}, not {prediction.id}"
                )
            other = db.execute(
                "SELECT request_key FROM jobs WHERE base_url = ? AND prediction_id = ? AND id != ?"
                " AND submitted_at >= ?",
                (row["base_url"], prediction.id, row["id"], _iso(self._clock() - RETENTION)),
            ).fetchone()
            if other is not None:
                raise TaskIdConflict(
                    f"the server answered with task id {prediction.id}, which another submission "
                    f"({other['request_key'][:12]}) already has"
                )
            db.execute(
                "UPDATE jobs SET prediction_id = ?, accepted_at = COALESCE(accepted_at, ?), "
                "sent_at = COALESCE(sent_at, ?), "
                "backend = CASE WHEN ? THEN 'sandbox' ELSE backend END, "
                "cost = CASE WHEN ? OR backend = 'sandbox' THEN 0 ELSE price END, "
                "status = CASE WHEN status IN ('unknown', 'refused') THEN 'submitting' "
                "ELSE status END, "
                "error = CASE WHEN prediction_id IS NULL THEN NULL ELSE error END, "
                "finished_at = CASE WHEN prediction_id IS NULL THEN NULL ELSE finished_at END, "
                "updated_at = ? WHERE id = ?",
                (prediction.id, now, now, prediction.sandbox, prediction.sandbox, now, row["id"]),
            )
            self._apply(db, row["id"], prediction, now)

    def refused(self, request_key: str, error: str) -> None:
        """Record that the server certainly did not take the submit: the row costs nothing.

        Raises:
            KeyError: no unanswered row has that request key.
        """
        self._unanswered(request_key, "refused", error)

    def released(self, request_key: str, reason: str) -> None:
        """Record that the submission was never sent (its upload failed, it was cancelled
        first): the reservation is released and the row costs nothing."""
        self._unanswered(request_key, "refused", f"not sent: {reason}")

    def unknown(self, request_key: str, error: str) -> None:
        """Record that the submit was sent but no answer says whether it was taken.

        It may have been charged: the row keeps its cost and is listed by ``unresolved()``
        until the account's history settles it. wavenb never resubmits it by itself.

        Raises:
            KeyError: no unanswered row has that request key.
        """
        self._unanswered(request_key, "unknown", error)

    def not_charged(self, request_key: str, evidence: str) -> None:
        """Settle an ``unknown`` row from the account's history: no such task, so no charge."""
        self._unanswered(request_key, "refused", f"not charged: {evidence}")

    @_guarded
    def update(self, prediction: Prediction, base_url: str | None = None) -> None:
        """Record a task's latest state: status, output URL, timing, error.

        The row is found by the prediction's id (on ``base_url`` when given); an id the journal
        does not know is ignored. A terminal status is final: an older answer arriving late
        (another kernel polling the same task) does not undo it.
        """
        now = self._now()
        with self._write() as db:
            row_id = self._row_id(db, prediction.id, base_url)
            if row_id is not None:
                self._apply(db, row_id, prediction, now)

    def seen(self, prediction_id: str) -> None:
        """Note, in memory only, that a check found the task still running and unchanged."""
        with self._lock:
            self._seen[prediction_id] = self._clock()

    @_guarded
    def downloaded(
        self, prediction_id: str, path: Path, sha256: str, size: int, base_url: str | None = None
    ) -> None:
        """Record the verified local file of a completed task; releases its download claim."""
        now = self._now()
        with self._write() as db:
            row_id = self._row_id(db, prediction_id, base_url)
            if row_id is None:
                return
            db.execute(
                "UPDATE jobs SET path = ?, sha256 = ?, size = ?, downloaded_at = ?, claim = NULL, "
                "claim_at = NULL, updated_at = ? WHERE id = ?",
                (str(Path(path).absolute()), sha256, size, now, now, row_id),
            )

    @_guarded
    def gone(self, prediction_id: str, reason: str, base_url: str | None = None) -> None:
        """Record that a task or its output no longer exists at the provider (final)."""
        now = self._now()
        with self._write() as db:
            row_id = self._row_id(db, prediction_id, base_url)
            if row_id is not None:
                db.execute(
                    "UPDATE jobs SET status = 'deleted', error = ?, claim = NULL, "
                    "finished_at = COALESCE(finished_at, ?), updated_at = ? WHERE id = ?",
                    (redact(reason)[:2000], now, now, row_id),
                )

    @_guarded
    def claim(self, prediction_id: str, base_url: str, holder: str) -> bool:
        """Try to become the one downloader of a task (across processes); True if so.

        A claim held by a dead process, or older than ``CLAIM_TTL``, is taken over.
        """
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "SELECT id, claim, claim_at FROM jobs WHERE base_url = ? AND prediction_id = ? "
                "ORDER BY id DESC LIMIT 1",
                (base_url.rstrip("/"), prediction_id),
            ).fetchone()
            if row is None:
                return True  # not journaled (a task from elsewhere): nobody else claims it
            claimed_by = row["claim"]
            if claimed_by not in (None, holder):
                owner = claimed_by.rpartition("|")[0]
                fresh = row["claim_at"] and _parse(row["claim_at"]) > now - CLAIM_TTL
                if fresh and _owner_alive(owner):
                    return False
            db.execute(
                "UPDATE jobs SET claim = ?, claim_at = ? WHERE id = ?",
                (holder, _iso(now), row["id"]),
            )
            return True

    @_guarded
    def unclaim(self, prediction_id: str, base_url: str, holder: str) -> None:
        """Give up a download claim (the download failed; someone may try again)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET claim = NULL, claim_at = NULL WHERE base_url = ? AND "
                "prediction_id = ? AND claim = ?",
                (base_url.rstrip("/"), prediction_id, holder),
            )

    # -- reading ---------------------------------------------------------------------------

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
        from wavenb.journal.rows import sha256_file  # noqa: PLC0415  (only with verify)

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
        self._mark_lost_sandbox_rows()
        marks = ", ".join("?" * len(_RUNNING))
        where = f"WHERE prediction_id IS NOT NULL AND status IN ({marks}, 'completed') "
        where += "AND submitted_at >= ?"
        params: list[object] = [*_RUNNING, _iso(self._clock() - RETENTION)]
        if base_url is not None:
            where += " AND base_url = ?"
            params.append(base_url.rstrip("/"))
        found = self._query(
            f"SELECT {COLUMNS}, owner FROM jobs {where} ORDER BY submitted_at, id",  # noqa: S608  (constants only)
            params,
        )
        me = _owner()
        rows = []
        for record in found:
            row = _row(record)
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
        rows = [(_row(record), record["owner"]) for record in found]
        return [
            row
            for row, owner in rows
            if row.status == "unknown" or row.submitted_at < limit or not _owner_alive(owner)
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
            params.append(_iso(since))
        if until is not None:
            clauses.append("submitted_at < ?")
            params.append(_iso(until))
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
            params.append(_iso(since))
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
            (base_url.rstrip("/"), _PRECISE_GAP_MS, limit),
        )
        seconds = [
            (_parse(finished) - _parse(submitted)).total_seconds() - gap / 2000
            for submitted, finished, gap in found
        ]
        return seconds[::-1]

    # -- internals -------------------------------------------------------------------------

    def _identical(self, db: sqlite3.Connection, request_hash: str, server: str) -> JournalRow | None:
        """The newest row of the same request that a new submission must join, if any."""
        found = db.execute(
            f"SELECT {COLUMNS}, owner FROM jobs WHERE request_hash = ? AND base_url = ? "  # noqa: S608  (constants only)
            "AND submitted_at >= ? AND status IN ('submitting', 'unknown', 'created', 'pending', "
            "'processing', 'completed') ORDER BY submitted_at DESC, id DESC LIMIT 20",
            (request_hash, server, _iso(self._clock() - RETENTION)),
        ).fetchall()
        me = _owner()
        for record in found:
            row = _row(record)
            owner = record["owner"]
            if row.embedded and owner != me:
                continue  # another kernel's in-process sandbox: out of reach, and free
            if row.status == "submitting" and row.sent_at is None and not _owner_alive(owner):
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
        for request_key, owner in found:
            if not _owner_alive(owner):
                self._unanswered(request_key, "refused", "not sent: the process ended first")

    @_guarded
    def _mark_lost_sandbox_rows(self) -> None:
        from wavenb.core.config import SANDBOX_BASE_URL  # noqa: PLC0415  (one constant)

        found = self._query(
            "SELECT id, owner FROM jobs WHERE base_url = ? AND status IN "
            "('created', 'pending', 'processing', 'submitting', 'unknown', 'completed') "
            "AND (path IS NULL OR status != 'completed')",
            (SANDBOX_BASE_URL,),
        )
        dead = [row_id for row_id, owner in found if not _owner_alive(owner)]
        if not dead:
            return
        now = self._now()
        with self._write() as db:
            db.executemany(
                "UPDATE jobs SET status = 'deleted', cost = 0, error = ?, finished_at = "
                "COALESCE(finished_at, ?), updated_at = ? WHERE id = ?",
                [(LOST_WITH_KERNEL, now, now, row_id) for row_id in dead],
            )

    def _setup(self) -> None:
        db = self._db
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.create_function("casefold", 1, _casefold, deterministic=True)
        # WAL: readers never block the writer, and one process's reads see another's commits.
        mode = _switch_to_wal(db)
        if mode != "wal":
            raise JournalError(
                f"the journal {self.path} cannot use WAL mode (got {mode!r}); put WAVENB_HOME on "
                "a local disk",
                path=str(self.path),
            )
        # FULL: a committed reservation survives a power cut too, not only a crashed kernel.
        db.execute("PRAGMA synchronous = FULL")
        with self._write() as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.path} was written by a newer wavenb (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}): upgrade wavenb",
                    path=str(self.path),
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    tx.execute(statement)
            if version != SCHEMA_VERSION:
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _apply_rescued(self) -> None:
        """Give rows back the task ids a failed write left in the rescue file."""
        records = rescue.pending(self.path)
        if not records:
            return
        for record in records:
            key, pid = record.get("request_key"), record.get("prediction_id")
            if not isinstance(key, str) or not isinstance(pid, str):
                continue
            row = self.by_key(key)
            if row is not None and row.prediction_id is None:
                sandbox = record.get("sandbox") is True
                self.accepted(key, Prediction(pid, row.model, Status.CREATED, sandbox=sandbox))
        rescue.retire(self.path)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the thread lock.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock up front, waiting per busy_timeout. A
        deferred transaction that reads and then writes could instead fail at once with
        "database is locked" when another process wrote in between.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            finally:
                # On any error (even in COMMIT), never leave a transaction open: the next
                # BEGIN would fail. SQLite may have rolled back already (disk full, say).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    @_guarded
    def _query(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        # A single statement in autocommit mode reads one consistent snapshot.
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _select(self, tail: str, params: Sequence[object]) -> list[JournalRow]:
        # ``tail`` is built from constants and ``?`` placeholders only; every value is bound.
        sql = f"SELECT {COLUMNS} FROM jobs {tail}"  # noqa: S608  (see above)
        return [_row(record) for record in self._query(sql, params)]

    def _now(self) -> str:
        return _iso(self._clock())

    @staticmethod
    def _row_id(db: sqlite3.Connection, prediction_id: str, base_url: str | None) -> int | None:
        if base_url is None:
            found = db.execute(
                "SELECT id FROM jobs WHERE prediction_id = ? ORDER BY id DESC LIMIT 1",
                (prediction_id,),
            ).fetchone()
        else:
            found = db.execute(
                "SELECT id FROM jobs WHERE base_url = ? AND prediction_id = ? "
                "ORDER BY id DESC LIMIT 1",
                (base_url.rstrip("/"), prediction_id),
            ).fetchone()
        return None if found is None else int(found["id"])

    @_guarded
    def _unanswered(self, request_key: str, status: str, error: str) -> None:
        now = self._now()
        with self._write() as db:
            done = db.execute(
                "UPDATE jobs SET status = ?1, error = ?2, updated_at = ?3, "
                "cost = CASE WHEN ?1 = 'refused' THEN 0 ELSE price END, "
                "finished_at = CASE WHEN ?1 = 'refused' THEN ?3 END "
                "WHERE request_key = ?4 AND prediction_id IS NULL",
                (status, redact(error)[:2000], now, request_key),
            ).rowcount
        if not done:
            raise KeyError(f"no unanswered journal row has request key {request_key!r}")

    def _apply(self, db: sqlite3.Connection, row_id: int, prediction: Prediction, now: str) -> None:
        """Merge a task's state into its row (inside a write transaction)."""
        old = db.execute(
            "SELECT status, output_url, inference_ms, error, finished_at, seen_gap_ms "
            "FROM jobs WHERE id = ?",
            (row_id,),
        ).fetchone()
        # A terminal status is final: a late answer from an older check must not reopen it.
        status = old["status"] if old["status"] in _API_TERMINAL else _status_of(prediction)
        new = {
            "status": status,
            "output_url": prediction.output_url or old["output_url"],
            "inference_ms": prediction.inference_ms or old["inference_ms"],
            "error": redact(prediction.error)[:2000] if prediction.error else old["error"],
            "finished_at": old["finished_at"],
            "seen_gap_ms": old["seen_gap_ms"],
        }
        if status in TERMINAL:
            if old["finished_at"] is None:
                new["finished_at"] = now
                new["seen_gap_ms"] = self._gap_ms(prediction.id, now)
            self._seen.pop(prediction.id, None)
        else:
            self._seen[prediction.id] = _parse(now)
        if all(new[name] == old[name] for name in new):
            return  # a check that changed nothing leaves updated_at alone
        db.execute(
            "UPDATE jobs SET status = :status, output_url = :output_url, "
            "inference_ms = :inference_ms, error = :error, finished_at = :finished_at, "
            "seen_gap_ms = :seen_gap_ms, updated_at = :now WHERE id = :id",
            {**new, "now": now, "id": row_id},
        )

    def _gap_ms(self, prediction_id: str, now: str) -> int | None:
        """Milliseconds since this process last saw the task running; ``None`` if it never did."""
        seen = self._seen.get(prediction_id)
        return None if seen is None else round((_parse(now) - seen).total_seconds() * 1000)


# -- helpers -------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 in UTC, so comparing the text compares the times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _status_of(prediction: Prediction) -> JournalStatus:
    # The API's unrecognised status parses as Status.UNKNOWN, "still running": it must not be
    # stored as the journal's own "unknown", which means "maybe charged, fate unknown".
    if prediction.status is Status.UNKNOWN:
        return "processing"
    return cast("JournalStatus", prediction.status.value)


def _switch_to_wal(db: sqlite3.Connection) -> str:
    """Put the file in WAL mode (it stays so) and return the mode it is in.

    Switching a new file takes an exclusive lock for a moment, and SQLite does not wait for it
    (busy_timeout does not apply): two kernels opening a new journal at once would see
    "database is locked". So the switch is retried, briefly, until the other one is done.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
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
    return _owner()


def _owner() -> str:
    # Asked each time, not at import: a forked child is another process with another pid.
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
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


def _row(record: sqlite3.Row) -> JournalRow:
    values = {name: record[name] for name in JournalRow.__slots__}
    for name in ("submitted_at", "accepted_at", "finished_at", "downloaded_at", "updated_at",
                 "sent_at"):  # fmt: skip
        if values[name] is not None:
            values[name] = _parse(values[name])
    return JournalRow(**values)
