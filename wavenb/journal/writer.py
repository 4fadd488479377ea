"""The journal off the event loop: every call runs on one writer thread, in order, grouped.

A journal write is a SQLite transaction with a FULL fsync: a few milliseconds, sometimes tens
on a busy disk. Run on the kernel's event loop, a batch's worth of them showed up as loop lag
(the widget stutters, other cells wait; at 1,000 videos in flight the loop blocked for seconds).
So the lifecycle never calls the journal directly: it awaits ``JournalWriter.call``, which
queues the call for a single dedicated thread.

- **In order.** One thread runs the calls in the order they were made: a row's "accepted" can
  never overtake its "reserved".
- **Grouped.** The calls queued when the thread comes round run in one transaction
  (``Journal.batch``): one commit and one fsync for all of them, each call a savepoint of its
  own, so one failing call undoes only itself.
- **Durable before answered.** A call's result is handed back only after its group committed:
  the paid submit, which awaits its reservation, is never sent before the row is on disk.

The journal's own lock keeps other threads (a blocking ``Client``, the CLI) safe beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar

from wavenb.journal.store import Journal

__all__ = ["JournalWriter"]

P = ParamSpec("P")
T = TypeVar("T")

MOST_AT_ONCE: Final = 256
"""The largest group of calls committed together."""

_Item = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class JournalWriter:
    """Runs journal calls on one background thread; ``await writer.call(method, ...)``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0
        """Groups committed so far (for tests and the bench)."""

    async def call(self, method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``method(*args, **kwargs)`` (a bound ``Journal`` method) on the writer thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((functools.partial(method, *args, **kwargs), loop, future))
        self._ensure_thread()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The write goes on in its thread whatever happens here; let it land before the
            # cancellation continues, so what the caller does next (release the row) comes
            # after it, never before.
            with contextlib.suppress(Exception):
                await future
            raise

    def close(self) -> None:
        """Finish the calls queued so far and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(30)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wavenb-journal",
                                                daemon=True)  # fmt: skip
                self._thread.start()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            group = [first]
            stop = False
            while len(group) < MOST_AT_ONCE:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Item]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.journal.batch():
                for work, _loop, _future in group:
                    try:
                        outcomes.append((True, work()))
                    except BaseException as error:  # noqa: BLE001  (handed to its caller)
                        outcomes.append((False, error))
            self.commits += 1
        except BaseException as error:  # noqa: BLE001  (the commit failed: every call did)
            outcomes = [(False, error)] * len(group)
        for (_work, loop, future), (ok, value) in zip(group, outcomes, strict=True):
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                loop.call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:  # noqa: ANN401, FBT001
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
