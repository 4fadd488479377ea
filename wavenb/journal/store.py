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

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from wavenb.core.config import data_dir
from wavenb.core.errors import BudgetExceeded, JournalError, WavenbError
from wavenb.core.models import Prediction, Status
from wavenb.core.redact import redact
from wavenb.journal import rescue
from wavenb.journal.faults import guarded, journal_error
from wavenb.journal.reads import RETENTION, STALE_SUBMIT, Reads
from wavenb.journal.records import (
    casefold,
    iso,
    owner,
    owner_alive,
    owner_token,
    parse_time,
    row_of,
    status_of,
    switch_to_wal,
    utc_now,
)
from wavenb.journal.rows import TERMINAL, JournalRow
from wavenb.journal.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_MS",
    "RETENTION",
    "STALE_SUBMIT",
    "Journal",
    "Reservation",
    "TaskIdConflict",
    "owner_token",
]

_API_TERMINAL: Final = frozenset(s.value for s in Status if s.terminal)
BUSY_TIMEOUT_MS: Final = 30_000
"""How long a write waits for another process's write before failing (they take milliseconds)."""
CLAIM_TTL: Final = timedelta(minutes=15)
"""A download claim older than this is abandoned (its process hung) and may be taken over."""
_EPSILON: Final = 1e-9


class TaskIdConflict(ValueError):
    """The server gave a task id that another submission already has: it is not trusted."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``reserve`` decided: a new row to send, or an identical request to join."""

    key: str | None
    """The new row's request key (budget reserved); ``None`` when joining ``existing``."""
    existing: JournalRow | None = None
    """An identical request already in flight, uncertain, or done (see ``reserve``)."""


class Journal(Reads):
    """The record of every submission, in a SQLite file shared by threads and processes.

    Args:
        path: the database file; by default ``journal.sqlite3`` in ``data_dir()`` (which
            ``WAVENB_HOME`` sets). Created, with its folder, if absent.
        clock: returns the current time (aware); tests pass a fake one.
        busy_timeout_ms: how long a write waits for another process's write lock.

    Raises:
        JournalError: the file cannot be opened or set up (damaged, read-only, disk full, or
            written by a newer wavenb).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.path: Path = Path(path) if path is not None else data_dir() / "journal.sqlite3"
        self._clock = clock or utc_now
        self._busy_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._batching = False
        # Last time each task was checked by this process: a completion first seen right after
        # a recent check dates the end well; one seen after a restart does not.
        self._seen: dict[str, datetime] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection shared by threads, serialised by self._lock. Autocommit mode:
            # transactions are opened explicitly.
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_ms / 1000, isolation_level=None,
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

    @guarded
    def reserve(
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
                (key, model, prompt, aspect_ratio, image_sha256, redact(image_source), request_hash,
                 backend, server, cost, cost, now, now, owner(), variant),
            )  # fmt: skip
        return Reservation(key)

    def begin(self, **fields: Any) -> str:  # noqa: ANN401  (the fields of ``reserve``)
        """``reserve(..., join=False)`` then ``sending()``: a row about to be sent; its key."""
        reservation = self.reserve(**fields, join=False)
        assert reservation.key is not None  # noqa: S101  (join=False always makes a row)
        self.sending(reservation.key)
        return reservation.key

    @guarded
    def sending(self, request_key: str, image_url: str | None = None) -> None:
        """Note that the paid request goes out now, carrying ``image_url``."""
        now = self._now()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET sent_at = ?, image_url = COALESCE(?, image_url), updated_at = ? "
                "WHERE request_key = ? AND prediction_id IS NULL",
                # An upload's URL comes from the server: it may echo the key.
                (now, None if image_url is None else redact(image_url), now, request_key),
            )

    @guarded
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
                (row["base_url"], prediction.id, row["id"], iso(self._clock() - RETENTION)),
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
        """Record that the submission was never sent: the reservation is released, cost 0.

        For a submission whose upload failed, or that was cancelled before sending.
        """
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

    @guarded
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

    @guarded
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

    @guarded
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

    @guarded
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
                fresh = row["claim_at"] and parse_time(row["claim_at"]) > now - CLAIM_TTL
                if fresh and owner_alive(owner):
                    return False
            db.execute(
                "UPDATE jobs SET claim = ?, claim_at = ? WHERE id = ?",
                (holder, iso(now), row["id"]),
            )
            return True

    @guarded
    def unclaim(self, prediction_id: str, base_url: str, holder: str) -> None:
        """Give up a download claim (the download failed; someone may try again)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET claim = NULL, claim_at = NULL WHERE base_url = ? AND "
                "prediction_id = ? AND claim = ?",
                (base_url.rstrip("/"), prediction_id, holder),
            )

    def _setup(self) -> None:
        db = self._db
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        db.create_function("casefold", 1, casefold, deterministic=True)
        # WAL: readers never block the writer, and one process's reads see another's commits.
        mode = switch_to_wal(db, self._busy_ms)
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
        """One write transaction, holding the thread lock (a savepoint inside ``batch``).

        ``BEGIN IMMEDIATE`` takes SQLite's write lock up front, waiting per busy_timeout. A
        deferred transaction that reads and then writes could instead fail at once with
        "database is locked" when another process wrote in between.
        """
        with self._lock:
            if self._batching:
                # Inside a batch: a savepoint, so a failing write undoes only itself.
                self._db.execute("SAVEPOINT one_write")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK TO one_write")
                    self._db.execute("RELEASE one_write")
                    raise
                self._db.execute("RELEASE one_write")
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            finally:
                # On any error (even in COMMIT), never leave a transaction open: the next
                # BEGIN would fail. SQLite may have rolled back already (disk full, say).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one transaction: one commit, one fsync.

        Each write is a savepoint of its own (its failure undoes only it); nothing is durable
        until the block ends without an error. The journal's writer thread groups the writes
        queued at once this way (see ``wavenb.journal.writer``).

        Raises:
            JournalError: the commit failed (every write of the batch is undone).
        """
        with self._lock:
            if self._batching:
                yield
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise journal_error(self.path, error) from None
            self._batching = True
            try:
                yield
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                raise journal_error(self.path, error) from None
            finally:
                self._batching = False
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    @guarded
    def _query(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        # A single statement in autocommit mode reads one consistent snapshot.
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _select(self, tail: str, params: Sequence[object]) -> list[JournalRow]:
        # ``tail`` is built from constants and ``?`` placeholders only; every value is bound.
        sql = f"SELECT {COLUMNS} FROM jobs {tail}"  # noqa: S608  (see above)
        return [row_of(record) for record in self._query(sql, params)]

    def _now(self) -> str:
        return iso(self._clock())

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

    @guarded
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
        status = old["status"] if old["status"] in _API_TERMINAL else status_of(prediction)
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
            self._seen[prediction.id] = parse_time(now)
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
        return None if seen is None else round((parse_time(now) - seen).total_seconds() * 1000)


