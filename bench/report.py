"""The Markdown tables of a results file: ``python -m bench.report bench/results/<date>.json``."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.analysis import spread

Cell = dict[str, float]


def _num(value: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _cell(stats: Cell | None, digits: int) -> str:
    if not stats or stats.get("runs", 1) == 0:
        return "–"
    mid = _num(stats["median"], digits)
    if stats.get("runs", 1) <= 1 or stats["min"] == stats["max"]:
        return mid
    return f"{mid} ({_num(stats['min'], digits)}–{_num(stats['max'], digits)})"


def _ratio(a: Cell | None, b: Cell | None) -> str:
    if not a or not b or not b.get("median"):
        return "–"
    value = a["median"] / b["median"]
    return "–" if math.isnan(value) else f"{value:.2f}×"


def _collect(
    runs: list[dict[str, Any]], client: str, pick: Callable[[dict[str, Any]], float]
) -> Cell | None:
    values = [pick(run[client]) for run in runs if client in run]
    return spread(values) if values else None


def _columns(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, policy, client) for every column of the client tables."""
    columns = []
    for block in results["runs"]:
        policy = block["policy"]
        label = "wavenb" if policy == "default" else "wavenb (proposed)"
        columns.append((label, policy, "wavenb"))
    first = results["runs"][0]["policy"]
    columns += [("official SDK", first, "official"), ("naive loop", first, "naive")]
    return columns


def _runs(results: dict[str, Any], policy: str, scenario: str) -> list[dict[str, Any]]:
    for block in results["runs"]:
        if block["policy"] == policy:
            return block[scenario]
    return []


POLL_ROWS: list[tuple[str, str, int, str]] = [
    ("completion-detection lag p50 (s)", "lag_p50", 2, "≤ 2 (warm)"),
    ("completion-detection lag p95 (s)", "lag_p95", 1, ""),
    ("lag p50 on 30–90 s jobs (s)", "lag_p50_30_90", 2, "≤ 2"),
    ("result checks (GETs) per job", "polls_per_job", 1, "≤ 0.25× official"),
    ("API bytes per job (submit + checks)", "api_bytes_per_job", 0, ""),
    ("poll efficiency E, median per job", "E_median", 2, "≤ 0.3"),
    ("poll efficiency E, mean per job", "E_mean", 2, ""),
    ("shortest gap between checks of a task (s)", "min_gap", 2, "≥ 5"),
    ("TCP connections opened per job", "connections_per_job", 2, ""),
]
BATCH_ROWS: list[tuple[str, str, int, str]] = [
    ("makespan / ideal schedule", "ratio", 3, "≤ 1.1"),
    ("makespan (model s)", "makespan", 0, ""),
    ("accepted submissions (of 32)", "accepted", 0, "= 32"),
    ("duplicate submissions", "duplicates", 0, "0"),
    ("tasks lost (failed in the client)", "failed", 0, "0"),
    ("429 answers met", "refused_429", 0, ""),
    ("result checks per job", "polls_per_job", 1, ""),
    ("detection lag p50 / max (s)", "lag_p50", 1, ""),
    ("event-loop lag p99 (ms)", "loop_lag_p99_ms", 1, "≤ 20"),
    ("client CPU s for the batch", "cpu_s", 2, ""),
]


