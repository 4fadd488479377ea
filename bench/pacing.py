"""Submit pacing against the real sandbox's rate cap: ``python -m bench.pacing [--quick]``.

The sandbox (``bench.server``) caps each key at 10 submissions a (scaled) minute, sliding
window, 429 with ``Retry-After``, as ``SandboxConfig(submit_rate=(10, 60 * scale))``. A batch
of videos is submitted all at once by:

- ``wavenb``: ``AsyncClient.submit`` of this tree, as a user runs it (the journal on, every
  submit through the client's one gate and its pacer), on a runtime scaled like the server
  (``Runtime.scaled(scale, real_time_servers=True)``: the pacer's 60 s window is the server's);
- ``wavenb-ad2235d``: ``AsyncClient.submit`` of commit ad2235d (one Retry-After gate for the
  client, every waiting submit retrying when it opens);
- ``official`` / ``naive``: the SDK and the naive loop, one thread per video, a careful user's
  retry 10 (model) seconds after a 429 (``bench.clients``).

Figures, from the server's log: 429s met, accepted (and duplicates), and the makespan (first
to last accepted submit) over the ideal (every submit accepted as early as the cap allows:
``(ceil(n / 10) - 1)`` windows). Time scale: 0.25 (a 15-s window; ``Retry-After`` is whole
seconds, so much smaller windows would make it too coarse to learn from).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from typing import Any

from bench import analysis
from bench.harness import ROOT, WORK, child_env, ensure_deps, run_json, server

IMAGE = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"
CAP = 10
SUBMIT = "/api/v3/runwayml/gen4-turbo"
SCALE = 0.25
CLIENTS = ("wavenb", "wavenb-ad2235d", "official", "naive")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def current(spec: dict[str, Any]) -> dict[str, Any]:
    """``AsyncClient.submit`` of this tree: the journal on, one gate, on a scaled runtime."""
    from wavenb import AsyncClient, Runtime

    runtime = Runtime.scaled(spec["scale"], real_time_servers=True)
    async with AsyncClient(spec["key"], spec["base_url"], runtime=runtime) as client:
        out = await submit_all(client, spec, "paced")
        return {**out, "limit": client.session.gate.pacer.limit}


async def shipped(spec: dict[str, Any]) -> dict[str, Any]:
    """``AsyncClient.submit`` of the tree this process runs (ad2235d: ``--tree``)."""
    from wavenb import AsyncClient

    async with AsyncClient(spec["key"], spec["base_url"], journal=False) as client:
        return await submit_all(client, spec, "batch")


async def submit_all(client: Any, spec: dict[str, Any], word: str) -> dict[str, Any]:
    """Every video's submit at once through ``client``: the ids, the errors, the times."""
    started = time.monotonic()
    done = await asyncio.gather(
        *(client.submit(spec["image_url"], f"Camera slowly zooms in, {word} {i}")
          for i in range(spec["jobs"])),
        return_exceptions=True,
    )  # fmt: skip
    errors = [f"{type(d).__name__}: {d}"[:200] for d in done if isinstance(d, BaseException)]
    return {"ids": [d.id for d in done if not isinstance(d, BaseException)], "errors": errors,
            "started": started, "ended": time.monotonic()}  # fmt: skip


def scenario(
    *,
    jobs: int,
    scale: float = SCALE,
    tree: str = "ad2235d",
    clients: tuple[str, ...] = CLIENTS,
) -> dict[str, Any]:
    """Each client alone against a fresh capped sandbox; the figures side by side."""
    window = 60.0 * scale
    ideal = (math.ceil(jobs / CAP) - 1) * window
    spec = {"low": 0.05, "high": 0.1, "scale": 1.0, "seed": 4100, "submit_rate": [CAP, window]}
    out: dict[str, Any] = {
        "note": (
            f"{jobs} videos at once, cap {CAP} per {window:g} s (10 a minute, time scale "
            f"{scale:g}), sliding window, 429 with Retry-After; the real sandbox"
        ),
        "ideal_s": ideal,
    }
    if set(clients) - {"wavenb", "wavenb-ad2235d"}:
        ensure_deps()
    for name in clients:
        try:
            out[name] = one_client(name, spec, jobs=jobs, scale=scale, tree=tree, ideal=ideal)
        except Exception as error:  # noqa: BLE001  (one client's failure must not lose the rest)
            out[name] = {"error": f"{type(error).__name__}: {error}"[:300]}
        log(f"  {name}: {out[name]}")
    return out


def one_client(
    name: str, spec: dict[str, Any], *, jobs: int, scale: float, tree: str, ideal: float
) -> dict[str, Any]:
    """One client alone against a fresh capped sandbox: its figures."""
    from bench.scale import tree as tree_dir

    with server(spec) as srv:
        image_url = srv.upload(IMAGE, "wsk-pacing-uploader")
        key = f"wsk-pacing-{name}"
        child = {
            "base_url": srv.base_url, "key": key, "image_url": image_url, "jobs": jobs,
            "scale": scale,
        }  # fmt: skip
        log(f"pacing: {name}, {jobs} videos")
        home = WORK / f"home-pacing-{name}-{time.monotonic_ns()}"
        if name.startswith("wavenb"):
            mode = "current" if name == "wavenb" else "shipped"
            cwd = ROOT if mode == "current" else tree_dir(tree)
            env = child_env(home=home)
            if cwd != ROOT:
                env["PYTHONPATH"] = f"{cwd}:{env['PYTHONPATH']}"
            result = run_json(
                ["-m", "bench.pacing", "child", json.dumps({**child, "mode": mode})],
                env=env, timeout=1800, cwd=cwd,
            )  # fmt: skip
        else:
            batch = {**child, "client": name, "scenario": "batch", "workers": jobs}
            result = run_json(
                ["-m", "bench.clients", json.dumps(batch)],
                env=child_env(deps=True, home=home),
                timeout=1800,
            )
        state = srv.state()
    owner = analysis.key_digest(key)
    planned = state["planned"].get(owner, [])
    accepted_at = sorted(at for _id, at, _s in planned)
    refused = sum(
        1
        for r in state["log"]
        if r["owner"] == owner and r["route"] == analysis.SUBMIT_ROUTE and r["status"] == 429  # noqa: PLR2004
    )
    makespan = accepted_at[-1] - accepted_at[0] if accepted_at else math.nan
    return {
        "accepted": len(planned),
        "duplicates": max(0, len(planned) - jobs),
        "refused_429": refused,
        "makespan_s": makespan,
        "makespan_over_ideal": makespan / ideal if ideal else math.nan,
        "errors": (result.get("errors") or [])[:2],
        "learnt_limit": result.get("limit"),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"Submit pacing ({results['note']}):",
        "",
        "| client | accepted | 429s met | makespan / ideal |",
        "|---|---|---|---|",
    ]
    for name in CLIENTS:
        if name in results and "error" in results[name]:
            lines.append(f"| {name} | failed: {results[name]['error']} | | |")
        elif name in results:
            r = results[name]
            lines.append(
                f"| {name} | {r['accepted']} | {r['refused_429']} | "
                f"{r['makespan_over_ideal']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "child":
        spec = json.loads(argv[1])
        runner = current if spec["mode"] == "current" else shipped
        print(json.dumps(asyncio.run(runner(spec))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.pacing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 videos instead of 100")
    args = parser.parse_args(argv)
    results = scenario(jobs=30 if args.quick else 100)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
