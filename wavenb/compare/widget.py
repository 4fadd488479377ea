"""The live grid of a ``Comparison``, and the blind pairwise judge: views, no logic of their own.

``CompareGrid`` draws one row per prompt (its text, with the words that differ from the first
prompt marked) and one column per ratio x repeat. Each cell shows its status and elapsed time,
then its video (an ipywidgets ``Video`` holding the bytes: no URL the browser would need to
reach), its error with a Retry button, 👍/👎 and a note. The comparison tells the grid what
changed (``Comparison.watch``); the grid's buttons call the comparison's public methods.

Play all / Pause all / loop drive every video of the grid together. Stock ipywidgets cannot
start or stop playback, so the controls are a small anywidget running ``PLAYBACK_JS``; without
anywidget installed the grid says so and shows no controls rather than fake ones.

Each finished cell has a "timeline" toggle (details): opened, it draws ``plot_timeline`` of the
cell's task to a PNG (matplotlib's Agg, no pyplot figure left behind) once, lazily; without
matplotlib it says how to get it.

Exceptions in callbacks would be swallowed by ipywidgets: they show in the grid's error line.
"""

from __future__ import annotations

import functools
import html
import io
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, ParamSpec

import ipywidgets as widgets
import traitlets

from wavenb.compare.report import (
    PLAYBACK_CSS,
    PLAYBACK_JS,
    column_label,
    money,
    prompt_heading,
    ratio_label,
    status_chip,
)
from wavenb.core.models import Timeline
from wavenb.ui.display import SANDBOX_BADGE
from wavenb.ui.tasks import guarded

if TYPE_CHECKING:
    from wavenb.compare.comparison import CellRun, Comparison, ImageFactor, Winner

__all__ = ["CellView", "CompareGrid", "Pairwise", "playback_controls", "timeline_png"]

P = ParamSpec("P")
TIMES: Final = " \u00d7 "

GRID_STYLE: Final = """<style>
.wavenb-compare .wavenb-chip{display:inline-block;border-radius:9px;padding:0 8px;
  font-size:11px;font-weight:600;color:white;line-height:18px}
.wavenb-compare mark{background:#fde68a;padding:0 1px}
.wavenb-compare .wavenb-prompt b{display:block}
.wavenb-compare .wavenb-cell{border:1px solid #e5e7eb;border-radius:6px;padding:4px}
</style>"""
"""CSS for what stock widgets cannot style (chips, marks); where a front end drops
``<style>``, chips read as plain words, which is still honest."""

PLAYBACK_ESM: Final = (
    PLAYBACK_JS
    + """
export default {
  render({ model, el }) {
    el.classList.add("wavenb-playback");
    const state = {
      get: (name) => model.get(name),
      set: (name, value) => { model.set(name, value); model.save_changes(); },
      on: (name, callback) => model.on("change:" + name, callback),
    };
    const selector = "." + model.get("scope");
    // The grid's element, found from this widget's place in it; else anywhere on the page.
    const findRoot = () => el.closest(selector) || document.querySelector(selector);
    return wavenbPlayback(el, findRoot, state);
  },
};
"""
)
"""The anywidget module: ``PLAYBACK_JS`` bound to the widget's synced traits."""


@functools.cache
def _playback_class() -> type[Any] | None:
    """The anywidget class of the playback controls; ``None`` when anywidget is missing."""
    try:
        import anywidget  # noqa: PLC0415  (optional at import time; see module docstring)
    except ImportError:
        return None

    class SyncedPlayback(anywidget.AnyWidget):
        """Play all / Pause all / loop for every ``<video>`` under the element ``.scope``."""

        _esm = PLAYBACK_ESM
        _css = PLAYBACK_CSS
        scope = traitlets.Unicode(help="CSS class of the element whose videos are driven.").tag(
            sync=True
        )
        playing = traitlets.Bool(
            default_value=True, help="True: every video plays; False: every video is paused."
        ).tag(sync=True)
        loop = traitlets.Bool(default_value=True, help="Whether the videos loop.").tag(sync=True)
        restarts = traitlets.Int(0, help="Bumped to rewind every video to the start together.").tag(
            sync=True
        )

        def play_all(self) -> None:
            """Rewind every video and play them together (the Play all button)."""
            self.playing = True
            self.restarts += 1

        def pause_all(self) -> None:
            """Pause every video (the Pause all button)."""
            self.playing = False

    return SyncedPlayback


