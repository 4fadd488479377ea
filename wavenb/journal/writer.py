"""The journal off the event loop: every call runs on one writer thread, in order.

A journal write is a SQLite transaction with a FULL fsync: a few milliseconds, sometimes tens
on a busy disk. Run on the kernel's event loop, 32 videos' worth of them showed up as loop lag
(the widget stutters, other cells wait). So the lifecycle never calls the journal directly:
it awaits ``JournalWriter.call``, which runs the call on a single dedicated thread. One thread
keeps the calls in the order they were made (a row's "accepted" can never overtake its
"reserved"), and the journal's own lock keeps other threads (a blocking ``Client``, the CLI)
safe beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from wavenb.journal.store import Journal

__all__ = ["JournalWriter"]

P = ParamSpec("P")
T = TypeVar("T")


class JournalWriter:
    """Runs journal calls on one background thread; ``await writer.call(method, ...)``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._executor: ThreadPoolExecutor | None = None

    async def call(self, method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``method(*args, **kwargs)`` (a bound ``Journal`` method) on the writer thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="wavenb-journal")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(method, *args, **kwargs))
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
        """Finish pending calls and stop the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
