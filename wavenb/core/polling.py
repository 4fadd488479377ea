"""When to check a task again: a pure schedule, and a model of how long tasks take.

The provider asks for at least 5 s between result checks of a video task. A fixed interval
wastes either requests (short) or time after completion (long): whatever the interval, checks
x lag stays about the same. What beats it is knowing when the task will probably finish. So
``DurationStats`` forecasts a task's duration from recent runs, and ``PollPolicy`` plans the
checks on that forecast: by dynamic programming, the plan that minimises the expected poll
efficiency E = checks x lag / (duration / 2) with checks at least ``min_interval`` and at most
``max_interval`` apart (the smallest E any such schedule can reach, give or take the forecast's
error). Past the plan (a run slower than anything seen), intervals grow with the time waited.

How the two are used by a wait loop (``elapsed`` counts from the task's *reference*: its submit,
or the last check that found it still ``created``, i.e. queued behind the account's slots)::

    model = DurationStats()
    expected = model.expectation(ratio="16:9", since="submit")   # "start" once seen queued
    delay = policy.next_delay(elapsed, expected, rand)
    ...  # on completion, detected at check time t_done, the check before it at t_prev:
    model.observe(run_s=(t_prev - t_ref, t_done - t_ref), queued_s=t_ref - t_submit,
                  ratio="16:9")

The model forgets: observations weigh less the older they are (half-life ``half_life`` runs),
and drops the old ones when the recent ones are far likelier 2-3x faster or slower (a CUSUM of
likelihood ratios): narrow durations are followed within a few videos, wide ones (10-90 s)
within a few dozen (the first to finish after a change are its short ones; the rest still run).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import statistics
from collections import deque
from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = [
    "QUANTILE_LEVELS",
    "REAL_API",
    "SANDBOX",
    "TESTING",
    "DurationStats",
    "Expectation",
    "PollPolicy",
    "Since",
    "check_plan",
]

Since = Literal["submit", "start"]
"""What a forecast counts from: the submit, or the task's run start (its last sighting queued)."""

QUANTILE_LEVELS: Final = (0.02, 0.05, *(i / 20 for i in range(2, 19)), 0.95, 0.98)
"""The levels a forecast is described at (``Expectation.quantiles``)."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """When a task will probably finish, in seconds since its reference (submit or start)."""

    early: float
    """Few past runs finished before this (about the 10th percentile)."""
    late: float
    """Few past runs finished after this (about the 90th percentile)."""
    quantiles: tuple[float, ...] = ()
    """The forecast at ``QUANTILE_LEVELS`` (non-decreasing); empty when only the window is
    known. With them, ``PollPolicy`` plans its checks on the whole forecast."""

    @classmethod
    def from_quantiles(cls, quantiles: tuple[float, ...]) -> Expectation:
        """The expectation described by values at ``QUANTILE_LEVELS``.

        Raises:
            ValueError: not one value per level, or not non-decreasing and positive.
        """
        if len(quantiles) != len(QUANTILE_LEVELS):
            raise ValueError(f"need {len(QUANTILE_LEVELS)} quantiles, got {len(quantiles)}")
        if quantiles[0] <= 0 or any(b < a for a, b in itertools.pairwise(quantiles)):
            raise ValueError("quantiles must be positive and non-decreasing")
        levels = QUANTILE_LEVELS
        return cls(early=quantiles[levels.index(0.1)], late=quantiles[-3], quantiles=quantiles)

    def scaled(self, factor: float) -> Expectation:
        """The same forecast with every duration multiplied by ``factor``."""
        return Expectation(
            self.early * factor, self.late * factor, tuple(q * factor for q in self.quantiles)
        )

    def median(self) -> float:
        """The forecast's median (the window's middle when there are no quantiles)."""
        if self.quantiles:
            return self.quantiles[QUANTILE_LEVELS.index(0.5)]
        return (self.early + self.late) / 2


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often to check one task. Delays are seconds; ``next_delay`` is pure.

    Attributes:
        min_interval: never check the same task more often than this.
        first_delay: the first check after submitting, when nothing is expected yet.
        growth: with no expectation, the next wait is this fraction of the time waited so far
            (so intervals grow with the wait), clamped to ``[min_interval, max_interval]``.
            Past a plan's last check, intervals grow from ``min_interval`` at this rate.
        max_interval: never wait longer than this between checks (a task may fail early).
        jitter: a random share (+/-) added to unplanned waits, so tasks don't check in step.
        explore: the first planned check comes no later than this quantile of the forecast,
            so early finishers are still seen finishing (and a speed-up is noticed).
    """

    min_interval: float
    first_delay: float
    growth: float
    max_interval: float
    jitter: float = 0.1
    explore: float = 0.5

    def next_delay(self, elapsed: float, expected: Expectation | None, rand: float = 0.5) -> float:
        """Seconds to wait before the next check of a task whose reference was ``elapsed`` ago.

        ``rand`` is a number in [0, 1) that drives the jitter (0.5 = none), so the caller owns
        randomness and tests can pin it.
        """
        spread = 1.0 + self.jitter * (2.0 * rand - 1.0)
        if expected is not None and expected.quantiles and self.min_interval > 0:
            plan = check_plan(self, expected.quantiles)
            index = bisect.bisect_right(plan, elapsed + 1e-9)
            if index < len(plan):
                base = min(max(plan[index] - elapsed, self.min_interval), self.max_interval)
                # Planned checks are aimed: only a sliver of jitter (5 % of an interval), so
                # tasks submitted together still spread out.
                return max(self.min_interval, base + 0.05 * self.min_interval * (2 * rand - 1))
            last = plan[-1] if plan else expected.late
            base = self.min_interval + self.growth * max(0.0, elapsed - last)
        elif expected is None:
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


