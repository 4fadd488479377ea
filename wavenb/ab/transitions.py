"""How a cell follows its job: the changes one ``Update`` (or one ending) makes to a ``CellRun``.

Pure functions, so the comparison's bookkeeping is the lifecycle's words and nothing more: the
cell's ``status`` is the job's ``phase``; the task id, output and inference time come from the
update's prediction; the times are when the comparison saw each step.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Final

from wavenb.ab.cells import CellRun
from wavenb.core.errors import NotFoundError, PredictionFailed, WavenbError
from wavenb.core.phase import Phase
from wavenb.jobs.events import Update

__all__ = ["NOT_SENT", "changes_for", "ending_of"]

NOT_SENT: Final = "stopped before it was sent: nothing was paid"
"""A cell cancelled before its paid request went out (``refused``: not a failure of the cell)."""


def changes_for(run: CellRun, update: Update, *, price: float, now: datetime) -> dict[str, Any]:
    """The fields of ``run`` that ``update`` changes.

    ``price`` is what one new video costs here: a cell costs it once its own submission is
    accepted (not when it joined or reused an identical one, and never on the sandbox).
    """
    phase = update.phase
    changes: dict[str, Any] = {"status": phase, "detail": update.detail}
    task = update.prediction
    if task is not None:
        if task.id != run.prediction_id:  # a new task (a retry): its own times
            changes.update(prediction_id=task.id, started_at=None, finished_at=None)
        if task.output_url:
            changes["output_url"] = task.output_url
        if task.inference_ms:
            changes["inference_ms"] = task.inference_ms
    if phase is Phase.SUBMITTING and update.detail == "":
        changes["submitted_at"] = now  # each attempt (after a 429, the last one counts)
    if phase is Phase.ACCEPTED and update.detail != "joined":
        changes["cost"] = 0.0 if task is None or task.sandbox else price
        changes["reused"] = False
    if phase is Phase.PROCESSING and (run.started_at is None or "started_at" in changes):
        changes["started_at"] = now
    if (
        phase in (Phase.COMPLETED, Phase.FAILED, Phase.GONE)
        and changes.get("finished_at", run.finished_at) is None
    ):
        changes["finished_at"] = now
    if update.path is not None and update.path != run.path:  # a new video: measure it anew
        changes.update(path=update.path, metrics=None, sha256=None)
    if update.reused:
        changes.update(reused=True, cost=0.0)
    return changes


def ending_of(error: BaseException, phase: Phase | None) -> tuple[Phase, str, bool]:
    """How a cell ends after its job raised ``error``: (status, one sentence, moderation).

    The job's own phase is kept when it is an ending (``refused``, ``unknown``, ``gone``,
    ``stopped``...); a task the provider no longer knows is ``gone``; anything else (a download
    that failed, an upload refused) is ``failed``.
    """
    moderation = isinstance(error, PredictionFailed) and error.moderation
    if isinstance(error, asyncio.CancelledError):
        if phase is Phase.UNKNOWN:  # stopped while the paid request was out: never resent
            return (
                phase,
                "interrupted while sending: maybe charged; wavenb.resume() settles it",
                False,
            )
        if phase in (None, Phase.WAITING, Phase.REFUSED):
            return Phase.REFUSED, NOT_SENT, False
        text = "stopped: wavenb stopped waiting (the task goes on; run the comparison again)"
        return Phase.STOPPED, text, False
    if isinstance(error, PredictionFailed):
        text = error.prediction.error or str(error)
    elif isinstance(error, WavenbError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    if isinstance(error, NotFoundError):
        return Phase.GONE, text, moderation
    ended = phase is not None and phase.ended and phase is not Phase.DOWNLOADED
    return (phase if ended and phase is not None else Phase.FAILED), text, moderation
