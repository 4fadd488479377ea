"""When the next paid submit may go: learning an account's submit cap from its 429s, pure.

WaveSpeed caps video submissions per minute by account level (2 a minute on Bronze, 500 on
Silver...) and answers a 429 beyond the cap, with or without ``Retry-After``. A batch that
sends everything at once meets a 429 for every submit over the cap, and each retry on its own
timer meets more. ``SubmitPacer`` instead learns the cap from the first 429 (how many were
accepted in the window when it came) and then sends each submit as soon as the cap allows:
one window after the submit that used the slot, or at the next boundary of a fixed window
(recognised when ``Retry-After`` points there). Until a cap is known, submits go out two at a
time, more with every acceptance (a fifth, then half, then all of those accepted in the window
may be out at once), so crossing a small cap costs at most a couple of 429s, and an account
with no cap is held back only by that ramp: about a dozen round trips over a batch of 1,000. A
learnt cap is tried one higher after many windows spent at it, so a raised account level is
found; a lone 429 with a short or no ``Retry-After`` is waited out without learning anything
(a hiccup is not a cap), and a cap that a later acceptance contradicts is forgotten.

Pure: every method takes the time (``now``, seconds on any monotonic clock) and nothing
sleeps. The caller's loop, for each paid submit (a 429 means nothing was created, so sending
again after it can never pay twice)::

    while True:
        while (wait := pacer.delay(clock())) > 0:   # ask again after every wait: others
            await sleep(wait)                       # waiting too may have gone meanwhile
        pacer.sent(clock())
        try:
            prediction = await send()
        except RateLimitError as error:
            pacer.limited(clock(), error.retry_after)
            continue
        except CertainlyNotSent:      # refused before it counted (4xx, no connection)
            pacer.dropped(clock())
            raise
        pacer.accepted(clock())        # also when unsure whether it was taken
        return prediction
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque
from typing import Final

__all__ = ["SubmitPacer"]

_STALE: Final = 120.0
"""An outstanding submit unanswered this long (s) is counted as accepted: the caller did not
say how it ended, and a submit that may have been taken must be counted."""


class SubmitPacer:
    """Paces paid submits under an account's submit cap (submissions per ``window`` s).

    Args:
        window: the cap's window in seconds (WaveSpeed's are per minute). A ``Retry-After``
            pointing later than this window allows makes the pacer use a longer one.
        start: submits allowed out at once before any cap is known.
        probe_after: after about this many windows' worth of submits at the learnt cap with no
            429, one more than the cap is tried in a window (a raised account level).
    """

    def __init__(self, window: float = 60.0, *, start: int = 2, probe_after: int = 10) -> None:
        if window <= 0 or start < 1 or probe_after < 1:
            raise ValueError("window must be positive; start and probe_after at least 1")
        self.window = window
        self.start = start
        self.probe_after = probe_after
        self.limit: int | None = None
        """The learnt cap (submissions per window); ``None`` until a 429 teaches it."""
        self.anchor: float | None = None
        """A boundary of the server's window, once ``Retry-After`` showed it is fixed."""
        self.refused = 0
        """429s met so far."""
        self._in_flight: deque[float] = deque()
        self._accepted: list[float] = []
        """Send times of accepted submits of the last two windows, in order."""
        self._not_before = 0.0
        self._backoff = 0.0
        self._since_change = 0
        self._probe_step = 0
        self._probe_every = probe_after
        self._round_trip: float | None = None
        self._learnt_at = -math.inf
        self._refused_in_a_row = 0

    # -- asking ------------------------------------------------------------------------------

    def delay(self, now: float) -> float:
        """Seconds to wait before the next submit may be sent (0: now); always finite.

        When the next submit must wait for an outstanding one's answer, the delay is when that
        answer is expected (from the answers' round trips so far): ask again then.
        """
        self._forget(now)
        wait = max(0.0, self._not_before - now)
        if self.limit is None:
            # After a 429 that taught nothing, one submit at a time until one is accepted.
            allowance = 1 if self._refused_in_a_row else self._allowance()
            if len(self._in_flight) >= allowance:
                return max(wait, self._answer_expected(now))
            return wait
        limit = self.limit + self._probe_step
        if self.anchor is not None:
            return max(wait, self._fixed_wait(now, limit))
        used = len(self._accepted) + len(self._in_flight)
        if used < limit:
            return wait
        # The slot this submit needs is freed when the submit that used it leaves the window:
        # the (used - limit)-th oldest of ours (both lists are in time order).
        merged = heapq.merge(self._accepted, self._in_flight)
        oldest = next(itertools.islice(merged, used - limit, None))
        return max(wait, oldest + self.window + self._margin() - now)

    # -- telling ----------------------------------------------------------------------------

    def sent(self, now: float) -> None:
        """A submit was sent at ``now``."""
        self._in_flight.append(now)

    def accepted(self, now: float) -> None:
        """The oldest outstanding submit was accepted (or its fate is unknown: count it)."""
        sent = self._answered(now)
        bisect.insort(self._accepted, sent)
        self._forget(now)
        self._backoff = 0.0
        self._refused_in_a_row = 0
        if (
            self.limit is not None
            and not self._probe_step
            and sent <= self._learnt_at
            and self._counted(now) > self.limit
        ):
            # Sent before the cap was learnt, taken beyond it: those 429s were hiccups, not
            # a cap. Forget it (and its wait) and ramp up again.
            self.limit, self.anchor = None, None
            self._not_before = min(self._not_before, now)
            return
        self._since_change += 1
        if self.limit is None or self._probe_step == 0:
            if self.limit is not None and self._since_change >= self._probe_every * self.limit:
                self._probe_step = 1  # try one more in a window
            return
        counted = self._counted(now)
        if counted > self.limit:  # the probe got through: the cap is higher; try further
            self.limit = counted
            self._probe_step *= 2
            self._since_change = 0
            self._probe_every = self.probe_after

    def limited(self, now: float, retry_after: float | None) -> None:
        """The oldest outstanding submit got a 429 (nothing was created).

        A 429 teaches the cap (how many of ours the window holds now) when it is clear
        evidence of one: a ``Retry-After`` of a quarter window or more, or, with no
        ``Retry-After``, a second 429 with no acceptance in between (a cap refuses everything
        until a slot frees). A short ``Retry-After`` is waited out; a lone 429 without one, as
        a short back-off, the next submit going alone. A cap learnt from 429s that a submit
        sent before them then gets past was a hiccup's: it is forgotten.
        """
        sent = self._answered(now)
        self.refused += 1
        self._forget(now)
        counted = self._counted(now)
        strong = retry_after is not None and retry_after >= self.window / 4
        # A short Retry-After says a slot frees soon: wait it out, there is nothing to learn.
        # Without one, a second 429 in a row is the mark of a cap.
        evidence = strong or (retry_after is None and self._refused_in_a_row > 0)
        if retry_after is None:
            self._refused_in_a_row += 1
        if evidence and sent > self._learnt_at:
            self._learn(counted)
            self._learnt_at = now
            self._since_change = 0
        freed = self._freed_at(now)
        if retry_after is not None and retry_after >= 0:
            back = now + retry_after
            if evidence:
                self._learn_window(sent, back, freed)
            self._not_before = max(self._not_before, back)
        elif evidence and freed is not None:
            self._not_before = max(self._not_before, freed + self._margin())
        else:
            # A hiccup, or nothing of ours in the window to wait out: back off, briefly.
            self._backoff = min(self.window, max(self._backoff * 2, self.window / 12))
            self._not_before = max(self._not_before, now + self._backoff)

    def _learn(self, counted: int) -> None:
        if self._probe_step:
            # A failed probe: the cap is what got through; probe again much later.
            self._probe_every *= 2
            self._probe_step = 0
            self.limit = max(1, min(self.limit or counted, counted or 1))
        elif self.limit is None:
            self.limit = counted or None  # none of ours counted: another client used the cap
        elif counted < self.limit:
            self.limit = max(1, counted)  # the cap went down, or another client shares it
        else:
            # Refused at the learnt cap: a fixed window we straddled when learning it.
            self.limit = max(1, self.limit - 1)

    def dropped(self, now: float) -> None:
        """The oldest outstanding submit ended without counting: it frees its place.

        For a submit refused for another reason than the cap, or never sent at all.
        """
        if self._in_flight:
            self._in_flight.popleft()
        self._forget(now)

    # -- internals ---------------------------------------------------------------------------

    def _answered(self, now: float) -> float:
        """Take the oldest outstanding submit off the list; note its round trip; its send time."""
        sent = self._in_flight.popleft() if self._in_flight else now
        trip = max(0.0, now - sent)
        self._round_trip = trip if self._round_trip is None else 0.8 * self._round_trip + 0.2 * trip
        return sent

    def _answer_expected(self, now: float) -> float:
        """Seconds until the oldest outstanding submit's answer is due (never 0)."""
        trip = self._round_trip if self._round_trip is not None else 0.1
        oldest = self._in_flight[0] if self._in_flight else now
        return max(oldest + trip - now, trip / 4, 1e-3)

    def _margin(self) -> float:
        # Send a hair after a slot frees: the server counts arrival, a little after our send.
        return 0.005 * self.window

    def _allowance(self) -> int:
        """Submits allowed out at once while no cap is known.

        A fifth of those accepted in the window while a small cap is likely (crossing one then
        costs a 429 or two), then half, then all (doubling every round trip: an account with
        no cap is not held back).
        """
        accepted = len(self._accepted)
        if accepted < 20:  # noqa: PLR2004
            return max(self.start, accepted // 5)
        return accepted // 2 if accepted < 100 else accepted  # noqa: PLR2004

    def _counted(self, now: float) -> int:
        """Accepted submits the server still counts at ``now`` (in the current window)."""
        if self.anchor is not None:
            start = self._window_start(now)
            return len(self._accepted) - bisect.bisect_left(self._accepted, start)
        return len(self._accepted) - bisect.bisect_right(self._accepted, now - self.window)

    def _freed_at(self, now: float) -> float | None:
        """When the oldest counted submit leaves the window (sliding), or the window ends."""
        if self.anchor is not None:
            return self._window_start(now) + self.window
        first = bisect.bisect_right(self._accepted, now - self.window)
        return self._accepted[first] + self.window if first < len(self._accepted) else None

    def _learn_window(self, sent: float, back: float, freed: float | None) -> None:
        """Compare ``Retry-After`` with what a sliding window would say."""
        if freed is None or self.anchor is not None:
            return
        slack = 1.0 + self._margin()  # Retry-After is whole seconds, rounded up
        if back < freed - slack:
            # Capacity comes back before our oldest submit leaves: a fixed window ends there.
            self.anchor = back
        elif back > freed + slack and back - sent < 4 * self.window:
            self.window += back - freed

    def _window_start(self, now: float) -> float:
        assert self.anchor is not None  # noqa: S101  (fixed windows only)
        return self.anchor + math.floor((now - self.anchor) / self.window) * self.window

    def _fixed_wait(self, now: float, limit: float) -> float:
        start = self._window_start(now)
        used = sum(1 for t in (*self._accepted, *self._in_flight) if t >= start)
        if used < limit:
            return 0.0
        return start + self.window + self._margin() - now

    def _forget(self, now: float) -> None:
        while self._in_flight and self._in_flight[0] < now - _STALE:
            bisect.insort(self._accepted, self._in_flight.popleft())  # never told: count it
        old = bisect.bisect_left(self._accepted, now - 2 * self.window)
        if old:
            del self._accepted[:old]