# --------------------------------------------------------------------------- the plan

_GRID_POINTS: Final = 96
"""At most about this many candidate check times per plan (keeps one plan under ~10 ms)."""


@functools.lru_cache(maxsize=256)
def check_plan(policy: PollPolicy, quantiles: tuple[float, ...]) -> tuple[float, ...]:  # noqa: PLR0912  (one dynamic program)
    """The check times (seconds since the reference) that minimise the expected E.

    E = checks x lag / (duration / 2), the duration distributed as ``quantiles`` (at
    ``QUANTILE_LEVELS``, linear in between), every check at least ``min_interval`` after the
    previous one (the first at least ``min_interval`` after the reference), none more than
    ``max_interval`` after it, the first no later than the ``explore`` quantile. A dynamic
    program over a grid of ``min_interval / 4`` (coarser for long forecasts); cached.
    """
    cdf = _Cdf(quantiles)
    gap_s, longest = policy.min_interval, max(policy.max_interval, policy.min_interval)
    # The plan covers the forecast up to its end, or _GRID_POINTS intervals if that is longer
    # (what ends later is found by the back-off past the plan).
    horizon = min(cdf.high, (_GRID_POINTS - 2) * gap_s)
    per_gap = 4
    while per_gap > 1 and (horizon + gap_s) / (gap_s / per_gap) > _GRID_POINTS:
        per_gap //= 2
    step = gap_s / per_gap
    n = math.ceil((horizon + gap_s) / step) + 1  # room for a last check after the last end
    grid = [step * i for i in range(n)]
    within = cdf(horizon)
    if within <= 0:
        # Every forecast end lies beyond what a plan covers (long tasks, a short interval):
        # nothing to aim at yet; the back-off past the forecast's window takes over.
        return ()
    done_mass = [min(1.0, cdf(t) / within) for t in grid]
    # over_t[i]: integral of f(T) / T from 0 to grid[i]; a cell's mass over its midpoint.
    over_t = [0.0] * n
    for i in range(1, n):
        over_t[i] = over_t[i - 1] + (done_mass[i] - done_mass[i - 1]) / (grid[i] - step / 2)
    gap = per_gap
    reach = max(gap, int(longest / step + 1e-9))
    max_checks = n // gap + 2
    inf = math.inf
    finished = [m >= 1.0 - 1e-9 for m in done_mass]
    # value[i]: least expected cost-to-go having checked at grid[i] with k checks made.
    value = [0.0 if f else inf for f in finished]
    choices: list[list[int]] = []
    for k in range(max_checks, 0, -1):
        weight = 2.0 * (k + 1)
        current, choice = [inf] * n, [-1] * n
        for i in range(n):
            if finished[i]:
                current[i] = 0.0
                continue
            base_t, base_m = over_t[i], done_mass[i]
            best, best_j = inf, -1
            for j in range(i + gap, min(n, i + reach + 1)):
                cost = weight * (grid[j] * (over_t[j] - base_t) - (done_mass[j] - base_m))
                cost += value[j]
                if cost < best:
                    best, best_j = cost, j
            current[i], choice[i] = best, best_j
        choices.append(choice)
        value = current
    choices.reverse()  # choices[k - 1][i]: the check after grid[i] when k checks are made
    latest_first = min(longest, max(gap_s, cdf.quantile(policy.explore)))
    best, first = inf, -1
    for j in range(gap, n):
        if grid[j] > latest_first + step / 2:
            break
        cost = 2.0 * (grid[j] * over_t[j] - done_mass[j]) + value[j]
        if cost < best:
            best, first = cost, j
    if first < 0:
        return ()
    plan, k, i = [grid[first]], 1, first
    while k <= len(choices) and choices[k - 1][i] >= 0:
        i = choices[k - 1][i]
        plan.append(grid[i])
        k += 1
    return tuple(round(t, 9) for t in plan)


