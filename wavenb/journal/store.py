"""The journal: a SQLite file that remembers every paid submission, so no video is ever lost.

Kernels restart mid-run and output URLs expire after 7 days. So a row is written *before* the
submit request is sent, and updated as the answers come in; after a restart the journal says
which tasks to wait for again, which videos still need downloading, which submits may have been
charged without an answer, and what was spent.

One row per submission, through these states::

                 begin()    written before the request is sent
                    │
               submitting ──refused()──▶ refused     the server certainly did not take it: $0
                    │    └──unknown()──▶ unknown     sent, but no answer says if it was taken:
                    │                       │        maybe charged; wavenb never resends it
               accepted() ◀─────────────────┘        (should its id turn up after all)
                    ▼
   created / pending / processing ──update()──▶ completed ──downloaded()──▶ + path, sha256
                    │
                    └──update()──▶ failed / cancelled / timeout / deleted

A row left in ``submitting`` by a process that died before the answer came is reported by
``unresolved()`` beside the ``unknown`` ones: the request may or may not have gone out.

Concurrency: one ``Journal`` may be used from many threads (asyncio's loop thread and
``asyncio.to_thread`` workers) and several processes (two kernels) may use one file. Each
method is one short transaction under a per-journal lock; SQLite's WAL mode lets readers and
the writer run side by side, and ``busy_timeout`` makes a writer wait for another process's
writer instead of failing. The file must be on a local disk (WAL needs shared memory).

The API key is never given to the journal, and it has no place to put one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from wavenb.core.config import data_dir
from wavenb.core.errors import WavenbError
from wavenb.core.models import Prediction, Status

__all__ = [
    "Journal",
    "JournalRow",
    "JournalStatus",
    "format_table",
    "request_hash",
    "sha256_file",
    "to_pandas",
]

JournalStatus = Literal[
    "submitting",
    "unknown",
    "refused",
    "created",
    "pending",
    "processing",
    "completed",
    "failed",
    "cancelled",
    "timeout",
    "deleted",
]
"""Where a submission is; see the module docstring for the diagram."""

STATUSES: Final[tuple[JournalStatus, ...]] = get_args(JournalStatus)
TERMINAL: Final[frozenset[str]] = frozenset(
    {"refused", "completed", "failed", "cancelled", "timeout", "deleted"}
)
"""Statuses that never change again on their own."""
_API_TERMINAL: Final = frozenset(s.value for s in Status if s.terminal)
_UNANSWERED: Final = ("submitting", "unknown")
"""No answer yet (or never): the row has no prediction id."""

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MS: Final = 30_000
"""How long a write waits for another process's write before failing (they take milliseconds)."""
STALE_SUBMIT: Final = timedelta(minutes=10)
"""A ``submitting`` row this old is unresolved even if its process may live: a submit gives up
long before (30 s per attempt, 120 s of retries)."""
RETENTION: Final = timedelta(days=7)
"""The provider keeps tasks and outputs this long; older rows cannot be resumed."""
_PRECISE_GAP_MS: Final = 120_000
"""A completion seen more than this after the previous check (a restart, a sleeping laptop)
says little about when the task really finished, so ``durations`` leaves it out."""

_COLUMNS: Final = (
    "request_key, prediction_id, status, model, prompt, aspect_ratio, image_sha256, "
    "image_source, request_hash, backend, base_url, cost, output_url, path, sha256, size, "
    "error, inference_ms, submitted_at, accepted_at, finished_at, downloaded_at, updated_at"
)

