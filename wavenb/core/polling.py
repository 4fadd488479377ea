"""When to check a task again: a pure schedule, and what past runs teach it.

The provider asks for at least 5 s between result checks of a video task, with increasing
intervals. A fixed interval wastes either requests (short) or time after completion (long):
whatever the interval, polls x lag stays about the same. What beats it is knowing when the
task will probably finish. So the schedule keeps quiet while completion is unlikely, checks at
the minimum interval through the window where past runs finished, and backs off (intervals
growing with the time already waited) when a run takes longer than anything seen before.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, replace
from typing import Final

__all__ = ["REAL_API", "SANDBOX", "TESTING", "DurationStats", "Expectation", "PollPolicy"]


@dataclass(frozen=True, slots=True)
class Expectation:
    """The window in which a task will probably finish, in seconds since submit."""

    early: float
    """Few past runs finished before this (about the 10th percentile)."""
    late: float
    """Few past runs finished after this (about the 90th percentile)."""


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often to check one task. Delays are seconds; ``next_delay`` is pure.

    Attributes:
        min_interval: never check the same task more often than this.
        first_delay: the first check after submitting, when nothing is expected yet.
        growth: with no expectation, the next wait is this fraction of the time waited so far
            (so intervals grow with the wait), clamped to ``[min_interval, max_interval]``.
        max_interval: never wait longer than this between checks.
        jitter: a random share (+/-) added to each wait, so many tasks don't check in step.
    """

    min_interval: float
    first_delay: float
    growth: float
    max_interval: float
    jitter: float = 0.1

    def next_delay(self, elapsed: float, expected: Expectation | None, rand: float = 0.5) -> float:
        """Seconds to wait before the next check of a task submitted ``elapsed`` seconds ago.

        ``rand`` is a number in [0, 1) that drives the jitter (0.5 = none), so the caller owns
        randomness and tests can pin it.
        """
        if expected is None:
            # "Just submitted" is any moment before the first interval has passed.
            first = elapsed < self.min_interval
            base = self.first_delay if first else self.growth * elapsed
        elif elapsed < expected.early:
            base = expected.early - elapsed
        elif elapsed <= expected.late:
            base = self.min_interval
        else:
            # Past the window, back off from min_interval, not from growth * elapsed (~22 s at
            # 90 s): the slowest tenth is then found a few seconds late, not 10-30 s late.
            base = self.min_interval + self.growth * (elapsed - expected.late)
        base = min(max(base, self.min_interval), self.max_interval)
        spread = 1.0 + self.jitter * (2.0 * rand - 1.0)
        return max(self.min_interval, base * spread)

    def scaled(self, factor: float) -> PollPolicy:
        """The same policy with every delay multiplied by ``factor`` (0 = never wait)."""
        return replace(
            self,
            min_interval=self.min_interval * factor,
            first_delay=self.first_delay * factor,
            max_interval=self.max_interval * factor,
        )


REAL_API: Final = PollPolicy(min_interval=5.0, first_delay=10.0, growth=0.25, max_interval=30.0)
"""The real API: the documented etiquette for video (>= 5 s between checks, growing)."""
SANDBOX: Final = PollPolicy(min_interval=0.25, first_delay=0.5, growth=0.25, max_interval=2.0)
"""A local sandbox: nobody to be polite to, but no point in spinning either."""
TESTING: Final = REAL_API.scaled(0.0)
"""No waiting at all: for tests replaying cassettes."""


class DurationStats:
    """Recent task durations (seconds from submit to completion), per backend.

    A few completed runs are enough to aim the checks; until then there is no expectation.
    """

    MIN_SAMPLES: Final = 3

    def __init__(self, size: int = 50) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        """Record one completed run's duration."""
        if seconds > 0:
            self._samples.append(seconds)

    def __len__(self) -> int:
        return len(self._samples)

    def expectation(self) -> Expectation | None:
        """The 10th-90th percentile window of past durations, once there are enough."""
        if len(self._samples) < self.MIN_SAMPLES:
            return None
        deciles = statistics.quantiles(self._samples, n=10, method="inclusive")
        return Expectation(early=deciles[0], late=deciles[-1])

    def typical(self) -> float | None:
        """The median duration, for ETAs; ``None`` with no samples."""
        return statistics.median(self._samples) if self._samples else None
