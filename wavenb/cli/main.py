"""``wavenb`` on the command line: generate, history, resume, download, or serve the sandbox.

Exit status: 0 only for a completed, downloaded video; 2 for bad input or usage; 3 for an
authentication problem; 4 when the task failed; 5 when waiting timed out; 6 when a submit's
fate is unknown; 7 when over the spending limit; 8 when the journal cannot be used; 1 for
anything else. Failures print one line on stderr, redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from wavenb.cli import commands
from wavenb.cli.credentials import add_key_options, api_key
from wavenb.core.config import SPEEDS
from wavenb.core.errors import (
    AuthenticationError,
    BudgetExceeded,
    InputError,
    JournalError,
    PredictionFailed,
    PredictionTimeout,
    SubmissionUncertain,
    WavenbError,
)
from wavenb.core.redact import scrub_exception
from wavenb.core.types import ASPECT_RATIOS

__all__ = ["main"]

EXIT_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (InputError, 2),
    (AuthenticationError, 3),
    (PredictionFailed, 4),
    (PredictionTimeout, 5),
    (SubmissionUncertain, 6),
    (BudgetExceeded, 7),
    (JournalError, 8),
    (WavenbError, 1),
)
_KINDS: Final = {
    InputError: "bad input",
    AuthenticationError: "authentication failed",
    PredictionFailed: "generation failed",
    PredictionTimeout: "timed out",
    SubmissionUncertain: "submission uncertain",
    BudgetExceeded: "over budget",
    JournalError: "journal problem",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except WavenbError as error:
        scrub_exception(error)
        commands.say(f"{_KINDS.get(type(error), 'error')}: {error}")
        return next(code for kind, code in EXIT_CODES if isinstance(error, kind))
    except KeyboardInterrupt:
        commands.say("interrupted; a submitted task goes on at the provider (wavenb resume)")
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        return commands.sandbox(args)
    if args.command == "history" and not args.remote:
        return commands.show_history(args)
    key = api_key(args)
    if args.command == "history":
        return commands.remote_history(args, key)
    if args.command == "resume":
        return commands.resume_all(args, key)
    if args.command == "download":
        return commands.download(args, key)
    video = asyncio.run(commands.generate(args, key))
    if args.json:
        print(json.dumps(commands.summary(video), indent=2))
    else:
        print(video.path)
    return 0


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
    add_key_options(gen)
    gen.add_argument(
        "--fresh", action="store_true", help="pay for a new video even if the same one exists"
    )
    gen.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the video")
    gen.add_argument(
        "--speed",
        choices=SPEEDS,
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
    past.add_argument(
        "--remote",
        action="store_true",
        help="list the account's predictions of this model instead (videos made anywhere, e.g. "
        "in the web playground; last 7 days unless --days)",
    )
    past.add_argument("--base-url", default=None, help="with --remote: the API server")
    add_key_options(past)
    again = commands.add_parser(
        "resume", help="finish and download unfinished tasks; never resubmits"
    )
    again.add_argument("--base-url", default=None, help="only tasks sent to this server")
    add_key_options(again)
    fetch = commands.add_parser(
        "download", help="download a finished task's video by id (made anywhere); verified"
    )
    fetch.add_argument("id", help="the prediction id")
    fetch.add_argument("-o", "--output", type=Path, default=None, help="file or folder")
    fetch.add_argument("--base-url", default=None, help="API server (default: the real API)")
    add_key_options(fetch)
    box = commands.add_parser("sandbox", help="serve the local sandbox API over HTTP")
    box.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    box.add_argument("--port", type=int, default=8765)
    box.add_argument("--speed", choices=SPEEDS, default="fast")
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
