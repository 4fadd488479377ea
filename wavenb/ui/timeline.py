"""Draw what happened to tasks: one lane per task, its status phases, and every request.

Each lane is one task. Colored spans show how long it was queued (``created``) and processing,
as wavenb learned it from the answers; a diamond marks where it completed (a cross: failed);
a black tick marks every result check, a triangle the submit. Lanes share one clock (the
first submit is 0), so a batch waited for together and jobs run one after another look as
different as they are.

    >>> video = await client.generate("cat.jpg", "Camera slowly zooms in")   # doctest: +SKIP
    >>> wavenb.plot_timeline(video)                                         # doctest: +SKIP

matplotlib is an optional dependency (``pip install 'wavenb[plot]'``), imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from wavenb.core.errors import PredictionError
from wavenb.core.models import Prediction, Status, Timeline, Video

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Run", "plot_timeline"]

Run = Prediction | Video | Timeline | PredictionError
"""What ``plot_timeline`` draws a lane for. A ``PredictionError`` (failed or timed out) is
drawn from the prediction it carries, so results of ``gather(..., return_exceptions=True)``
can be plotted as they come."""

# Okabe-Ito colors: told apart by people with the common kinds of color blindness.
QUEUED: Final = "#E69F00"
PROCESSING: Final = "#56B4E9"
COMPLETED: Final = "#009E73"
FAILED: Final = "#D55E00"
OTHER: Final = "#999999"
_COLORS: Final = {
    Status.CREATED: QUEUED,
    Status.PENDING: QUEUED,
    Status.PROCESSING: PROCESSING,
    Status.COMPLETED: COMPLETED,
    Status.FAILED: FAILED,
    Status.CANCELLED: FAILED,
    Status.TIMEOUT: FAILED,
    Status.DELETED: FAILED,
}
_LANE_HEIGHT: Final = 0.6

PHASE_GID: Final = "wavenb-phase"
"""The ``gid`` of every phase span (a ``PolyCollection`` in ``ax.collections``)."""
CHECKS_GID: Final = "wavenb-checks"
"""The ``gid`` of each lane's result-check ticks (a ``Line2D``, one marker per check)."""
SUBMIT_GID: Final = "wavenb-submit"
"""The ``gid`` of a lane's submit marker."""
END_GID: Final = "wavenb-end"
"""The ``gid`` of a lane's completed / failed marker."""


@dataclass(frozen=True, slots=True)
class _Lane:
    label: str
    timeline: Timeline
    offset: float
    """Seconds from the first submit of all lanes to this task's own zero."""


