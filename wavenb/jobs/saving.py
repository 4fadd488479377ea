"""Where a video is saved, and making sure only one process downloads it.

Two kernels resuming the same journal (or two ``wavenb resume`` at once) must not write the same
file: each claims the task in the journal first (``Journal.claim``, one transaction); the one
that gets the claim downloads, the others wait for its verified file. A claim held by a process
that died, or for too long, is taken over. Files are named ``<task id>.mp4`` in the outputs
folder, unless that name belongs to another submission's video (a server that reuses ids):
then ``<task id>-<request key>.mp4``, so no video ever overwrites another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from wavenb.core.errors import DownloadError
from wavenb.jobs.download import Saved
from wavenb.journal.rows import file_ok

if TYPE_CHECKING:
    from wavenb.jobs.job import Job

__all__ = ["JOINED_UNCERTAIN", "JOIN_LIMIT", "JOIN_POLL", "save"]

JOIN_POLL: Final = 0.5
"""Seconds between looks at the journal while another process sends or downloads a task."""
JOIN_LIMIT: Final = 300.0
"""How long a joined submission or download is waited for before giving up."""
JOINED_UNCERTAIN: Final = (
    "an identical submission may already have been charged (its answer was lost and the "
    "account's history does not settle it yet); wavenb.resume() settles it later, or pass "
    "fresh=True to pay for a new video"
)
"""Why a request that joins an uncertain identical one stops there (never paid twice)."""

Fetch = Callable[..., Awaitable[Saved]]


async def save(job: Job, url: str, target: Path | None, fetch: Fetch) -> tuple[Path, bool]:
    """Download ``url`` for ``job`` (or take the file another process just saved).

    Returns the path and whether it was someone else's download.
    """
    session = job.session
    prediction = job.prediction
    assert prediction is not None  # noqa: S101
    journal = session.journal_or_none()
    path = _target(job, target)
    if journal is None:
        saved = await fetch(session.http, url, path, max_bytes=session.max_download)
        return saved.path, False
    token = job.claim_token
    waited = 0.0
    while not await session.write(journal.claim, prediction.id, session.base_url, token):
        row = await session.write(journal.get, prediction.id, session.base_url)
        if row is not None and row.path is not None and file_ok(row.path, row.size):
            return Path(row.path), True
        if waited >= JOIN_LIMIT:
            raise DownloadError(
                f"another process has been downloading task {prediction.id} for {JOIN_LIMIT:g} s;"
                " try resume again later"
            )
        await job._emit(job.phase, detail="another process is downloading it")
        await session.runtime.sleep(JOIN_POLL)
        waited += JOIN_POLL
    try:
        row = await session.write(journal.get, prediction.id, session.base_url)
        if row is not None and row.path is not None and file_ok(row.path, row.size):
            return Path(row.path), True  # done by someone else while we were claiming
        saved = await fetch(session.http, url, path, max_bytes=session.max_download)
        await session.write(journal.downloaded, prediction.id, saved.path, saved.sha256,
                            saved.size, session.base_url)  # fmt: skip
    except BaseException:
        await asyncio.shield(session.write(journal.unclaim, prediction.id, session.base_url,
                                           token))  # fmt: skip
        raise
    return saved.path, False


def _target(job: Job, target: Path | None) -> Path:
    """The file to write: the caller's, else ``<outputs>/<id>.mp4`` unless that is taken."""
    prediction = job.prediction
    assert prediction is not None  # noqa: S101
    if target is not None:
        return target / f"{prediction.id}.mp4" if target.is_dir() else target
    default = job.session.outputs / f"{prediction.id}.mp4"
    if not default.exists():
        return default
    journal = job.session.journal_or_none()
    mine = None if journal is None else journal.get(prediction.id, job.session.base_url)
    if mine is not None and mine.path is not None and Path(mine.path) == default.absolute():
        return default  # our own earlier (maybe cut) download: replace it
    if mine is None or mine.path is None:
        # The name belongs to another submission (or nobody we know): never overwrite it.
        suffix = (job.key or "x")[:8]
        return job.session.outputs / f"{prediction.id}-{suffix}.mp4"
    return default