class _Cdf:
    """A distribution function through points at ``QUANTILE_LEVELS``.

    Linear in between and in both tails (0 and 1 reached where the outer segments lead).
    """

    def __init__(self, quantiles: tuple[float, ...]) -> None:
        levels = QUANTILE_LEVELS
        xs = _increasing(list(quantiles))
        low = max(0.0, xs[0] - (xs[1] - xs[0]) * levels[0] / (levels[1] - levels[0]))
        high = xs[-1] + (xs[-1] - xs[-2]) * (1 - levels[-1]) / (levels[-1] - levels[-2])
        self.xs = [low, *xs, high]
        self.ps = [0.0, *levels, 1.0]
        self.high = high

    def __call__(self, t: float) -> float:
        xs, ps = self.xs, self.ps
        if t <= xs[0]:
            return 0.0
        if t >= xs[-1]:
            return 1.0
        k = bisect.bisect_right(xs, t) - 1
        return ps[k] + (ps[k + 1] - ps[k]) * (t - xs[k]) / (xs[k + 1] - xs[k])

    def quantile(self, p: float) -> float:
        xs, ps = self.xs, self.ps
        k = min(len(ps) - 2, max(0, bisect.bisect_right(ps, p) - 1))
        return xs[k] + (xs[k + 1] - xs[k]) * (p - ps[k]) / (ps[k + 1] - ps[k])


def _increasing(xs: list[float]) -> list[float]:
    """The values made strictly increasing (ties, e.g. identical durations, would be steps)."""
    out, floor = [], 1e-9
    for x in xs:
        out.append(max(x, floor))
        floor = out[-1] * (1 + 1e-9) + 1e-9
    return out


# --------------------------------------------------------------------------- the model

_NORMAL: Final = statistics.NormalDist()
_Z: Final = tuple(_NORMAL.inv_cdf(p) for p in QUANTILE_LEVELS)
_SIGMA_RANGE: Final = (0.02, 1.5)
"""The spread of log-durations the model will believe (2 % to 4.5x)."""
_NEGLIGIBLE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class _Seen:
    """One finished task: it ended within ``[low, high]`` s of its reference.

    ``low`` = 0: done by its first check; ``low == high``: an exact time.
    """

    index: int
    low: float
    high: float
    ratio: str | None


class _Store:
    """Observations counted from one reference (submit or start), and their fitted law."""

    def __init__(self, size: int) -> None:
        self.seen: deque[_Seen] = deque(maxlen=size)
        self.fit: tuple[float, float] | None = None
        """(mu, sigma) of the log-normal fitted to the observations."""
        self.logs: dict[int, float] = {}
        """Each observation's expected log-duration under the fit (for ratio factors)."""
        self.fresh = 0
        """Observations since the fit was last refreshed."""
        self.forget_before = 0
        """Observations before this index are from before a change of speed."""
        self.early = 1.0
        """The likelihood of the latest run of tasks done by their first check (low: faster?)."""
        self.cusum = dict.fromkeys(_SHIFTS, 0.0)
        """Per shift of the log-duration: a CUSUM of likelihood ratios, and where it began."""
        self.since = dict.fromkeys(_SHIFTS, 0)
        self.settling = 0
        """Runs still to come before the fit after a change of speed counts as settled."""


