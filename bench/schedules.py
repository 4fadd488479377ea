"""The bench's proposal for wavenb's polling, prototyped outside the library, and its theory.

What the figures showed about the schedule as shipped (``REAL_API``, ``DurationStats``):

1. After the 90th percentile of past durations the next wait is ``growth * elapsed`` (about
   22 s at 90 s, up to 30 s): the slowest tenth of jobs is found 10-30 s late (lag p95).
2. ``elapsed`` counts from the submit, also while a task waits in ``created`` for a slot: a
   queued task burns its whole window of 5-s checks while still queued, then backs off, and
   its queue time pollutes the history of durations.
3. The submit's 429 retries give up after 120 s (stamina ``timeout``): at a real cap of n a
   minute, a batch of more than about 3n submissions loses tasks (accepted < asked).

The proposal, as a subclass (``ProposedClient``) and a policy (``ProposedPolicy``) so it can be
measured here without touching the library:

a. Past the window, back off from ``min_interval`` gently: ``min_interval + growth * (elapsed -
   late)`` (still increasing intervals, as the docs ask, but 5 s right after the window).
b. Measure ``elapsed`` from the last time the task was seen ``created`` (the submit's answer is
   the first sighting): a queued task is then checked once per ``early`` seconds until it runs,
   and the window is aimed at its processing, not at its queueing. History records processing
   times.
c. A 429 on the submit makes every submit of this client wait for ``Retry-After`` (one gate
   for the client, not one retry timer per task), with no overall 120-s limit: a 429 means the
   task was not created, so waiting longer can never pay twice.
d. The journal is written when a task's state changes, not after every check: each write is a
   SQLite commit with ``synchronous = FULL`` on the event loop (p99 about 10 ms under load), and
   most checks only find the task still ``processing``.

It also holds the theory: ``optimal_mean_e`` finds, by dynamic programming, the smallest mean
poll efficiency E any schedule with checks >= 5 s apart can reach on a duration distribution.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from wavenb._client import AsyncClient, Update, _eta, _notify, _timed_out
from wavenb._exceptions import PredictionFailed, RateLimitError
from wavenb._models import Prediction, Status
from wavenb._polling import REAL_API, Expectation, PollPolicy


@dataclass(frozen=True, slots=True)
class ProposedPolicy(PollPolicy):
    """``PollPolicy`` with change (a): a gentle back-off past the window."""

    def next_delay(self, elapsed: float, expected: Expectation | None, rand: float = 0.5) -> float:
        if expected is None or elapsed <= expected.late:
            return PollPolicy.next_delay(self, elapsed, expected, rand)
        base = self.min_interval + self.growth * (elapsed - expected.late)  # (a)
        base = min(max(base, self.min_interval), self.max_interval)
        spread = 1.0 + self.jitter * (2.0 * rand - 1.0)
        return max(self.min_interval, base * spread)


def proposed(scale: float = 1.0) -> ProposedPolicy:
    """The proposed real-API policy (same numbers as ``REAL_API``), time-scaled."""
    policy = ProposedPolicy(
        min_interval=REAL_API.min_interval,
        first_delay=REAL_API.first_delay,
        growth=REAL_API.growth,
        max_interval=REAL_API.max_interval,
        jitter=REAL_API.jitter,
    )
    return replace(
        policy,
        min_interval=policy.min_interval * scale,
        first_delay=policy.first_delay * scale,
        max_interval=policy.max_interval * scale,
    )


class ProposedClient(AsyncClient):
    """``AsyncClient`` with changes (b), (c) and (d). ``_wait`` is the library's, plus the marked
    lines; ``_request`` adds the submit gate; ``_record_state`` skips unchanged states."""

    SUBMIT_RETRIES = 50
    """A bound on 429s met by one submit (each waits Retry-After; nothing is created)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._submit_gate = 0.0  # (c) no submit of this client before this monotonic time
        self._gate_lock = asyncio.Lock()  # (c) while rate-limited, submits go one at a time
        self._journaled: dict[str, tuple[object, ...]] = {}  # (d) last state written per task

    def _record_state(self, prediction: Prediction) -> None:
        """(d) Write a task's state to the journal only when it changed: a check that finds the
        task still ``processing`` costs no SQLite commit (an fsync) on the event loop."""
        state = (prediction.status, prediction.outputs, prediction.error)
        if self._journaled.get(prediction.id) == state:
            return
        self._journaled[prediction.id] = state
        super()._record_state(prediction)

    async def _request(self, method: str, path: str, *, paid: bool = False, **kwargs: Any) -> Any:
        if not paid:
            return await super()._request(method, path, **kwargs)
        for _ in range(self.SUBMIT_RETRIES):  # (c)
            try:
                if self._submit_gate <= time.monotonic() and not self._gate_lock.locked():
                    return await super()._request(method, path, paid=True, **kwargs)
                async with self._gate_lock:
                    await asyncio.sleep(max(0.0, self._submit_gate - time.monotonic()))
                    return await super()._request(method, path, paid=True, **kwargs)
            except RateLimitError as error:
                wait = error.retry_after if error.retry_after is not None else 5.0
                self._submit_gate = max(self._submit_gate, time.monotonic() + wait)
        return await super()._request(method, path, paid=True, **kwargs)

    async def _wait(
        self,
        prediction: Prediction | str,
        timeout: float | None,
        on_update: Any,
        policy: PollPolicy,
    ) -> Prediction:
        deadline = None if timeout is None else time.monotonic() + timeout
        if isinstance(prediction, Prediction):
            current = prediction
        else:
            current = Prediction(prediction, "", Status.UNKNOWN)
            current = await self._check(current, deadline, timeout)
        started = self._submitted_at.get(current.id) or self._first_seen.get(
            current.id, time.monotonic()
        )
        running_since = started  # (b) when the task was last seen queued
        stats = self.durations
        checks, delay = 0, 0.0
        while not current.terminal:
            if checks and current.status in (Status.CREATED, Status.PENDING):  # (b)
                running_since = time.monotonic()  # (b) still queued: its run has not begun
            elapsed = time.monotonic() - started
            running = time.monotonic() - running_since  # (b)
            delay = policy.next_delay(running, stats.expectation(), random.random())  # (b)
            if deadline is not None and time.monotonic() + delay > deadline:
                delay = max(0.0, deadline - time.monotonic())
            await _notify(on_update, Update(current, elapsed, checks, delay, _eta(stats, running)))
            await asyncio.sleep(delay)
            current = await self._check(current, deadline, timeout)
            checks += 1
            if not current.terminal and deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(current, timeout)
        elapsed = time.monotonic() - started
        await _notify(on_update, Update(current, elapsed, checks, None, 0.0))
        if current.id in self._submitted_at and current.status.succeeded:
            # The task ended somewhere within the last interval: count the middle of it.
            stats.add(time.monotonic() - running_since - delay / 2)  # (b) its run, not its queue
        if not current.status.succeeded:
            reason = current.error or "no reason given"
            raise PredictionFailed(f"task {current.id} {current.status.value}: {reason}", current)
        if not current.outputs:
            raise PredictionFailed(f"task {current.id} completed without outputs", current)
        return current