def playback_controls(scope: str) -> Any:  # noqa: ANN401  (ipywidgets is untyped)
    """Synced playback controls for the videos under ``.scope``, or a note saying why none."""
    cls = _playback_class()
    if cls is None:
        return widgets.HTML(
            "<small>Play all / Pause all need anywidget: <code>pip install anywidget</code>. "
            "Each video has its own controls meanwhile.</small>"
        )
    return cls(scope=scope)


class CellView(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """One cell of the grid: status and time, then the video; error and Retry; 👍/👎, note."""

    def __init__(self, grid: CompareGrid, run: CellRun) -> None:
        self.grid = grid
        self.cell_id = run.id
        self.status = widgets.HTML()
        """Chip, elapsed or wall time, cost, reused."""
        self.player: Any = None
        """The ``Video`` once the cell has one."""
        self.error = widgets.HTML()
        self.retry = widgets.Button(
            description=f"Retry · {money(grid.comparison.price)}",
            icon="redo",
            layout=widgets.Layout(display="none", width="auto"),
        )
        # Font Awesome icons (shipped with every Jupyter front end) rather than emoji, which
        # render as empty boxes where no emoji font is installed.
        self.rating = widgets.ToggleButtons(
            options=[("good", 1), ("bad", -1)],
            value=None,
            icons=["thumbs-up", "thumbs-down"],
            tooltips=["👍 a good video", "👎 a bad video"],
            style={"button_width": "72px"},
        )
        self.note = widgets.Text(
            placeholder="note", continuous_update=False, layout=widgets.Layout(width="100%")
        )
        self.details = widgets.ToggleButton(
            description="timeline",
            icon="stream",
            tooltip="When the task was queued, processing and checked",
            layout=widgets.Layout(display="none", width="auto", align_self="flex-start"),
        )
        """Opens the cell's timeline (shown once the cell is finished)."""
        self.timeline = widgets.Box(layout=widgets.Layout(display="none"))
        """Holds the timeline's ``Image`` (or a note) once opened."""
        self._timeline_of: str | None = None
        """The prediction id the drawn timeline belongs to."""
        self._slot = widgets.Box()
        self._quiet = False
        super().__init__(
            [
                self.status, self._slot, self.error, self.retry, self.rating, self.note,
                self.details, self.timeline,
            ],
            layout=widgets.Layout(min_width="0"),
        )  # fmt: skip
        self.add_class("wavenb-cell")
        self.retry.on_click(self._on_retry)
        self.details.observe(self._on_details, names=["value"])
        self.rating.observe(self._on_rating, names=["value"])
        self.note.observe(self._on_note, names=["value"])
        self.refresh(run)

    def show_error(self, error: BaseException) -> None:
        """Errors of this cell's controls go to the grid's error line."""
        self.grid.show_error(error)

    def refresh(self, run: CellRun, now: datetime | None = None) -> None:
        """Show ``run``: status and time; the video when there is one; error and Retry."""
        self.status.value = f"<small>{status_chip(run.status)} {_timing(run, now)}</small>"
        if run.done and run.path is not None and self.player is None:
            self.player = widgets.Video(
                value=run.path.read_bytes(),
                format="mp4",
                autoplay=False,  # the playback controls start them, in step
                loop=self.grid.loop,
                controls=True,
                layout=widgets.Layout(width="100%", max_height="420px"),
            )
            self._slot.children = (self.player,)
        if not run.done and self.player is not None:
            self.player, self._slot.children = None, ()
        failed = run.status in ("failed", "cancelled")
        self.error.value = _error(run) if failed or run.error else ""
        self.retry.layout.display = "" if failed else "none"
        finished = run.status in ("completed", "failed")
        self.details.layout.display = "" if finished and run.prediction_id else "none"
        if not finished or run.prediction_id != self._timeline_of:
            # A new task (a retry): the old drawing is stale; draw again when next opened.
            self._timeline_of, self.timeline.children = None, ()
            if not finished:
                self.details.value = False
            elif self.details.value:
                self._draw_timeline(run)
        self._quiet = True
        try:
            self.rating.value = run.rating
            self.note.value = run.note
        finally:
            self._quiet = False

    @guarded
    def _on_retry(self, _button: object) -> None:
        self.retry.disabled = True
        try:
            self.grid.comparison.retry(self.cell_id)
        finally:
            self.retry.disabled = False

    @guarded
    def _on_details(self, change: dict[str, Any]) -> None:
        opened = bool(change["new"])
        self.timeline.layout.display = "" if opened else "none"
        run = self.grid.comparison[self.cell_id]
        if opened and self._timeline_of != run.prediction_id:
            self._draw_timeline(run)

    def _draw_timeline(self, run: CellRun) -> None:
        """Draw the cell's task into ``timeline``: a PNG, or why there is none."""
        try:
            png = timeline_png(_task_timeline(self.grid.comparison, run), title=run.id)
        except ImportError:
            shown: Any = widgets.HTML(
                "<small>The timeline needs matplotlib: "
                "<code>pip install 'wavenb[plot]'</code></small>"
            )
        else:
            shown = widgets.Image(
                value=png, format="png", layout=widgets.Layout(width="100%", height="auto")
            )
        self.timeline.children = (shown,)
        self._timeline_of = run.prediction_id

    @guarded
    def _on_rating(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self.grid.comparison.rate(self.cell_id, change["new"])

    @guarded
    def _on_note(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            comparison = self.grid.comparison
            comparison.rate(self.cell_id, comparison[self.cell_id].rating, note=change["new"])


class CompareGrid(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The live grid of a comparison (``cmp.widget``; displaying ``cmp`` shows it).

    Attributes:
        cells: ``{cell id: CellView}``. controls: the playback controls (or a note).
        confirm: the Spend button, shown while a paid run waits for consent.
    """

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison
        scope = f"wavenb-compare-{secrets.token_hex(4)}"
        self.header = widgets.HTML()
        self.cost = widgets.HTML()
        self.confirm = widgets.Button(
            button_style="warning", icon="credit-card", layout=widgets.Layout(width="auto")
        )
        self.progress = widgets.HTML()
        self.controls = playback_controls(scope)
        self.summary = widgets.HTML()
        self.errors = widgets.HTML()
        self.cells: dict[str, CellView] = {}
        sections = [self._section(image) for image in comparison.design.images]
        super().__init__(
            [
                widgets.HTML(GRID_STYLE),
                self.header,
                widgets.HBox([self.cost, self.confirm]),
                self.progress,
                self.controls,
                *sections,
                self.summary,
                self.errors,
            ]
        )
        self.add_class("wavenb-compare")
        self.add_class(scope)
        self.confirm.on_click(self._on_confirm)
        if isinstance(self.controls, traitlets.HasTraits) and self.controls.has_trait("loop"):
            self.controls.observe(self._on_loop, names=["loop"])
        self._unwatch = comparison.watch(self._on_change)
        self._refresh_all()

    @property
    def loop(self) -> bool:
        """Whether videos loop (the controls' checkbox; always without controls)."""
        return bool(getattr(self.controls, "loop", True))

    def show_error(self, error: BaseException) -> None:
        """Show an error of a control in the error line."""
        text = f"{type(error).__name__}: {error}"
        self.errors.value = f'<div style="color:#b91c1c">⚠ {html.escape(text)}</div>'

    def __repr__(self) -> str:
        return f"<CompareGrid of {self.comparison!r}>"

    # -- building ---------------------------------------------------------------------------

    def _section(self, image: ImageFactor) -> Any:  # noqa: ANN401
        design = self.comparison.design
        columns = design.columns
        corner: list[Any] = []
        if image.prepared is not None and image.prepared.data is not None:
            kind = image.prepared.content_type.partition("/")[2] or "jpeg"
            corner.append(
                widgets.Image(
                    value=image.prepared.data, format=kind, layout=widgets.Layout(width="120px")
                )
            )
        corner.append(widgets.HTML(f"<small>{html.escape(image.id)}</small>"))
        items: list[Any] = [widgets.VBox(corner)]
        items += [
            widgets.HTML(f"<b>{html.escape(column_label(ratio, repeat, design.repeats))}</b>")
            for ratio, repeat in columns
        ]
        runs = {
            (run.cell.prompt_id, run.cell.aspect_ratio, run.cell.repeat): run
            for run in self.comparison.runs
            if run.cell.image == image.id
        }
        reference = design.prompts[0].text
        for index, prompt in enumerate(design.prompts):
            heading = prompt_heading(prompt.id, prompt.text, None if index == 0 else reference)
            items.append(widgets.HTML(f'<div class="wavenb-prompt">{heading}</div>'))
            for ratio, repeat in columns:
                view = CellView(self, runs[(prompt.id, ratio, repeat)])
                self.cells[view.cell_id] = view
                items.append(view)
        return widgets.GridBox(
            items,
            layout=widgets.Layout(
                grid_template_columns=f"minmax(140px, 0.7fr) repeat({len(columns)}, "
                "minmax(220px, 1fr))",
                grid_gap="8px",
                margin="8px 0",
            ),
        )

    # -- reacting ---------------------------------------------------------------------------

    def _on_change(self, cell_id: str | None) -> None:
        try:
            if cell_id is not None:
                self.cells[cell_id].refresh(self.comparison[cell_id])
                self._refresh_totals()
            else:
                self._refresh_all()
        except Exception as error:  # noqa: BLE001  (a display problem must not stop a run)
            self.show_error(error)

    def _refresh_all(self) -> None:
        now = datetime.now(UTC)
        for run in self.comparison.runs:
            self.cells[run.id].refresh(run, now)
        self._refresh_totals()

    def _refresh_totals(self) -> None:
        comparison = self.comparison
        design = comparison.design
        shape = [
            _count(len(design.images), "image") if len(design.images) > 1 else "",
            _count(len(design.prompts), "prompt"),
            _count(len(design.aspect_ratios), "ratio"),
            _count(design.repeats, "repeat"),
        ]
        badge = f" {SANDBOX_BADGE}" if comparison.backend == "sandbox" else ""
        self.header.value = (
            f"<b>Prompt comparison</b> · {TIMES.join(s for s in shape if s)} = "
            f"{len(comparison.cells)} videos · {html.escape(_ratios(comparison))}{badge}"
        )
        spent = f" · spent {money(comparison.spent)}" if comparison.price else ""
        self.cost.value = f"<small>{html.escape(comparison.estimate.describe())}{spent}</small>"
        waiting = comparison.needs_confirmation
        self.confirm.description = f"Spend {money(comparison.estimate.total)} and start"
        self.confirm.layout.display = "" if waiting else "none"
        self.progress.value = _progress(comparison)
        self.summary.value = "<br>".join(
            f"<small><b>{html.escape(s.prompt_id)}</b> {html.escape(s.describe())}</small>"
            for s in comparison.summary()
        )

    @guarded
    def _on_confirm(self, _button: object) -> None:
        self.confirm.disabled = True
        self.comparison.start()

    @guarded
    def _on_loop(self, change: dict[str, Any]) -> None:
        # Keep the stock players' own loop attribute in line with the checkbox.
        for view in self.cells.values():
            if view.player is not None:
                view.player.loop = bool(change["new"])


class Pairwise(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Blind pairwise judging: two finished cells side by side, unlabelled; pick the better.

    Made by ``cmp.pairwise(seed)``. The pairs (cells differing in the prompt only) and their
    sides are random, fixed by the seed. Each pick is recorded with ``cmp.vote``.
    """

    def __init__(self, comparison: Comparison, *, seed: int = 0) -> None:
        self.comparison = comparison
        self.pairs = comparison.pairs(seed)
        """The pairs to judge, in order: (left cell id, right cell id)."""
        self.position = 0
        scope = f"wavenb-pairwise-{secrets.token_hex(4)}"
        self.counter = widgets.HTML()
        self.left = widgets.Box(layout=widgets.Layout(width="50%"))
        self.right = widgets.Box(layout=widgets.Layout(width="50%"))
        self.choose_left = widgets.Button(description="◀ Left is better", button_style="info")
        self.choose_tie = widgets.Button(description="Same")
        self.choose_right = widgets.Button(description="Right is better ▶", button_style="info")
        self.skip = widgets.Button(description="Skip")
        self.controls = playback_controls(scope)
        self.errors = widgets.HTML()
        super().__init__(
            [
                widgets.HTML("<b>Which video is better?</b> <small>(prompts hidden)</small>"),
                self.counter,
                self.controls,
                widgets.HBox([self.left, self.right]),
                widgets.HBox([self.choose_left, self.choose_tie, self.choose_right, self.skip]),
                self.errors,
            ]
        )
        self.add_class("wavenb-compare")
        self.add_class(scope)
        self.choose_left.on_click(lambda _b: self.choose("left"))
        self.choose_tie.on_click(lambda _b: self.choose("tie"))
        self.choose_right.on_click(lambda _b: self.choose("right"))
        self.skip.on_click(lambda _b: self.next())
        self._show()

    @property
    def current(self) -> tuple[str, str] | None:
        """The pair on screen (left id, right id); ``None`` when all are judged."""
        return self.pairs[self.position] if self.position < len(self.pairs) else None

    @guarded
    def choose(self, winner: Winner) -> None:
        """Record ``"left"``, ``"right"`` or ``"tie"`` for the pair shown, then show the next."""
        pair = self.current
        if pair is None:
            return
        self.comparison.vote(pair[0], pair[1], winner)
        self.next()

    def next(self) -> None:
        """Go to the next pair without voting."""
        self.position += 1
        self._show()

    def show_error(self, error: BaseException) -> None:
        """Show an error of a button."""
        self.errors.value = f'<small style="color:#b91c1c">⚠ {html.escape(str(error))}</small>'

    def __repr__(self) -> str:
        return f"<Pairwise pair {self.position + 1} of {len(self.pairs)}>"

    def _show(self) -> None:
        pair = self.current
        buttons = (self.choose_left, self.choose_tie, self.choose_right, self.skip)
        for button in buttons:
            button.disabled = pair is None
        if pair is None:
            self.left.children = self.right.children = ()
            judged = len(self.comparison.votes)
            done = "No pairs to judge yet: pairs need finished cells of two prompts."
            if self.pairs:
                done = f"All {len(self.pairs)} pairs seen ({judged} votes in total)."
            self.counter.value = f"<small>{html.escape(done)} See cmp.summary().</small>"
            return
        self.counter.value = f"<small>Pair {self.position + 1} of {len(self.pairs)}</small>"
        self.left.children = (self._player(pair[0]),)
        self.right.children = (self._player(pair[1]),)

    def _player(self, cell_id: str) -> Any:  # noqa: ANN401
        run = self.comparison[cell_id]
        assert run.path is not None  # noqa: S101  (pairs are made of finished cells)
        return widgets.Video(
            value=run.path.read_bytes(), format="mp4", autoplay=False, loop=True,
            controls=True, layout=widgets.Layout(width="100%"),
        )  # fmt: skip


# -- timeline -------------------------------------------------------------------------------


def timeline_png(timeline: Timeline, *, title: str | None = None) -> bytes:
    """``plot_timeline`` of one task as PNG bytes, drawn off-screen (Agg).

    The figure is made without pyplot, so nothing is left open to show up in a notebook.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'wavenb[plot]'``).
    """
    from wavenb.ui.timeline import plot_timeline  # noqa: PLC0415  (pulls in the optional matplotlib)

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(
            "the timeline needs matplotlib: pip install 'wavenb[plot]'", name="matplotlib"
        ) from error
    figure = Figure(figsize=(4.8, 1.9), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    plot_timeline(timeline, ax=figure.subplots(), title=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    figure.clear()
    return buffer.getvalue()


def _task_timeline(comparison: Comparison, run: CellRun) -> Timeline:
    """The requests this kernel's client made about the cell's task (none if it never did).

    A cell reused from an earlier kernel has no recorded requests: the plot says so.
    """
    pid = run.prediction_id or run.id
    client = getattr(comparison, "_client", None)  # never made one just for this
    return client.timeline(pid) if client is not None else Timeline(pid, ())


# -- words ----------------------------------------------------------------------------------


def _timing(run: CellRun, now: datetime | None) -> str:
    """Elapsed time while running; wall and inference time when done; reused and cost."""
    parts = []
    if run.active and run.submitted_at is not None:
        elapsed = ((now or datetime.now(UTC)) - run.submitted_at).total_seconds()
        parts.append(f"{_seconds(elapsed)} elapsed")
    if run.done and run.wall_s is not None:
        parts.append(f"took {_seconds(run.wall_s)}")
    if run.done and run.inference_ms:
        parts.append(f"inference {run.inference_ms / 1000:.1f} s")
    if run.reused:
        parts.append("reused · free")
    elif run.cost:
        parts.append(money(run.cost))
    return " · ".join(parts)


def _error(run: CellRun) -> str:
    if not run.error:
        return ""
    color = "#b45309" if run.status == "waiting" else "#b91c1c"
    label = "content filter: " if run.moderation else ""
    return f'<small style="color:{color}">⚠ {label}{html.escape(run.error)}</small>'


def _progress(comparison: Comparison) -> str:
    runs = comparison.runs
    counts = {status: sum(run.status == status for run in runs) for status in ("completed",
              "failed", "cancelled")}  # fmt: skip
    active = sum(run.active for run in runs)
    parts = [f"{counts['completed']} of {len(runs)} done"]
    if active:
        parts.append(f"{active} running")
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed (Retry on the cell)")
    if counts["cancelled"]:
        parts.append(f"{counts['cancelled']} cancelled")
    throttle = comparison.throttle
    parts.append(f"at most {throttle.limit} at once")
    if throttle.slowdowns:
        parts.append(f"slowed down by rate limits ({throttle.slowdowns})")
    if comparison.needs_confirmation:
        parts.append("waiting for you to agree to the cost")
    return f"<small>{html.escape(' · '.join(parts))}</small>"


def _ratios(comparison: Comparison) -> str:
    return ", ".join(ratio_label(r) for r in comparison.design.aspect_ratios)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _seconds(value: float) -> str:
    whole = max(0, round(value))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"  # noqa: PLR2004