def _client_table(
    results: dict[str, Any], scenario: str, rows: list[tuple[str, str, int, str]]
) -> list[str]:
    columns = _columns(results)
    wavenbs = [c[0] for c in columns if c[2] == "wavenb"]
    head = ["figure", *[c[0] for c in columns], *[f"{w} / official" for w in wavenbs], "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key, digits, target in rows:
        cells, stats = [], {}
        for name, policy, client in columns:
            runs = _runs(results, policy, scenario)
            if scenario == "poll":
                pick: Callable[[dict[str, Any]], float] = lambda r, k=key: r["summary"][k]  # noqa: E731
            else:
                pick = lambda r, k=key: r[k]  # noqa: E731
            stat = _collect(runs, client, pick)
            stats[name] = stat
            text = _cell(stat, digits)
            if key == "lag_p50" and scenario == "batch":
                maxed = _collect(runs, client, lambda r: r["lag_max"])
                low = _num(stat["median"], 1) if stat else "–"
                text = f"{low} / {_num(maxed['median'], 1) if maxed else '–'}"
            cells.append(text)
        ratios = [_ratio(stats.get(w), stats.get("official SDK")) for w in wavenbs]
        lines.append("| " + " | ".join([label, *cells, *ratios, target]) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    settings = results["settings"]
    out = [
        f"### Clients side by side (sandbox served over loopback; {settings['runs']} runs; "
        "median (min–max) over runs)",
        "",
        f"Polling: {settings['poll_jobs']} jobs per client, durations uniform "
        f"{settings['durations'][0]:g}–{settings['durations'][1]:g} s, submitted 5 s apart, time "
        f"scale {settings['scale']:g} (all clocks scaled; figures in model seconds). wavenb ran "
        "6 warm-up jobs first (history).",
        "",
        *_client_table(results, "poll", POLL_ROWS),
        "",
        f"Batch: {settings['batch_jobs']} jobs, 4 at a time per key, 8 submissions a minute, time "
        f"scale {settings.get('batch_scale', settings['scale']):g}; wavenb submits all (through a "
        "headless Studio), the baselines use 4 worker threads and retry a 429 by hand.",
        "",
        *_client_table(results, "batch", BATCH_ROWS),
    ]
    out += ["", *_local_table(results)]
    if "unscaled" in results:
        out += ["", *_unscaled_table(results["unscaled"])]
    load = results["machine"].get("load_by_phase")
    if load:
        phases = ", ".join(f"{phase} {value:.1f}" for phase, value in load.items())
        out += [
            "",
            f"Machine: {results['machine']['cpus']} CPUs; 1-min load average at the start of "
            f"each phase: {phases}. Other work on the machine shows in wall times and loop lag; "
            "CPU seconds and request counts are not affected by it.",
        ]
    out += _new_sections(results)
    if "theory" in results:
        t = results["theory"]
        out += [
            "",
            f"Theory (durations uniform 10–90 s, checks ≥ 5 s apart): the best mean E any schedule "
            f"can reach is {t['mean_E']:.2f} (its mean lag {t['mean_lag']:.1f} s, "
            f"{t['mean_polls']:.1f} checks). No such schedule gets the median lag to 2 s: at most "
            "17 checks fit in 10–92 s, each catching at most 2.35 s of the 80 s of durations "
            "within 2.35 s, so P(lag ≤ 2.35 s) < 0.5.",
        ]
    return "\n".join(out)


def _new_sections(results: dict[str, Any]) -> list[str]:
    """The scale curve, submit pacing and the simulated schedules, when the run has them."""
    from bench import pacing, scale, schedules

    out: list[str] = []
    sections = (
        ("scale", lambda r: scale.table(r["rows"]), "Videos in flight through one client"),
        ("pacing", pacing.table, ""),
        ("schedules", schedules.table, "Poll schedule, simulated (virtual time)"),
    )
    for key, render, title in sections:
        block = results.get(key)
        if not block:
            continue
        out += ["", f"### {title}" if title else ""]
        out += [f"failed: {block['error']}"] if "error" in block else ["", render(block)]
    out += _measured_elsewhere(results)
    return out


def _measured_elsewhere(results: dict[str, Any]) -> list[str]:
    """A/B metrics and sandbox throughput (run as their own scripts), when the run has them."""
    lines: list[str] = []
    metrics, compared = results.get("metrics"), results.get("compare_metrics")
    if metrics and "error" not in metrics:
        row = metrics["measure"].get("all") or next(iter(metrics["measure"].values()))
        lines += ["", "### A/B metrics", "",
                  f"- metrics of a 5 s 1280x720 clip: {row['median']:.2f} s median, "
                  f"{row['cpu']:.2f} CPU-s (target <= 1 s)"]  # fmt: skip
    if compared and "error" not in compared:
        settled = compared.get("paired_settled_slowdown")
        lines.append(
            f"- a {compared.get('design', '')} comparison with metrics on: "
            f"{compared['paired_slowdown']:+.1%} until every video is in, "
            + (f"{settled:+.1%} until measured too " if settled is not None else "")
            + f"(median of back-to-back pairs; medians {compared['slowdown']:+.1%}; "
            "target <= +10 %)"
        )
    throughput = results.get("throughput")
    if throughput and "error" not in throughput:
        lines += ["", "### Sandbox throughput", "", "```", json.dumps(throughput, indent=1), "```"]
    return lines


def _local_table(results: dict[str, Any]) -> list[str]:
    lines = ["| wavenb itself | value | target |", "|---|---|---|"]
    render = results.get("render", {})
    if "16:9" in render:
        r = render["16:9"]
        lines.append(
            f"| sandbox render, 5 s 1280×720 24 fps (s) | {_cell(r['wall'], 2)} "
            f"(CPU {_cell(r['cpu'], 2)} s, peak RSS {_cell(r['peak_rss_mb'], 0)} MB) | ≤ 1.5 |"
        )
    for ratio, r in render.items():
        if ratio != "16:9":
            lines.append(
                f"| sandbox render, 5 s {ratio} (s) | {_cell(r['wall'], 2)} "
                f"(CPU {_cell(r['cpu'], 2)} s, peak RSS {_cell(r['peak_rss_mb'], 0)} MB) | |"
            )
    startup = results.get("startup", {})
    if startup:
        ms = {k: v * 1000 for k, v in startup["import_wavenb"].items() if k != "runs"}
        ms["runs"] = startup["import_wavenb"]["runs"]
        lines.append(f"| `import wavenb`, `-X importtime` (ms) | {_cell(ms, 0)} | ≤ 150 |")
        for mode, parts in startup["studio"].items():
            shown = {k: v * 1000 for k, v in parts["total"].items() if k != "runs"}
            shown["runs"] = parts["total"]["runs"]
            after = {
                k: (parts["build"][k] + parts["display"][k]) * 1000
                for k in ("min", "median", "max")
            }
            after["runs"] = parts["total"]["runs"]
            where = "with a key (real API)" if mode == "api" else "no key (embedded sandbox)"
            lines.append(
                f"| Studio on screen, {where}: import + build + display (ms) | "
                f"{_cell(shown, 0)}; build + display alone {_cell(after, 0)} | |"
            )
    download = results.get("download", {})
    if download:
        size = download["bytes"] / 2**20
        for how, label in (
            ("wavenb", "wavenb `client.download`"),
            ("requests", "`requests.get(url).content` (what SDK users write)"),
            ("requests-stream", "`requests` streamed in 1 MiB chunks"),
        ):
            if how in download:
                d = download[how]
                target = "≤ 16" if how == "wavenb" else ""
                lines.append(
                    f"| peak RSS growth, downloading {size:.0f} MB: {label} (MB) | "
                    f"{d['growth_mb']:.1f} ({d['wall']:.1f} s) | {target} |"
                )
    return lines


def _unscaled_table(unscaled: dict[str, Any]) -> list[str]:
    lines = [
        f"Real-time check ({unscaled['note']}):",
        "",
        "| figure | " + " | ".join(c for c in unscaled if c not in ("note", "rate_limit")) + " |",
        "|---|" + "---|" * len([c for c in unscaled if c not in ("note", "rate_limit")]),
    ]
    clients = [c for c in unscaled if c not in ("note", "rate_limit")]
    for label, key, digits, _target in POLL_ROWS:
        values = [_num(unscaled[c].get(key, math.nan), digits) for c in clients]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    if "rate_limit" in unscaled:
        rl = unscaled["rate_limit"]
        lines += ["", f"Rate cap in real time ({rl['note']}):", ""]
        for policy, figures in rl.items():
            if policy != "note":
                lines.append(
                    f"- {policy}: accepted {figures['accepted']} of {figures['asked']}, "
                    f"lost {figures['failed']}, 429s met {figures['refused_429']}"
                    + (f" — {figures['errors'][0].split(';')[0]}" if figures["errors"] else "")
                )
    return lines


def main() -> None:
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))


if __name__ == "__main__":
    main()
