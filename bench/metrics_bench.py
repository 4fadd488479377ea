"""How long the A/B measuring takes: ``python -m bench.metrics_bench [--repeats N]``.

- ``measure``: one 5 s 1280x720 sandbox clip per camera move (pan, zoom, orbit, static),
  measured ``--repeats`` times each, with the source image (so SSIM is included): wall and
  CPU seconds. The target is 1 s wall on 2 cores.
- ``rank``: 10 prompts x 100 simulated votes, both methods at their default draws.
- ``sheet`` / ``preview``: a contact sheet of 4 prompts x 2 videos x 4 frames, and the animated
  WebP of one clip (its size too).

Prints a table, then one JSON object as its last line. Run it on a quiet machine: other work
on the two cores shows up directly in the wall times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"
PROMPTS = {
    "pan": "Gentle camera pan to the right",
    "zoom": "Camera slowly zooms in",
    "orbit": "orbit left around the cat",
    "static": "static shot",
}


def timed(action: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and best wall seconds, and median CPU seconds, of ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        action()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return {"median": statistics.median(walls), "best": min(walls), "cpu": statistics.median(cpus)}


def bench_measure(folder: Path, repeats: int) -> dict[str, Any]:
    from PIL import Image
    from wavenb.ab.metrics import measure
    from wavenb.sandbox._motion import parse_motion
    from wavenb.sandbox._render import render_video

    with Image.open(IMAGE) as opened:
        image = opened.copy()
    results: dict[str, Any] = {}
    for name, prompt in PROMPTS.items():
        path = folder / f"{name}.mp4"
        render_video(image, parse_motion(prompt), path, aspect_ratio="16:9")
        metrics = measure(path, source=image, prompt=prompt)
        results[name] = {
            **timed(
                lambda path=path, prompt=prompt: measure(path, source=image, prompt=prompt), repeats
            ),
            "camera_move": metrics.camera_move,
            "match": metrics.motion_match,
        }
    return results


def bench_rank(repeats: int) -> dict[str, Any]:
    import numpy as np
    from wavenb.ab.ranking import rank

    rng = np.random.default_rng(1)
    ids = [f"prompt{i}" for i in range(10)]
    truth = rng.normal(0, 1, len(ids))
    votes = []
    for _ in range(100):
        a, b = rng.choice(len(ids), 2, replace=False)
        won = rng.random() < 1 / (1 + math.exp(truth[b] - truth[a]))
        votes.append((ids[a], ids[b]) if won else (ids[b], ids[a]))
    return {
        method: timed(lambda method=method: rank(votes, ids, method=method), repeats)
        for method in ("bayes", "bootstrap")
    }


def bench_sheets(folder: Path, repeats: int) -> dict[str, Any]:
    from wavenb.ab.sheets import animated_preview, contact_sheet

    videos = sorted(folder.glob("*.mp4"))
    rows = [(name, videos[:2]) for name in PROMPTS]
    sheet = contact_sheet(rows)
    preview = animated_preview(videos[0])
    return {
        "sheet": {**timed(lambda: contact_sheet(rows), repeats), "bytes": len(sheet)},
        "preview": {**timed(lambda: animated_preview(videos[0]), repeats), "bytes": len(preview)},
    }


def line(what: str, row: dict[str, Any], note: str = "") -> None:
    print(f"{what:<28}{row['median']:>10.3f}{row['best']:>10.3f}{row['cpu']:>10.3f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        report = {
            "cores": os.cpu_count(),
            "load_before": os.getloadavg()[0],
            "measure": bench_measure(folder, args.repeats),
            "rank": bench_rank(args.repeats),
            **bench_sheets(folder, max(3, args.repeats // 2)),
        }
    print(f"{'what':<28}{'median s':>10}{'best s':>10}{'cpu s':>10}  note")
    for name, row in report["measure"].items():
        line(f"measure 5 s 720p {name}", row, f"{row['camera_move']}, match {row['match']}")
    for method, row in report["rank"].items():
        line(f"rank 10x100 {method}", row)
    for what in ("sheet", "preview"):
        line(what, report[what], f"{report[what]['bytes'] / 1000:.0f} KB")
    print(f"load average before: {report['load_before']:.2f} on {report['cores']} cores")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
