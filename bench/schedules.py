"""The poll schedule's theory and its simulation in virtual time: ``python -m bench.schedules``.

Theory. ``optimum`` finds, by dynamic programming, the smallest mean poll efficiency
E = checks x lag / (T / 2) that any schedule with checks >= ``min_gap`` apart can reach on a
duration distribution (optionally also no more than ``max_gap`` apart, as wavenb's etiquette
adds). ``best_share`` finds the largest share of tasks any such schedule can detect within
``lag`` seconds: where it is below one half, a median lag that small is impossible.

Simulation. ``stream`` runs a poll policy and a duration model on known durations in virtual
time: tasks submitted ``spacing`` s apart, each checked when the policy says, each completion
observed by the model as wavenb's wait loop reports it (an interval between two checks). Run
on thousands of draws it gives the figures the library is pinned to (tests/test_polling.py):

(a) durations uniform on 10-90 s, (b) log-normal with median 30 s and 15 % spread
(sigma = 0.15); E relative to the optimum on the same draws; the lag; how the model follows
the provider when durations double or halve. ``Shipped`` replays the schedule of commit
ad2235d (the 10th-90th percentile window of the last 50 runs) for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import json
import math
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from wavenb.core.polling import DurationStats, Expectation, PollPolicy, check_plan

ROOT = Path(__file__).resolve().parent.parent
POLICY = PollPolicy(min_interval=5.0, first_delay=10.0, growth=0.25, max_interval=30.0)
"""The real API's policy (``REAL_API``), spelled out so the bench states what it measures."""


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def cdf(self, t: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(t, float) - self.low) / (self.high - self.low), 0.0, 1.0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    @property
    def top(self) -> float:
        return self.high

    def scaled(self, factor: float) -> Uniform:
        return Uniform(self.low * factor, self.high * factor)

    @property
    def median(self) -> float:
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class LogNormal:
    median: float
    sigma: float

    def cdf(self, t: np.ndarray) -> np.ndarray:
        normal = statistics.NormalDist()
        values = np.maximum(np.asarray(t, float), 1e-12)
        z = (np.log(values) - math.log(self.median)) / self.sigma
        return np.vectorize(normal.cdf)(z) / self.cdf_top

    @property
    def cdf_top(self) -> float:
        return statistics.NormalDist().cdf(4.0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        draws = self.median * np.exp(self.sigma * rng.standard_normal(n))
        return np.minimum(draws, self.top)

    @property
    def top(self) -> float:
        return self.median * math.exp(4.0 * self.sigma)

    def scaled(self, factor: float) -> LogNormal:
        return LogNormal(self.median * factor, self.sigma)


class Distribution(Protocol):
    top: float
    median: float

    def cdf(self, t: np.ndarray) -> np.ndarray: ...
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...
    def scaled(self, factor: float) -> Any: ...


A = Uniform(10.0, 90.0)
B = LogNormal(30.0, 0.15)


# --------------------------------------------------------------------------- theory


def optimum(
    dist: Distribution,
    min_gap: float = 5.0,
    step: float = 0.25,
    max_gap: float | None = None,
) -> dict[str, Any]:
    """The least mean E over all check schedules (gaps >= ``min_gap``, <= ``max_gap``).

    Dynamic programming on a ``step``-second grid; the state is (time of the last check,
    checks made), the cost of the next check at c_j the mass finishing in (c_i, c_j] times
    2 (k + 1) (c_j - T) / T. Returns the mean E and the optimal check times.
    """
    fine = 0.01
    ts = np.arange(fine, dist.top + min_gap + 2 * step, fine)
    mass = np.minimum(dist.cdf(ts), 1.0)
    over_t = np.cumsum(np.diff(mass, prepend=0.0) / ts)
    grid = np.arange(0.0, dist.top + min_gap + step, step)
    a = np.interp(grid, ts, over_t, left=0.0)
    b = np.interp(grid, ts, mass, left=0.0)
    n = len(grid)
    gap = round(min_gap / step)
    reach = n if max_gap is None else round(max_gap / step)
    area = grid[None, :] * (a[None, :] - a[:, None]) - (b[None, :] - b[:, None])
    done = b >= 1.0 - 1e-9
    max_checks = int(dist.top / min_gap) + 3
    value = np.where(done, 0.0, np.inf)
    choices = []
    for k in range(max_checks, -1, -1):
        current = np.full(n, np.inf)
        choice = np.full(n, -1)
        for i in range(n):
            if done[i]:
                current[i] = 0.0
                continue
            first = i + gap
            last = min(n, i + reach + 1)
            if first >= last:
                continue
            js = np.arange(first, last)
            cost = 2.0 * (k + 1) * area[i, js] + value[js]
            best = int(np.argmin(cost))
            current[i], choice[i] = cost[best], js[best]
        choices.append(choice)
        value = current
    choices.reverse()
    checks, k, i = [], 0, 0
    while choices[k][i] >= 0:
        i = int(choices[k][i])
        checks.append(float(grid[i]))
        k += 1
    return {"mean_E": float(value[0]), "checks": checks}


def best_share(dist: Distribution, lag: float, min_gap: float = 5.0, step: float = 0.05) -> float:
    """The largest share of tasks any schedule (gaps >= ``min_gap``) detects within ``lag`` s.

    A check at c catches the tasks ending in [c - lag, c]; with gaps >= min_gap > lag the
    windows are disjoint, so the best schedule is a weighted interval scheduling, solved
    exactly on the grid.
    """
    grid = np.arange(0.0, dist.top + min_gap, step)
    caught = dist.cdf(grid) - dist.cdf(grid - lag)
    gap = round(min_gap / step)
    best = np.zeros(len(grid) + gap + 1)
    for i in range(len(grid) - 1, -1, -1):
        best[i] = max(best[i + 1], caught[i] + best[i + gap])
    return float(best[0])


def least_median_lag(dist: Distribution, min_gap: float = 5.0) -> float:
    """The smallest median detection lag any schedule can reach (bisection on best_share)."""
    low, high = 0.0, min_gap
    for _ in range(20):
        middle = (low + high) / 2
        low, high = (middle, high) if best_share(dist, middle, min_gap) < 0.5 else (low, middle)  # noqa: PLR2004
    return high


def optimal_mean_e(
    low: float = 10.0, high: float = 90.0, min_gap: float = 5.0, step: float = 0.25
) -> dict[str, float]:
    """The optimum for durations uniform on [low, high] (the figure bench.run reports)."""
    dist = Uniform(low, high)
    best = optimum(dist, min_gap, step)
    checks = np.asarray(best["checks"])
    ts = np.linspace(low, high, 4001)
    index = np.searchsorted(checks, ts)
    return {
        "mean_E": best["mean_E"],
        "mean_lag": float(np.mean(checks[index] - ts)),
        "median_lag": float(np.median(checks[index] - ts)),
        "mean_polls": float(np.mean(index + 1)),
        "checks": best["checks"],
    }


def plan_e(checks: list[float], durations: np.ndarray) -> np.ndarray:
    """E of each duration under a fixed check plan (the optimum's, for paired comparisons)."""
    plan = np.asarray(checks)
    index = np.minimum(np.searchsorted(plan, durations), len(plan) - 1)
    return (index + 1) * np.maximum(plan[index] - durations, 0.0) / (durations / 2)


# --------------------------------------------------------------------------- simulation


class Model(Protocol):
    def expectation(self, ratio: str | None = ..., since: Any = ...) -> Expectation | None: ...
    def observe(self, *, run_s: Any, queued_s: float = ..., ratio: str | None = ...) -> None: ...


class Shipped:
    """The duration model of commit ad2235d: deciles of the last 50 "end - interval / 2"."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=50)

    def expectation(self, ratio: str | None = None, since: Any = None) -> Expectation | None:
        del ratio, since
        if len(self.samples) < 3:  # noqa: PLR2004
            return None
        deciles = statistics.quantiles(self.samples, n=10, method="inclusive")
        return Expectation(early=deciles[0], late=deciles[-1])

    def observe(self, *, run_s: Any, queued_s: float = 0.0, ratio: str | None = None) -> None:
        del queued_s, ratio
        low, high = run_s
        self.samples.append(high - (high - low) / 2)


@dataclass
class Row:
    checks: int
    lag: float
    duration: float
    detected: float
    submitted: float

    @property
    def e(self) -> float:
        return self.checks * self.lag / (self.duration / 2)


def stream(
    policy: PollPolicy,
    durations: list[float],
    *,
    spacing: float = 5.0,
    seed: int = 0,
    model: Model | None = None,
    ratios: list[str] | None = None,
    on_observe: Callable[[int, Model], None] | None = None,
) -> list[Row]:
    """Tasks submitted ``spacing`` s apart with known durations, checked as ``policy`` says.

    Each completion is observed as the wait loop does: ``(previous check, this check)`` since
    the submit (0 for the first check). Virtual time: nothing sleeps.
    """
    rng = random.Random(seed)
    model = DurationStats() if model is None else model
    heap = [(i * spacing, i, 0.0, 0) for i in range(len(durations))]
    heapq.heapify(heap)
    rows: list[Row | None] = [None] * len(durations)
    observed = 0
    while heap:
        now, i, previous, checks = heapq.heappop(heap)
        submitted = i * spacing
        ratio = ratios[i] if ratios else None
        if checks and now - submitted >= durations[i]:
            rows[i] = Row(checks, now - submitted - durations[i], durations[i], now, submitted)
            low = previous - submitted if checks > 1 else 0.0
            model.observe(run_s=(low, now - submitted), ratio=ratio)
            observed += 1
            if on_observe is not None:
                on_observe(observed, model)
            continue
        expected = model.expectation(ratio=ratio, since="submit")
        delay = policy.next_delay(now - submitted, expected, rng.random())
        heapq.heappush(heap, (now + delay, i, now, checks + 1))
    return [row for row in rows if row is not None]


def stable(
    dist: Distribution, *, n: int, seeds: int, model: Callable[[], Model] = DurationStats
) -> dict[str, Any]:
    """E relative to the optimum on the same draws (after 50 warm-up videos), lag, checks."""
    best = optimum(dist)
    ratios, lags, checks = [], [], []
    for seed in range(seeds):
        durations = dist.sample(np.random.default_rng(seed), n)
        rows = stream(POLICY, list(durations), seed=seed, model=model())[50:]
        e = np.array([r.e for r in rows])
        ratios.append(float(e.mean() / plan_e(best["checks"], durations[50:]).mean()))
        lags += [r.lag for r in rows]
        checks += [r.checks for r in rows]
    return {
        "optimum_E": best["mean_E"],
        "E_over_optimum": float(np.mean(ratios)),
        "E_over_optimum_runs": ratios,
        "lag_p50": float(np.median(lags)),
        "lag_p95": float(np.percentile(lags, 95)),
        "checks_per_video": float(np.mean(checks)),
    }


def drift(dist: Distribution, factor: float, *, seeds: int, spacing: float = 5.0) -> dict[str, Any]:
    """Durations change by ``factor`` after 200 videos: how fast does the schedule follow?

    Reports the new videos completed before the forecast's median is within 10 % of the new
    median (and stays so for 5 more), and E over the optimum for the 50 videos submitted
    after the 10th new completion. The optimum here keeps wavenb's own 30-s silence limit.
    """
    new = dist.scaled(factor)
    best = optimum(new, max_gap=POLICY.max_interval)
    followed, ratios = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        durations = np.concatenate([dist.sample(rng, 200), new.sample(rng, 200)])
        medians: list[tuple[int, float]] = []

        def note(count: int, model: Model, medians: list[tuple[int, float]] = medians) -> None:
            expected = model.expectation(since="submit")
            if expected is not None:
                medians.append((count, expected.median()))

        rows = stream(POLICY, list(durations), spacing=spacing, seed=seed, on_observe=note)
        by_index = {round(r.submitted / spacing): r for r in rows}
        new_done = sorted(by_index[i].detected for i in range(200, 400))
        before = sum(1 for i in range(200) if by_index[i].detected < new_done[0])
        # Followed: the forecast's median moved by the factor (within 10 %) and stays there.
        settled = statistics.median(m for c, m in medians if before - 20 < c <= before)
        close = [abs(m / (settled * factor) - 1) <= 0.1 for _, m in medians]  # noqa: PLR2004
        count = next(
            (c for k, (c, _) in enumerate(medians) if c > before and all(close[k : k + 6])),
            len(rows),
        )
        followed.append(count - before)
        tenth = new_done[9]
        chosen = [i for i in range(200, 400) if i * spacing >= tenth][:50]
        e = np.array([by_index[i].e for i in chosen])
        ratios.append(float(e.mean() / plan_e(best["checks"], durations[chosen]).mean()))
    return {
        "factor": factor,
        "videos_to_follow": float(np.median(followed)),
        "videos_to_follow_runs": followed,
        "E_over_optimum_after_10": float(np.mean(ratios)),
        "E_over_optimum_after_10_runs": ratios,
    }


def false_alarms(dist: Distribution, *, n: int, seeds: int) -> float:
    """Changes of speed the model declares per 1,000 videos when nothing changed."""
    alarms = 0
    for seed in range(seeds):
        model = DurationStats()
        forgotten: list[int] = []

        def note(_count: int, m: Model, forgotten: list[int] = forgotten) -> None:
            store = m._stores["submit"]  # type: ignore[attr-defined]
            if store.forget_before and store.forget_before not in forgotten:
                forgotten.append(store.forget_before)

        durations = list(dist.sample(np.random.default_rng(seed), n))
        stream(POLICY, durations, seed=seed, model=model, on_observe=note)
        alarms += len(forgotten)
    return alarms * 1000 / (n * seeds)


def plan_cost(dist: Distribution) -> dict[str, float]:
    """Milliseconds one plan takes (cold cache), and plans made per 1,000 videos."""
    check_plan.cache_clear()
    model = DurationStats()
    for seconds in dist.sample(np.random.default_rng(9), 60):
        model.observe(run_s=float(seconds))
    expected = model.expectation()
    assert expected is not None
    started = time.perf_counter()
    check_plan(POLICY, expected.quantiles)
    once = (time.perf_counter() - started) * 1000
    check_plan.cache_clear()
    stream(POLICY, list(dist.sample(np.random.default_rng(3), 1000)), seed=3)
    return {"ms_per_plan": once, "plans_per_1000_videos": check_plan.cache_info().misses}


def figures(*, quick: bool = False) -> dict[str, Any]:
    """Everything the README quotes, for (a) and (b)."""
    n, seeds = (600, 2) if quick else (1000, 6)
    out: dict[str, Any] = {"policy": "REAL_API", "settings": {"videos": n, "seeds": seeds}}
    for name, dist in (("a_uniform_10_90", A), ("b_lognormal_30_15pct", B)):
        out[name] = {
            "wavenb": stable(dist, n=n, seeds=seeds),
            "shipped_ad2235d": stable(dist, n=n, seeds=seeds, model=Shipped),
            "best_share_within_2s": best_share(dist, 2.0),
            "least_median_lag": least_median_lag(dist),
            "drift": [drift(dist, f, seeds=2 if quick else 8) for f in (2.0, 0.5)],
            "false_alarms_per_1000": false_alarms(dist, n=n, seeds=seeds),
            "plan": plan_cost(dist),
        }
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        "| distribution | schedule | E / optimum | lag p50 / p95 (s) | checks / video |",
        "|---|---|---|---|---|",
    ]
    for name in ("a_uniform_10_90", "b_lognormal_30_15pct"):
        block = results[name]
        for who in ("wavenb", "shipped_ad2235d"):
            f = block[who]
            lines.append(
                f"| {name} | {who} | {f['E_over_optimum']:.3f} | {f['lag_p50']:.2f} / "
                f"{f['lag_p95']:.1f} | {f['checks_per_video']:.2f} |"
            )
    lines.append("")
    for name in ("a_uniform_10_90", "b_lognormal_30_15pct"):
        block = results[name]
        lines.append(
            f"- {name}: optimum E {block['wavenb']['optimum_E']:.3f}; at most "
            f"{block['best_share_within_2s']:.0%} of tasks can be detected within 2 s by any "
            f"schedule with checks >= 5 s apart (least possible median lag "
            f"{block['least_median_lag']:.2f} s); false changes of speed per 1,000 videos "
            f"{block['false_alarms_per_1000']:.1f}; one plan "
            f"{block['plan']['ms_per_plan']:.1f} ms, "
            f"{block['plan']['plans_per_1000_videos']} plans per 1,000 videos"
        )
        for d in block["drift"]:
            lines.append(
                f"  - durations x{d['factor']:g}: forecast within 10 % after "
                f"{d['videos_to_follow']:.0f} new videos (median); E / optimum of the 50 "
                f"submitted after the 10th new completion {d['E_over_optimum_after_10']:.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.schedules", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = figures(quick=args.quick)
    results["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    name = f"{dt.date.today().isoformat()}-schedules{'-quick' if args.quick else ''}.json"
    target = ROOT / "bench" / "results" / name
    target.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"\nresults: {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
