"""``wavenb`` on the command line: ``generate`` a video, or serve the ``sandbox``.

Exit status: 0 only for a completed, downloaded video; 2 for bad input or usage; 3 for an
authentication problem; 4 when the task failed; 5 when waiting timed out; 6 when a submit's
fate is unknown; 7 when over the spending limit; 1 for anything else. Failures print one line
on stderr. ``history`` lists the journal; ``resume`` finishes what it says was left undone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from wavenb.client.async_client import AsyncClient, Update
from wavenb.client.history import history, resume, spent, unresolved
from wavenb.core.errors import (
    AuthenticationError,
    BudgetExceeded,
    InputError,
    PredictionFailed,
    PredictionTimeout,
    SubmissionUncertain,
    WavenbError,
)
from wavenb.core.models import Video
from wavenb.core.types import ASPECT_RATIOS
from wavenb.journal.store import format_table

__all__ = ["main"]

EXIT_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (InputError, 2),
    (AuthenticationError, 3),
    (PredictionFailed, 4),
    (PredictionTimeout, 5),
    (SubmissionUncertain, 6),
    (BudgetExceeded, 7),
    (WavenbError, 1),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "history":
        return _history(args)
    if args.command == "resume":
        return _resume(args)
    try:
        video = asyncio.run(_generate(args))
    except WavenbError as error:
        print(f"wavenb: {_kind(error)}: {error}", file=sys.stderr)
        return next(code for kind, code in EXIT_CODES if isinstance(error, kind))
    except KeyboardInterrupt:
        print("wavenb: interrupted; a submitted task goes on at the provider", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(_summary(video), indent=2))
    else:
        print(video.path)
    return 0


async def _generate(args: argparse.Namespace) -> Video:
    async with AsyncClient(args.api_key, args.base_url, sandbox_speed=args.speed) as client:
        where = "the local SANDBOX (free)" if client.backend == "sandbox" else client.base_url
        price = "" if client.backend == "sandbox" else f" (${client.price_per_video:.2f})"
        print(f"wavenb: generating on {where}{price}", file=sys.stderr)
        return await client.generate(
            args.image,
            args.prompt,
            args.aspect_ratio,
            output=args.output,
            timeout=args.timeout,
            on_update=_Progress(),
        )


class _Progress:
    """Prints a line when the status changes, and otherwise every few seconds at most."""

    EVERY: Final = 5.0

    def __init__(self) -> None:
        self._last: tuple[str, float] | None = None

    def __call__(self, update: Update) -> None:
        status = update.prediction.status.label
        if self._last and self._last[0] == status and update.elapsed - self._last[1] < self.EVERY:
            return
        self._last = (status, update.elapsed)
        eta = f", about {update.eta:.0f} s left" if update.eta else ""
        line = f"[{update.elapsed:6.1f} s] {update.prediction.id} {status}{eta}"
        print(f"wavenb: {line}", file=sys.stderr)


def _sandbox(args: argparse.Namespace) -> int:
    from wavenb.sandbox import FaultPlan, SandboxConfig, serve  # noqa: PLC0415  (the sandbox extra)

    try:
        faults = FaultPlan.parse(args.faults) if args.faults is not None else None
    except ValueError as error:
        print(f"wavenb: bad --faults: {error}", file=sys.stderr)
        return 2
    config = SandboxConfig(
        speed=args.speed,
        max_concurrent=args.max_concurrent,
        submit_rate=args.submit_rate,
        faults=faults,
    )
    serve(args.host, args.port, config)
    return 0


def _history(args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - timedelta(days=args.days) if args.days is not None else None
    rows = history(status=args.status, since=since, text=args.text, limit=args.limit)
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        print(format_table(rows) if rows else "no submissions recorded yet")
        print(f"spent: ${spent(since):.2f}" + (f" in the last {args.days:g} days" if since else ""))
    return 0


def _resume(args: argparse.Namespace) -> int:
    failures = 0
    for item in resume(args.api_key, args.base_url, on_update=_Progress()):
        if item.video is not None:
            print(f"{item.row.prediction_id}\t{item.video.path}")
        else:
            failures += 1
            print(f"wavenb: {item.row.prediction_id}: {item.error}", file=sys.stderr)
    for row in unresolved():
        print(
            f"wavenb: submitted {row.submitted_at:%Y-%m-%d %H:%M} without an answer ({row.status}):"
            f" it may have been charged; not resent. Prompt: {row.prompt[:60]!r}",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _summary(video: Video) -> dict[str, object]:
    prediction = video.prediction
    return {
        "id": prediction.id,
        "status": prediction.status.value,
        "model": prediction.model,
        "sandbox": prediction.sandbox,
        "output_url": video.url,
        "path": str(video.path),
        "inference_ms": prediction.inference_ms,
        "execution_ms": prediction.execution_ms,
    }


def _kind(error: WavenbError) -> str:
    return {
        InputError: "bad input",
        AuthenticationError: "authentication failed",
        PredictionFailed: "generation failed",
        PredictionTimeout: "timed out",
        SubmissionUncertain: "submission uncertain",
        BudgetExceeded: "over budget",
    }.get(type(error), "error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavenb",
        description="Runway Gen4 Turbo image-to-video via WaveSpeedAI, or the local sandbox.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="animate an image; prints the saved MP4's path")
    gen.add_argument("image", help="image path or http(s) URL")
    gen.add_argument("prompt", help="the motion, e.g. 'Camera slowly zooms in'")
    gen.add_argument(
        "--aspect-ratio",
        choices=ASPECT_RATIOS,
        default=None,
        help="output ratio (default: match the image)",
    )
    gen.add_argument("-o", "--output", type=Path, default=None, help="where to save the MP4")
    gen.add_argument(
        "--base-url",
        default=None,
        help="API server (default: real API if a key is set, else the sandbox)",
    )
    gen.add_argument("--api-key", default=None, help="API key (default: $WAVESPEED_API_KEY)")
    gen.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the video")
    gen.add_argument(
        "--speed",
        choices=("instant", "fast", "realistic"),
        default=None,
        help="embedded sandbox timing (default: fast)",
    )
    gen.add_argument("--json", action="store_true", help="print a JSON summary instead of the path")
    past = commands.add_parser("history", help="list recorded submissions and what they cost")
    past.add_argument("--status", default=None, help="only rows with this status")
    past.add_argument("--days", type=float, default=None, help="only the last N days")
    past.add_argument("--text", default=None, help="only rows whose prompt or id contains this")
    past.add_argument("--limit", type=int, default=50)
    past.add_argument("--json", action="store_true")
    again = commands.add_parser(
        "resume", help="finish and download unfinished tasks; never resubmits"
    )
    again.add_argument("--base-url", default=None, help="only tasks sent to this server")
    again.add_argument("--api-key", default=None, help="API key (default: $WAVESPEED_API_KEY)")
    box = commands.add_parser("sandbox", help="serve the local sandbox API over HTTP")
    box.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    box.add_argument("--port", type=int, default=8765)
    box.add_argument("--speed", choices=("instant", "fast", "realistic"), default="fast")
    box.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="tasks one key may run at once; more wait in 'created' (real default level: 2)",
    )
    box.add_argument(
        "--submit-rate",
        type=_rate,
        default=None,
        metavar="N/SECONDS",
        help="at most N submissions per SECONDS per key, more get a 429 (real default: 2/60)",
    )
    box.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="inject failures, e.g. '429=0.1,5xx=0.05,reset=0.02,timeout=0.02,fail=0.05,seed=1'"
        " or a JSON file; see wavenb.sandbox._faults",
    )
    return parser


def _rate(text: str) -> tuple[int, float]:
    """``N/SECONDS`` (``2/60``) for ``--submit-rate``."""
    count, _, seconds = text.partition("/")
    try:
        rate = int(count), float(seconds)
    except ValueError:
        rate = (0, 0.0)
    if rate[0] < 1 or not rate[1] > 0:
        raise argparse.ArgumentTypeError(f"expected N/SECONDS, e.g. 2/60; got {text!r}")
    return rate
