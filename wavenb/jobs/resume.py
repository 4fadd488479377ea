"""Finishing what the journal says was left undone, on one server; never submitting again.

``resume`` first settles uncertain submissions from the account's history (``reconcile``),
then follows every task that was still running (after a kernel restart, a crash, a cancelled
wait) and downloads every completed video that is not on disk. One bad row (an unusable output
URL, an expired output, a failed task) is reported for that row; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from wavenb.core.errors import WavenbError
from wavenb.core.models import Video
from wavenb.jobs import reconcile
from wavenb.jobs.events import ProgressCallback
from wavenb.jobs.job import Job
from wavenb.jobs.session import Session
from wavenb.journal.rows import JournalRow

__all__ = ["Resumed", "resume"]

logger = logging.getLogger("wavenb")

CONCURRENCY: Final = 16
"""Rows followed at once: each is mostly asleep between polite checks."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """What ``resume`` did for one journal row."""

    row: JournalRow
    """The journal row as it was before resuming."""
    video: Video | None
    """The finished, downloaded video; ``None`` when it could not be had."""
    error: WavenbError | None
    """Why not, when ``video`` is ``None``."""


async def resume(
    session: Session,
    *,
    on_update: ProgressCallback | None = None,
    settle: bool = True,
) -> list[Resumed]:
    """Settle uncertain rows, then finish every resumable row of this session's server."""
    journal = session.journal_or_none()
    if journal is None:
        return []
    if settle:
        uncertain = [row for row in journal.unresolved() if row.base_url == session.base_url]
        if uncertain:
            await reconcile.settle(session, uncertain)
    rows = journal.resumable(session.base_url)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(row: JournalRow) -> Resumed:
        async with gate:
            return await _finish(session, row, on_update)

    return list(await asyncio.gather(*(one(row) for row in rows)))


async def _finish(
    session: Session, row: JournalRow, on_update: ProgressCallback | None
) -> Resumed:
    job = Job.following(session, row, on_update=on_update)
    try:
        video = await job.finish()
    except WavenbError as error:
        # A task the provider (or a sandbox that has since stopped) no longer knows is
        # recorded as gone by the job itself.
        return Resumed(row, None, error)
    except OSError as error:  # the output folder is unwritable or full: this row only
        return Resumed(row, None, WavenbError(f"the video could not be saved: {error}"))
    return Resumed(row, video, None)
