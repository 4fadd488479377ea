"""The Studio's engine half: its runs, driven as ``wavenb.Job``s and observed, never moved.

``Generations`` keeps this session's runs, their tasks and results, the session's spending, and
what earlier sessions left unfinished (Resume). Each generation is a ``Job`` from the client
(``client.job`` / ``client.follow``): the engine only listens to its ``Update``s and tells the
view (``Studio``, which inherits this) to redraw through ``_publish`` and ``show``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from wavenb.client.async_client import AsyncClient, Resumed, Update
from wavenb.core import protocol
from wavenb.core.errors import InputError, WavenbError
from wavenb.core.models import Video
from wavenb.core.phase import Phase
from wavenb.journal.rows import JournalRow
from wavenb.studio import words
from wavenb.studio.runs import Run, ended_phase
from wavenb.ui.tasks import spawn

__all__ = ["Generations"]

T = TypeVar("T")


class Generations:
    """The runs of one Studio session and their tasks (the ``Studio`` is one)."""

    client: AsyncClient
    resume_text: str
    resuming: bool
    warning: str
    shown: int

    def __init__(self) -> None:
        self._runs: list[Run] = []
        self._results: list[Video] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sending: dict[tuple[int, str, str], Run] = {}
        self._spent = 0.0

    # -- what the view does ----------------------------------------------------------------

    def show(self, run: Run) -> None:
        """Put ``run`` in the result area."""
        raise NotImplementedError

    def show_error(self, error: BaseException, /) -> None:
        """Show an error the user must see."""
        raise NotImplementedError

    def _publish(self) -> None:
        """Redraw every run."""
        raise NotImplementedError

    def _refresh(self) -> None:
        """Redraw the controls."""
        raise NotImplementedError

    # -- reading ---------------------------------------------------------------------------

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

    def resume(self) -> asyncio.Task[list[Video]]:
        """Finish what earlier sessions left undone (what Resume does): never submits again.

        Each task the journal lists as unfinished joins the history as a run and, once
        finished, the results. Returns the task; awaiting it gives the videos that could be had.

        Raises:
            WavenbError: there is no running event loop.
        """
        return self._spawn(self._resume())

    def cancel(self, run: Run | None = None) -> None:
        """Stop waiting for ``run`` (default: every running generation).

        The provider goes on with tasks it accepted: their ids stay in ``history``, and
        ``studio.fetch(run)`` (the card's "Fetch again") picks them up later.
        """
        for each in [run] if run is not None else self._runs:
            if each.task is not None and not each.task.done():
                each.detail = "stopping…"
                each.task.cancel()
        self._publish()

    def fetch(self, run: Run) -> asyncio.Task[Video | None]:
        """Wait again for a run the provider may still finish (what "Fetch again" does).

        Raises:
            InputError: the run has no task id, or is not stopped.
        """
        if not run.resumable or run.prediction_id is None:
            raise InputError(f"run {run.number} has nothing to fetch again")
        run.error, run.phase, run.detail, run.elapsed = None, Phase.QUEUED, "fetching again", None
        run.clock = time.monotonic()
        run.task = self._spawn(self._work(run, run.prediction_id))
        self._publish()
        return run.task

    def _start(self, run: Run) -> asyncio.Task[Video | None]:
        """Start ``run`` as a task; the same inputs cannot go again until it is sent."""
        # A double click must not pay twice; another prompt can go at once.
        run.task = self._spawn(self._work(run))
        self._sending[_submit_key(run)] = run
        run.task.add_done_callback(lambda _task: self._settled(run))
        self._add_run(run)
        return run.task

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every task of the Studio has ended (at most ``timeout`` seconds)."""

        async def drain() -> None:
            while pending := self.tasks:
                await asyncio.wait(pending)

        await asyncio.wait_for(drain(), timeout)

    # -- generations -----------------------------------------------------------------------

    async def _work(self, run: Run, task_id: str | None = None) -> Video | None:
        """Drive one generation's ``Job`` (reuse, join, submit, wait, download) and show it.

        The Studio moves nothing itself: it observes the job's updates. A second click on the
        same inputs joins the job already running (one payment, whatever the front end does).
        """
        self.show(run)

        def on_update(update: Update) -> None:
            try:
                run.phase, run.eta = update.phase, update.eta
                run.detail = _detail(update)
                if update.prediction is not None:
                    run.prediction_id = update.prediction.id
                if update.phase is Phase.ACCEPTED and not run.charged:
                    run.charged = True
                    self._spent += self.client.price_per_video
                self._publish()
            except Exception as error:  # noqa: BLE001  (a display bug must not stop the run)
                self.show_error(error)

        job = None
        try:
            if task_id is not None or run.image is None:  # "Fetch again": never submits
                # Only resumed runs have no image, and they always have a task id.
                job = self.client.follow(task_id or run.prediction_id or "", on_update=on_update)
                video = await job.finish()
            else:
                job = await self.client.job(run.image.send, run.prompt, run.aspect_ratio,
                                            on_update=on_update)  # fmt: skip
                video = await job.run()
        except asyncio.CancelledError:
            run.stop(job.phase if job is not None else Phase.WAITING)
            raise
        except Exception as error:  # noqa: BLE001  (shown in the widget, kept on the run)
            phase = job.phase if job is not None and job.phase.ended else ended_phase(error)
            run.error, run.phase = error, phase
            run.detail = "" if phase is not Phase.STOPPED else "stopped waiting (Fetch again)"
            return None
        else:
            run.video, run.phase, run.error, run.detail = video, Phase.DOWNLOADED, None, ""
            self._results.append(video)
            return video
        finally:
            self._release(run)
            run.elapsed = time.monotonic() - run.clock
            if self.shown == run.number or run.video is not None or run.error is not None:
                self.show(run)
            self._publish()

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
        journal = self.client.journal
        self.resume_text = words.resume_offer(len(self._earlier()))
        self.warning = words.unresolved_warning(len(journal.unresolved()) if journal else 0)

    async def _resume(self) -> list[Video]:
        runs = {row.prediction_id: self._resumed_run(row) for row in self._earlier()}
        self.resuming = True

        def on_update(update: Update) -> None:
            run = None if update.prediction is None else runs.get(update.prediction.id)
            if run is not None:
                run.phase, run.detail = update.phase, _detail(update)
                self._publish()

        try:
            resumed = await self.client.resume(on_update=on_update)
        except asyncio.CancelledError:
            for run in runs.values():
                run.stop(run.phase)
            raise
        finally:
            self.resuming = False
            self._offer_resume()
            self._publish()
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
        self._publish()
        return videos

    def _resumed_run(self, row: JournalRow) -> Run:
        ratio = protocol.validate_aspect_ratio(row.aspect_ratio)
        run = Run(len(self._runs) + 1, row.prompt, ratio, None, row.image_source or "")
        run.phase, run.detail, run.prediction_id = Phase.QUEUED, "resuming", row.prediction_id
        self._add_run(run)
        return run

    def _finish_resumed(self, run: Run, item: Resumed) -> None:
        run.elapsed = time.monotonic() - run.clock
        if item.video is not None:
            run.video, run.phase, run.error, run.detail = item.video, Phase.DOWNLOADED, None, ""
            self._results.append(item.video)
        else:
            error = item.error or WavenbError(f"task {run.prediction_id} could not be resumed")
            run.error, run.phase = error, ended_phase(error)
        self.show(run)

    def _run(self, number: object) -> Run:
        """The run numbered ``number`` (what the front end names runs by).

        Raises:
            InputError: there is no such run.
        """
        if isinstance(number, int) and 1 <= number <= len(self._runs):
            return self._runs[number - 1]
        raise InputError(f"there is no run {number!r} in this Studio")

    def _release(self, run: Run) -> None:
        """``run``'s inputs are no longer being sent: Generate may send them again."""
        key = _submit_key(run)
        if self._sending.get(key) is run:
            del self._sending[key]
            self._refresh()

    def _settled(self, run: Run) -> None:
        """A generation's task ended, however it ended."""
        self._release(run)
        if run.phase is Phase.WAITING:  # cancelled before the job even started
            run.stop(Phase.WAITING)
        self._publish()

    def _add_run(self, run: Run) -> None:
        self._runs.append(run)
        self._publish()

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` on the kernel's loop, keeping a reference until it ends."""
        task = spawn(work, self._tasks, "the Studio")
        task.add_done_callback(self._task_done)
        self._refresh()
        return task

    def _try_spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """``_spawn``, or nothing without a running loop (a Studio made in a script)."""
        with contextlib.suppress(WavenbError):
            self._spawn(work)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.show_error(error)
        self._refresh()


def _submit_key(run: Run) -> tuple[int, str, str]:
    """What makes two submissions the same: image, prompt and ratio."""
    return (id(run.image), run.prompt, run.aspect_ratio or "")


def _detail(update: Update) -> str:
    """A few words for an update: the job's own, or what ``queued`` means."""
    if update.detail:
        return update.detail
    if update.phase is Phase.QUEUED:
        return "the account's slots are full, or the provider is busy"
    return ""
