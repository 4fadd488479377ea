"""Submit pacing: a batch under a submit cap meets few 429s and finishes when the cap allows.

Every test runs ``SubmitPacer`` against a simulated rate-limited server in virtual time: a
batch of submitters, each asking the pacer before every attempt, a round trip per request,
and a server that counts arrivals in a sliding or fixed window (with or without Retry-After).
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

import pytest

from wavenb.core.pacing import SubmitPacer

MINUTE = 60.0


@dataclass
class CappedServer:
    """At most ``limit`` accepted submits per ``window`` s: sliding, or fixed from ``anchor``."""

    limit: int | None
    window: float = MINUTE
    fixed: bool = False
    anchor: float = 0.0
    retry_after: bool = True
    hiccups: float = 0.0
    """A share of submits refused at random (no cap behind it), Retry-After 0 or none."""
    arrivals: list[float] = field(default_factory=list)
    refused: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311

    def arrive(self, t: float) -> tuple[bool, float | None]:
        """(accepted, Retry-After) for a submit arriving at ``t``."""
        if self.hiccups and self.rng.random() < self.hiccups:
            self.refused += 1
            return False, (0.0 if self.rng.random() < 0.5 else None)
        if self.limit is None:
            self.arrivals.append(t)
            return True, None
        if self.fixed:
            start = self.anchor + math.floor((t - self.anchor) / self.window) * self.window
            counted = [a for a in self.arrivals if a >= start]
            free_at = start + self.window
        else:
            counted = [a for a in self.arrivals if a > t - self.window]
            free_at = (counted[0] + self.window) if counted else t
        if len(counted) < self.limit:
            self.arrivals.append(t)
            return True, None
        self.refused += 1
        wait = max(1, math.ceil(free_at - t)) if self.retry_after else None
        return False, wait


def run_batch(
    pacer: SubmitPacer,
    server: CappedServer,
    n: int,
    *,
    rtt: float = 0.2,
    pool: int = 32,
    start: float = 0.0,
    until: float = math.inf,
) -> list[float]:
    """``n`` submitters wanting to submit at ``start``; returns accepted arrival times.

    At most ``pool`` requests are out at once (the client's connection pool).
    """
    events: list[tuple[float, int, str, int, object]] = []
    order = 0

    def push(t: float, kind: str, who: int, payload: object = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, kind, who, payload))

    for who in range(n):
        push(start, "try", who)
    out = 0
    waiting_for_pool: list[int] = []
    accepted: list[float] = []
    while events:
        t, _, kind, who, payload = heapq.heappop(events)
        if t > until:
            break
        if kind == "try":
            wait = pacer.delay(t)
            assert math.isfinite(wait), "delay must always be finite"
            if wait > 0:
                push(t + wait, "try", who)
            elif out >= pool:
                waiting_for_pool.append(who)
            else:
                out += 1
                pacer.sent(t)
                push(t + rtt / 2, "arrive", who)
        elif kind == "arrive":
            push(t + rtt / 2, "answer", who, server.arrive(t))
        else:
            out -= 1
            if waiting_for_pool:
                push(t, "try", waiting_for_pool.pop(0))
            ok, retry_after = payload  # type: ignore[misc]
            if ok:
                pacer.accepted(t)
                accepted.append(t - rtt / 2)
            else:
                pacer.limited(t, retry_after)
                push(t, "try", who)
    return accepted


def ideal_makespan(n: int, limit: int, window: float, *, fixed: bool, anchor: float) -> float:
    """Last arrival - first, each submit arriving as early as the cap allows (no round trip)."""
    if not fixed:
        return (math.ceil(n / limit) - 1) * window
    first_boundary = anchor + (math.floor((0 - anchor) / window) + 1) * window
    return first_boundary + (math.ceil(n / limit) - 2) * window


CASES = [
    pytest.param(False, 0.0, True, id="sliding, Retry-After"),
    pytest.param(False, 0.0, False, id="sliding, no Retry-After"),
    pytest.param(True, 20.0, True, id="fixed from 20 s, Retry-After"),
    pytest.param(True, 45.0, True, id="fixed from 45 s, Retry-After"),
    pytest.param(True, 59.0, True, id="fixed from 59 s, Retry-After"),
]


@pytest.mark.parametrize(("fixed", "anchor", "retry_after"), CASES)
def test_a_batch_at_ten_a_minute_meets_at_most_two_429s_and_no_delay(fixed, anchor, retry_after):
    server = CappedServer(10, fixed=fixed, anchor=anchor, retry_after=retry_after)
    pacer = SubmitPacer()
    accepted = run_batch(pacer, server, 100)
    assert len(accepted) == 100
    assert server.refused <= 2
    makespan = max(accepted) - min(accepted)
    ideal = ideal_makespan(100, 10, MINUTE, fixed=fixed, anchor=anchor)
    assert makespan <= 1.05 * ideal
    assert pacer.limit == 10


def test_a_fixed_window_without_retry_after_is_paced_as_a_sliding_one():
    """No Retry-After: the window's phase cannot be known without spending 429s, so the pacer
    keeps the sliding-window schedule, which a fixed window always accepts: still at most two
    429s, and the makespan is the cap's 9 minutes (the phase-aware ideal is 8 minutes plus the
    time to the first boundary)."""
    server = CappedServer(10, fixed=True, anchor=30.0, retry_after=False)
    accepted = run_batch(SubmitPacer(), server, 100)
    assert len(accepted) == 100
    assert server.refused <= 2
    assert max(accepted) - min(accepted) <= 1.05 * ideal_makespan(100, 10, MINUTE, fixed=False, anchor=0)


def test_the_bronze_cap_is_learnt_with_one_or_two_429s():
    server = CappedServer(2)
    pacer = SubmitPacer()
    accepted = run_batch(pacer, server, 8)
    assert len(accepted) == 8
    assert server.refused <= 2
    assert pacer.limit == 2
    assert max(accepted) - min(accepted) <= 1.05 * ideal_makespan(8, 2, MINUTE, fixed=False, anchor=0)


def test_an_account_with_no_cap_is_not_held_back():
    """1,000 submits with no cap: no 429, and no slower than the connection pool allows, give
    or take the few round trips of the opening ramp."""
    rtt, pool = 0.2, 32
    server = CappedServer(None)
    accepted = run_batch(SubmitPacer(), server, 1000, rtt=rtt, pool=pool)
    assert len(accepted) == 1000
    assert server.refused == 0
    pool_only = math.ceil(1000 / pool) * rtt
    assert max(accepted) <= pool_only + 15 * rtt


def test_random_429s_with_no_cap_behind_them_do_not_throttle_a_batch():
    """One submit in ten refused at random (Retry-After 0 or none), no cap: the batch is
    slowed by its short back-offs only, and no cap is believed for long."""
    server = CappedServer(None, hiccups=0.1)
    pacer = SubmitPacer()
    accepted = run_batch(pacer, server, 300)
    assert len(accepted) == 300
    assert max(accepted) < 3 * MINUTE


def test_a_raised_cap_is_found_by_probing():
    """10 a minute for the first 20 minutes, then 20: within 15 more minutes the pacer submits
    at the new cap, having met only a handful of 429s."""
    server = CappedServer(10)
    pacer = SubmitPacer()
    run_batch(pacer, server, 200, until=20 * MINUTE)
    server.limit = 20
    before = server.refused
    accepted = run_batch(pacer, server, 600, start=20 * MINUTE, until=40 * MINUTE)
    late = [t for t in accepted if t >= 35 * MINUTE]
    assert len(late) >= 0.9 * 20 * 5  # 5 minutes at ~20 a minute
    assert server.refused - before <= 6
    assert pacer.limit is not None and pacer.limit >= 18


def test_a_lowered_cap_is_followed():
    server = CappedServer(20)
    pacer = SubmitPacer()
    run_batch(pacer, server, 60, until=5 * MINUTE)
    assert pacer.limit == 20
    server.limit = 5
    server.arrivals.clear()
    run_batch(pacer, server, 40, start=5 * MINUTE)
    assert pacer.limit is not None and pacer.limit <= 5


def test_retry_after_is_always_honoured():
    pacer = SubmitPacer()
    pacer.sent(0.0)
    pacer.limited(0.1, 42.0)
    assert pacer.delay(0.2) == pytest.approx(41.9)
    assert pacer.refused == 1


def test_an_unanswered_submit_is_counted_after_a_while():
    """A submit the caller never reported (it timed out, say) may have been taken: it is
    counted against the cap, and it does not block others forever."""
    pacer = SubmitPacer(start=1)
    pacer.sent(0.0)
    assert pacer.delay(1.0) > 0  # waiting for that answer
    assert pacer.delay(200.0) == 0.0


def test_a_dropped_submit_frees_its_place():
    pacer = SubmitPacer(start=1)
    pacer.sent(0.0)
    pacer.dropped(0.1)
    assert pacer.delay(0.1) == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="window"):
        SubmitPacer(window=0)
