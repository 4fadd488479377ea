"""Turn client results and the server's records into figures. Pure functions, no I/O.

All times come from ``time.monotonic()`` (one system-wide clock on Linux, so the server and
the clients, in different processes, share it) and are divided by the run's time scale: every
figure is in model seconds, as if the jobs had taken their unscaled 10-90 s.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

RESULT_ROUTES = frozenset({"/api/v3/predictions/{id}/result", "/api/v3/predictions/{id}"})
SUBMIT_ROUTE = "/api/v3/runwayml/gen4-turbo"
DOWNLOAD_ROUTE = "/sandbox-cdn/predictions/{id}/1.mp4"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Iterable[float]) -> dict[str, float]:
    """min / median / max of per-run figures (NaNs dropped)."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return {"min": math.nan, "median": math.nan, "max": math.nan, "runs": 0}
    return {
        "min": min(kept),
        "median": statistics.median(kept),
        "max": max(kept),
        "runs": len(kept),
    }


def by_job(log: list[dict[str, Any]], owner: str) -> dict[str, list[dict[str, Any]]]:
    """This key's requests grouped by the task they are about, in arrival order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in log:
        job_id = record["prediction_id"]
        if job_id is not None and (record["owner"] == owner or record["route"] == DOWNLOAD_ROUTE):
            grouped[job_id].append(record)
    for records in grouped.values():
        records.sort(key=lambda r: r["time"])
    return grouped


def job_figures(
    jobs: list[dict[str, Any]],
    state: dict[str, Any],
    owner: str,
    scale: float,
) -> list[dict[str, Any]]:
    """Per measured job: duration T, polls, lag (client-side and server-seen), bytes, E, gaps."""
    planned = {job_id: seconds for job_id, _at, seconds in state["planned"].get(owner, [])}
    completions = state["completions"]
    grouped = by_job(state["log"], owner)
    rows = []
    for job in jobs:
        job_id = job.get("id")
        if job.get("phase") != "measured" or job_id not in completions:
            continue
        records = grouped.get(job_id, [])
        polls = [r for r in records if r["route"] in RESULT_ROUTES]
        api = [r for r in records if r["route"] != DOWNLOAD_ROUTE]
        done = completions[job_id]
        seen = [r["time"] for r in polls if r["time"] >= done]
        server_lag = (seen[0] - done) / scale if seen else math.nan
        client_lag = (job["result"] - done) / scale if "result" in job else server_lag
        duration = planned.get(job_id, math.nan) / scale
        gaps = [(b["time"] - a["time"]) / scale for a, b in itertools.pairwise(polls)]
        rows.append(
            {
                "id": job_id,
                "T": duration,
                "polls": len(polls),
                "lag": client_lag,
                "server_lag": server_lag,
                "api_bytes": sum(r["bytes_in"] + r["bytes_out"] for r in api),
                "poll_bytes": sum(r["bytes_in"] + r["bytes_out"] for r in polls),
                "download_bytes": sum(
                    r["bytes_in"] + r["bytes_out"] for r in records if r["route"] == DOWNLOAD_ROUTE
                ),
                "E": len(polls) * client_lag / (duration / 2) if duration > 0 else math.nan,
                "min_gap": min(gaps) if gaps else math.nan,
                "gaps": gaps,
                "history": job.get("history"),
            }
        )
    return rows


def poll_summary(rows: list[dict[str, Any]], state: dict[str, Any], owner: str) -> dict[str, Any]:
    """One run's polling figures for one client."""
    lags = [r["lag"] for r in rows]
    long_lags = [r["lag"] for r in rows if r["T"] >= 30]  # noqa: PLR2004
    gaps = [g for r in rows for g in r["gaps"]]
    connections = {r["connection"] for r in state["log"] if r["owner"] == owner}
    return {
        "jobs": len(rows),
        "lag_p50": quantile(lags, 0.5),
        "lag_p95": quantile(lags, 0.95),
        "lag_p50_30_90": quantile(long_lags, 0.5),
        "lag_mean": statistics.fmean(lags) if lags else math.nan,
        "server_lag_p50": quantile([r["server_lag"] for r in rows], 0.5),
        "polls_per_job": statistics.fmean(r["polls"] for r in rows) if rows else math.nan,
        "api_bytes_per_job": statistics.fmean(r["api_bytes"] for r in rows) if rows else math.nan,
        "E_median": quantile([r["E"] for r in rows], 0.5),
        "E_mean": statistics.fmean(r["E"] for r in rows) if rows else math.nan,
        "min_gap": min(gaps) if gaps else math.nan,
        "gaps_under_5s": sum(1 for g in gaps if g < 5.0 - 1e-6),
        "connections_per_job": len(connections) / len(rows) if rows else math.nan,
    }


def ideal_makespan(durations: Sequence[float], slots: int, rate: tuple[int, float] | None) -> float:
    """The batch's makespan with zero client overhead: each job submitted as early as the rate
    cap allows, queued in submit order (FIFO) for ``slots`` concurrent slots, no detection lag."""
    free = [0.0] * slots
    end = 0.0
    for index, seconds in enumerate(durations):
        submitted = 0.0 if rate is None else (index // rate[0]) * rate[1]
        free.sort()
        start = max(submitted, free[0])
        free[0] = start + seconds
        end = max(end, free[0])
    return end


def batch_summary(
    result: dict[str, Any],
    state: dict[str, Any],
    owner: str,
    scale: float,
    *,
    slots: int,
    rate: tuple[int, float],
    expected: int,
) -> dict[str, Any]:
    planned = state["planned"].get(owner, [])
    durations = [seconds / scale for _id, _at, seconds in planned]
    ideal = ideal_makespan(durations, slots, rate)
    makespan = (result["ended"] - result["started"]) / scale
    asked = {job.get("id") for job in result["jobs"] if job.get("id")}
    grouped = by_job(state["log"], owner)
    completions = state["completions"]
    polls, lags = [], []
    for job_id, _at, _seconds in planned:
        records = [r for r in grouped.get(job_id, []) if r["route"] in RESULT_ROUTES]
        polls.append(len(records))
        done = completions.get(job_id)
        seen = [r["time"] for r in records if done is not None and r["time"] >= done]
        if seen:
            lags.append((seen[0] - done) / scale)
    refused = sum(
        1
        for r in state["log"]
        if r["owner"] == owner and r["route"] == SUBMIT_ROUTE and r["status"] == 429  # noqa: PLR2004
    )
    failed = [job.get("error") for job in result["jobs"] if job.get("error")]
    ticker = result.get("ticker") or {}
    return {
        "makespan": makespan,
        "ideal": ideal,
        "ratio": makespan / ideal if ideal > 0 else math.nan,
        "accepted": len(planned),
        "duplicates": max(0, len(planned) - expected),
        "orphans": len([p for p in planned if p[0] not in asked]),
        "failed": len(failed),
        "errors": failed[:3],
        "refused_429": refused,
        "polls_per_job": statistics.fmean(polls) if polls else math.nan,
        "lag_p50": quantile(lags, 0.5),
        "lag_max": max(lags) if lags else math.nan,
        "loop_lag_p99_ms": ticker.get("p99", math.nan) * 1000,
        "loop_lag_max_ms": ticker.get("max", math.nan) * 1000,
        "cpu_s": result.get("cpu", math.nan),
        "mode": result.get("mode"),
    }


def json_safe(value: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
