"""One generation in the Studio: its record (``Run``) and what the front end is told about it.

A ``Run`` is plain data that Python code reads (``studio.history``); ``run_state`` turns it into
the JSON the front end draws a gallery card and the result area from. The front end ticks the
elapsed time itself between updates, so nothing is sent while nothing happens.

A run's ``phase`` is a ``wavenb.Phase``, the one vocabulary of every view; its ``detail`` says
the rest in a few words ("uploading the image", "stopped here: the task goes on at the
provider").
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from wavenb.core.errors import (
    APIError,
    InputError,
    NotFoundError,
    PredictionFailed,
    PredictionTimeout,
    SubmissionUncertain,
)
from wavenb.core.models import Video
from wavenb.core.phase import Phase
from wavenb.core.types import AspectRatio
from wavenb.studio.image import SourceImage
from wavenb.studio.words import describe_error, generate_code, short_id, video_caption
from wavenb.ui.timeline import plot_timeline

__all__ = ["PLOT_MISSING", "Run", "ended_phase", "run_state", "timeline_png"]

STOPPED_HERE: Final = "stopped waiting here; the task goes on at the provider (Fetch again)"
NOT_SENT: Final = "cancelled before it was sent: nothing charged"
PLOT_MISSING: Final = "pip install 'wavenb[plot]' to see the timeline"


@dataclass(eq=False)
class Run:
    """One generation of this session, as the history and the gallery list it."""

    number: int
    """1, 2, …: the run's place in this session (how the front end names it)."""
    prompt: str
    aspect_ratio: AspectRatio | None
    image: SourceImage | None
    """The source image; ``None`` for a run resumed from the journal (its image is not kept)."""
    source: str = ""
    """The image as the user gave it (a path, a URL, a file name), for "copy as code"."""
    started: datetime = field(default_factory=datetime.now)
    """Wall-clock time of the click."""
    clock: float = field(default_factory=time.monotonic, repr=False)
    """``time.monotonic()`` at the click, to time the run."""
    phase: Phase = Phase.WAITING
    """Where the run is, in the words every view shows."""
    detail: str = ""
    """A few more words about the phase (a queue position, a pause, why it stopped)."""
    prediction_id: str | None = None
    """The provider's id once the submit returned: ``studio.fetch(run)`` can finish it."""
    elapsed: float | None = None
    """Seconds from the click to the end of the run, once it ended."""
    eta: float | None = None
    """Expected seconds left, from past runs, as of the last update."""
    video: Video | None = None
    error: BaseException | None = None
    task: asyncio.Task[Video | None] | None = field(default=None, repr=False)
    charged: bool = False
    """Whether the provider accepted a submission of this run (counted in ``spent``)."""

    @property
    def status(self) -> str:
        """The phase as a word (``"downloaded"``, ``"stopped"``…)."""
        return self.phase.value

    @property
    def active(self) -> bool:
        """Whether the Studio is still working on this run."""
        return self.task is not None and not self.task.done()

    @property
    def resumable(self) -> bool:
        """Whether "Fetch again" makes sense: the provider may still finish it."""
        return (
            not self.active
            and self.prediction_id is not None
            and self.phase in (Phase.STOPPED, Phase.COMPLETED)
        )

    def stop(self, phase_then: Phase) -> None:
        """Record that waiting was cancelled while the run was in ``phase_then``."""
        if self.prediction_id is not None:
            self.phase, self.detail = Phase.STOPPED, STOPPED_HERE
        elif phase_then in (Phase.SUBMITTING, Phase.UNKNOWN):
            # The job's word: the paid request was out (or may have been) when it was cancelled.
            self.phase, self.detail = Phase.UNKNOWN, "cancelled while sending: may be charged"
        else:
            self.phase, self.detail = Phase.REFUSED, NOT_SENT


def ended_phase(error: BaseException) -> Phase:
    """The phase a run ends in when it ends with ``error`` and its job said nothing better."""
    if isinstance(error, PredictionTimeout):
        return Phase.STOPPED
    if isinstance(error, PredictionFailed):
        return Phase.FAILED
    if isinstance(error, SubmissionUncertain):
        return Phase.UNKNOWN
    if isinstance(error, NotFoundError):
        return Phase.GONE
    if isinstance(error, APIError | InputError):
        return Phase.REFUSED
    return Phase.FAILED


def run_state(run: Run, now: float | None = None) -> dict[str, Any]:
    """What the front end draws for ``run`` (plain JSON; no bytes, never the API key)."""
    now = time.monotonic() if now is None else now
    sentence, details = describe_error(run.error) if run.error is not None else ("", None)
    video = run.video
    return {
        "n": run.number,
        "prompt": run.prompt,
        "ratio": run.aspect_ratio or "match source",
        "phase": run.phase.value,
        "detail": run.detail,
        "started": f"{run.started:%H:%M:%S}",
        "elapsed": run.elapsed if run.elapsed is not None else round(now - run.clock, 2),
        "eta": run.eta,
        "live": run.active,
        "id": run.prediction_id or "",
        "short": short_id(run.prediction_id),
        "fetchable": run.resumable,
        "video": video is not None,
        "caption": video_caption(video) if video is not None else "",
        "sandbox": bool(video is not None and video.sandbox),
        "reused": bool(video is not None and video.reused),
        "error": sentence,
        "details": details or "",
        "code": generate_code(run.source or "image.jpg", run.prompt, run.aspect_ratio),
    }


def timeline_png(video: Video) -> bytes:
    """``plot_timeline(video)`` as PNG bytes, drawn off-screen (no pyplot figure is left open).

    Raises:
        ImportError: matplotlib is not installed.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415  (optional and slow to import)

    figure = Figure(figsize=(7.5, 1.9), layout="constrained")
    plot_timeline(video, ax=figure.add_subplot())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()
