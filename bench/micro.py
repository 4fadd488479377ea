"""Single-process measurements, one per child process: ``python -m bench.micro <what> ...``.

``render <ratio> <seconds>``      sandbox render of one clip: wall s, CPU s, peak RSS
``studio <api|sandbox>``          import wavenb + build a Studio + its display bundle
``download <wavenb|requests|requests-stream> <url>``  peak RSS growth while downloading

Prints one JSON object as its last line of stdout.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def render(ratio: str, seconds: float) -> dict[str, Any]:
    from PIL import Image
    from wavenb.sandbox._motion import parse_motion
    from wavenb.sandbox._render import render_video

    with Image.open(IMAGE) as opened:
        image = opened.copy()
    motion = parse_motion("Camera slowly zooms in")
    rss_before = status_kb("VmRSS")
    with tempfile.TemporaryDirectory() as folder:
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        render_video(image, motion, Path(folder) / "clip.mp4", aspect_ratio=ratio, duration=seconds)  # type: ignore[arg-type]
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        size = (Path(folder) / "clip.mp4").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss_kb": peak,
        "rss_before_kb": rss_before,
        "bytes": size,
    }


def studio(mode: str) -> dict[str, Any]:
    import os

    if mode == "api":
        os.environ["WAVESPEED_API_KEY"] = "wsk-bench-not-a-key"
        os.environ["WAVENB_BASE_URL"] = "http://127.0.0.1:9"
    wall0 = time.perf_counter()
    import wavenb

    imported = time.perf_counter()
    widget = wavenb.Studio()
    built = time.perf_counter()
    bundle = widget._repr_mimebundle_()
    shown = time.perf_counter()
    assert bundle, "the Studio gave no display bundle"
    return {
        "import": imported - wall0,
        "build": built - imported,
        "display": shown - built,
        "total": shown - wall0,
    }


def download(how: str, url: str) -> dict[str, Any]:
    """Download ``url`` to a file; the client is built and warmed up before measuring."""
    base = url.rsplit("/_bench", 1)[0]
    with tempfile.TemporaryDirectory() as folder:
        target, warm = Path(folder) / "big.mp4", Path(folder) / "warm.mp4"
        if how == "wavenb":
            from wavenb import AsyncClient

            async def measure_async() -> dict[str, Any]:
                async with AsyncClient("wsk-bench-not-a-key", base) as client:
                    await client.download(base + "/_bench/small", warm)
                    rss0 = status_kb("VmRSS")
                    reset_peak()
                    wall0 = time.perf_counter()
                    await client.download(url, target)
                    return {"rss0": rss0, "wall": time.perf_counter() - wall0}

            taken = asyncio.run(measure_async())
        else:
            import requests

            session = requests.Session()
            warm.write_bytes(session.get(base + "/_bench/small", timeout=30).content)
            rss0 = status_kb("VmRSS")
            reset_peak()
            wall0 = time.perf_counter()
            if how == "requests":
                # What both baselines' users do with an output URL.
                target.write_bytes(session.get(url, timeout=120).content)
            else:
                with session.get(url, stream=True, timeout=120) as response, target.open("wb") as f:
                    for chunk in response.iter_content(1 << 20):
                        f.write(chunk)
            taken = {"rss0": rss0, "wall": time.perf_counter() - wall0}
        peak = status_kb("VmHWM")
        size = target.stat().st_size
    return {
        "growth_kb": peak - taken["rss0"],
        "rss_before_kb": taken["rss0"],
        "wall": taken["wall"],
        "bytes": size,
    }


def main() -> None:
    what, *args = sys.argv[1:]
    if what == "render":
        result = render(args[0], float(args[1]))
    elif what == "studio":
        result = studio(args[0])
    elif what == "download":
        result = download(args[0], args[1])
    else:
        raise SystemExit(f"unknown measurement {what!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
