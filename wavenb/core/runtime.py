"""The runtime: time, randomness and the few things shared by every client of a process.

Instead of module globals (a test mode that changes the control flow, caches that leak from one
test into the next), every client takes a ``Runtime``: the monotonic clock and the sleep its
polls, pacing and back-offs use, the randomness behind jitter, and the registries a process
shares (the embedded sandboxes, what past task durations taught the poll schedule, whether the
"using the SANDBOX" notice was given).

Production uses ``Runtime()``: real time. Tests use ``Runtime.scaled(0.02)``: the same code
paths, the same number of retries and checks, with every wait 50 times shorter and the clock
running 50 times faster, so a 5 s poll interval costs 100 ms and timeouts keep their meaning.
``wavenb.testing`` installs a fresh scaled runtime for each test (``install``), so nothing one
test learns reaches the next.

    >>> with runtime.installed(Runtime.scaled(0.01)):      # doctest: +SKIP
    ...     async with AsyncClient() as client: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Runtime", "current", "install", "installed", "set_testing"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, eq=False)
class Runtime:
    """Clock, sleep, randomness and per-process registries for every client created under it.

    Attributes:
        clock: monotonic seconds (polls, deadlines, timelines).
        sleep: how to wait ``seconds`` on the running event loop.
        random: a number in [0, 1): the jitter of poll and retry waits.
        now: the wall clock, aware UTC (journal times, event times).
        scale: how many real seconds one runtime second takes (1.0 in production).
        server_seconds: how many runtime seconds one second of the server's takes (its
            ``Retry-After``): 1.0 when the servers run on this runtime's clock (production, a
            lesson whose sandbox shares the lesson clock, scripted test servers); ``1 / scale``
            when they keep real time while this runtime is scaled (the bench).
    """

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = random.random
    now: Callable[[], datetime] = _utc_now
    scale: float = 1.0
    server_seconds: float = 1.0
    sandboxes: dict[str, Any] = field(default_factory=dict)
    """Embedded sandbox apps by speed: every client of this runtime sees the same tasks."""
    learned: dict[object, Any] = field(default_factory=dict)
    """What past runs taught, by server and backend (duration statistics for the schedule)."""
    notices: set[str] = field(default_factory=set)
    """One-time notices already given (the "using the SANDBOX" warning)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards the registries: clients on several threads (the blocking ``Client``) share them."""

    @classmethod
    def scaled(cls, scale: float, *, real_time_servers: bool = False) -> Runtime:
        """A runtime whose seconds take ``scale`` real seconds (``wavenb.testing``: 0.02).

        By default the servers' seconds (``Retry-After``) are taken to be runtime seconds too:
        right for scripted test servers, which have no clock of their own. With
        ``real_time_servers`` a server's second is ``1 / scale`` runtime seconds: waited for
        as long as a server on the wall clock asked (the bench's time-scaled server).
        """
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1]; got {scale!r}")
        origin = time.monotonic()

        def clock() -> float:
            return origin + (time.monotonic() - origin) / scale

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(max(0.0, seconds) * scale)

        server_seconds = 1 / scale if real_time_servers else 1.0
        return cls(clock=clock, sleep=sleep, scale=scale, server_seconds=server_seconds)

    def once(self, notice: str) -> bool:
        """True the first time ``notice`` is asked about in this runtime, then False."""
        with self.lock:
            if notice in self.notices:
                return False
            self.notices.add(notice)
            return True


_current = Runtime()
_current_lock = threading.Lock()


def current() -> Runtime:
    """The runtime new clients use when none is given."""
    return _current


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the one new clients use; returns the previous one (to restore)."""
    global _current
    with _current_lock:
        previous, _current = _current, runtime
    return previous


@contextlib.contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    """Use ``runtime`` for clients created inside the block."""
    previous = install(runtime)
    try:
        yield runtime
    finally:
        install(previous)


def set_testing(testing: bool, *, scale: float = 0.01) -> None:  # noqa: FBT001  (kept from 0.1)
    """Switch test mode on or off for clients created afterwards (a thin alias, kept from 0.1).

    On: a fresh ``Runtime.scaled(scale)``: every wait (polls, the submit gate, read retries'
    back-off and ``Retry-After``) ``scale`` times as long, with the same code paths and attempt
    counts as production. Off: a fresh real-time runtime. Prefer ``wavenb.testing``'s
    fixtures, which do this per test.
    """
    install(Runtime.scaled(scale) if testing else Runtime())
