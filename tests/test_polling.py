"""The poll schedule: etiquette kept, aimed at when past runs finished."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from wavenb.core.polling import REAL_API, SANDBOX, TESTING, DurationStats, Expectation


def schedule(expected: Expectation | None, until: float) -> list[float]:
    """The check times from 0 to ``until`` with no jitter."""
    times, now = [], 0.0
    while now < until:
        now += REAL_API.next_delay(now, expected, rand=0.5)
        times.append(now)
    return times


@given(
    st.floats(0, 10_000),
    st.floats(0, 1, exclude_max=True),
    st.none() | st.tuples(st.floats(0, 500), st.floats(0, 500)),
)
def test_real_api_never_checks_faster_than_every_5_seconds(elapsed, rand, window):
    expected = None if window is None else Expectation(min(window), max(window))
    delay = REAL_API.next_delay(elapsed, expected, rand)
    assert 5.0 <= delay <= REAL_API.max_interval * (1 + REAL_API.jitter)


def test_without_history_intervals_grow():
    times = schedule(None, 300)
    gaps = [b - a for a, b in pairwise(times)]
    assert times[0] == REAL_API.first_delay
    assert gaps == sorted(gaps)
    assert gaps[-1] == REAL_API.max_interval


def test_with_history_it_waits_for_the_window_then_checks_densely():
    times = schedule(Expectation(early=40, late=60), 60)
    # Never silent longer than max_interval (a task may fail early), then on time at 40 s.
    assert times[:2] == [REAL_API.max_interval, 40]
    assert all(b - a == 5.0 for a, b in pairwise(times[1:]))


def test_with_history_fewer_checks_and_no_more_lag_than_fixed_5s():
    """Against fixed 5 s polling on a 55 s task: far fewer checks, same worst-case lag."""
    informed = schedule(Expectation(early=40, late=60), 55)
    fixed = [5.0 * k for k in range(1, 12)]
    assert len(informed) <= len(fixed) // 2
    assert informed[-1] - 55 <= 5.0


def test_beyond_the_window_it_backs_off():
    assert REAL_API.next_delay(61, Expectation(40, 60), 0.5) == REAL_API.min_interval + REAL_API.growth
    later = REAL_API.next_delay(100, Expectation(40, 60), 0.5)
    assert later == REAL_API.min_interval + REAL_API.growth * 40
    assert REAL_API.next_delay(1000, Expectation(40, 60), 0.5) == REAL_API.max_interval


def test_jitter_spreads_checks():
    low, high = REAL_API.next_delay(100, None, 0.0), REAL_API.next_delay(100, None, 0.99)
    assert low < high


def test_testing_policy_never_waits():
    assert TESTING.next_delay(0, None) == 0.0
    assert TESTING.next_delay(1000, Expectation(1, 2), 0.9) == 0.0


def test_sandbox_policy_is_quick_but_not_spinning():
    assert 0 < SANDBOX.next_delay(0, None) <= 1.0


def test_duration_stats_need_a_few_runs():
    stats = DurationStats()
    assert stats.expectation() is None and stats.typical() is None
    for seconds in (30, 40, 50, 60, 70):
        stats.add(seconds)
    expectation = stats.expectation()
    assert expectation is not None
    assert 30 <= expectation.early < expectation.late <= 70
    assert stats.typical() == 50
    stats.add(-1)
    assert len(stats) == 5


def test_first_check_after_submit_waits_the_first_delay():
    """Elapsed is never exactly 0 after the submit answer: the first check is still the first."""
    assert REAL_API.next_delay(0.2, None, 0.5) == REAL_API.first_delay
    assert REAL_API.next_delay(REAL_API.min_interval + 1, None, 0.5) == REAL_API.min_interval
