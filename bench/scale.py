"""The scale curve: 10 to 1,000 videos in flight through one client, against a stand-in server.

``python -m bench.scale [--quick] [--variants today,proposed] [--tree COMMIT] [--profile N]``
(also run by ``python -m bench.run``). Each size gets a fresh stand-in server
(``bench.standin``: exact seeded durations, uniform ``LOW``-``HIGH`` model seconds, answers like
the real API) and a fresh client process (``bench.fleet``) that submits every video at once,
waits for each and downloads it. The SDK and the naive loop run one thread per video, up to
``BASELINE_MAX`` videos (beyond that they measure the machine's thread scheduler, not a client).

Per size: completed, duplicate submits (accepted beyond those asked), false "may have been
charged" errors, event-loop lag p99 and the longest stall (10-ms ticker), RSS growth, CPU
seconds per video, result checks per video, completion-detection lag p50 / p95 (model s).
``plot`` draws each figure against size into a PNG beside the results.

``--tree COMMIT`` measures wavenb as it was at a commit: ``git archive`` (read-only on the
repository) unpacks that ``wavenb/`` into bench/.work, and the client process runs from a folder
where that package comes first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import analysis
from bench.harness import ROOT, WORK, child_env, ensure_deps, run_json, server

IMAGE = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"
LOW, HIGH = 20.0, 40.0
"""Job durations, model seconds: uniform, seeded."""
SIZES = (10, 32, 100, 1000)
QUICK_SIZES = (10, 32, 100, 1000)
"""32 included: the goal at 1,000 is checks per video within 1.2x of 32's."""
BASELINE_MAX = 100
GOALS = {
    "loop_lag_p99_ms": 20.0,
    "loop_stall_max_ms": 250.0,
    "lag_p50": 6.0,
    "rss_growth_mb": 150.0,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def tree(commit: str) -> Path:
    """A folder whose ``wavenb`` is the package at ``commit`` (and whose ``bench`` is this one)."""
    folder = WORK / f"tree-{commit}"
    if not (folder / "wavenb").exists():
        source = WORK / f"src-{commit}"
        source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "wavenb"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True, timeout=60)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "wavenb").symlink_to(source / "wavenb")
        (folder / "bench").symlink_to(ROOT / "bench")
    return folder


