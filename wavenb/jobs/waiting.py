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
from wavenb.core.polling import PollPolicy, Since

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
    submitted = session.started.setdefault(current.id, runtime.clock())
    stats = session.durations
    schedule = session.policy(policy)
    ratio = job.request.aspect_ratio if job.request is not None else None
    # The schedule is aimed at the task's run: while the account's slots are full it sits in
    # "created", and its run has not begun; the last sighting of "created" is the reference.
    reference, queued = submitted, False
    previous: float | None = None  # the last check that found it running
    checked: float | None = None
    while not current.terminal:
        now = runtime.clock()
        if job.checks and current.status in (Status.CREATED, Status.PENDING):
            reference, queued, previous = now, True, None
        since: Since = "start" if queued else "submit"
        delay = schedule.next_delay(now - reference, stats.expectation(ratio, since),
                                    runtime.random())  # fmt: skip
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - now))
        eta = _eta(stats.typical(ratio, since), now - reference)
        await job._emit(phase_of_status(current.status), next_check=delay, eta=eta)
        await runtime.sleep(delay)
        checked = runtime.clock()
        current = await _check(job, current, deadline, timeout)
        if not current.terminal and current.status not in (Status.CREATED, Status.PENDING):
            previous = checked
        if not current.terminal and deadline is not None and runtime.clock() >= deadline:
            raise _timed_out(current, timeout)
    job.prediction = current
    if current.id in session.submitted and current.status.succeeded and checked is not None:
        # It ended between the last check that saw it running and the one that saw it done.
        start = 0.0 if previous is None else previous - reference
        stats.observe(run_s=(start, checked - reference), queued_s=reference - submitted,
                      ratio=ratio)  # fmt: skip
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


def _eta(typical: float | None, elapsed: float) -> float | None:
    return None if typical is None else max(0.0, typical - elapsed)
