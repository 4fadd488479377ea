"""What the bench taught wavenb's polling (now merged into the library), and its theory.

What the figures showed about the schedule as shipped (``REAL_API``, ``DurationStats``):

1. After the 90th percentile of past durations the next wait is ``growth * elapsed`` (about
   22 s at 90 s, up to 30 s): the slowest tenth of jobs is found 10-30 s late (lag p95).
2. ``elapsed`` counts from the submit, also while a task waits in ``created`` for a slot: a
   queued task burns its whole window of 5-s checks while still queued, then backs off, and
   its queue time pollutes the history of durations.
3. The submit's 429 retries give up after 120 s (stamina ``timeout``): at a real cap of n a
   minute, a batch of more than about 3n submissions loses tasks (accepted < asked).

The proposal, first prototyped here as a subclass and measured, then merged into
``wavenb._polling`` and ``wavenb._client`` (so the bench now measures it as shipped):

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

import math
import random

import numpy as np
from wavenb.core.polling import PollPolicy


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
    from wavenb.core.polling import DurationStats

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