def run_size(
    n: int,
    client: str,
    *,
    variant: str,
    scale: float,
    seed: int,
    cwd: Path = ROOT,
    profile: bool = False,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One fleet of ``n`` videos against a fresh stand-in; its figures (and profile).

    ``options`` go to the fleet's spec (``slow_callbacks``, ``pool``...)."""
    spec = {"low": LOW, "high": HIGH, "scale": scale, "seed": seed, "lifetime": 3600}
    key = f"wsk-scale-{client}-{variant}-{n}"
    with server(spec, "bench.standin") as srv:
        image_url = srv.upload(IMAGE, "wsk-scale-uploader")
        fleet_spec = {
            "client": client,
            "variant": variant,
            "n": n,
            "scale": scale,
            "base_url": srv.base_url,
            "key": key,
            "image_url": image_url,
            "profile": profile,
            **(options or {}),
        }
        home = WORK / f"home-scale-{client}-{variant}-{n}-{time.monotonic_ns()}"
        env = child_env(deps=client != "wavenb", home=home)
        if cwd != ROOT:
            env["PYTHONPATH"] = f"{cwd}:{env['PYTHONPATH']}"
        result = run_json(
            ["-m", "bench.fleet", json.dumps(fleet_spec)], env=env, timeout=3600, cwd=cwd
        )
        state = srv.state()
    out = figures(result, state, analysis.key_digest(key), scale)
    if profile:
        out["profile"] = result.get("profile")
    return out


def figures(
    result: dict[str, Any], state: dict[str, Any], owner: str, scale: float
) -> dict[str, Any]:
    """The scale figures of one fleet, in model seconds."""
    n = result["n"]
    jobs = result["jobs"]
    planned = state["planned"].get(owner, [])
    ends = state["ends"]
    log_rows = [r for r in state["log"] if r["owner"] == owner]
    checks = sum(1 for r in log_rows if r["route"] in analysis.RESULT_ROUTES)
    known = {job["id"] for job in jobs if job.get("id")}
    errors = Counter(job["error"].split(":")[0] for job in jobs if job.get("error"))
    lags = [
        (job["result"] - ends[job["id"]]) / scale
        for job in jobs
        if "result" in job and job.get("id") in ends
    ]
    accepted_at = [at for _id, at, _s in planned]
    ticker = result.get("ticker") or {}
    return {
        "n": n,
        "client": result["client"],
        "variant": result.get("variant"),
        "completed": sum(1 for job in jobs if "done" in job and not job.get("error")),
        "accepted": len(planned),
        "duplicates": max(0, len(planned) - n),
        "orphans": sum(1 for job_id, _at, _s in planned if job_id not in known),
        "uncertain": errors.get("SubmissionUncertain", 0),
        "errors": dict(errors),
        "error_samples": [job["error"][:200] for job in jobs if job.get("error")][:3],
        "refused_429": sum(1 for r in log_rows if r["status"] == 429),  # noqa: PLR2004
        "loop_lag_p50_ms": ticker.get("p50", math.nan) * 1000,
        "loop_lag_p99_ms": ticker.get("p99", math.nan) * 1000,
        "loop_stall_max_ms": ticker.get("max", math.nan) * 1000,
        "stalls_over_250ms": ticker.get("over_250ms", math.nan),
        "cpu_lag_p99_ms": ticker.get("cpu_p99", math.nan) * 1000,
        "cpu_stall_max_ms": ticker.get("cpu_max", math.nan) * 1000,
        "load": result.get("load"),
        "rss_growth_mb": result["rss_growth_kb"] / 1024,
        "cpu_s": result["cpu"],
        "cpu_s_per_video": result["cpu"] / n,
        "checks_per_video": checks / len(planned) if planned else math.nan,
        "lag_p50": analysis.quantile(lags, 0.5),
        "lag_p95": analysis.quantile(lags, 0.95),
        "submit_span": (max(accepted_at) - result["started"]) / scale if accepted_at else math.nan,
        "makespan": (result["ended"] - result["started"]) / scale,
        "connections": len({r["connection"] for r in log_rows}),
        "gc": result.get("gc"),
        "gc_objects": result.get("gc_objects"),
        "gc_types": result.get("gc_types"),
        "slow_callbacks": result.get("slow_callbacks"),
        "requests": len(log_rows),
    }


def curve(
    sizes: tuple[int, ...],
    *,
    scale: float,
    variants: tuple[str, ...] = ("today",),
    baselines: bool = True,
    cwd: Path = ROOT,
    label: str = "",
) -> list[dict[str, Any]]:
    """Every size for each wavenb variant, then the SDK and naive loop up to BASELINE_MAX."""
    rows = []
    runs = [("wavenb", variant) for variant in variants]
    if baselines:
        ensure_deps()
        runs += [("official", "sdk"), ("naive", "naive")]
    for client, variant in runs:
        for n in sizes:
            if client != "wavenb" and n > BASELINE_MAX:
                continue
            log(f"scale: {n} videos, {client} {variant}{label}")
            # The same durations for every client at a size (the seed is the size's).
            row = run_size(n, client, variant=variant, scale=scale, seed=5000 + n, cwd=cwd)
            row["label"] = f"{client} {variant}{label}" if client == "wavenb" else client
            rows.append(row)
            log(
                f"  completed {row['completed']}/{n}, loop p99 {row['loop_lag_p99_ms']:.1f} ms, "
                f"stall {row['loop_stall_max_ms']:.0f} ms, lag p50 {row['lag_p50']:.1f} s, "
                f"CPU {row['cpu_s_per_video'] * 1000:.0f} ms/video, errors {row['errors']}"
            )
    return rows


PANELS = (
    ("completed_share", "completed / asked", False, None),
    ("uncertain", "false 'may have been charged'", False, None),
    ("loop_lag_p99_ms", "event-loop lag p99 (ms; dashed: CPU lag)", True, "cpu_lag_p99_ms"),
    ("loop_stall_max_ms", "longest loop stall (ms; dashed: CPU)", True, "cpu_stall_max_ms"),
    ("rss_growth_mb", "RSS growth (MB)", False, None),
    ("cpu_s_per_video", "CPU s per video", True, None),
    ("checks_per_video", "result checks per video", False, None),
    ("lag_p50", "detection lag p50 (model s)", False, None),
    ("lag_p95", "detection lag p95 (model s)", False, None),
)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """One panel per figure against the number of videos in flight (log x), a line per client."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(13, 10), constrained_layout=True)
    labels = list(dict.fromkeys(row["label"] for row in rows))
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for ax, (key, name, log_y, second) in zip(axes.flat, PANELS, strict=True):
        for label in labels:
            mine = sorted((r for r in rows if r["label"] == label), key=lambda r: r["n"])
            xs = [r["n"] for r in mine]
            if key == "completed_share":
                ys = [r["completed"] / r["n"] for r in mine]
            else:
                ys = [_number(r.get(key)) for r in mine]
            ax.plot(xs, ys, marker="o", label=label, color=colors[label])
            if second is not None:
                # 0 ms (no own work while the ticker waited) drawn at 0.1 on the log axis.
                ys2 = [max(_number(r.get(second)), 0.1) for r in mine]
                ax.plot(xs, ys2, marker=".", linestyle="--", color=colors[label])
        if key in GOALS:
            ax.axhline(GOALS[key], color="grey", linestyle=":", linewidth=1, label="goal")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("videos in flight")
        ax.grid(visible=True, alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def table(rows: list[dict[str, Any]]) -> str:
    """The scale figures as a Markdown table, one row per client and size.

    Loop lag and stall are shown wall-clock / CPU ("CPU": the main thread's own work while the
    ticker waited, i.e. the lag on an idle core; see bench.fleet.Ticker).
    """
    head = (
        "| client | videos | completed | dup. | false 'charged' | loop p99 (ms) | "
        "stall max (ms) | RSS growth (MB) | CPU ms/video | checks/video | lag p50 / p95 (s) "
        "| load |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['n']} | {r['completed']} | {r['duplicates']} | "
            f"{r['uncertain']} | {_number(r['loop_lag_p99_ms']):.1f} / "
            f"{_number(r.get('cpu_lag_p99_ms')):.1f} | {_number(r['loop_stall_max_ms']):.0f} / "
            f"{_number(r.get('cpu_stall_max_ms')):.0f} | {r['rss_growth_mb']:.0f} | "
            f"{r['cpu_s_per_video'] * 1000:.0f} | {_number(r['checks_per_video']):.1f} | "
            f"{_number(r['lag_p50']):.1f} / {_number(r['lag_p95']):.1f} | "
            f"{_number(r.get('load')):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="sizes 10, 100, 1000; scale 0.5")
    parser.add_argument("--sizes", default="", help="comma-separated sizes")
    parser.add_argument("--scale", type=float, default=0.0, help="default 1; quick 0.5")
    parser.add_argument("--variants", default="today", help="today,proposed")
    parser.add_argument("--tree", default="", help="measure wavenb as at this commit")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--profile", type=int, default=0, help="also profile one fleet of N")
    parser.add_argument("--label", default="", help="results file suffix")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (
        QUICK_SIZES if args.quick else SIZES
    )
    scale = args.scale or (0.5 if args.quick else 1.0)
    cwd = tree(args.tree) if args.tree else ROOT
    suffix = f" @{args.tree}" if args.tree else ""
    variants = tuple(args.variants.split(","))
    started = time.monotonic()
    rows = curve(
        sizes,
        scale=scale,
        variants=variants,
        baselines=not args.no_baselines,
        cwd=cwd,
        label=suffix,
    )
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {"sizes": sizes, "scale": scale, "durations": [LOW, HIGH], "tree": args.tree},
        "rows": rows,
    }
    if args.profile:
        log(f"scale: profiling {args.profile} videos")
        results["profile"] = run_size(
            args.profile, "wavenb", variant=variants[0], scale=scale, seed=5999, cwd=cwd,
            profile=True,
        )
    results["elapsed_s"] = time.monotonic() - started
    name = f"{dt.date.today().isoformat()}-scale{'-' + args.label if args.label else ''}"
    target = ROOT / "bench" / "results" / f"{name}.json"
    target.write_text(json.dumps(analysis.json_safe(results), indent=1) + "\n")
    plot(rows, target.with_suffix(".png"), f"scale curve{suffix}, time scale {scale:g}")
    print(table(rows))
    print(f"\nresults: {target.relative_to(ROOT)} (+ .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
