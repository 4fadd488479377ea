"""The live grid of a ``Comparison`` and the blind pairwise judge: anywidget views, no logic.

``CompareGrid`` (``static/grid.js``, ``grid.css``) draws one row per prompt (its name, and the
words that differ from the first prompt marked) and one column per ratio x repeat. Every cell
box has the same height, so rows line up whatever the ratios, and a 2 x 2 comparison fits one
screen. A cell shows its phase (``wavenb.Phase``), time, metric badges, 👍/👎, a note, Retry
and a timeline.

A grid may hold a hundred videos, so nothing heavy is state: the page asks for poster frames
(the first frame of each video, ``wavenb.ui.posters``) of the cells it is about to show, and
for a video's bytes only when its cell is on screen (an IntersectionObserver); both come as
binary buffers of custom messages. The saved notebook holds a few kB of JSON per grid.

The comparison tells the grid what changed (``Comparison.watch``); changes are gathered and
sent at most every ``FLUSH`` seconds. The grid's buttons call the comparison's public methods.
Exceptions in actions show in the grid's error line, never vanish.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

import traitlets

from wavenb.core.models import Timeline
from wavenb.ui.channel import FrontEnd, static
from wavenb.ui.posters import jpeg, poster, poster_missing_reason
from wavenb.ui.tasks import spawn
from wavenb.ui.text import changed_words, money, seconds, short_id

if TYPE_CHECKING:
    from wavenb.ab.cells import CellRun
    from wavenb.ab.design import ImageFactor
    from wavenb.ab.engine import Comparison

__all__ = ["CompareGrid", "Pairwise", "cell_state", "timeline_png"]

TIMES: Final = " \u00d7 "
FLUSH: Final = 0.1
"""Seconds over which cell changes are gathered into one update of the page."""
POSTER_BATCH: Final = 12
"""Posters sent in one message."""


def _ratio_label(ratio: str | None) -> str:
    return ratio or "match source"


def _column_label(ratio: str | None, repeat: int, repeats: int) -> str:
    label = _ratio_label(ratio)
    return label if repeats == 1 else f"{label} · run {repeat + 1}"


def cell_state(run: CellRun, price: float, now: datetime | None = None) -> dict[str, Any]:
    """What the page draws for one cell (plain JSON: no bytes, no key)."""
    phase = str(getattr(run.status, "value", run.status))
    ended = bool(getattr(run, "ended", not run.active))
    return {
        "phase": phase,
        "detail": str(getattr(run, "detail", "") or ""),
        "time": _timing(run, now),
        "live": run.active,
        "id": run.prediction_id or "",
        "short": short_id(run.prediction_id),
        "video": run.done and run.path is not None,
        "error": ("content filter: " if run.moderation else "") + (run.error or ""),
        "retry": f"Retry · {money(price)}" if ended and not run.done else "",
        "rating": run.rating,
        "note": run.note,
        "badges": list(getattr(run, "badges", []) or []),
        "ratio": run.cell.aspect_ratio or "",
    }


class CompareGrid(FrontEnd):
    """The live grid of a comparison (``cmp.widget``; displaying ``cmp`` shows it).

    Python code can do what the page does: ``grid.receive({"do": "rate", "cell": id,
    "rating": 1})``, or simply call the comparison (``cmp.rate``, ``cmp.retry``).
    """

    _esm = static("grid.js")
    _css = static("grid.css")
    ACTIONS: ClassVar[frozenset[str]] = frozenset({
        "video", "posters", "image", "rate", "note", "retry", "confirm", "timeline", "download",
    })  # fmt: skip

    title = traitlets.Unicode(help="What is compared, in one line.").tag(sync=True)
    sandbox = traitlets.Bool(default_value=False, help="Whether a sandbox made it.").tag(sync=True)
    cost = traitlets.Unicode(help="The estimate and what was spent.").tag(sync=True)
    confirm = traitlets.Unicode(help="The Spend button's label; empty: not needed.").tag(sync=True)
    progress = traitlets.Unicode(help="Cells done, running, failed.").tag(sync=True)
    summary: traitlets.List[Any] = traitlets.List(help="One line per prompt.").tag(sync=True)
    errors = traitlets.Unicode(help="The error line.").tag(sync=True)
    columns: traitlets.List[Any] = traitlets.List(help="Column headings.").tag(sync=True)
    sections: traitlets.List[Any] = traitlets.List(help="Per image: its rows of cell ids.").tag(
        sync=True
    )
    cells = traitlets.Dict(help="Cell id -> cell_state.").tag(sync=True)
    playing = traitlets.Bool(default_value=True, help="Whether the videos play.").tag(sync=True)
    loop = traitlets.Bool(default_value=True, help="Whether the videos loop.").tag(sync=True)
    restarts = traitlets.Int(0, help="Bumped to rewind every video together.").tag(sync=True)
    poster_note = traitlets.Unicode(help="Why posters are input thumbnails.").tag(sync=True)

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison
        design = comparison.design
        super().__init__(
            columns=[_column_label(r, i, design.repeats) for r, i in design.columns],
            sections=[self._section(image) for image in design.images],
            poster_note=poster_missing_reason() or "",
        )
        self._pending: set[str] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thumbs: dict[str, bytes | None] = {}
        self._unwatch = comparison.watch(self._on_change)
        self._refresh_all()

    def play_all(self) -> None:
        """Rewind every video and play them together (the Play all button)."""
        self.playing = True
        self.restarts += 1

    def pause_all(self) -> None:
        """Pause every video (the Pause all button)."""
        self.playing = False

    def show_error(self, error: BaseException, /) -> None:
        """Show an error of an action in the error line."""
        self.errors = f"{type(error).__name__}: {error}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]  # noqa: ANN401
        # The data alone: ``Comparison`` merges its own text/plain into it.
        bundle = super()._repr_mimebundle_(**kwargs)
        return {} if bundle is None else dict(bundle[0])

    def __repr__(self) -> str:
        return f"<CompareGrid of {self.comparison!r}>"

    # -- building ---------------------------------------------------------------------------

    def _section(self, image: ImageFactor) -> dict[str, Any]:
        design = self.comparison.design
        ids = {(r.cell.prompt_id, r.cell.aspect_ratio, r.cell.repeat): r.id
               for r in self.comparison.runs if r.cell.image == image.id}  # fmt: skip
        reference = design.prompts[0].text
        rows = []
        for index, prompt in enumerate(design.prompts):
            words = [("same", prompt.text)] if index == 0 else changed_words(reference, prompt.text)
            rows.append({
                "prompt_id": prompt.id, "reference": index == 0,
                "words": [list(part) for part in words],
                "cells": [ids[(prompt.id, ratio, repeat)] for ratio, repeat in design.columns],
            })  # fmt: skip
        return {"image": image.id, "rows": rows}

    # -- reacting ---------------------------------------------------------------------------

    def _on_change(self, cell_id: str | None) -> None:
        try:
            if cell_id is None:
                self._pending = None  # everything
            elif self._pending is not None:
                self._pending.add(cell_id)
            self._schedule()
        except Exception as error:  # noqa: BLE001  (a display problem must not stop a run)
            self.show_error(error)

    def _schedule(self) -> None:
        """Gather changes for ``FLUSH`` seconds on a running loop; else draw at once."""
        if self._handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._handle = loop.call_later(FLUSH, self._flush)

    def _flush(self) -> None:
        self._handle = None
        pending, self._pending = self._pending, set()
        try:
            if pending is None:
                self._refresh_all()
            elif pending:
                now = datetime.now(UTC)
                price = self.comparison.price
                changed = {cid: cell_state(self.comparison[cid], price, now) for cid in pending}
                self.cells = {**self.cells, **changed}
                self._refresh_totals()
        except Exception as error:  # noqa: BLE001  (shown, never lost)
            self.show_error(error)

    def _refresh_all(self) -> None:
        now = datetime.now(UTC)
        price = self.comparison.price
        self.cells = {run.id: cell_state(run, price, now) for run in self.comparison.runs}
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
        ratios = ", ".join(_ratio_label(r) for r in design.aspect_ratios)
        self.title = (
            f"Prompt comparison · {TIMES.join(s for s in shape if s)} = "
            f"{len(comparison.cells)} videos · {ratios}"
        )
        self.sandbox = comparison.backend == "sandbox"
        spent = f" · spent {money(comparison.spent)}" if comparison.price else ""
        self.cost = f"{comparison.estimate.describe()}{spent}"
        waiting = comparison.needs_confirmation
        self.confirm = f"Spend {money(comparison.estimate.total)} and start" if waiting else ""
        self.progress = _progress(comparison)
        self.summary = [f"{s.prompt_id}: {s.describe()}" for s in comparison.summary()]

    # -- actions from the page --------------------------------------------------------------

    def _do_video(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self.comparison[str(content.get("cell"))]
        if run.path is not None:
            self.reply("video", run.path.read_bytes(), cell=run.id)

    def _do_download(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self.comparison[str(content.get("cell"))]
        if run.path is None:
            raise ValueError(f"cell {run.id} has no video yet")
        name = f"{run.id.replace('/', '-').replace(':', 'x')}.mp4"
        self.reply("download", run.path.read_bytes(), cell=run.id, name=name)

    def _do_posters(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        ids = [str(cell) for cell in content.get("cells", [])]
        spawn(self._send_posters(ids), self._tasks, "the grid")

    async def _send_posters(self, ids: list[str]) -> None:
        for start in range(0, len(ids), POSTER_BATCH):
            batch = ids[start : start + POSTER_BATCH]
            frames = await asyncio.to_thread(self._frames, batch)
            sent = [cell for cell, frame in zip(batch, frames, strict=True) if frame]
            self.send({"kind": "posters", "cells": sent}, [f for f in frames if f])

    def _frames(self, ids: list[str]) -> list[bytes | None]:
        """Each cell's poster: its video's first frame, else its input image (small JPEGs)."""
        frames: list[bytes | None] = []
        for cell_id in ids:
            run = self.comparison[cell_id]
            frame = poster(run.path) if run.path is not None else None
            frames.append(frame if frame is not None else self._input_thumb(run.cell.image))
        return frames

    def _input_thumb(self, image_id: str) -> bytes | None:
        cache = self._thumbs
        if image_id not in cache:
            cache[image_id] = None
            image = next(i for i in self.comparison.design.images if i.id == image_id)
            if image.prepared is not None and image.prepared.data is not None:
                from PIL import Image  # noqa: PLC0415  (only when a poster is missing)

                with Image.open(io.BytesIO(image.prepared.data)) as source:
                    cache[image_id] = jpeg(source, 180)
        return cache[image_id]

    def _do_image(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.reply(
            "image", self._input_thumb(str(content.get("image"))), image=content.get("image")
        )

    def _do_rate(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        cell, rating = str(content.get("cell")), content.get("rating")
        self.comparison.rate(cell, None if rating == self.comparison[cell].rating else rating)

    def _do_note(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        cell = str(content.get("cell"))
        self.comparison.rate(cell, self.comparison[cell].rating, note=str(content.get("note", "")))

    def _do_retry(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.comparison.retry(str(content.get("cell")))

    def _do_confirm(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.comparison.start()

    def _do_timeline(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self.comparison[str(content.get("cell"))]
        try:
            png = timeline_png(_task_timeline(self.comparison, run), title=run.id)
        except ImportError:
            self.reply("timeline", None, cell=run.id, note="pip install 'wavenb[plot]'")
        else:
            self.reply("timeline", png, cell=run.id, note="")


class Pairwise(FrontEnd):
    """Blind pairwise judging: two finished cells side by side, unlabelled; pick the better.

    Made by ``cmp.pairwise(seed)``. The pairs (cells differing in the prompt only) and their
    sides are random, fixed by the seed. A pick is ``cmp.vote(winner, loser)``, "Same" is
    ``cmp.tie``. The page never learns which cell (so which prompt) is on which side.
    """

    _esm = static("pairwise.js")
    _css = static("grid.css")
    ACTIONS: ClassVar[frozenset[str]] = frozenset({"video", "choose", "skip"})

    counter = traitlets.Unicode(help="Which pair this is, or that all are judged.").tag(sync=True)
    position = traitlets.Int(0, help="The pair on screen (0-based).").tag(sync=True)
    active = traitlets.Bool(default_value=False, help="Whether a pair is on screen.").tag(sync=True)
    errors = traitlets.Unicode(help="The error line.").tag(sync=True)

    def __init__(self, comparison: Comparison, *, seed: int = 0) -> None:
        self.comparison = comparison
        self.pairs = comparison.pairs(seed)
        """The pairs to judge, in order: (left cell id, right cell id)."""
        super().__init__()
        self._show()

    @property
    def current(self) -> tuple[str, str] | None:
        """The pair on screen (left id, right id); ``None`` when all are judged."""
        return self.pairs[self.position] if self.position < len(self.pairs) else None

    def choose(self, side: str) -> None:
        """Record ``"left"``, ``"right"`` or ``"tie"`` for the pair shown, then show the next."""
        pair = self.current
        if pair is None:
            return
        left, right = pair
        if side == "tie":
            self.comparison.tie(left, right)
        elif side in ("left", "right"):
            winner, loser = (left, right) if side == "left" else (right, left)
            self.comparison.vote(winner, loser)
        else:
            raise ValueError(f"pick 'left', 'right' or 'tie'; got {side!r}")
        self.next()

    def next(self) -> None:
        """Go to the next pair without voting."""
        self.position += 1
        self._show()

    def show_error(self, error: BaseException, /) -> None:
        """Show an error of a button."""
        self.errors = f"{type(error).__name__}: {error}"

    def __repr__(self) -> str:
        return f"<Pairwise pair {self.position + 1} of {len(self.pairs)}>"

    def _do_choose(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.choose(str(content.get("side")))

    def _do_skip(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.next()

    def _do_video(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        pair = self.current
        if pair is None or content.get("position") != self.position:
            return  # an answer for a pair already gone
        cell = pair[0] if content.get("side") == "left" else pair[1]
        path = self.comparison[cell].path
        if path is not None:
            self.reply("video", path.read_bytes(), side=content.get("side"), position=self.position)

    def _show(self) -> None:
        pair = self.current
        self.active = pair is not None
        if pair is None:
            judged = len(self.comparison.votes)
            done = "No pairs to judge yet: pairs need finished cells of two prompts."
            if self.pairs:
                done = f"All {len(self.pairs)} pairs seen ({judged} votes in total)."
            self.counter = f"{done} They count in the comparison's summary() and rank()."
            return
        self.counter = f"Pair {self.position + 1} of {len(self.pairs)}"


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
    """The requests this kernel's client made about the cell's task (none if it never did)."""
    pid = run.prediction_id or run.id
    client = getattr(comparison, "_client", None)  # never made one just for this
    return client.timeline(pid) if client is not None else Timeline(pid, ())


# -- words ----------------------------------------------------------------------------------


def _timing(run: CellRun, now: datetime | None) -> str:
    """Elapsed time while running; wall time when done; reused and cost."""
    parts = []
    if run.active and run.submitted_at is not None:
        elapsed = ((now or datetime.now(UTC)) - run.submitted_at).total_seconds()
        parts.append(seconds(elapsed))
    if run.done and run.wall_s is not None:
        parts.append(seconds(run.wall_s))
    if run.reused:
        parts.append("reused")
    elif run.cost:
        parts.append(money(run.cost))
    return " · ".join(parts)


def _progress(comparison: Comparison) -> str:
    runs = comparison.runs
    done = sum(run.done for run in runs)
    active = sum(run.active for run in runs)
    failed = sum(bool(getattr(run, "ended", False)) and not run.done for run in runs)
    parts = [f"{done} of {len(runs)} done"]
    if active:
        parts.append(f"{active} running")
    if failed:
        parts.append(f"{failed} without a video (Retry on the cell)")
    parts.append(f"at most {getattr(comparison, 'concurrency', '?')} at once")
    with contextlib.suppress(AttributeError):
        if comparison.rate_limited:
            parts.append(f"paced by rate limits ({comparison.rate_limited})")
    if comparison.needs_confirmation:
        parts.append("waiting for you to agree to the cost")
    return " · ".join(parts)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