# --------------------------------------------------------------------------- theory


def optimal_mean_e(
    low: float = 10.0, high: float = 90.0, min_gap: float = 5.0, step: float = 0.25
) -> dict[str, float]:
    """Smallest mean E = polls * lag / (T / 2) over all check schedules with gaps >= ``min_gap``,
    for T uniform on [low, high]; by dynamic programming on a ``step``-second grid.

    Also returns the mean lag and polls of that optimal schedule, and its check times.
    """
    grid = np.arange(0.0, high + min_gap + step, step)
    n = len(grid)
    density = 1.0 / (high - low)

    def mass(start: float, check: float) -> float:
        """Integral over T in (start, check] of (check - T) / T * density."""
        lo, hi = max(start, low), min(check, high)
        if hi <= lo:
            return 0.0
        return (check * math.log(hi / lo) - (hi - lo)) * density

    gap = round(min_gap / step)
    max_checks = int((high - 0) / min_gap) + 2
    # value[k][i]: best expected cost from "checked at grid[i], not done, k checks made".
    inf = float("inf")
    value = np.full((max_checks + 2, n), inf)
    choice = np.full((max_checks + 2, n), -1, dtype=int)
    area = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            area[i, j] = mass(grid[i], grid[j])
    for k in range(max_checks, -1, -1):
        for i in range(n):
            if grid[i] >= high:
                value[k, i], choice[k, i] = 0.0, -1
                continue
            first = i + (gap if k > 0 else 1)
            if first >= n:
                continue
            js = np.arange(first, n)
            following = value[k + 1, js] if k + 1 <= max_checks else np.full(len(js), inf)
            following = np.where(grid[js] >= high, 0.0, following)
            costs = 2.0 * (k + 1) * area[i, js] + following
            best = int(np.argmin(costs))
            value[k, i], choice[k, i] = costs[best], js[best]
    checks, k, i = [], 0, 0
    while choice[k, i] >= 0:
        i = choice[k, i]
        checks.append(float(grid[i]))
        k += 1
    lags, polls = [], []
    for t in np.linspace(low, high, 2001):
        index = next(idx for idx, c in enumerate(checks) if c >= t)
        lags.append(checks[index] - t)
        polls.append(index + 1)
    return {
        "mean_E": float(value[0, 0]),
        "mean_lag": float(np.mean(lags)),
        "median_lag": float(np.median(lags)),
        "mean_polls": float(np.mean(polls)),
        "checks": checks,
    }


def simulate(
    policy: PollPolicy,
    history: list[float],
    durations: list[float],
    seed: int = 0,
) -> dict[str, float]:
    """Run a policy on known durations (no queueing) against a fixed history; lag/polls/E."""
    from wavenb._polling import DurationStats

    rng = random.Random(seed)
    stats = DurationStats()
    for seconds in history:
        stats.add(seconds)
    lags, polls, es = [], [], []
    for duration in durations:
        t, count = 0.0, 0
        while True:
            t += policy.next_delay(t, stats.expectation(), rng.random())
            count += 1
            if t >= duration:
                break
        lags.append(t - duration)
        polls.append(count)
        es.append(count * (t - duration) / (duration / 2))
    return {
        "lag_p50": float(np.median(lags)),
        "lag_p95": float(np.percentile(lags, 95)),
        "polls": float(np.mean(polls)),
        "E_median": float(np.median(es)),
        "E_mean": float(np.mean(es)),
    }
