"""wavenb benchmarks: ``python -m bench.run [--quick]``.

Serves the sandbox with uvicorn on 127.0.0.1 (a child process) with exact, seeded job
durations and a request log, runs wavenb, the official ``wavespeed`` SDK and a naive loop
against it, measures the sandbox and wavenb themselves, writes ``bench/results/<date>.json``
and prints a Markdown table. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import analysis, pacing, report, scale, schedules
from bench.harness import PYTHON, ROOT, WORK, Spawned, child_env, ensure_deps, run_json, server

IMAGE = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"
CLIENTS = ("wavenb", "official", "naive")
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
LOW, HIGH = 10.0, 90.0
"""Job durations, model seconds: uniform over this range, seeded."""
RATE_JOBS = 8
RATE_CHECK = {"low": 2.0, "high": 2.0, "scale": 1.0, "seed": 4000, "submit_rate": [2, 60.0]}
RATE_NOTE = (
    f"{RATE_JOBS} submissions at once, 2 accepted a minute (the real Bronze cap), 2-s jobs, "
    "no time scaling: all are accepted only if the client keeps retrying for 3 minutes"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.quick = args.quick
        self.policies = ["default", "proposed"] if args.policy == "both" else [args.policy]
        self.scale = args.scale or (0.05 if self.quick else 0.1)
        self.batch_scale = self.scale / 2
        self.runs = args.runs or (1 if self.quick else 3)
        self.poll_jobs = 16 if self.quick else 32
        self.batch_jobs = 32
        self.results: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_before": os.getloadavg(),
            },
            "settings": {
                "quick": self.quick,
                "scale": self.scale,
                "batch_scale": self.batch_scale,
                "runs": self.runs,
                "durations": [LOW, HIGH],
                "poll_jobs": self.poll_jobs,
                "batch_jobs": self.batch_jobs,
                "policies": self.policies,
            },
            "runs": [],
        }
        WORK.mkdir(parents=True, exist_ok=True)

    # -- client scenarios -----------------------------------------------------------------

    def client_env(self, client: str, tag: str) -> dict[str, str]:
        home = WORK / f"home-{tag}-{client}-{time.monotonic_ns()}"
        return child_env(deps=client != "wavenb", home=home)

    def spawn(self, client: str, spec: dict[str, Any], tag: str) -> Spawned:
        spec = {**spec, "client": client}
        env = self.client_env(client, tag)
        return Spawned(["-m", "bench.clients", json.dumps(spec)], env=env, timeout=1200)

    def poll_scenario(self, run: int, policy: str, clients: tuple[str, ...]) -> dict[str, Any]:
        """Jobs of 10-90 s submitted 5 s apart; each client alone against the same server."""
        spec = {"low": LOW, "high": HIGH, "scale": self.scale, "seed": 1000 + run}
        out: dict[str, Any] = {}
        with server(spec) as srv:
            image_url = srv.upload(IMAGE, "wsk-bench-uploader")
            for client in clients:
                key = f"wsk-bench-poll-{client}-{policy}-{run}"
                job_spec = {
                    "scenario": "poll",
                    "base_url": srv.base_url,
                    "key": key,
                    "image_url": image_url,
                    "scale": self.scale,
                    "jobs": self.poll_jobs,
                    "stagger": 5.0,
                    "warmup": 6 if client == "wavenb" else 0,
                    "policy": policy,
                }
                log(f"poll run {run} {client} ({policy})")
                result = self.spawn(client, job_spec, f"poll{run}").result()
                out[client] = {"result": result, "key": key}
            state = srv.state()
        figures = {}
        for client, item in out.items():
            owner = analysis.key_digest(item["key"])
            rows = analysis.job_figures(item["result"]["jobs"], state, owner, self.scale)
            figures[client] = {
                "summary": analysis.poll_summary(rows, state, owner),
                "jobs": [{k: v for k, v in row.items() if k != "gaps"} for row in rows],
                "errors": [j["error"] for j in item["result"]["jobs"] if j.get("error")][:5],
            }
        return figures

    def batch_scenario(self, run: int, policy: str, clients: tuple[str, ...]) -> dict[str, Any]:
        """32 jobs, 4 at a time per key, 8 submissions a (scaled) minute."""
        rate = (8, 60.0)
        scale = self.batch_scale
        spec = {
            "low": LOW,
            "high": HIGH,
            "scale": scale,
            "seed": 2000 + run,
            "max_concurrent": 4,
            "submit_rate": [rate[0], rate[1] * scale],
        }
        figures: dict[str, Any] = {}
        with server(spec) as srv:
            image_url = srv.upload(IMAGE, "wsk-bench-uploader")
            results = {}
            for client in clients:
                key = f"wsk-bench-batch-{client}-{policy}-{run}"
                job_spec = {
                    "scenario": "batch",
                    "base_url": srv.base_url,
                    "key": key,
                    "image_url": image_url,
                    "image_path": str(IMAGE),
                    "scale": scale,
                    "jobs": self.batch_jobs,
                    "workers": 4,
                    "studio": True,
                    "policy": policy,
                }
                log(f"batch run {run} {client} ({policy})")
                results[client] = (self.spawn(client, job_spec, f"batch{run}").result(), key)
            state = srv.state()
        for client, (result, key) in results.items():
            figures[client] = analysis.batch_summary(
                result,
                state,
                analysis.key_digest(key),
                scale,
                slots=4,
                rate=rate,
                expected=self.batch_jobs,
            )
        return figures

    def unscaled_check(self) -> dict[str, Any]:
        """Real time, no scaling: 12 jobs per client, all three clients at once, for honesty."""
        spec = {"low": LOW, "high": HIGH, "scale": 1.0, "seed": 3000}
        jobs = 12
        history = [LOW + (HIGH - LOW) * (i + 0.5) / 6 for i in range(6)]
        with server(spec) as srv:
            image_url = srv.upload(IMAGE, "wsk-bench-uploader")
            spawned = {}
            for client in CLIENTS:
                key = f"wsk-bench-unscaled-{client}"
                job_spec = {
                    "scenario": "poll",
                    "base_url": srv.base_url,
                    "key": key,
                    "image_url": image_url,
                    "scale": 1.0,
                    "jobs": jobs,
                    "stagger": 5.0,
                    "warmup": 0,
                    "seed_history": history if client == "wavenb" else [],
                    "policy": self.policies[-1],
                }
                spawned[client] = (self.spawn(client, job_spec, "unscaled"), key)
            log(f"unscaled check: {jobs} jobs x 3 clients at once, real time (~3 min)")
            with server(RATE_CHECK) as capped:
                rate_spawned = self.rate_check_start(capped)
                done = {client: (proc.result(), key) for client, (proc, key) in spawned.items()}
                rate_done = {p: (proc.result(), key) for p, (proc, key) in rate_spawned.items()}
                rate_state = capped.state()
            state = srv.state()
        out = {}
        for client, (result, key) in done.items():
            owner = analysis.key_digest(key)
            rows = analysis.job_figures(result["jobs"], state, owner, 1.0)
            out[client] = analysis.poll_summary(rows, state, owner)
        out["note"] = (
            f"scale 1 (no time scaling), {jobs} jobs per client, the three clients concurrently; "
            f"wavenb with the {self.policies[-1]} schedule, its history seeded with "
            f"{len(history)} past durations spread over {LOW:g}-{HIGH:g} s"
        )
        out["rate_limit"] = {"note": RATE_NOTE}
        for policy, (result, key) in rate_done.items():
            owner = analysis.key_digest(key)
            out["rate_limit"][policy] = {
                "asked": RATE_JOBS,
                "accepted": len(rate_state["planned"].get(owner, [])),
                "failed": sum(1 for j in result["jobs"] if j.get("error")),
                "refused_429": sum(
                    1
                    for r in rate_state["log"]
                    if r["owner"] == owner and r["status"] == 429  # noqa: PLR2004
                ),
                "errors": [j["error"][:160] for j in result["jobs"] if j.get("error")][:1],
            }
        return out

    def rate_check_start(self, capped: Any) -> dict[str, tuple[Spawned, str]]:
        """wavenb (each policy) submitting RATE_JOBS at once against a real-time cap."""
        image_url = capped.upload(IMAGE, "wsk-bench-uploader")
        spawned = {}
        for policy in self.policies:
            key = f"wsk-bench-rate-{policy}"
            job_spec = {
                "scenario": "batch",
                "base_url": capped.base_url,
                "key": key,
                "image_url": image_url,
                "scale": 1.0,
                "jobs": RATE_JOBS,
                "studio": False,
                "policy": policy,
            }
            spawned[policy] = (self.spawn("wavenb", job_spec, f"rate-{policy}"), key)
        return spawned

    def scale_curve(self) -> dict[str, Any]:
        """10 to 1,000 videos in flight through one client (bench.scale), and the prototype."""
        sizes = scale.QUICK_SIZES if self.quick else scale.SIZES
        time_scale = 0.5 if self.quick else 1.0
        rows = scale.curve(sizes, scale=time_scale, baselines=not self.quick)
        out: dict[str, Any] = {"scale": time_scale, "durations": [scale.LOW, scale.HIGH],
                               "rows": rows}  # fmt: skip
        if not self.quick:
            # The client as of ad2235d, as is and with the prototype of the recommended changes.
            # Guarded on its own: a clone without that commit (shallow) keeps today's rows.
            before = guarded(lambda: {"rows": scale.curve(
                (32, 1000), scale=time_scale, variants=("today", "proposed"), baselines=False,
                cwd=scale.tree("ad2235d"), label=" @ad2235d",
            )})  # fmt: skip
            if "error" in before:
                out["before_error"] = before["error"]
            else:
                rows += before["rows"]
        return out

    # -- single-process figures -------------------------------------------------------------

    def render_figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        repeats = 1 if self.quick else 3
        for ratio in RATIOS if not self.quick else ("16:9",):
            samples = [
                run_json(["-m", "bench.micro", "render", ratio, "5"], env=child_env(), timeout=120)
                for _ in range(repeats)
            ]
            out[ratio] = {
                "wall": analysis.spread(s["wall"] for s in samples),
                "cpu": analysis.spread(s["cpu"] for s in samples),
                "peak_rss_mb": analysis.spread(s["peak_rss_kb"] / 1024 for s in samples),
                "bytes": samples[0]["bytes"],
            }
        return out

    def import_figures(self) -> dict[str, Any]:
        samples = []
        repeats = 3 if self.quick else 7
        for _ in range(repeats):
            done = subprocess.run(
                [PYTHON, "-X", "importtime", "-c", "import wavenb"],
                capture_output=True,
                text=True,
                env=child_env(),
                timeout=60,
                check=True,
            )
            for line in done.stderr.splitlines():
                match = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*wavenb$", line)
                if match:
                    samples.append(int(match.group(1)) / 1e6)
        studio = {}
        for mode in ("api", "sandbox"):
            runs = [
                run_json(
                    ["-m", "bench.micro", "studio", mode],
                    env=child_env(home=WORK / "home-studio"),
                    timeout=120,
                )
                for _ in range(repeats)
            ]
            studio[mode] = {
                part: analysis.spread(r[part] for r in runs)
                for part in ("import", "build", "display", "total")
            }
        return {"import_wavenb": analysis.spread(samples), "studio": studio}

    def download_figures(self) -> dict[str, Any]:
        size = (64 if self.quick else 500) * 1024 * 1024
        spec = {"low": LOW, "high": HIGH, "scale": 1.0, "seed": 0, "big_bytes": size}
        out: dict[str, Any] = {"bytes": size}
        with server(spec) as srv:
            url = f"{srv.base_url}/_bench/big"
            for how in ("wavenb", "requests", "requests-stream"):
                result = run_json(
                    ["-m", "bench.micro", "download", how, url],
                    env=child_env(deps=how != "wavenb", home=WORK / "home-download"),
                    timeout=600,
                )
                out[how] = {
                    "growth_mb": result["growth_kb"] / 1024,
                    "wall": result["wall"],
                    "ok": result["bytes"] == size,
                }
        return out

    # -- the whole run ----------------------------------------------------------------------

    def run(self, *, unscaled: bool) -> dict[str, Any]:
        started = time.monotonic()
        ensure_deps()
        results = self.results
        load = results["machine"]["load_by_phase"] = {}
        for policy in self.policies:
            clients = CLIENTS if policy == self.policies[0] else ("wavenb",)
            load[f"poll {policy}"] = os.getloadavg()[0]
            poll_runs = [self.poll_scenario(run, policy, clients) for run in range(self.runs)]
            load[f"batch {policy}"] = os.getloadavg()[0]
            batch_runs = [self.batch_scenario(run, policy, clients) for run in range(self.runs)]
            results["runs"].append({"policy": policy, "poll": poll_runs, "batch": batch_runs})
        log("render speed")
        load["render"] = os.getloadavg()[0]
        results["render"] = self.render_figures()
        log("import and Studio display")
        load["startup"] = os.getloadavg()[0]
        results["startup"] = self.import_figures()
        log("download memory")
        results["download"] = self.download_figures()
        if unscaled:
            load["unscaled"] = os.getloadavg()[0]
            results["unscaled"] = self.unscaled_check()
        load["scale"] = os.getloadavg()[0]
        results["scale"] = guarded(self.scale_curve)
        load["pacing"] = os.getloadavg()[0]
        results["pacing"] = guarded(
            lambda: pacing.scenario(
                jobs=20 if self.quick else 100,
                clients=("wavenb", "wavenb-ad2235d") if self.quick else pacing.CLIENTS,
            )
        )
        log("schedules, simulated")
        results["schedules"] = guarded(lambda: schedules.figures(quick=self.quick))
        log("A/B metrics: one clip, and a comparison with and without them")
        load["metrics"] = os.getloadavg()[0]
        repeats = 3 if self.quick else 7
        results["metrics"] = guarded(lambda: last_json("bench.metrics_bench", "--repeats",
                                                      str(repeats)))  # fmt: skip
        results["compare_metrics"] = guarded(
            lambda: last_json("bench.compare_metrics", "--repeats", str(max(2, repeats - 2)))
        )
        log("sandbox throughput: renders one after another and all at once")
        load["throughput"] = os.getloadavg()[0]
        results["throughput"] = guarded(
            lambda: last_json("bench.sandbox_throughput", "--rounds", "1" if self.quick else "3")
        )
        results["theory"] = schedules.optimal_mean_e(LOW, HIGH, 5.0, 0.25)
        results["machine"]["load_after"] = os.getloadavg()
        results["elapsed_s"] = time.monotonic() - started
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run, fewer jobs (< 5 min)")
    parser.add_argument(
        "--policy",
        choices=("default",),
        default="default",
        help="wavenb's poll schedule: as shipped (the bench's earlier proposals are merged)",
    )
    parser.add_argument(
        "--scale", type=float, default=0.0, help="time scale (default 0.1; quick 0.05; batch half)"
    )
    parser.add_argument(
        "--runs", type=int, default=0, help="runs per scenario (default 3; 1 quick)"
    )
    parser.add_argument("--no-unscaled", action="store_true", help="skip the real-time check")
    parser.add_argument("--output", type=Path, default=None, help="results file")
    args = parser.parse_args(argv)
    bench = Bench(args)
    results = bench.run(unscaled=not (args.quick or args.no_unscaled))
    target = (
        args.output
        or ROOT
        / "bench"
        / "results"
        / f"{dt.date.today().isoformat()}{'-quick' if args.quick else ''}.json"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(analysis.json_safe(results), indent=1) + "\n")
    curve = results.get("scale") or {}
    if curve.get("rows"):
        scale.plot(
            curve["rows"],
            target.with_name(target.stem + "-scale.png"),
            f"videos in flight through one client (time scale {curve['scale']:g})",
        )
    print()
    print(report.markdown(results))
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    print(f"\nresults: {shown} ({results['elapsed_s']:.0f} s)")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


def last_json(module: str, *args: str) -> dict[str, Any]:
    """Run a bench script (``python -m module args``) in a fresh process; its last line's JSON."""
    done = subprocess.run(
        [PYTHON, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, check=True,
        timeout=1800,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def guarded(measure: Any) -> dict[str, Any]:
    """A scenario's figures, or what went wrong (one broken scenario must not lose the run)."""
    try:
        result: dict[str, Any] = measure()
    except Exception as error:  # noqa: BLE001  (reported in the results, not raised)
        log(f"scenario failed: {type(error).__name__}: {error}")
        return {"error": f"{type(error).__name__}: {str(error)[-2000:]}"}
    return result


if __name__ == "__main__":
    sys.exit(main())