# Index i brings the file from user_version i to i + 1. Append, never edit.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE IF NOT EXISTS jobs (
            id            INTEGER PRIMARY KEY,
            request_key   TEXT NOT NULL UNIQUE,
            prediction_id TEXT,          -- not unique: sandbox ids repeat across restarts
            status        TEXT NOT NULL,
            model         TEXT NOT NULL,
            prompt        TEXT NOT NULL,
            aspect_ratio  TEXT,
            image_sha256  TEXT,
            image_source  TEXT NOT NULL, -- a path, URL, "bytes" or "PIL image"; never the bytes
            request_hash  TEXT NOT NULL,
            backend       TEXT NOT NULL CHECK (backend IN ('sandbox', 'api')),
            base_url      TEXT NOT NULL,
            price         REAL NOT NULL, -- what the caller said one video costs there
            cost          REAL NOT NULL, -- what this row cost: price, or 0 when refused
            output_url    TEXT,
            path          TEXT,
            sha256        TEXT,
            size          INTEGER,
            error         TEXT,
            inference_ms  INTEGER,
            submitted_at  TEXT NOT NULL, -- ISO-8601 UTC, fixed width, so text order is time order
            accepted_at   TEXT,
            finished_at   TEXT,
            downloaded_at TEXT,
            updated_at    TEXT NOT NULL,
            owner         TEXT NOT NULL, -- host:pid that began it, to tell dead submits from live
            seen_gap_ms   INTEGER        -- how late the end may have been seen; see durations()
        )
        """,
        "CREATE INDEX IF NOT EXISTS jobs_prediction_id ON jobs (prediction_id)",
        "CREATE INDEX IF NOT EXISTS jobs_request_hash ON jobs (request_hash)",
        "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
        "CREATE INDEX IF NOT EXISTS jobs_submitted_at ON jobs (submitted_at)",
    ),
)


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One submission as the journal knows it."""

    request_key: str
    """wavenb's own key for the submission, made before the request is sent (uuid4 hex)."""
    prediction_id: str | None
    """The provider's task id; ``None`` until the submit was answered (or if it never was)."""
    status: JournalStatus
    """See the module docstring."""
    model: str
    """The model path, e.g. ``runwayml/gen4-turbo``."""
    prompt: str
    """The prompt as sent."""
    aspect_ratio: str | None
    """The ratio asked for; ``None`` means "match the source"."""
    image_sha256: str | None
    """SHA-256 of the image bytes sent, for local images; ``None`` for URLs."""
    image_source: str
    """Where the image came from: a path, a URL, ``"bytes"`` or ``"PIL image"``."""
    request_hash: str
    """See ``request_hash()``: equal for requests that would make the same video."""
    backend: Literal["sandbox", "api"]
    """``"sandbox"`` for wavenb's local sandbox, ``"api"`` for the provider."""
    base_url: str
    """The server the request went to."""
    cost: float
    """US dollars this submission cost (or may have cost): 0 on the sandbox and when refused."""
    output_url: str | None
    """The first output URL (temporary on the real API)."""
    path: str | None
    """The downloaded file, once downloaded."""
    sha256: str | None
    """SHA-256 of the downloaded file."""
    size: int | None
    """Size of the downloaded file in bytes."""
    error: str | None
    """Why it was refused, failed, or is unknown."""
    inference_ms: int | None
    """Milliseconds the model ran, as the provider reported."""
    submitted_at: datetime
    """When the row was written, just before the request was sent (UTC)."""
    accepted_at: datetime | None
    """When the provider's answer with the id came back."""
    finished_at: datetime | None
    """When wavenb saw the end (a terminal status, or a refusal)."""
    downloaded_at: datetime | None
    """When the file was saved."""
    updated_at: datetime
    """When the row last changed."""

    @property
    def terminal(self) -> bool:
        """Whether the submission has ended: refused, or a terminal task status."""
        return self.status in TERMINAL

    @property
    def needs_download(self) -> bool:
        """Whether it completed but no good local file exists (never saved, removed, or cut).

        Looks at the file system: the file must exist and have the recorded size.
        """
        return self.status == "completed" and not _file_ok(self.path, self.size)

    @property
    def resumable(self) -> bool:
        """Whether the provider took it and something is left to do: wait, or download."""
        return self.prediction_id is not None and (not self.terminal or self.needs_download)

    def as_dict(self) -> dict[str, object]:
        """The fields as plain values (times as ISO-8601 text), ready for JSON or a table."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
        }


def request_hash(
    *,
    model: str,
    image_sha256: str | None,
    image_source: str,
    prompt: str,
    aspect_ratio: str | None,
    base_url: str,
) -> str:
    """A stable SHA-256 (hex) of what makes a video: equal hashes mean the same request.

    The image counts by its bytes' hash when local (so a file moved or renamed still matches)
    and by its URL otherwise. The hash is part of the file format: changing how it is computed
    would stop old rows from being reused, so the input carries a version number.
    """
    identity = {
        "v": 1,
        "model": model,
        "image": f"sha256:{image_sha256}" if image_sha256 is not None else image_source,
        "prompt": prompt,
        "aspect_ratio": aspect_ratio,
        "base_url": base_url.rstrip("/"),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """The SHA-256 (hex) and size in bytes of a file, read in chunks (videos can be large)."""
    digest, size = hashlib.sha256(), 0
    with Path(path).open("rb") as file:
        while block := file.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class Journal:
    """The record of every submission, in a SQLite file shared by threads and processes.

    Example:
        >>> journal = Journal()                                  # doctest: +SKIP
        >>> key = journal.begin(request_hash=h, model=MODEL_ID, prompt="Zoom in",  # doctest: +SKIP
        ...                     aspect_ratio=None, image_sha256=digest, image_source="cat.jpg",
        ...                     backend="api", base_url=DEFAULT_BASE_URL, cost=0.50)
        >>> journal.accepted(key, prediction)                     # doctest: +SKIP

    Every call is a short transaction and may block for as long as another process holds the
    write lock (milliseconds; ``BUSY_TIMEOUT_MS`` at most). ``sqlite3.Error`` propagates.

    Args:
        path: the database file; by default ``journal.sqlite3`` in ``data_dir()`` (which
            ``WAVENB_HOME`` sets). Created, with its folder, if absent.
        clock: returns the current time (aware); tests pass a fake one.

    Raises:
        WavenbError: the file was written by a newer wavenb (its schema is unknown here).
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by threads, serialised by self._lock (sqlite3 objects are not
        # thread-safe by themselves). Autocommit mode: transactions are opened explicitly.
        self._db = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file. Further calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------------

    def begin(
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
    ) -> str:
        """Record a submission about to be sent; call it before the request goes out.

        ``cost`` is what one video costs on that backend (``PRICE_PER_VIDEO`` on the real API,
        0 on the sandbox). Returns the new row's request key (status ``submitting``).

        Raises:
            ValueError: ``backend`` is not ``"sandbox"`` or ``"api"``, or ``cost`` is negative.
        """
        if backend not in ("sandbox", "api"):
            raise ValueError(f"backend must be 'sandbox' or 'api', not {backend!r}")
        if cost < 0:
            raise ValueError(f"cost cannot be negative: {cost!r}")
        key = uuid.uuid4().hex
        now = self._now()
        with self._write() as db:
            db.execute(
                "INSERT INTO jobs (request_key, status, model, prompt, aspect_ratio, "
                "image_sha256, image_source, request_hash, backend, base_url, price, cost, "
                "submitted_at, updated_at, owner) "
                "VALUES (?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, prompt, aspect_ratio, image_sha256, image_source, request_hash,
                 backend, base_url.rstrip("/"), cost, cost, now, now, _owner()),
            )  # fmt: skip
        return key

    def accepted(self, request_key: str, prediction: Prediction) -> None:
        """Record the provider's answer to a submit: the task id and its first state.

        Also valid on an ``unknown`` (or ``refused``) row whose task turns out to exist: the
        row then counts as accepted, with its cost. A sandbox answer makes the cost 0.

        Raises:
            KeyError: no row has that request key.
            ValueError: the row already belongs to another prediction id.
        """
        now = self._now()
        with self._write() as db:
            row = db.execute(
                "SELECT id, prediction_id FROM jobs WHERE request_key = ?", (request_key,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no journal row has request key {request_key!r}")
            if row["prediction_id"] not in (None, prediction.id):
                raise ValueError(
                    f"journal row {request_key} is task {row['prediction_id']}, not {prediction.id}"
                )
            # The server may reveal it is a sandbox only now (a served one on another URL).
            # A row thought unknown or refused turns out accepted: its cost and fate are back.
            db.execute(
                "UPDATE jobs SET prediction_id = ?, accepted_at = COALESCE(accepted_at, ?), "
                "backend = CASE WHEN ? THEN 'sandbox' ELSE backend END, "
                "cost = CASE WHEN ? OR backend = 'sandbox' THEN 0 ELSE price END, "
                "error = CASE WHEN prediction_id IS NULL THEN NULL ELSE error END, "
                "finished_at = CASE WHEN prediction_id IS NULL THEN NULL ELSE finished_at END, "
                "updated_at = ? WHERE id = ?",
                (prediction.id, now, prediction.sandbox, prediction.sandbox, now, row["id"]),
            )
            self._apply(db, row["id"], prediction, now)

    def refused(self, request_key: str, error: str) -> None:
        """Record that the server certainly did not take the submit: the row costs nothing.

        Raises:
            KeyError: no unanswered row has that request key.
        """
        self._unanswered(request_key, "refused", error)

    def unknown(self, request_key: str, error: str) -> None:
        """Record that the submit was sent but no answer says whether it was taken.

        It may have been charged: the row keeps its cost and is listed by ``unresolved()``.
        wavenb never resubmits it by itself.

        Raises:
            KeyError: no unanswered row has that request key.
        """
        self._unanswered(request_key, "unknown", error)

    def update(self, prediction: Prediction) -> None:
        """Record a task's latest state: status, output URL, timing, error.

        The row is found by the prediction's id; an id the journal does not know (a task
        submitted elsewhere) is ignored. A terminal status is final: an older answer arriving
        late (another kernel polling the same task) does not undo it.
        """
        now = self._now()
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE prediction_id = ? ORDER BY id DESC LIMIT 1",
                (prediction.id,),
            ).fetchone()
            if row is not None:
                self._apply(db, row["id"], prediction, now)

    def seen(self, prediction_id: str) -> None:
        """Note, in memory only, that a check found the task still running and unchanged.

        Costs no write: ``update`` is for answers that change something. The time still dates
        the task's end (see ``durations``) as precisely as a write would.
        """
        with self._lock:
            self._seen[prediction_id] = self._clock()

    def downloaded(self, prediction_id: str, path: Path, sha256: str, size: int) -> None:
        """Record the local file of a completed task (see ``sha256_file``).

        The path is stored absolute, so a kernel started elsewhere finds it. An unknown id is
        ignored, as in ``update``.
        """
        now = self._now()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET path = ?, sha256 = ?, size = ?, downloaded_at = ?, "
                "updated_at = ? WHERE id = (SELECT id FROM jobs WHERE prediction_id = ? "
                "ORDER BY id DESC LIMIT 1)",
                (str(Path(path).absolute()), sha256, size, now, now, prediction_id),
            )

    # -- reading ---------------------------------------------------------------------------

    def get(self, prediction_id: str) -> JournalRow | None:
        """The row of a task, or ``None``; should an id repeat, the newest row."""
        rows = self._select("WHERE prediction_id = ? ORDER BY id DESC LIMIT 1", (prediction_id,))
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
            if not _file_ok(row.path, row.size):
                continue
            if verify and (row.path is None or sha256_file(Path(row.path))[0] != row.sha256):
                continue
            return row
        return None

    def resumable(self, base_url: str | None = None) -> list[JournalRow]:
        """Tasks to pick up again, oldest first: still running, or completed but not on disk.

        Only tasks from the provider's retention window (``RETENTION``) are listed: older ones
        are gone. ``base_url`` limits the list to one server.
        """
        running = tuple(s for s in STATUSES if s not in TERMINAL and s not in _UNANSWERED)
        marks = ", ".join("?" * len(running))
        where = f"WHERE prediction_id IS NOT NULL AND status IN ({marks}, 'completed') "
        where += "AND submitted_at >= ?"
        params: list[object] = [*running, _iso(self._clock() - RETENTION)]
        if base_url is not None:
            where += " AND base_url = ?"
            params.append(base_url.rstrip("/"))
        rows = self._select(where + " ORDER BY submitted_at, id", params)
        return [row for row in rows if row.resumable]

    def unresolved(self) -> list[JournalRow]:
        """Submissions whose fate is unknown, newest first: report them, never resubmit.

        That is ``unknown`` rows, and ``submitting`` rows whose process died before the answer
        (or that are older than ``STALE_SUBMIT``). A submit in flight right now is not listed.
        """
        found = self._query(
            f"SELECT {_COLUMNS}, owner FROM jobs WHERE status IN ('submitting', 'unknown') "  # noqa: S608  (constants only)
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
        """Rows newest first, filtered.

        Args:
            status: one status or several.
            since: submitted at or after this (a naive time is taken as local time).
            until: submitted before this.
            text: a case-insensitive substring of the prompt, prediction id or request key.
            limit: at most this many rows.

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

        Accepted tasks count whatever their outcome (the provider does not say whether failed
        tasks are refunded, so the sum is an upper bound); refused ones cost nothing. With
        ``include_unknown`` (the default) submissions that may have been charged count too:
        ``unknown`` rows and ``submitting`` ones.
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

        Oldest first, so they can be fed to ``DurationStats.add`` in order. The end of a task is
        known only to within one poll interval; each duration is taken at the middle of it.
        Completions seen long after the previous check (after a restart) are left out: they
        would teach the poll schedule that tasks take hours.
        """
        found = self._query(
            "SELECT submitted_at, finished_at, seen_gap_ms FROM jobs WHERE base_url = ? "
            "AND status = 'completed' AND finished_at IS NOT NULL AND seen_gap_ms <= ? "
            "ORDER BY finished_at DESC, id DESC LIMIT ?",
            (base_url.rstrip("/"), _PRECISE_GAP_MS, limit),
        )
        seconds = [
            (_parse(finished) - _parse(submitted)).total_seconds() - gap / 2000
            for submitted, finished, gap in found
        ]
        return seconds[::-1]

    # -- internals -------------------------------------------------------------------------

    def _setup(self) -> None:
        db = self._db
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.create_function("casefold", 1, _casefold, deterministic=True)
        # WAL: readers never block the writer, and one process's reads see another's commits.
        mode = _switch_to_wal(db)
        if mode != "wal":
            raise WavenbError(f"the journal {self.path} cannot use WAL mode (got {mode!r})")
        # FULL: a committed begin() survives a power cut too, not only a crashed kernel. There
        # are a handful of writes per video, so the fsyncs cost nothing that matters.
        db.execute("PRAGMA synchronous = FULL")
        with self._write() as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise WavenbError(
                    f"the journal {self.path} was written by a newer wavenb (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}): upgrade wavenb"
                )
            for step in _MIGRATIONS[version:]:
                for statement in step:
                    tx.execute(statement)
            if version != SCHEMA_VERSION:
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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

    def _query(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        # A single statement in autocommit mode reads one consistent snapshot.
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _select(self, tail: str, params: Sequence[object]) -> list[JournalRow]:
        # ``tail`` is built from constants and ``?`` placeholders only; every value is bound.
        sql = f"SELECT {_COLUMNS} FROM jobs {tail}"  # noqa: S608  (see above)
        return [_row(record) for record in self._query(sql, params)]

    def _now(self) -> str:
        return _iso(self._clock())

    def _unanswered(self, request_key: str, status: str, error: str) -> None:
        now = self._now()
        with self._write() as db:
            done = db.execute(
                "UPDATE jobs SET status = ?1, error = ?2, updated_at = ?3, "
                "cost = CASE WHEN ?1 = 'refused' THEN 0 ELSE price END, "
                "finished_at = CASE WHEN ?1 = 'refused' THEN ?3 END "
                "WHERE request_key = ?4 AND prediction_id IS NULL",
                (status, error, now, request_key),
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
            "error": prediction.error or old["error"],
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


# -- presenting ----------------------------------------------------------------------------


def format_table(rows: Sequence[JournalRow], *, width: int = 100) -> str:
    """A plain-text table of rows for ``wavenb history``: time, id, status, ratio, cost, prompt.

    Times are local; ids are shortened to 12 characters (``~`` and the request key when the
    provider gave no id); the prompt fills what is left of ``width``.
    """
    head = ("submitted (local)", "id", "status", "ratio", "cost", "prompt")
    body = [
        (
            row.submitted_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            row.prediction_id[:12] if row.prediction_id else "~" + row.request_key[:11],
            row.status + (" +file" if row.path and not row.needs_download else ""),
            row.aspect_ratio or "auto",
            f"${row.cost:.2f}",
            " ".join(row.prompt.split()),
        )
        for row in rows
    ]
    if not body:
        return "no submissions in the journal"
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head) - 1)]
    room = max(10, width - sum(widths) - 2 * len(widths))
    lines = []
    for line in (head, *body):
        cells = [cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)]
        prompt = line[-1] if len(line[-1]) <= room else line[-1][: room - 1] + "…"
        lines.append("  ".join([*cells, prompt]).rstrip())
    return "\n".join(lines)


def to_pandas(rows: Sequence[JournalRow]) -> Any:  # noqa: ANN401  (pandas is optional: no type to name)
    """A ``pandas.DataFrame`` of rows, one column per field, times as UTC timestamps.

    Raises:
        ImportError: pandas is not installed (``pip install pandas``).
    """
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        raise ImportError("to_pandas needs pandas, which is missing: pip install pandas") from None
    frame = pandas.DataFrame([row.as_dict() for row in rows], columns=list(JournalRow.__slots__))
    for column in ("submitted_at", "accepted_at", "finished_at", "downloaded_at", "updated_at"):
        frame[column] = pandas.to_datetime(frame[column], utc=True)
    return frame


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


def _file_ok(path: str | None, size: int | None) -> bool:
    if path is None:
        return False
    try:
        return Path(path).stat().st_size == size
    except OSError:
        return False


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
    for name in ("submitted_at", "accepted_at", "finished_at", "downloaded_at", "updated_at"):
        if values[name] is not None:
            values[name] = _parse(values[name])
    return JournalRow(**values)
