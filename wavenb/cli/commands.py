"""What each ``wavenb`` subcommand does.

Output goes to stdout; progress and errors to stderr, every line redacted (a server that
echoes the key never gets it printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Final

from wavenb.client.async_client import AsyncClient
from wavenb.client.history import history, resume, spent, unresolved
from wavenb.core.models import Prediction, Video
from wavenb.core.phase import Phase
from wavenb.core.redact import redact
from wavenb.jobs.events import Update
from wavenb.journal.rows import format_table

__all__ = ["download", "generate", "remote_history", "resume_all", "sandbox", "show_history"]


def say(text: str) -> None:
    """One line on stderr, redacted."""
    print(redact(f"wavenb: {text}"), file=sys.stderr)


class Progress:
    """Prints a line when the phase changes, and otherwise every few seconds at most."""

    EVERY: Final = 5.0

    def __init__(self) -> None:
        self._last: tuple[str, float] | None = None

    def __call__(self, update: Update) -> None:
        phase = update.phase.value
        if self._last and self._last[0] == phase and update.elapsed - self._last[1] < self.EVERY:
            return
        self._last = (phase, update.elapsed)
        what = update.prediction.id if update.prediction is not None else "new task"
        eta = f", about {update.eta:.0f} s left" if update.eta and not update.phase.ended else ""
        detail = f" ({update.detail})" if update.detail else ""
        say(f"[{update.elapsed:6.1f} s] {what} {phase}{detail}{eta}")


async def generate(args: argparse.Namespace, key: str | None) -> Video:
    """``wavenb generate``: one video, printed as its path (or a JSON summary)."""
    async with AsyncClient(key, args.base_url, sandbox_speed=args.speed) as client:
        backend = await client.detect()
        if backend == "sandbox":
            say(f"generating on the local SANDBOX at {client.base_url} (free)")
        else:
            say(f"generating on {client.base_url} (${await client.price():.2f} a video)")
        return await client.generate(
            args.image, args.prompt, args.aspect_ratio, output=args.output,
            timeout=args.timeout, on_update=Progress(), fresh=args.fresh,
        )  # fmt: skip


def summary(video: Video) -> dict[str, object]:
    """The JSON ``--json`` prints for a video."""
    prediction = video.prediction
    return {
        "id": prediction.id,
        "status": prediction.status.value,
        "phase": Phase.DOWNLOADED.value,
        "model": prediction.model,
        "sandbox": prediction.sandbox,
        "reused": video.reused,
        "output_url": redact(video.url),
        "path": str(video.path),
        "inference_ms": prediction.inference_ms,
        "execution_ms": prediction.execution_ms,
    }


def show_history(args: argparse.Namespace) -> int:
    """``wavenb history``: the journal as a table (or JSON), with the total spent."""
    since = datetime.now(UTC) - timedelta(days=args.days) if args.days is not None else None
    rows = history(status=args.status, since=since, text=args.text, limit=args.limit)
    if args.json:
        print(redact(json.dumps([row.as_dict() for row in rows], indent=2)))
    else:
        print(redact(format_table(rows)) if rows else "no submissions recorded yet")
        print(f"spent: ${spent(since):.2f}" + (f" in the last {args.days:g} days" if since else ""))
    return 0


def remote_history(args: argparse.Namespace, key: str | None) -> int:
    """``wavenb history --remote``: the account's predictions of this model (any client)."""

    async def fetch() -> list[Prediction]:
        async with AsyncClient(key, args.base_url) as client:
            now = datetime.now(UTC)
            days = args.days if args.days is not None else 7.0
            found = []
            async for item in client.predictions.list(
                created_after=now - timedelta(days=days), created_before=now, status=args.status
            ):
                found.append(item)
                if len(found) >= args.limit:
                    break
            return found

    items = asyncio.run(fetch())
    if args.json:
        print(redact(json.dumps([_remote_row(p) for p in items], indent=2)))
        return 0
    if not items:
        print("no predictions of this model in the account's history for that window")
        return 0
    for item in items:
        row = _remote_row(item)
        print(redact(f"{row['created_at'] or '?':25}  {item.id}  {item.status.value:10}  "
                     f"{row['output_url'] or ''}"))  # fmt: skip
    print("download one with: wavenb download ID (output URLs expire after 7 days)")
    return 0


def _remote_row(prediction: Prediction) -> dict[str, object]:
    created = prediction.created_at.isoformat() if prediction.created_at else None
    return {"id": prediction.id, "status": prediction.status.value, "model": prediction.model,
            "created_at": created, "output_url": prediction.output_url,
            "sandbox": prediction.sandbox}  # fmt: skip


def download(args: argparse.Namespace, key: str | None) -> int:
    """``wavenb download ID``: fetch a finished task's video (made anywhere), verified."""

    async def fetch() -> Video:
        async with AsyncClient(key, args.base_url) as client:
            prediction = await client.get(args.id)
            if not prediction.terminal:
                prediction = await client.wait(prediction, on_update=Progress())
            if not prediction.outputs:
                from wavenb.core.errors import PredictionFailed  # noqa: PLC0415

                raise PredictionFailed(
                    f"task {prediction.id} is {prediction.status.value}: no video to download",
                    prediction,
                )
            path = await client.download(prediction, args.output)
            return Video(prediction.outputs[0], path, prediction)

    video = asyncio.run(fetch())
    print(video.path)
    return 0


def resume_all(args: argparse.Namespace, key: str | None) -> int:
    """``wavenb resume``: settle, wait for and download what was left; never resubmits."""
    failures = 0
    for item in resume(key, args.base_url, on_update=Progress()):
        if item.video is not None:
            print(f"{item.row.prediction_id}\t{item.video.path}")
        else:
            failures += 1
            say(f"{item.row.prediction_id}: {item.error}")
    for row in unresolved():
        error = row.error or ""
        found = f" History: {error.removeprefix('ambiguous: ')}." if error.startswith(
            "ambiguous: ") else ""  # fmt: skip
        say(
            f"submitted {row.submitted_at:%Y-%m-%d %H:%M} to {row.base_url} without an answer "
            f"({row.status}): it may have been charged and the account's history does not settle "
            f"it yet; never resent. Prompt: {row.prompt[:60]!r}.{found}"
        )
    return 1 if failures else 0


def sandbox(args: argparse.Namespace) -> int:
    """``wavenb sandbox``: serve the local sandbox API over HTTP."""
    from wavenb.sandbox import FaultPlan, SandboxConfig, serve  # noqa: PLC0415  (the sandbox extra)

    try:
        faults = FaultPlan.parse(args.faults) if args.faults is not None else None
    except ValueError as error:
        say(f"bad --faults: {error}")
        return 2
    config = SandboxConfig(
        speed=args.speed,
        max_concurrent=args.max_concurrent,
        submit_rate=args.submit_rate,
        faults=faults,
    )
    serve(args.host, args.port, config)
    return 0
