"""Following a task until it ends: the poll loop of ``Job.wait``.

Checks follow the poll schedule (``wavenb.core.polling``): quiet while completion is unlikely,
every ``min_interval`` through the window where past runs finished, backing off beyond it. The
schedule is aimed at the task's *run*: while the account's slots are full it sits in
``created``, and its run has not begun. Every answer goes to the task's timeline and, when it
changes something, to the journal (on the writer thread); an answer about another task, or a
completion without an output, is not trusted.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

from wavenb.core.errors import PredictionFailed, PredictionTimeout
from wavenb.core.models import Prediction, Status
from wavenb.core.phase import phase_of_status
from wavenb.core.polling import DurationStats, PollPolicy

if TYPE_CHECKING:
    from wavenb.jobs.job import Job

__all__ = ["follow"]


async def follow(job: Job, *, timeout: float | None, policy: PollPolicy | None) -> Prediction:
    """Check ``job``'s task until it ends; return it completed, with an output.

    Raises:
        PredictionFailed: it ended without a video. PredictionTimeout: ``timeout`` passed.
    """
    session = job.session
    runtime = session.runtime
    current = job.prediction
    assert current is not None  # noqa: S101  (Job.wait checks)
    deadline = None if timeout is None else runtime.clock() + timeout
    if current.status is Status.UNKNOWN:  # a task from elsewhere: learn where it is first
        current = await _check(job, current, deadline, timeout)
    started = session.started.setdefault(current.id, runtime.clock())
    stats = session.durations
    schedule = session.policy(policy)
    delay = 0.0
    running_since = started
    while not current.terminal:
        if job.checks and current.status in (Status.CREATED, Status.PENDING):
            running_since = runtime.clock()
        running = runtime.clock() - running_since
        delay = schedule.next_delay(running, stats.expectation(), runtime.random())
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - runtime.clock()))
        await job._emit(phase_of_status(current.status), next_check=delay, eta=_eta(stats, running))
        await runtime.sleep(delay)
        current = await _check(job, current, deadline, timeout)
        if not current.terminal and deadline is not None and runtime.clock() >= deadline:
            raise _timed_out(current, timeout)
    job.prediction = current
    if current.id in session.submitted and current.status.succeeded:
        # The task ended somewhere within the last interval: count the middle of it.
        stats.add(runtime.clock() - running_since - delay / 2)
    if not current.status.succeeded:
        reason = current.error or "no reason given"
        raise PredictionFailed(f"task {current.id} {current.status.value}: {reason}", current)
    return current


async def _check(
    job: Job, current: Prediction, deadline: float | None, timeout: float | None
) -> Prediction:
    """One result check (with its retries), cut short at the deadline."""
    session = job.session
    runtime = session.runtime
    remaining = None if deadline is None else max(deadline - runtime.clock(), 1.0)
    try:
        async with asyncio.timeout(None if remaining is None else remaining * runtime.scale):
            fresh = await session.predictions.get(current.id)
    except TimeoutError:
        raise _timed_out(current, timeout) from None
    job.checks += 1
    if fresh.sandbox:
        session.http.sandbox_seen = True
    if fresh.status is Status.COMPLETED and not fresh.outputs:
        # Completed with nothing to download is an end, not a state to resume forever.
        fresh = replace(fresh, status=Status.FAILED, error="completed without an output")
    fresh = session.remember(fresh, "check")
    job.prediction = fresh
    await _record(job, current, fresh)
    return fresh


async def _record(job: Job, before: Prediction, after: Prediction) -> None:
    """Write the answer to the journal when it changed something (else only note the time)."""
    session = job.session
    journal = session.journal_or_none()
    if journal is None:
        return
    same = (before.status, before.outputs, before.error) == (after.status, after.outputs,
                                                           after.error)  # fmt: skip
    if same:
        journal.seen(after.id)  # in memory only: no SQLite commit for "still running"
        return
    await session.write(journal.update, after, session.base_url)


def _timed_out(current: Prediction, timeout: float | None) -> PredictionTimeout:
    return PredictionTimeout(
        f"task {current.id} is still {current.status.label} after {timeout:g} s; it goes on at "
        f"the provider: fetch it later with client.wait({current.id!r}) or wavenb.resume()",
        current,
    )


def _eta(stats: DurationStats, elapsed: float) -> float | None:
    typical = stats.typical()
    return None if typical is None else max(0.0, typical - elapsed)
