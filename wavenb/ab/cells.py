"""A cell's state (``CellRun``), its measured metrics, its table row, and the cost estimate.

Pure values: a ``CellRun`` is one moment of one cell; every change makes a new one. Its
``status`` is a ``wavenb.Phase`` (the one vocabulary of every view): ``waiting`` until its job
sends, then the lifecycle's words, ``downloaded`` when its MP4 is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from wavenb.ab.design import Cell
from wavenb.core.phase import Phase

if TYPE_CHECKING:
    from wavenb.ab.metrics import VideoMetrics

__all__ = [
    "METRIC_FIELDS",
    "ROW_FIELDS",
    "CellMetrics",
    "CellRun",
    "Estimate",
    "Rating",
    "cell_badges",
]

Rating = Literal[-1, 1]
"""👎 is -1, 👍 is +1."""

METRIC_FIELDS: Final = (
    "camera_move", "motion_match", "motion_dx", "motion_dy", "motion_zoom", "motion_rotation",
    "motion_magnitude", "first_frame_ssim", "flicker", "sharpness",
)  # fmt: skip
"""The measured columns of ``rows`` / ``to_pandas()`` (see ``wavenb.ab.metrics``)."""

ROW_FIELDS: Final = (
    "cell_id", "image", "prompt_id", "prompt", "aspect_ratio", "repeat", "prediction_id",
    "status", "submitted_at", "started_at", "finished_at", "inference_ms", "wall_s", "cost",
    "output_url", "path", "error", "rating", "note", "reused", "cell_key", *METRIC_FIELDS,
)  # fmt: skip
"""The columns of ``Comparison.rows`` and ``to_pandas()``, in order."""


@dataclass(frozen=True, slots=True)
class CellMetrics:
    """What the pixels of a cell's video measured (``wavenb.ab.metrics.VideoMetrics``)."""

    camera_move: str
    """``pan_left`` ... ``static``: the dominant camera move seen."""
    motion_match: bool | None
    """Whether it is a move the prompt asked for; ``None`` when the prompt asked for none."""
    motion_dx: float
    motion_dy: float
    motion_zoom: float
    motion_rotation: float
    motion_magnitude: float
    first_frame_ssim: float | None
    """How like the source image the first frame is (0..1); ``None`` for URL images."""
    flicker: float
    sharpness: float
    badge: str
    """One line for a grid cell: ``"pan right ✓ · SSIM 0.93 · flicker 0.2"``."""

    @classmethod
    def of(cls, measured: VideoMetrics) -> CellMetrics:
        """The fields a comparison keeps of a measurement."""
        return cls(
            camera_move=measured.camera_move, motion_match=measured.motion_match,
            motion_dx=measured.motion_dx, motion_dy=measured.motion_dy,
            motion_zoom=measured.motion_zoom, motion_rotation=measured.motion_rotation,
            motion_magnitude=measured.motion_magnitude,
            first_frame_ssim=measured.first_frame_ssim, flicker=measured.flicker,
            sharpness=measured.sharpness, badge=measured.badge(),
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellMetrics:
        """Read back what ``as_dict`` wrote (a saved manifest).

        Raises:
            KeyError, TypeError, ValueError: not a metrics record.
        """
        match = data["motion_match"]
        ssim = data["first_frame_ssim"]
        return cls(
            camera_move=str(data["camera_move"]),
            motion_match=None if match is None else bool(match),
            **{name: float(data[name]) for name in _FLOATS},
            first_frame_ssim=None if ssim is None else float(ssim),
            badge=str(data["badge"]),
        )

    def as_dict(self) -> dict[str, Any]:
        """The metric columns and the badge, JSON-ready."""
        return {**{name: getattr(self, name) for name in METRIC_FIELDS}, "badge": self.badge}


_FLOATS: Final = (
    "motion_dx", "motion_dy", "motion_zoom", "motion_rotation", "motion_magnitude", "flicker",
    "sharpness",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CellRun:
    """A cell's state at one moment; each change makes a new ``CellRun``."""

    cell: Cell
    status: Phase = Phase.WAITING
    """Where the cell's generation is (``wavenb.Phase``); ``downloaded`` once it has a video."""
    prediction_id: str | None = None
    submitted_at: datetime | None = None
    """When the paid request went out (UTC; the last attempt, after a 429)."""
    started_at: datetime | None = None
    """When wavenb first saw the task ``processing``; ``None`` if it never did (a fast task
    can go from queued to completed between two checks)."""
    finished_at: datetime | None = None
    """When wavenb saw the task end."""
    inference_ms: int | None = None
    """The provider's ``timings.inference``."""
    wall_s: float | None = None
    """Seconds from the cell's start to the video on disk: what the user waited."""
    cost: float = 0.0
    """US dollars this comparison paid for the cell: 0 when reused or resumed, and on the
    sandbox."""
    output_url: str | None = None
    path: Path | None = None
    """The local MP4, once downloaded."""
    error: str | None = None
    """Why the cell ended without a video, in one sentence."""
    moderation: bool = False
    """True when the failure reads like a content-policy refusal."""
    reused: bool = False
    """True when the video (or task) came from an earlier run, not paid now."""
    rating: Rating | None = None
    note: str = ""
    detail: str = ""
    """What the lifecycle says it is doing, in a few words ("pacing submits: next in 12 s")."""
    sha256: str | None = None
    """SHA-256 of the MP4 (the journal's): the key of its cached metrics."""
    metrics: CellMetrics | None = None
    """What its pixels measured, once measured (``None`` before, or without numpy/PyAV)."""
    preview: Path | None = None
    """An animated WebP of the video (a saved comparison's ``previews/``), when there is one."""

    @property
    def id(self) -> str:
        """The cell's id."""
        return self.cell.id

    @property
    def active(self) -> bool:
        """Whether wavenb is working on it right now."""
        return self.status.active

    @property
    def done(self) -> bool:
        """Whether it has its video (``downloaded``)."""
        return self.status is Phase.DOWNLOADED

    @property
    def ended(self) -> bool:
        """Whether nothing more happens without a new action (``Phase.ended``)."""
        return self.status.ended

    @property
    def badges(self) -> list[str]:
        """Short words for the grid (see ``cell_badges``)."""
        return cell_badges(self)

    def row(self) -> dict[str, Any]:
        """The cell as a plain, JSON-ready dict with the ``ROW_FIELDS`` keys."""
        cell = self.cell
        measured = self.metrics.as_dict() if self.metrics is not None else {}
        return {
            "cell_id": cell.id,
            "image": cell.image,
            "prompt_id": cell.prompt_id,
            "prompt": cell.prompt,
            "aspect_ratio": cell.aspect_ratio,
            "repeat": cell.repeat,
            "prediction_id": self.prediction_id,
            "status": self.status.value,
            "submitted_at": iso(self.submitted_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "inference_ms": self.inference_ms,
            "wall_s": self.wall_s,
            "cost": self.cost,
            "output_url": self.output_url,
            "path": None if self.path is None else str(self.path),
            "error": self.error,
            "rating": self.rating,
            "note": self.note,
            "reused": self.reused,
            "cell_key": cell.key,
            **{name: measured.get(name) for name in METRIC_FIELDS},
        }


def cell_badges(run: CellRun) -> list[str]:
    """Compact badges for a grid cell, from its metrics; empty before measuring.

    ``["pan right ✓", "SSIM 0.93", "flicker 0.2"]``: the camera move seen (✓ one the prompt
    asked for, ✗ another, no mark when it asked for none), first-frame SSIM (local images
    only), flicker.
    """
    if run.metrics is None:
        return []
    return run.metrics.badge.split(" · ")


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a comparison will cost, known before anything is sent."""

    cells: int
    new: int
    """Cells to submit (and pay for)."""
    reused: int
    """Cells whose video exists already: free."""
    resumed: int
    """Cells submitted earlier and still running: waited for, not paid again."""
    price: float
    """US dollars per video on this backend (0 on the sandbox)."""

    @property
    def total(self) -> float:
        """US dollars to spend: new cells x price."""
        return self.new * self.price

    def describe(self) -> str:
        """One line, e.g. ``"4 videos: 3 new x $0.50 = $1.50, 1 reused (free)"``."""
        cost = "free (sandbox)" if self.price == 0 else f"{self.new} new x ${self.price:.2f}"
        if self.price:
            cost += f" = ${self.total:.2f}"
        parts = [f"{self.cells} videos: {cost}"]
        if self.reused:
            parts.append(f"{self.reused} reused (free)")
        if self.resumed:
            parts.append(f"{self.resumed} still running from before (already paid)")
        return ", ".join(parts)

    @classmethod
    def of(cls, runs: list[CellRun] | tuple[CellRun, ...], price: float) -> Estimate:
        """Count the cells among ``runs``: reused, resumed and new.

        Reused: with a video. Resumed: still to run, with a task from before. New: still to
        run without one (paid).
        """
        todo = [run for run in runs if not run.ended]
        resumed = sum(run.prediction_id is not None for run in todo)
        reused = sum(run.done for run in runs)
        return cls(len(runs), len(todo) - resumed, reused, resumed, price)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 text in UTC (microseconds), or ``None``."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: object) -> datetime | None:
    """The inverse of ``iso``; anything else is ``None``."""
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text)


def rating_of(value: object) -> Rating | None:
    """A stored rating, or ``None`` for anything that is not one."""
    return value if value in (1, -1) else None
