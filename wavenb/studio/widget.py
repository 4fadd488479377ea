"""``Studio``: the notebook widget for making videos, a thin view over ``AsyncClient``.

Every click only schedules a task on the kernel's running event loop and keeps a reference to
it, so the kernel answers other cells while videos render, and several generations can run at
once. Progress comes from the client's ``on_update``; the widget does no HTTP of its own except
the one-off check of a pasted image URL (``_studio_image.check_image_url``).

Nothing that fails in a task or a callback is lost or spilled over the cell: it shows in the
widget's error area as one sentence with a "details" disclosure.

On creation the Studio reads the client's journal: tasks an earlier session left unfinished
are offered to Resume (``client.resume``: waits and downloads, never submits again), and
submissions that got no answer are named in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import ipywidgets as widgets
import traitlets

from wavenb.client.async_client import AsyncClient, Resumed, Update
from wavenb.core import protocol
from wavenb.core.errors import InputError, PredictionFailed, PredictionTimeout, WavenbError
from wavenb.core.images import ImageInput
from wavenb.core.models import Video
from wavenb.core.phase import Phase
from wavenb.core.types import AspectRatio
from wavenb.journal.store import JournalRow
from wavenb.studio.html import (
    char_count,
    chip,
    describe_error,
    error_box,
    field_message,
    header,
    image_summary,
    price_label,
    resume_offer,
    seconds,
    spent_label,
    unresolved_warning,
    video_caption,
    word_diff,
)
from wavenb.studio.image import SourceImage, check_image_url, from_upload, load_image
from wavenb.studio.layout import Controls, arrange, hide, show
from wavenb.studio.runs import TIMED_OUT, HistoryRow, Run, RunProgress
from wavenb.ui.tasks import guarded, spawn

__all__ = ["Studio"]

P = ParamSpec("P")
T = TypeVar("T")


class Studio(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Make videos from an image and a prompt, in a notebook cell.

    Evaluate it in a cell to display it. Without ``WAVESPEED_API_KEY`` it uses the local
    sandbox (free, offline, labelled SANDBOX).

    Args:
        image: a path, URL, bytes or PIL image to start from.
        prompt: the prompt to start from.
        aspect_ratio: one of the five ratios; ``None`` matches the source image.
        client: the ``AsyncClient`` to use; by default ``AsyncClient()``.
        save_dir: where Download saves MP4s; by default wavenb's outputs folder.

    Example:
        >>> studio = wavenb.Studio(image="cat.jpg")              # doctest: +SKIP
        >>> studio                                                # displays the widget
        >>> video = await studio.generate()                       # or click Generate
        >>> studio.last.path
    """

    save_dir = traitlets.Unicode(
        help="The folder Download saves MP4s into (shown, and editable, beside the button)."
    )
    running = traitlets.Int(0, read_only=True, help="How many generations are in flight right now.")

    def __init__(
        self,
        image: ImageInput | None = None,
        prompt: str = "",
        aspect_ratio: AspectRatio | None = None,
        *,
        client: AsyncClient | None = None,
        save_dir: str | Path | None = None,
    ) -> None:
        ratio = protocol.validate_aspect_ratio(aspect_ratio)
        self.ui = Controls()
        """Every control by name (``studio.ui.generate.click()``); see ``_studio_layout``."""
        super().__init__(arrange(self.ui))
        self.add_class("wavenb-studio")
        self.client = client if client is not None else AsyncClient()
        """The ``AsyncClient`` the Studio works through."""
        self._runs: list[Run] = []
        self._rows: dict[Run, HistoryRow] = {}
        self._results: list[Video] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._source: SourceImage | None = None
        self._source_from = ""
        self._loading = 0
        self._image_version = 0
        self._before_enhance: str | None = None
        self._sending: dict[tuple[int, str, str], Run] = {}
        self._shown: Run | None = None
        self._loaded: Video | None = None
        self._quiet = False
        self._enhancing = False
        self._spent = 0.0
        self.save_dir = str(save_dir if save_dir is not None else self.client.output_dir)
        traitlets.link((self, "save_dir"), (self.ui.save_dir, "value"))
        self._wire()
        self.ui.prompt.value = prompt
        self.ui.char_count.value = char_count(prompt)
        self.ui.ratio.value = ratio or ""
        if image is not None:
            try:
                self.set_image(image)
            except WavenbError as error:
                self.ui.image_message.value = field_message(str(error))
        try:
            self._offer_resume()
        except Exception as error:  # noqa: BLE001  (an unreadable journal must not stop the Studio)
            self.show_error(error)
        self._refresh()

    # -- public API ------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        """The prompt as typed."""
        return str(self.ui.prompt.value)

    @prompt.setter
    def prompt(self, text: str) -> None:
        self.ui.prompt.value = text

    @property
    def aspect_ratio(self) -> AspectRatio | None:
        """The chosen ratio; ``None`` matches the source image."""
        return protocol.validate_aspect_ratio(self.ui.ratio.value)

    @aspect_ratio.setter
    def aspect_ratio(self, ratio: AspectRatio | None) -> None:
        self.ui.ratio.value = protocol.validate_aspect_ratio(ratio) or ""

    @property
    def image(self) -> SourceImage | None:
        """The checked source image, or ``None`` while there is none (or it is loading)."""
        return self._source

    @property
    def results(self) -> list[Video]:
        """The videos of this session, oldest first."""
        return list(self._results)

    @property
    def last(self) -> Video | None:
        """The most recent video, or ``None``."""
        return self._results[-1] if self._results else None

    @property
    def history(self) -> list[Run]:
        """Every run of this session, oldest first, whatever its outcome."""
        return list(self._runs)

    @property
    def spent(self) -> float:
        """US dollars the runs submitted from this Studio cost (0 on the sandbox)."""
        return self._spent

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """The Studio's tasks still running (generations, image checks, Enhance)."""
        return frozenset(task for task in self._tasks if not task.done())

    def set_image(self, image: ImageInput) -> asyncio.Task[None]:
        """Use ``image`` (path, URL, bytes or PIL image); it is checked in a task.

        Raises:
            WavenbError: there is no running event loop (use the Studio in Jupyter).
        """
        is_url = isinstance(image, str) and image.startswith(("http://", "https://"))
        with self._muted():
            self.ui.upload.value = ()
            self.ui.url.value = image if is_url else ""
        if isinstance(image, str) and is_url:
            return self._load_image(_check_url, image, origin="url")
        label = Path(image).name if isinstance(image, str | Path) else "image"
        return self._load_image(_load_local, image, label, origin="value")

    def generate(self) -> asyncio.Task[Video | None]:
        """Start a video from the current image, prompt and ratio: what Generate does.

        Returns the task; awaiting it gives the ``Video``, or ``None`` if the run failed or was
        cancelled (the reason is in the widget and on ``studio.history[-1]``).

        Raises:
            InputError: no image yet, or the prompt is not usable.
            WavenbError: there is no running event loop.
        """
        source = self._source
        if source is None:
            raise InputError("add an image first (upload one or paste a URL)")
        prompt = protocol.validate_prompt(self.prompt)
        run = Run(prompt, self.aspect_ratio, source)
        # The same inputs cannot go again while they are being sent: a double click must not
        # pay twice. Another prompt can go at once.
        run.task = self._spawn(self._work(run))
        self._sending[_submit_key(run)] = run
        run.task.add_done_callback(lambda _task: self._settled(run))
        self._add_history(run)
        return run.task

    def resume(self) -> asyncio.Task[list[Video]]:
        """Finish what earlier sessions left undone (what Resume does): never submits again.

        Each task the journal lists as unfinished (still running, or done but not downloaded)
        joins the history as a run and, once finished, the results. Returns the task; awaiting
        it gives the videos that could be had.

        Raises:
            WavenbError: there is no running event loop.
        """
        return self._spawn(self._resume())

    def cancel(self, run: Run | None = None) -> None:
        """Stop waiting for ``run`` (default: every running generation).

        The provider goes on with tasks it accepted: their ids stay in ``history`` and
        ``await studio.client.wait(id)`` (or "Fetch again") picks them up later.
        """
        for each in [run] if run is not None else self._runs:
            if each.task is not None and not each.task.done():
                each.task.cancel()

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every task of the Studio has ended (at most ``timeout`` seconds)."""

        async def drain() -> None:
            while pending := self.tasks:
                await asyncio.wait(pending)

        await asyncio.wait_for(drain(), timeout)

    def download(self, video: Video | None = None) -> Path:
        """Save ``video`` (default: the one shown) as ``<save_dir>/<id>.mp4``; return the path."""
        chosen = video or (self._shown.video if self._shown is not None else None)
        if chosen is None or chosen.path is None:
            raise InputError("no finished video to save yet")
        folder = Path(self.save_dir).expanduser()
        target = folder / f"{chosen.id}.mp4"
        if not (target.exists() and target.resolve() == chosen.path.resolve()):
            folder.mkdir(parents=True, exist_ok=True)
            chosen.save(target)
        self.ui.saved.value = f"<small>Saved to <code>{html.escape(str(target))}</code></small>"
        return target

    def show_error(self, error: BaseException) -> None:
        """Show an error in the error area: one sentence, raw details in a disclosure."""
        self.ui.error.value = error_box(*describe_error(error))

    def __repr__(self) -> str:
        return (
            f"<Studio backend={self.client.backend!r} runs={len(self._runs)} "
            f"running={self.running}>"
        )

    # -- wiring ----------------------------------------------------------------------------

    def _wire(self) -> None:
        ui = self.ui
        ui.upload.observe(self._on_upload, names=["value"])
        ui.url.observe(self._on_url, names=["value"])
        ui.prompt.observe(self._on_prompt, names=["value"])
        ui.examples.observe(self._on_example, names=["value"])
        ui.enhance.on_click(self._on_enhance)
        ui.undo.on_click(self._on_undo)
        ui.generate.on_click(self._on_generate)
        ui.download.on_click(self._on_download)
        ui.resume.on_click(self._on_resume)

    @guarded
    def _on_upload(self, change: dict[str, Any]) -> None:
        if self._quiet or not change["new"]:
            return
        try:
            data, name = from_upload(change["new"])
        except InputError as error:
            self._image_version += 1  # whatever was loading is superseded
            self._clear_image(str(error))
            return
        with self._muted():
            self.ui.url.value = ""
        self._load_image(_load_local, data, name, origin="upload")

    @guarded
    def _on_url(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        url = str(change["new"]).strip()
        with self._muted():
            self.ui.upload.value = ()
        if url:
            self._load_image(_check_url, url, origin="url")
        elif self._source_from == "url":
            self._clear_image()

    @guarded
    def _on_prompt(self, change: dict[str, Any]) -> None:
        self.ui.char_count.value = char_count(str(change["new"]))
        self._refresh()

    @guarded
    def _on_example(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        self._forget_enhance()
        self.ui.prompt.value = change["new"]
        self.ui.examples.value = ""

    @guarded
    def _on_enhance(self, _button: object) -> None:
        self._spawn(self._enhance(protocol.validate_prompt(self.prompt)))

    @guarded
    def _on_undo(self, _button: object) -> None:
        if self._before_enhance is not None:
            self.ui.prompt.value = self._before_enhance
        self._forget_enhance()

    @guarded
    def _on_generate(self, _button: object) -> None:
        self.generate()

    @guarded
    def _on_download(self, _button: object) -> None:
        self.download()

    @guarded
    def _on_resume(self, _button: object) -> None:
        self.resume()

    @guarded
    def _on_show(self, run: Run) -> None:
        self._show(run)

    @guarded
    def _on_fetch(self, run: Run) -> None:
        if not run.resumable or run.prediction_id is None:
            return
        run.error, run.status = None, "fetching"
        run.task = self._spawn(self._work(run, run.prediction_id))
        self._rows[run].refresh()

    @guarded
    def _on_cancel(self, run: Run) -> None:
        self.cancel(run)

    # -- image -----------------------------------------------------------------------------

    def _load_image(
        self,
        loader: Callable[[T, str], Awaitable[SourceImage]],
        image: T,
        label: str = "",
        *,
        origin: str,
    ) -> asyncio.Task[None]:
        """Check an image in a task; the latest pick wins over slower earlier ones."""
        self._image_version += 1
        version = self._image_version
        self._source, self._source_from = None, origin
        checking = "checking the URL…" if origin == "url" else "reading the image…"
        self.ui.image_message.value = field_message(checking, error=False)

        async def load() -> None:
            try:
                source = await loader(image, label)
            except InputError as error:
                if version == self._image_version:
                    self._clear_image(str(error))
                return
            finally:
                self._loading -= 1
                self._refresh()
            if version == self._image_version:
                self._use_image(source)

        task = self._spawn(load())
        self._loading += 1
        self._refresh()
        return task

    def _use_image(self, source: SourceImage) -> None:
        self._source = source
        self.ui.preview.value = source.preview
        show(self.ui.preview)
        self.ui.image_info.value = image_summary(source)
        self.ui.image_message.value = ""
        self._refresh()

    def _clear_image(self, reason: str = "") -> None:
        self._source, self._source_from = None, ""
        self.ui.preview.value = b""
        hide(self.ui.preview)
        self.ui.image_info.value = ""
        self.ui.image_message.value = field_message(reason) if reason else ""
        self._refresh()

    # -- prompt ----------------------------------------------------------------------------

    async def _enhance(self, original: str) -> None:
        ui = self.ui
        self._enhancing, ui.enhance.description = True, "Enhancing…"
        self._refresh()
        try:
            enhanced = await self.client.enhance_prompt(original)
        except Exception as error:  # noqa: BLE001  (shown in the widget)
            self.show_error(error)
            return
        finally:
            self._enhancing, ui.enhance.description = False, "Enhance"
            self._refresh()
        self._before_enhance = original
        ui.prompt.value = enhanced
        ui.diff.value = word_diff(original, enhanced)
        show(ui.undo)

    def _forget_enhance(self) -> None:
        self._before_enhance = None
        self.ui.diff.value = ""
        hide(self.ui.undo)

    # -- generations -----------------------------------------------------------------------

    async def _work(self, run: Run, task_id: str | None = None) -> Video | None:
        """Drive one generation's ``Job`` (reuse, join, submit, wait, download) and show it.

        The Studio moves nothing itself: it observes the job's updates. A second click on the
        same inputs joins the job already running (one payment, whatever the front end does).
        """
        row = RunProgress(run, self._on_cancel, lambda: len(self.client.durations))
        self.ui.running.children = (*self.ui.running.children, row)
        row.start()

        def on_update(update: Update) -> None:
            try:
                run.status = update.phase.label
                if update.prediction is not None:
                    run.prediction_id = update.prediction.id
                if update.phase is Phase.ACCEPTED and not run.charged:
                    run.charged = True
                    self._spent += self.client.price_per_video
                row.update(update)
                self._rows[run].refresh()
            except Exception as error:  # noqa: BLE001  (a display bug must not stop the run)
                self.show_error(error)

        try:
            if task_id is not None:  # "Fetch again": follow the task, never submit
                video = await self.client.follow(task_id, on_update=on_update).finish()
            elif run.image is None:  # only resumed runs have none, and they are never submitted
                raise InputError("this run has no image to send")
            else:
                job = await self.client.job(run.image.send, run.prompt, run.aspect_ratio,
                                            on_update=on_update)  # fmt: skip
                video = await job.run()
        except asyncio.CancelledError:
            run.finish_cancelled()
            raise
        except Exception as error:  # noqa: BLE001  (shown in the widget, kept on the run)
            run.error, run.status = error, _failure_status(error)
            return None
        else:
            run.video = video
            run.status, run.error = "completed", None
            self._results.append(video)
            return video
        finally:
            self._release(run)
            row.stop()
            self.ui.running.children = tuple(c for c in self.ui.running.children if c is not row)
            run.elapsed = time.monotonic() - run.clock
            self._rows[run].refresh()
            if run.video is not None or run.error is not None:
                self._show(run)
            self._refresh()

    # -- resuming earlier tasks ------------------------------------------------------------

    def _earlier(self) -> list[JournalRow]:
        """The journal's unfinished tasks on this server that are not runs of this Studio."""
        journal = self.client.journal
        if journal is None:
            return []
        mine = {run.prediction_id for run in self._runs}
        return [
            row for row in journal.resumable(self.client.base_url) if row.prediction_id not in mine
        ]

    def _offer_resume(self) -> None:
        """Show the Resume offer and the "no answer" warning from what the journal says."""
        ui = self.ui
        journal = self.client.journal
        pending = len(self._earlier())
        ui.resume_line.value = resume_offer(pending) if pending else ""
        show(ui.resume_line, pending > 0)
        show(ui.resume, pending > 0)
        ui.resume.disabled = False
        ui.unresolved.value = unresolved_warning(len(journal.unresolved()) if journal else 0)

    async def _resume(self) -> list[Video]:
        ui = self.ui
        runs = {row.prediction_id: self._resumed_run(row) for row in self._earlier()}
        ui.resume.disabled = True
        ui.resume_line.value = f"<small>resuming {len(runs)} unfinished runs…</small>"

        def on_update(update: Update) -> None:
            run = runs.get(update.prediction.id)
            if run is None:
                return
            try:
                run.status = update.prediction.status.label
                self._rows[run].refresh()
            except Exception as error:  # noqa: BLE001  (a display bug must not stop the wait)
                self.show_error(error)

        try:
            resumed = await self.client.resume(on_update=on_update)
        except asyncio.CancelledError:
            for run in runs.values():
                run.finish_cancelled()
                self._rows[run].refresh()
            raise
        finally:
            self._offer_resume()
        mine = {run.prediction_id for run in self._runs}
        videos: list[Video] = []
        for item in resumed:
            found = runs.get(item.row.prediction_id)
            if found is None and item.row.prediction_id in mine:
                continue  # a run of this Studio, already shown as such
            # A task that appeared in the journal since the click gets its run now.
            run = found if found is not None else self._resumed_run(item.row)
            self._finish_resumed(run, item)
            if run.video is not None:
                videos.append(run.video)
        return videos

    def _resumed_run(self, row: JournalRow) -> Run:
        ratio = protocol.validate_aspect_ratio(row.aspect_ratio)
        run = Run(row.prompt, ratio, None, prediction_id=row.prediction_id, status="resuming")
        self._add_history(run)
        return run

    def _finish_resumed(self, run: Run, item: Resumed) -> None:
        run.elapsed = time.monotonic() - run.clock
        if item.video is not None:
            run.video, run.status, run.error = item.video, "completed", None
            self._results.append(item.video)
        else:
            error = item.error or WavenbError(f"task {run.prediction_id} could not be resumed")
            run.error, run.status = error, _failure_status(error)
        self._rows[run].refresh()
        self._show(run)

    def _release(self, run: Run) -> None:
        """``run``'s inputs are no longer being sent: Generate may send them again."""
        key = _submit_key(run)
        if self._sending.get(key) is run:
            del self._sending[key]
            self._refresh()

    def _settled(self, run: Run) -> None:
        """A generation's task ended, however it ended."""
        self._release(run)
        if run.status == "submitting":  # cancelled before it even started
            run.finish_cancelled()
        self._rows[run].refresh()
        self._refresh()

    def _add_history(self, run: Run) -> None:
        self._runs.append(run)
        row = HistoryRow(run, self._on_show, self._on_fetch)
        self._rows[run] = row
        self.ui.history.children = (row, *self.ui.history.children)
        self._refresh()

    def _show(self, run: Run) -> None:
        """Put a run in the result area: its video, or its error."""
        ui = self.ui
        took = f" · {seconds(run.elapsed)}" if run.elapsed is not None else ""
        ui.status.value = f"{chip(run.status)} <small>{html.escape(run.prompt)}{took}</small>"
        if run.video is not None:
            if self._loaded is not run.video:  # a run fetched again has a new video
                ui.player.value = run.video.read_bytes()
                self._loaded = run.video
            show(ui.player)
            ui.caption.value = video_caption(run.video)
            ui.error.value = ""
            ui.saved.value = ""
        else:
            hide(ui.player)
            ui.caption.value = ""
            ui.error.value = error_box(*describe_error(run.error)) if run.error else ""
        ui.timeline.set_video(run.video)
        ui.download.disabled = run.video is None
        self._shown = run

    # -- state of the controls ------------------------------------------------------------

    def _refresh(self) -> None:
        ui = self.ui
        sandbox = self.client.backend == "sandbox"
        ui.header.value = header(sandbox)
        busy = sum(1 for run in self._runs if run.active)
        self.set_trait("running", busy)
        missing = self._missing()
        ui.generate.disabled = missing is not None
        ui.generate.description = f"Generate · {price_label(self.client.price_per_video)}"
        ui.generate_hint.value = field_message(missing, error=False) if missing else ""
        ui.spent.value = spent_label(self._spent, sandbox=sandbox)
        ui.enhance.disabled = self._enhancing or not self.prompt.strip()

    def _missing(self) -> str | None:
        """What stops Generate, in words; ``None`` when it can go."""
        if self._source is None:
            return "checking the image…" if self._loading else "add an image"
        try:
            prompt = protocol.validate_prompt(self.prompt)
        except InputError as error:
            return "write a prompt" if not self.prompt.strip() else str(error)
        if (id(self._source), prompt, self.aspect_ratio or "") in self._sending:
            return "sending…"
        return None

    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        """Change controls from code without their observers reacting."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` on the kernel's loop, keeping a reference until it ends."""
        task = spawn(work, self._tasks, "the Studio")
        task.add_done_callback(self._task_done)
        self._refresh()
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.show_error(error)
        self._refresh()


async def _check_url(url: str, _label: str) -> SourceImage:
    return await check_image_url(url)


async def _load_local(image: ImageInput, label: str) -> SourceImage:
    return await asyncio.to_thread(load_image, image, label)


def _submit_key(run: Run) -> tuple[int, str, str]:
    """What makes two submissions the same: image, prompt and ratio."""
    return (id(run.image), run.prompt, run.aspect_ratio or "")


def _failure_status(error: Exception) -> str:
    if isinstance(error, PredictionTimeout):
        return TIMED_OUT
    if isinstance(error, PredictionFailed):
        return error.prediction.status.label
    return "failed"
