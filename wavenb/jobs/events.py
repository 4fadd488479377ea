"""What observers of a generation receive: one ``Update`` per step of its lifecycle.

The Studio's progress rows, the comparison's grid cells, the CLI's progress line and timelines
are all drawn from these; none of them moves a task themselves.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wavenb.core.errors import WavenbError
from wavenb.core.models import Prediction
from wavenb.core.phase import Phase

__all__ = ["ProgressCallback", "Update", "notify"]

logger = logging.getLogger("wavenb")


@dataclass(frozen=True, slots=True)
class Update:
    """One step of a generation, as ``on_update`` callbacks receive it."""

    prediction: Prediction | None
    """The task's latest known state; ``None`` before the provider answered the submit."""
    elapsed: float
    """Seconds since the generation began (or since waiting began, for tasks from elsewhere)."""
    checks: int
    """Result checks made so far."""
    next_check: float | None
    """Seconds until the next check; ``None`` when no check is planned (not waiting, or ended)."""
    eta: float | None
    """Expected seconds until completion, from past runs; ``None`` when nothing is known."""
    phase: Phase = Phase.QUEUED
    """Where the generation is (the vocabulary of every view)."""
    key: str | None = None
    """The journal's request key of the submission, once reserved."""
    detail: str = ""
    """A few words for people: "uploading the image", "rate limited: next try in 12 s"..."""
    error: WavenbError | None = None
    """Why it ended badly, on the last update of a failed, refused or uncertain generation."""
    path: Path | None = None
    """The MP4 on disk, on the ``downloaded`` update."""
    reused: bool = False
    """True when the video came from an earlier identical run (free)."""


class ProgressCallback(Protocol):
    """``on_update`` hooks: plain functions or coroutines taking an ``Update``."""

    def __call__(self, update: Update, /) -> object:
        """Receive one update; may return an awaitable, which is awaited."""


async def notify(callback: ProgressCallback | None, update: Update) -> None:
    """Give ``update`` to ``callback``; a failing observer is logged and never stops the job."""
    if callback is None:
        return
    try:
        result = callback(update)
        if inspect.isawaitable(result):
            await result
    except Exception:  # an observer's bug must not lose (or pay twice for) a video
        logger.exception("wavenb: an on_update callback failed (the generation goes on)")
