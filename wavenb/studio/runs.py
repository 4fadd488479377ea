"""One generation in the Studio: its record (``Run``), its live progress row, its history row.

A ``Run`` is plain data that Python code can read (``studio.history``); the two row widgets
only display it. The progress row ticks once a second between result checks, so elapsed time
and the estimate move smoothly even when checks are five seconds apart. A finished run's
"timeline" toggle draws ``plot_timeline`` to a PNG only when first opened (matplotlib Agg, no
inline backend needed).
"""

from __future__ import annotations

import asyncio
import html
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import ipywidgets as widgets

from wavenb.client.async_client import Update
from wavenb.core.models import Video
from wavenb.core.types import AspectRatio
from wavenb.studio.html import chip, progress_text, seconds
from wavenb.studio.image import SourceImage, thumbnail
from wavenb.ui.timeline import plot_timeline

__all__ = [
    "CANCELLED",
    "TIMED_OUT",
    "HistoryRow",
    "Run",
    "RunProgress",
    "TimelineToggle",
    "timeline_png",
]

CANCELLED: Final = "cancelled (still running at provider)"
"""The status of a run whose waiting was cancelled after the provider took it."""
CANCELLED_EARLY: Final = "cancelled (before the provider answered)"
TIMED_OUT: Final = "timed out (still running at provider)"
HISTORY_THUMB: Final = 64
TICK: Final = 1.0
"""Seconds between progress refreshes of a running generation."""
MOST: Final = 0.97
"""The bar never looks full before the task has ended."""


@dataclass(eq=False)
class Run:
    """One generation of this session, as the history lists it."""

    prompt: str
    aspect_ratio: AspectRatio | None
    image: SourceImage | None
    """The source image; ``None`` for a run resumed from the journal (its image is not kept)."""
    started: datetime = field(default_factory=datetime.now)
    """Wall-clock time of the click, for the history."""
    clock: float = field(default_factory=time.monotonic, repr=False)
    """``time.monotonic()`` at the click, to time the run."""
    status: str = "submitting"
    """``submitting``, then ``Status.label`` values, ``downloading``, ``completed``, ``failed``,
    ``CANCELLED`` or ``TIMED_OUT``."""
    prediction_id: str | None = None
    """The provider's id once the submit returned: ``await studio.client.wait(id)`` works."""
    elapsed: float | None = None
    """Seconds from the click to the end of the run, once it ended."""
    video: Video | None = None
    error: BaseException | None = None
    task: asyncio.Task[Video | None] | None = field(default=None, repr=False)
    charged: bool = False
    """Whether the provider accepted a submission of this run (counted in ``spent``)."""

    @property
    def active(self) -> bool:
        """Whether the Studio is still working on this run."""
        return self.task is not None and not self.task.done()

    @property
    def resumable(self) -> bool:
        """Whether "fetch again" makes sense: the provider may still finish it."""
        return self.prediction_id is not None and self.status in (CANCELLED, TIMED_OUT)

    def finish_cancelled(self) -> None:
        """Record that waiting stopped; the provider keeps the task if it had taken it."""
        self.status = CANCELLED if self.prediction_id else CANCELLED_EARLY


