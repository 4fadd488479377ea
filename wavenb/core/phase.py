"""Where a generation is: the one status vocabulary every view uses.

One paid generation moves through these phases, and only ``wavenb.jobs.Job`` moves it::

    waiting ─▶ submitting ─┬─▶ refused             the server certainly did not take it: $0
                           ├─▶ unknown ─(history)─┐  sent, no answer: maybe charged, never resent
                           └─▶ accepted ◀───────┘
                                  │
                               queued ─▶ processing ─┬─▶ completed ─▶ downloaded  (on disk)
                                                     │        └────▶ gone        (expired)
                                                     └─▶ failed

    stopped    wavenb stopped waiting (cancelled, timed out): the task goes on at the provider,
               ``resume`` picks it up

``waiting`` covers everything before the paid request goes out (budget reserved, the image
uploading, a rate-limit pause). The Studio's chips, the comparison's grid cells, the CLI's
progress line, ``history()`` and the report all show these words.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from wavenb.core.models import Status

__all__ = ["ACTIVE", "ENDED", "Phase", "phase_of_status"]


class Phase(StrEnum):
    """Where one generation is. ``ended`` phases change only by a new action (resume, retry)."""

    WAITING = "waiting"
    """Not sent yet: budget reserved, the image uploading, or paced behind a rate limit."""
    SUBMITTING = "submitting"
    """The paid request is on its way; its answer has not come."""
    ACCEPTED = "accepted"
    """The provider answered with a task id (charged on the real API)."""
    UNKNOWN = "unknown"
    """Sent, but no answer says whether it was taken: maybe charged; never resent blindly."""
    REFUSED = "refused"
    """The server certainly did not take it (or it was never sent): nothing charged."""
    QUEUED = "queued"
    """Accepted and waiting for a worker (the account's concurrent slots may be full)."""
    PROCESSING = "processing"
    """The model is running."""
    COMPLETED = "completed"
    """The model finished; the video is being downloaded."""
    DOWNLOADED = "downloaded"
    """The MP4 is on disk, whole and checksummed."""
    FAILED = "failed"
    """The task ended without a video (failed, cancelled, timed out at the provider)."""
    GONE = "gone"
    """The task or its output no longer exists at the provider (kept 7 days), or the embedded
    sandbox that made it ended with its kernel."""
    STOPPED = "stopped"
    """wavenb stopped waiting; the task goes on at the provider and can be resumed."""

    @property
    def ended(self) -> bool:
        """Whether nothing more happens without a new action."""
        return self in ENDED

    @property
    def active(self) -> bool:
        """Whether wavenb is working on it right now."""
        return self in ACTIVE

    @property
    def label(self) -> str:
        """The word for people (the value itself)."""
        return self.value


ENDED: Final = frozenset(
    {Phase.REFUSED, Phase.UNKNOWN, Phase.DOWNLOADED, Phase.FAILED, Phase.GONE, Phase.STOPPED}
)
ACTIVE: Final = frozenset(
    {Phase.WAITING, Phase.SUBMITTING, Phase.ACCEPTED, Phase.QUEUED, Phase.PROCESSING,
     Phase.COMPLETED}
)  # fmt: skip


_OF_STATUS: Final = {
    Status.CREATED: Phase.QUEUED,
    Status.PENDING: Phase.QUEUED,
    Status.PROCESSING: Phase.PROCESSING,
    Status.UNKNOWN: Phase.PROCESSING,
    Status.COMPLETED: Phase.COMPLETED,
    Status.DELETED: Phase.GONE,
}


def phase_of_status(status: Status) -> Phase:
    """The phase a provider status stands for while wavenb follows the task."""
    return _OF_STATUS.get(status, Phase.FAILED)