def plot_timeline(
    runs: Run | Iterable[Run], *, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Draw one lane per task: queued / processing spans, the end, and a tick per result check.

    ``runs`` is a ``Prediction``, a ``Video``, a ``Timeline`` or a ``PredictionError``, or a
    list of them; lanes go top to bottom in that order. The x axis is seconds since the first
    submit among them. Without ``ax`` a new figure is made (it shows itself in Jupyter);
    ``title`` defaults to a count of tasks and checks.

    Returns the matplotlib ``Axes`` drawn on.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'wavenb[plot]'``).
        TypeError: something in ``runs`` is not one of the types above.
        ValueError: ``runs`` is an empty list.

    Examples:
        >>> jobs = (client.generate(image, p) for p in prompts)         # doctest: +SKIP
        >>> wavenb.plot_timeline(await asyncio.gather(*jobs))           # doctest: +SKIP
    """
    lanes = _lanes(runs)
    try:
        import matplotlib.pyplot as plt  # noqa: PLC0415  (optional and slow to import)
        from matplotlib.lines import Line2D  # noqa: PLC0415
        from matplotlib.patches import Patch  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(
            "plot_timeline needs matplotlib: pip install 'wavenb[plot]'", name="matplotlib"
        ) from error

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 1.3 + 0.45 * len(lanes)), layout="constrained")
    seen: set[Status] = set()
    right = 0.0
    for row, lane in enumerate(lanes):
        right = max(right, _draw_lane(ax, row, lane, seen))

    ax.set_yticks(range(len(lanes)), [lane.label for lane in lanes])
    ax.set_ylim(len(lanes) - 0.5, -0.5)  # first lane on top
    # Room on the right for each lane's summary text; never narrower than what an axis shared
    # with an earlier plot already shows.
    shown = 0.0 if ax.get_autoscalex_on() else ax.get_xlim()[1]
    ax.set_xlim(0, max(shown, right * 1.35 if right > 0 else 1.0))
    first = "since submit" if len(lanes) == 1 else "since the first submit"
    ax.set_xlabel(f"seconds {first}")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title if title is not None else _summary(lanes))

    # One legend entry per status label, in lifecycle order (created, processing, completed...).
    labels = {status.label: _COLORS.get(status, OTHER) for status in Status if status in seen}
    handles: list[Patch | Line2D] = [
        Patch(color=color, label=name) for name, color in labels.items()
    ]
    kinds = {event.kind for lane in lanes for event in lane.timeline.events}
    for kind, marker, label in (("submit", ">", "submit"), ("check", "|", "result check")):
        if kind in kinds:
            handles.append(
                Line2D([], [], color="black", marker=marker, linestyle="none", label=label)
            )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return ax


def _draw_lane(ax: Axes, row: int, lane: _Lane, seen: set[Status]) -> float:
    """Draw one task's spans, ticks and summary on row ``row``; return where the lane ends."""
    events = lane.timeline.events
    if not events:
        ax.text(0, row, "  no requests recorded (reused from history?)", va="center", fontsize=8)
        return 0.0
    shift = lane.offset
    for status, start, end in lane.timeline.phases():
        color = _COLORS.get(status, OTHER)
        if end > start:
            ax.broken_barh(
                [(shift + start, end - start)],
                (row - _LANE_HEIGHT / 2, _LANE_HEIGHT),
                facecolors=color,
                gid=PHASE_GID,
                label=status.label,
            )
            seen.add(status)
        if status.terminal:
            marker = "D" if status.succeeded else "X"
            ax.plot(
                [shift + start],
                [row],
                marker=marker,
                markersize=9,
                color=color,
                markeredgecolor="black",
                linestyle="none",
                zorder=4,
                gid=END_GID,
            )
            seen.add(status)

    submits = [shift + e.at for e in events if e.kind == "submit"]
    checks = [shift + e.at for e in events if e.kind == "check"]
    if submits:
        ax.plot(
            submits,
            [row] * len(submits),
            marker=">",
            markersize=7,
            color="black",
            linestyle="none",
            zorder=3,
            gid=SUBMIT_GID,
        )
    if checks:
        ax.plot(
            checks,
            [row] * len(checks),
            marker="|",
            markersize=16,
            markeredgewidth=1.5,
            color="black",
            linestyle="none",
            zorder=3,
            gid=CHECKS_GID,
        )

    last = events[-1]
    count = lane.timeline.checks
    state = last.status.label if last.status.terminal else f"{last.status.label} (as last seen)"
    summary = f"{state} · {last.at:.1f} s · {count} check{'' if count == 1 else 's'}"
    ax.annotate(
        summary,
        (shift + last.at, row),
        xytext=(8, 0),
        textcoords="offset points",
        va="center",
        fontsize=8,
    )
    return shift + last.at


def _lanes(runs: Run | Iterable[Run]) -> list[_Lane]:
    """Turn what the caller gave into lanes on one shared clock."""
    items = list(runs) if isinstance(runs, Iterable) else [runs]
    if not items:
        raise ValueError("plot_timeline got an empty list: nothing to draw")
    timelines = [_timeline_of(item) for item in items]
    zeros = [_zero(timeline) for timeline in timelines]
    known = [zero for zero in zeros if zero is not None]
    origin = min(known) if known else None
    return [
        _Lane(
            label=timeline.prediction_id[:8],
            timeline=timeline,
            offset=0.0 if zero is None or origin is None else (zero - origin).total_seconds(),
        )
        for timeline, zero in zip(timelines, zeros, strict=True)
    ]


def _timeline_of(item: object) -> Timeline:
    if isinstance(item, Timeline):
        return item
    if isinstance(item, Prediction | Video):
        return item.timeline()
    if isinstance(item, PredictionError):
        return item.prediction.timeline()
    raise TypeError(
        "plot_timeline draws a Prediction, Video, Timeline or PredictionError (or a list of "
        f"them); got {type(item).__name__}"
    )


def _zero(timeline: Timeline) -> datetime | None:
    """The wall-clock moment the task's own clock read 0 (its submit, or first sighting)."""
    if not timeline.events:
        return None
    first = timeline.events[0]
    return first.wall - timedelta(seconds=first.at)


def _summary(lanes: list[_Lane]) -> str:
    checks = sum(lane.timeline.checks for lane in lanes)
    tasks = "1 task" if len(lanes) == 1 else f"{len(lanes)} tasks"
    return f"{tasks} · {checks} result check{'' if checks == 1 else 's'}"