_SUSPICION_PRIOR: Final = 0.005
"""How likely a speed-up is, a priori, before a run of early endings makes it likelier."""
_SHIFTS: Final = (-1.1, -0.7, 0.7, 1.1)
"""The changes of speed watched for, as shifts of the log-duration (x0.33, x0.5, x2, x3; a
CUSUM for one shift also catches those near it; smaller drifts are followed by the half-life)."""
_LLR_CLIP: Final = 2.5
"""One run moves a CUSUM by at most this many nats, either way: one or two stuck tasks are not a
change of speed (three in a row are), and a straggler from before a change undoes only so much."""
_CUSUM_LIMIT: Final = 6.5
"""A CUSUM past this (the recent runs ~650x likelier under the shifted law) means the speed
changed: ~1 false alarm in a thousand stable runs (bench/schedules.py measures it)."""
_SETTLING: Final = 20
"""After a change of speed, the first this-many runs each refresh the fit, and its spread is
kept from before (a change of speed scales durations: the spread of their logs stays)."""
_FORGOTTEN: Final = 1e-4
"""The weight left to runs from before a change of speed (they must not pull the new fit back)."""
_OUTLIER: Final = 4.0
"""Observations further than this many sigmas from the fit count as if at that distance."""


class DurationStats:
    """A forecast of task durations from recent runs, per reference and aspect ratio.

    Durations are modelled as log-normal (realistic for service times, and two numbers are
    learnt from few runs), fitted by maximum likelihood to what the checks saw: a task found
    done between two checks ended somewhere in that interval; one found done at its first
    check, somewhere before it. Recent runs weigh more (half weight after ``half_life`` runs).

    A change of speed is noticed when the recent runs are far likelier under the fit shifted by
    x0.33, x0.5, x2 or x3 (a CUSUM per shift of each run's log-likelihood ratio, clipped):
    the model then drops what came before, refits from the shifted fit and keeps its spread.
    While a run of early endings grows, the forecast gives some weight to twice-as-fast runs,
    so the plan checks early enough to tell.
    """

    MIN_SAMPLES: Final = 3

    def __init__(self, size: int = 120, *, half_life: float = 40.0) -> None:
        self._stores: dict[Since, _Store] = {"submit": _Store(size), "start": _Store(size)}
        self._half_life = half_life
        self._count = 0

    def add(self, seconds: float) -> None:
        """Record one completed run's duration (from its start; no queueing)."""
        if seconds > 0:
            self.observe(run_s=seconds)

    def observe(
        self,
        *,
        run_s: float | tuple[float, float],
        queued_s: float = 0.0,
        ratio: str | None = None,
    ) -> None:
        """Record one completed task.

        ``run_s``: seconds from the task's reference (the last check that found it
        ``created``, else its submit) to completion; an interval ``(low, high)`` when it was
        found done by a check ``high`` s after the reference, having been seen running at
        ``low`` (``low`` = 0: done by its first check). ``queued_s``: seconds from the submit
        to that reference (0 if no check found it queued). ``ratio``: its aspect ratio, if
        known. Non-positive, inverted or non-finite values are ignored.
        """
        low, high = (run_s, run_s) if isinstance(run_s, int | float) else run_s
        if not (0 < high < math.inf and math.isfinite(low) and low <= high and queued_s >= 0):
            return
        low = max(0.0, low)
        self._count += 1
        self._add("start", _Seen(self._count, low, high, ratio))
        # From the submit, a queued task's end is never "by its first check": it was seen queued.
        since_submit = low + queued_s if low > 0 or queued_s > 0 else 0.0
        self._add("submit", _Seen(self._count, since_submit, high + queued_s, ratio))

    def __len__(self) -> int:
        return len(self._stores["start"].seen)

    def expectation(self, ratio: str | None = None, since: Since = "start") -> Expectation | None:
        """The forecast of a task's duration from its reference, once there are a few runs.

        ``since="submit"`` counts from the submit, queueing included (for a task no check has
        found queued); ``"start"`` from the run's start (for a task a check found ``created``:
        count from that sighting). A ``ratio`` with a few runs of its own shifts the forecast
        by how much slower or faster that ratio runs.
        """
        store = self._stores[since]
        if len(store.seen) < self.MIN_SAMPLES:
            return None
        if store.fit is None or store.fresh >= self._refresh_every(store):
            self._refit(store, rounds=3 if store.fit is not None else 12)
        assert store.fit is not None  # noqa: S101  (just fitted)
        mu, sigma = store.fit
        if ratio is not None:
            mu += self._ratio_shift(store, ratio)
        # Rounded (1 % of the duration, 0.01 of spread): plans are cached by forecast.
        forecast = _lognormal(round(mu, 2), round(sigma, 2))
        odds = store.early * (1 - _SUSPICION_PRIOR) / _SUSPICION_PRIOR
        suspicion = round(1.0 / (1.0 + odds), 1)
        if suspicion >= 0.1:  # noqa: PLR2004  (below, the plan would not change anyway)
            forecast = _mixed(forecast, suspicion)
        return forecast

    def typical(self, ratio: str | None = None, since: Since = "start") -> float | None:
        """The median duration, for ETAs; ``None`` with no runs."""
        expected = self.expectation(ratio, since)
        if expected is not None:
            return expected.median()
        seen = self._stores[since].seen
        if not seen:
            return None
        middles = sorted((s.low + s.high) / 2 for s in seen)
        return middles[len(middles) // 2]

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _refresh_every(store: _Store) -> int:
        # A new forecast may need a new plan (a few ms): every run while the fit is young.
        return 1 if len(store.seen) < _SETTLING or store.settling > 0 else 4

    def _add(self, since: Since, seen: _Seen) -> None:
        store = self._stores[since]
        store.seen.append(seen)
        store.fresh += 1
        store.settling = max(0, store.settling - 1)
        if store.fit is None:
            return
        mu, sigma = store.fit
        # Done by its first check: as early as the plan could tell, or more (a speed-up?).
        first = seen.low <= 0
        store.early = store.early * max(_log_cdf(mu, sigma, seen.high), 0.05) if first else 1.0
        # A change of speed shifts the log-durations: per shift, a CUSUM of each observation's
        # log-likelihood ratio, shifted fit vs fit, clipped (stuck tasks, stragglers).
        null = _log_probability(seen, mu, sigma)
        for shift in _SHIFTS:
            ratio = _log_probability(seen, mu + shift, sigma) - null
            ratio = max(-_LLR_CLIP, min(_LLR_CLIP, ratio))
            if store.cusum[shift] <= 0:
                store.since[shift] = seen.index
            store.cusum[shift] = max(0.0, store.cusum[shift] + ratio)
        strongest = max(_SHIFTS, key=store.cusum.__getitem__)
        if store.cusum[strongest] > _CUSUM_LIMIT:
            # The provider changed speed, by the smallest shift (same way) explaining the runs
            # about as well (within e^1: "done by the first check" hardly says how much faster).
            near = store.cusum[strongest] - 1.0
            alarm = min(
                (s for s in _SHIFTS if s * strongest > 0 and store.cusum[s] >= near), key=abs
            )
            # Forget what came before the evidence began; fit the runs since from the shifted fit.
            store.forget_before = store.since[alarm]
            store.early = 1.0
            store.cusum = dict.fromkeys(_SHIFTS, 0.0)
            store.settling = _SETTLING
            store.fit = (mu + alarm, sigma)
            self._refit(store, rounds=25)

    def _weights(self, store: _Store) -> list[float]:
        newest = self._count
        return [
            0.5 ** ((newest - s.index) / self._half_life)
            * (_FORGOTTEN if s.index < store.forget_before else 1.0)
            for s in store.seen
        ]

    def _refit(self, store: _Store, rounds: int) -> None:
        """EM for a log-normal on interval-censored durations, from the last fit."""
        weights = self._weights(store)
        if store.fit is None:
            middles = [math.log(s.high if s.low <= 0 else (s.low + s.high) / 2) for s in store.seen]
            mu = sum(m * w for m, w in zip(middles, weights, strict=True)) / sum(weights)
            sigma = 0.3
        else:
            mu, sigma = store.fit
        total = sum(weights)
        for _ in range(rounds):
            first = second = 0.0
            for seen, weight in zip(store.seen, weights, strict=True):
                mean, square = _log_moments(seen, mu, sigma)
                if abs(mean - mu) > _OUTLIER * sigma:
                    # Counted at the edge of the fit, not where it fell: a stuck task must not
                    # drag the forecast (a real change of speed is caught by _add, and forgets).
                    mean = mu + math.copysign(_OUTLIER * sigma, mean - mu)
                    square = mean * mean + sigma * sigma
                store.logs[seen.index] = mean
                first += weight * mean
                second += weight * square
            mu = first / total
            if store.settling <= 0:  # just after a change of speed, too few runs for a spread
                variance = max(second / total - mu * mu, 0.0)
                sigma = min(max(math.sqrt(variance), _SIGMA_RANGE[0]), _SIGMA_RANGE[1])
        store.fit = (mu, sigma)
        store.fresh = 0
        kept = {s.index for s in store.seen}
        store.logs = {i: v for i, v in store.logs.items() if i in kept}

    def _ratio_shift(self, store: _Store, ratio: str) -> float:
        """How much longer (in log-seconds) this ratio's runs are, shrunk toward 0."""
        weights = self._weights(store)
        pairs = [
            (store.logs.get(s.index, math.log(s.high)), w, s.ratio)
            for s, w in zip(store.seen, weights, strict=True)
        ]
        mine = [(x, w) for x, w, r in pairs if r == ratio]
        if len(mine) < self.MIN_SAMPLES:
            return 0.0
        every = sum(x * w for x, w, _ in pairs) / sum(w for _, w, _ in pairs)
        own = sum(x * w for x, w in mine) / sum(w for _, w in mine)
        shift = len(mine) / (len(mine) + 5) * (own - every)  # a handful of runs say little
        return shift if abs(shift) > 0.03 else 0.0  # noqa: PLR2004  (3 %: noise)


def _log_cdf(mu: float, sigma: float, t: float) -> float:
    return 0.0 if t <= 0 else _NORMAL.cdf((math.log(t) - mu) / sigma)


def _log_probability(seen: _Seen, mu: float, sigma: float) -> float:
    """The log-likelihood of an observation under log-normal(mu, sigma), up to a term free of mu."""
    beta = (math.log(seen.high) - mu) / sigma
    if seen.high - seen.low < 1e-9 * seen.high:
        return -0.5 * beta * beta
    alpha = -math.inf if seen.low <= 0 else (math.log(seen.low) - mu) / sigma
    # In the upper tail by symmetry (cdf(-alpha) - cdf(-beta)): it keeps its precision there.
    cdf = _NORMAL.cdf
    mass = cdf(beta) - cdf(alpha) if alpha < 0 else cdf(-alpha) - cdf(-beta)
    return math.log(max(mass, 1e-300))


def _log_moments(seen: _Seen, mu: float, sigma: float) -> tuple[float, float]:
    """E[log T] and E[(log T)^2] for T log-normal(mu, sigma) given it fell in the interval."""
    if seen.high - seen.low < 1e-9 * seen.high:
        x = math.log(seen.high)
        return x, x * x
    beta = (math.log(seen.high) - mu) / sigma
    alpha = -math.inf if seen.low <= 0 else (math.log(seen.low) - mu) / sigma
    mass = _NORMAL.cdf(beta) - (0.0 if alpha == -math.inf else _NORMAL.cdf(alpha))
    if mass < _NEGLIGIBLE:  # far in a tail of the current fit: the interval's middle will do
        x = math.log(seen.high) if seen.low <= 0 else math.log((seen.low + seen.high) / 2)
        return x, x * x
    pdf_a = 0.0 if alpha == -math.inf else _NORMAL.pdf(alpha)
    pdf_b = _NORMAL.pdf(beta)
    shift = (pdf_a - pdf_b) / mass
    spread = 1.0 + ((0.0 if alpha == -math.inf else alpha * pdf_a) - beta * pdf_b) / mass
    mean = mu + sigma * shift
    variance = sigma * sigma * max(spread - shift * shift, 0.0)
    return mean, variance + mean * mean


@functools.lru_cache(maxsize=1024)
def _lognormal(mu: float, sigma: float) -> Expectation:
    return Expectation.from_quantiles(tuple(math.exp(mu + sigma * z) for z in _Z))


@functools.lru_cache(maxsize=256)
def _mixed(forecast: Expectation, weight: float) -> Expectation:
    """The forecast with ``weight`` of its mass moved to runs twice as fast."""
    cdf = _Cdf(forecast.quantiles)

    def mixture(t: float) -> float:
        return (1 - weight) * cdf(t) + weight * cdf(2 * t)

    out = []
    for level in QUANTILE_LEVELS:
        low, high = 0.0, cdf.high
        for _ in range(40):
            middle = (low + high) / 2
            low, high = (middle, high) if mixture(middle) < level else (low, middle)
        out.append(high)
    return Expectation.from_quantiles(tuple(out))