class RunProgress(widgets.HBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The live row of one generation: status chip, progress bar, Cancel, and a summary.

    Parts: ``chip``, ``bar``, ``cancel_button``, ``summary`` (elapsed, estimate, prompt).
    """

    def __init__(
        self, run: Run, on_cancel: Callable[[Run], None], past_runs: Callable[[], int]
    ) -> None:
        self._run = run
        self._past_runs = past_runs
        self.chip = widgets.HTML(chip(run.status))
        self.bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="220px")
        )
        self.summary = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="warning"
        )
        self.cancel_button.on_click(lambda _button: on_cancel(run))
        self._started = time.monotonic()
        self._last: Update | None = None
        self._last_at = self._started
        self._ticker: asyncio.Task[None] | None = None
        super().__init__(
            [self.chip, self.bar, self.cancel_button, self.summary],
            layout=widgets.Layout(align_items="center"),
        )
        self.add_class("wavenb-run")
        self._draw()

    def start(self) -> None:
        """Begin ticking (needs the running loop)."""
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> None:
        """Stop ticking; the row is about to go."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def update(self, update: Update) -> None:
        """Take a fresh check of the task (an ``on_update`` from the client)."""
        self._last, self._last_at = update, time.monotonic()
        self._draw()

    def phase(self, label: str) -> None:
        """Show a Studio phase that is not a provider status (``downloading``)."""
        self._run.status = label
        self._draw()

    def _draw(self) -> None:
        now = time.monotonic()
        self.chip.value = chip(self._run.status)
        if self._last is None:
            elapsed, eta = now - self._started, None
        else:
            since = now - self._last_at
            elapsed = self._last.elapsed + since
            eta = None if self._last.eta is None else max(0.0, self._last.eta - since)
        prompt = html.escape(_short(self._run.prompt))
        self.summary.value = (
            f"{progress_text(elapsed, eta, self._past_runs())} <small>· {prompt}</small>"
        )
        if eta is None:
            # No estimate yet: an honest "working" bar, not a made-up fraction.
            self.bar.add_class("wavenb-indeterminate")
            self.bar.value, self.bar.description = 0.0, "…"
            return
        self.bar.remove_class("wavenb-indeterminate")
        self.bar.description = ""
        total = elapsed + eta
        self.bar.value = min(MOST, elapsed / total) if total > 0 else MOST

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._draw()


PLOT_MISSING: Final = "pip install 'wavenb[plot]' to see the timeline"


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


class TimelineToggle(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A "timeline" toggle for one video, and the plot it opens (drawn on first opening).

    Parts: ``button`` (a ``ToggleButton``), ``image`` (the PNG) and ``note`` (why there is no
    plot, e.g. matplotlib missing). Hidden while there is no video.
    """

    def __init__(self) -> None:
        self.button = widgets.ToggleButton(
            description="timeline",
            tooltip="When the task was queued, processed and checked",
            layout=widgets.Layout(width="120px"),
        )
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(max_width="720px", display="none")
        )
        self.note = widgets.HTML()
        self._video: Video | None = None
        self._drawn: Video | None = None
        super().__init__([self.button, self.image, self.note])
        self.button.observe(self._on_toggle, names=["value"])
        self.layout.display = "none"

    def set_video(self, video: Video | None) -> None:
        """Follow ``video`` (``None``: hide); an open plot is redrawn for a new video."""
        if video is self._video:
            return
        self._video = video
        self.layout.display = None if video is not None else "none"
        self._draw()

    def _on_toggle(self, _change: dict[str, object]) -> None:
        self._draw()

    def _draw(self) -> None:
        video = self._video
        opened = bool(self.button.value) and video is not None
        if opened and video is not None and self._drawn is not video:
            self.image.value, self.note.value = b"", ""
            try:
                self.image.value = timeline_png(video)
            except ImportError:
                self.note.value = f"<small><code>{html.escape(PLOT_MISSING)}</code></small>"
            except Exception as error:  # noqa: BLE001  (a plot bug must not break the widget)
                reason = html.escape(f"{type(error).__name__}: {error}")
                self.note.value = f"<small>no timeline: {reason}</small>"
            self._drawn = video
        self.image.layout.display = None if opened and self.image.value else "none"
        self.note.layout.display = None if opened and self.note.value else "none"


class HistoryRow(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A run in the history: thumbnail, status, time, ratio, id, prompt; Show / Fetch again.

    Parts: ``thumbnail``, ``summary``, ``show_button``, ``fetch_button`` (shown only for
    runs the provider may still finish) and ``timeline`` (a ``TimelineToggle``, once the run
    has a video).
    """

    def __init__(
        self, run: Run, on_show: Callable[[Run], None], on_fetch: Callable[[Run], None]
    ) -> None:
        self._run = run
        self.thumbnail = widgets.Image(
            value=thumbnail(run.image.preview, HISTORY_THUMB) if run.image is not None else b"",
            format="jpeg",
            layout=widgets.Layout(
                width=f"{HISTORY_THUMB}px", display=None if run.image is not None else "none"
            ),
        )
        self.summary = widgets.HTML()
        self.show_button = widgets.Button(description="Show", layout=widgets.Layout(width="120px"))
        self.show_button.on_click(lambda _button: on_show(run))
        self.fetch_button = widgets.Button(
            description="Fetch again",
            tooltip="Wait for this task again: the provider kept running it",
            layout=widgets.Layout(width="120px"),
        )
        self.fetch_button.on_click(lambda _button: on_fetch(run))
        self.timeline = TimelineToggle()
        line = widgets.HBox(
            [self.thumbnail, self.summary, self.show_button, self.fetch_button],
            layout=widgets.Layout(align_items="center"),
        )
        super().__init__([line, self.timeline])
        self.refresh()

    def refresh(self) -> None:
        """Redraw from the run's current state."""
        run = self._run
        ratio = run.aspect_ratio or "match source"
        took = f" · {seconds(run.elapsed)}" if run.elapsed is not None else ""
        ident = f" · <code>{html.escape(run.prediction_id)}</code>" if run.prediction_id else ""
        self.summary.value = (
            f'<div style="line-height:1.5">{chip(run.status)} '
            f"<small>{run.started:%H:%M:%S}{took} · {ratio}{ident}</small>"
            f"<br><small>{html.escape(_short(run.prompt, 90))}</small></div>"
        )
        self.show_button.disabled = run.video is None and run.error is None
        self.fetch_button.layout.display = None if run.resumable else "none"
        self.timeline.set_video(run.video)


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
