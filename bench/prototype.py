"""A prototype of the client changes the scale curve calls for, patched into wavenb for the bench.

Bench-only: ``bench.fleet`` installs it for ``variant="proposed"`` in its own process, on the
client of commit ad2235d (``--tree ad2235d``: the attribute names patched here are that
client's). The library gets the real change from the lead; this only proves the gain.

1. **Admit requests to the pool at the pool's size** (``Admission``). httpcore keeps waiting
   requests in a list and, every time a request starts or ends, rescans that whole list
   against every connection (``AsyncConnectionPool._assign_requests_to_connections``):
   with 900 queued behind 100 connections that is ~100,000 comparisons per event, seconds of
   loop stall, and pool timeouts (30 s) that wavenb reports as "the submit was sent but no
   answer came" (``SubmissionUncertain``) for requests that never left. A FIFO semaphore of
   the pool's size in front of every exchange keeps httpcore's queue empty; a request waiting
   for it has not been sent, so it can wait without a timeout and is never "uncertain".
   The pool is 32, not httpx's 100: answers that arrive together are handled in one turn of
   the event loop, so the pool's size bounds the longest turn (100 answers at ~1 ms each is a
   100-ms stall; 32 keep the loop's p99 near 20 ms), and 32 connections still carry ~150
   requests a second at a 200-ms round trip (1,000 tasks checked every 5 s need ~200 at peak,
   briefly). Keep-alive connections = the pool's size: httpcore 1.0.9 closes an idle
   connection whenever the pool holds more than ``max_keepalive_connections`` connections *of
   any kind* (it counts ``len([c.is_idle() for c in ...])``), so with the default 20 a busy
   pool opens a new TCP connection for almost every request.
2. **Journal writes on one writer thread, committed in groups** (``Writer``). Each write was a
   ``BEGIN IMMEDIATE ... COMMIT`` with ``synchronous = FULL`` on the event loop (an fsync
   each); now writes queue to a thread that runs everything waiting in one transaction (one
   savepoint per write, so one failing write undoes only itself). ``begin`` (the row that must
   exist before the paid request goes out) is awaited; later writes are fire-and-forget in
   order.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

POOL = 32


class Admission:
    """At most ``size`` exchanges inside httpx at once, admitted first come, first served."""

    def __init__(self, size: int = POOL) -> None:
        self.size = size
        self._gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._gates:
            self._gates[loop] = asyncio.Semaphore(self.size)
        return self._gates[loop]


class Writer:
    """One thread running journal writes in batches, each batch one transaction."""

    def __init__(self, journal: Any) -> None:
        self.journal = journal
        self.queue: queue.SimpleQueue[tuple[Callable[[], Any], Any] | None] = queue.SimpleQueue()
        self.batching = threading.local()
        self.thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self.thread.start()

    def submit(self, write: Callable[[], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.queue.put((write, future))
        return future

    def _run(self) -> None:
        db: sqlite3.Connection = self.journal._db
        lock: threading.Lock = self.journal._lock
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 512:  # noqa: PLR2004
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            outcomes: list[tuple[Any, bool, Any]] = []
            with lock:
                self.batching.on = True
                try:
                    db.execute("BEGIN IMMEDIATE")
                    for write, future in batch:
                        db.execute("SAVEPOINT w")
                        try:
                            value = write()
                        except Exception as error:  # noqa: BLE001  (handed to the awaiting task)
                            db.execute("ROLLBACK TO w")
                            outcomes.append((future, False, error))
                        else:
                            outcomes.append((future, True, value))
                        db.execute("RELEASE w")
                    db.execute("COMMIT")
                finally:
                    self.batching.on = False
                    if db.in_transaction:
                        db.execute("ROLLBACK")
            for future, ok, value in outcomes:
                future.get_loop().call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:  # noqa: FBT001
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def install(spec: dict[str, Any]) -> None:
    """Patch ad2235d's ``AsyncClient`` (this process only); ``admission`` or ``writer`` false in
    ``spec`` leaves that change out (to measure each alone)."""
    from wavenb.client import async_client as module
    from wavenb.journal import store

    if spec.get("admission", True):
        _install_admission(module.AsyncClient, Admission(int(spec.get("pool", POOL))))
    if spec.get("writer", True):
        _install_writer(module.AsyncClient, store.Journal)


def _install_admission(client_class: Any, admission: Admission) -> None:
    import httpx

    original_init = client_class.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if kwargs.get("transport") is None:
            size = admission.size
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            self._http._transport = httpx.AsyncHTTPTransport(limits=limits)

    original_request = client_class._request
    original_stream = client_class._stream_to

    async def _request(self: Any, *args: Any, **kwargs: Any) -> Any:
        async with admission.gate():
            return await original_request(self, *args, **kwargs)

    async def _stream_to(self: Any, *args: Any, **kwargs: Any) -> None:
        async with admission.gate():
            await original_stream(self, *args, **kwargs)

    client_class.__init__ = __init__
    client_class._request = _request
    client_class._stream_to = _stream_to


def _install_writer(client_class: Any, journal_class: Any) -> None:
    writers: dict[int, Writer] = {}
    rows: dict[int, str | None] = {}

    def writer_of(journal: Any) -> Writer:
        if id(journal) not in writers:
            writers[id(journal)] = Writer(journal)
        return writers[id(journal)]

    original_write = journal_class._write

    @contextlib.contextmanager
    def _write(self: Any) -> Iterator[sqlite3.Connection]:
        writer = writers.get(id(self))
        if writer is not None and getattr(writer.batching, "on", False):
            yield self._db  # inside the writer's batch transaction (lock held)
            return
        with original_write(self) as db:
            yield db

    def _record(self: Any, row: str | None, write: Callable[[Any, str], None]) -> None:
        journal = self.journal
        if journal is None:
            return
        future = writer_of(journal).submit(lambda: write(journal, row or ""))
        future.add_done_callback(_log_failure)

    original_submit = client_class._submit

    async def _submit(self: Any, request: Any) -> Any:
        journal = self.journal
        if journal is None:
            return await original_submit(self, request)
        # The row must be committed before the paid request goes out: await the writer.
        row = await writer_of(journal).submit(lambda: self._begin_now(request))
        rows[id(request)] = row
        return await original_submit(self, request)

    def _begin(self: Any, request: Any) -> str | None:
        return rows.pop(id(request), None)

    journal_class._write = _write
    client_class._record = _record
    # ad2235d's _submit calls self._begin(request) synchronously; hand it the row written above.
    client_class._begin_now = client_class._begin
    client_class._begin = _begin
    client_class._submit = _submit


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        import logging

        logging.getLogger("wavenb").error("journal write failed: %s", future.exception())
