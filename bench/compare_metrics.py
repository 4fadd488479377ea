"""What measuring costs a comparison: ``python -m bench.compare_metrics [--repeats N]``.

A 4 prompts x 1 repeat comparison (4 different videos of 5 s at 1280x720, rendered by an
in-process sandbox) is run with metrics and without, alternately, each time with a fresh sandbox
and a fresh journal (so nothing is reused). ``--design 2x2`` (2 prompts x 2 repeats) is kinder:
the sandbox renders the repeats of a prompt as the same bytes, so two of its four measurements
come from the metrics cache (each run prints how many distinct videos it measured). "Without"
is the same code with the metrics module unavailable (as when numpy/PyAV are missing): the
comparison then measures nothing.

Two figures per run, both held to the issue's budget (a comparison's wall time grows by at
most 10 % with metrics on), each as the ratio of the medians and as the median ratio of the
back-to-back pairs:

- ``videos``: seconds from ``compare()`` until every cell is ``downloaded`` (what the user
  waits for the grid to fill): ``slowdown``, ``paired_slowdown``;
- ``settled``: seconds until ``await cmp`` returns, every video also measured (what a script
  waits for): ``settled_slowdown``, ``paired_settled_slowdown``.

``--speed instant`` (default) is the worst case: tasks end when their render ends, so the
comparison is pure CPU and the measuring competes with the renders for the two cores.
``--speed fast`` adds the sandbox's few seconds of queueing and processing; ``--speed
realistic`` gives each task the 20-60 s of processing a real Runway task takes (a run then
takes about a minute), which is what the budget is about in practice: the videos land far
apart, and each is measured while the others are still being made.

Prints a table, then one JSON object as its last line. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "notebooks" / "assets" / "product-coffee.jpg"
PROMPTS = {
    "zoom": "Camera slowly zooms in on the cup",
    "pan": "Camera pans right past the cup",
    "tilt": "Camera tilts up over the cup",
    "orbit": "Slow orbit around the cup",
}
DESIGNS = {"2x2": (2, 2), "4x1": (4, 1)}
"""Prompts x repeats."""
DEFAULT_DESIGN = "4x1"  # every cell a different video: no measurement comes from the cache
BUDGET = 0.10
"""The most a comparison's wall time may grow with metrics on."""


async def one_run(speed: str, design: str, *, metrics: bool, folder: Path) -> dict[str, float]:
    import httpx
    from wavenb.ab.comparison import compare
    from wavenb.client.async_client import AsyncClient
    from wavenb.journal.store import Journal
    from wavenb.sandbox import SandboxConfig, create_app

    app = create_app(SandboxConfig(speed=speed, duration=5.0, storage_dir=folder / "sandbox"))
    client = AsyncClient(
        "bench-key", "http://sandbox.wavenb.invalid", transport=httpx.ASGITransport(app=app),
        output_dir=folder / "out", journal=Journal(folder / "journal.sqlite3"),
    )  # fmt: skip
    await client.detect()
    saved = sys.modules.get("wavenb.ab.metrics")
    if not metrics:
        sys.modules["wavenb.ab.metrics"] = None  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        videos: list[float] = []
        prompts, repeats = DESIGNS[design]
        chosen = dict(list(PROMPTS.items())[:prompts])
        cmp = compare(IMAGE, chosen, aspect_ratios=["16:9"], repeats=repeats, client=client)

        def look(_cell: str | None) -> None:
            if not videos and all(run.done for run in cmp.runs):
                videos.append(time.perf_counter() - start)

        cmp.watch(look)
        await cmp
        settled = time.perf_counter() - start
    finally:
        if saved is not None:
            sys.modules["wavenb.ab.metrics"] = saved
        else:
            sys.modules.pop("wavenb.ab.metrics", None)
        await client.aclose()
        app.state.sandbox.close()
    measured = sum(run.metrics is not None for run in cmp.runs)
    assert measured == (len(cmp.runs) if metrics else 0), (measured, cmp.metrics_note)
    distinct = len({run.sha256 for run in cmp.runs})
    return {"videos": videos[0], "settled": settled, "distinct_videos": distinct}


def summarize(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in ("videos", "settled")} | {
        "best_videos": min(run["videos"] for run in runs),
        "distinct_videos": min(run["distinct_videos"] for run in runs),
    }


def slowdowns(results: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """How much metrics slow ``videos`` and ``settled``: ratio of medians, median of pairs.

    ``results["with"][i]`` and ``results["without"][i]`` ran back to back: their ratio is
    blind to slow drifts in the machine's load (other work on the two cores), which the
    medians are not.
    """
    out: dict[str, float] = {}
    for figure, prefix in (("videos", ""), ("settled", "settled_")):
        with_median = statistics.median(run[figure] for run in results["with"])
        without_median = statistics.median(run[figure] for run in results["without"])
        out[f"{prefix}slowdown"] = with_median / without_median - 1
        out[f"paired_{prefix}slowdown"] = statistics.median(
            w[figure] / wo[figure] - 1
            for w, wo in zip(results["with"], results["without"], strict=True)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--speed", choices=["instant", "fast", "realistic"], default="instant")
    parser.add_argument("--design", choices=sorted(DESIGNS), default=DEFAULT_DESIGN)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory(prefix="wavenb-bench-") as tmp:
        asyncio.run(one_run(args.speed, args.design, metrics=True, folder=Path(tmp) / "warm-up"))
        for index in range(args.repeats):
            for label in ("without", "with") if index % 2 else ("with", "without"):
                folder = Path(tmp) / f"{label}-{index}"
                with_metrics = label == "with"
                run = asyncio.run(one_run(args.speed, args.design, metrics=with_metrics,
                                          folder=folder))  # fmt: skip
                results[label].append(run)
                print(f"{label:8} run {index + 1}: videos {run['videos']:6.2f} s, "
                      f"settled {run['settled']:6.2f} s, "
                      f"{run['distinct_videos']:.0f} distinct videos", flush=True)  # fmt: skip
    medians = {label: summarize(runs) for label, runs in results.items()}
    figures = slowdowns(results)
    print()
    print(f"{'':8} {'videos (median)':>16} {'videos (best)':>14} {'settled (median)':>17}")
    for label, m in medians.items():
        print(f"{label:8} {m['videos']:15.2f}s {m['best_videos']:13.2f}s {m['settled']:16.2f}s")
    for name, prefix in (("videos", ""), ("settled", "settled_")):
        by_medians, paired = figures[f"{prefix}slowdown"], figures[f"paired_{prefix}slowdown"]
        verdict = "within" if max(by_medians, paired) <= BUDGET else "OVER"
        print(f"metrics slow {name:7} by {by_medians:+.1%} (medians), {paired:+.1%} (median of "
              f"back-to-back pairs): {verdict} the budget of +{BUDGET:.0%}")  # fmt: skip
    out: dict[str, Any] = {"speed": args.speed, "design": args.design, "repeats": args.repeats,
                           **medians, **figures}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
