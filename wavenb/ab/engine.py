"""``Comparison``: a prompt A/B comparison's cells, run on the one generation lifecycle.

Each cell is one ``wavenb.Job`` (``wavenb.jobs.job``): a new cell is a ``Job`` over a
``Request`` identified from its image, uploaded once per image and shared by every cell
(repeat 0 is the very request a plain ``generate`` makes; repeat ``n`` the variant
``repeat-n``); a cell whose task exists from before follows it (``Job.following``) and never
submits. The comparison itself never submits, polls, journals or downloads: it bounds its own
concurrency (a semaphore of ``concurrency`` cells) and turns each job's ``Update`` into its
cell's state (``wavenb.ab.transitions``). Rate limits are the client's one submit gate's
business: a 429 paces the batch there, it does not fail a cell.

Money: the plan's estimate uses ``client.price_per_video``; when the run starts, the quote
(``client.price()``) is fetched, and on the real API a changed price asks for consent again,
``max_cost`` is checked again, and ``client.check_balance`` refuses a batch the account cannot
pay, all before anything is sent. Each job reserves its own budget in the journal.

As soon as a cell's video is on disk, its metrics are measured off the event loop (in a helper
process at idle CPU priority, ``wavenb.ab.measuring``), one video at a time, cached by the
video's digest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import html
import logging
import time
from collections.abc import Coroutine, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from wavenb.ab.board import Board, cache_of, now
from wavenb.ab.cells import CellRun
from wavenb.ab.design import Cell, Design
from wavenb.ab.judging import Vote
from wavenb.ab.running import Runner
from wavenb.ab.transitions import changes_for, ending_of
from wavenb.core.errors import BudgetExceeded, InputError, WavenbError
from wavenb.core.phase import Phase
from wavenb.jobs.events import Update
from wavenb.jobs.job import Job
from wavenb.ui.tasks import spawn

if TYPE_CHECKING:
    from wavenb.ab.widget import CompareGrid, Pairwise
    from wavenb.client.async_client import AsyncClient

__all__ = ["Comparison", "cache_of"]

logger = logging.getLogger("wavenb")

T = TypeVar("T")
TICK: Final = 1.0
"""Seconds between elapsed-time refreshes of the views while cells run."""
_EPSILON: Final = 1e-9


class Comparison(Board):
    """A prompt A/B comparison: its design, its cells' runs, ratings, votes and metrics.

    Made by ``compare()`` (which plans and starts it) or ``Comparison.load()`` (a saved one,
    no API call). Display it in a notebook to see the live grid; ``await`` it (or ``wait()``)
    to have every cell finished and measured. What it holds and how it reads (rows, summary,
    rank, votes, save) is ``wavenb.ab.board.Board``; running is here.
    """

    def __init__(
        self,
        design: Design,
        cells: Sequence[Cell],
        runs: Sequence[CellRun],
        *,
        client: AsyncClient | None,
        backend: Literal["sandbox", "api"],
        base_url: str,
        price: float,
        max_cost: float | None = None,
        concurrency: int = 4,
        votes: Sequence[Vote] = (),
    ) -> None:
        super().__init__(
            design, cells, runs, client=client, backend=backend, base_url=base_url, price=price,
            max_cost=max_cost, concurrency=concurrency, votes=votes,
        )  # fmt: skip
        self._runner = Runner(design, concurrency, lambda: self.client)
        self._agreed = price
        self._failure: BaseException | None = None
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clocks: dict[str, float] = {}
        self._main: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate_base: int | None = None
        self._widget: CompareGrid | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def peak(self) -> int:
        """The most cells that were at the provider at once."""
        return self._runner.peak

    @property
    def rate_limited(self) -> int:
        """429s the client's submit gate met since this comparison started running."""
        if self._gate_base is None or self._client is None:
            return 0
        return self._client.session.gate.rate_limited - self._gate_base

    @property
    def running(self) -> bool:
        """Whether any cell is being worked on (or measured)."""
        return bool(self._busy) or any(not task.done() for task in self._tasks)

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Agree to the cost and start (what the grid's Spend button does).

        Inside a running event loop (Jupyter) the cells start at once as tasks; elsewhere
        ``wait()`` runs them. Calling it again while running does nothing.
        """
        self._confirmed = True
        self._agreed = self.price
        self.problem = None
        self._notify(None)
        if _loop_running():
            self._launch()

    def __await__(self) -> Generator[Any, None, Comparison]:
        """``await cmp``: start if needed, then wait until every cell has ended and is measured.

        Raises what ``wait`` raises.
        """
        return self._settle().__await__()

    def wait(self, timeout: float | None = None) -> Comparison:
        """Block until every cell has ended, and return the comparison (scripts).

        Without a running event loop the cells run on a private one, here. In Jupyter the
        cells run on the kernel's loop, which a blocking call would stop: write
        ``await cmp`` there instead.

        Raises:
            WavenbError: called on a thread whose event loop is running (Jupyter), or the run
                costs money and was not (or, the price having changed, no longer is) agreed
                with ``start()``.
            BudgetExceeded: the quote makes the new cells cost more than ``max_cost``.
            InsufficientCreditsError: the balance cannot pay for the new cells.
            TimeoutError: ``timeout`` seconds passed (the cells go on at the provider).
        """
        if _loop_running():
            # Re-entering the running loop (nest-asyncio) breaks ipykernel 7.
            raise WavenbError(
                "cmp.wait() would block the event loop the videos run on: in Jupyter write "
                "`await cmp` in the cell instead"
            )
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(asyncio.wait_for(self._settle(), timeout))

    def retry(self, cell_id: str, *, fresh: bool = False) -> asyncio.Task[CellRun]:
        """Run one ended cell again, alone; returns its task.

        A cell whose task still exists (``stopped``) is followed again, free. Otherwise it is
        a new submission (``price`` on the real API, within ``max_cost``), unless an identical
        one is already known: a task whose download failed is fetched again, and an uncertain
        submission is settled from the account's history, never paid twice. A ``gone`` task
        is replaced by a new one; ``fresh=True`` pays for a new video whatever the journal
        holds.

        Raises:
            KeyError: no such cell. InputError: the cell is running or has its video.
            BudgetExceeded: it would take spending past ``max_cost``.
            WavenbError: no running event loop (use it in Jupyter, or ``await`` code).
        """
        run = self[cell_id]
        if run.active or cell_id in self._busy:
            raise InputError(f"cell {cell_id} is running already")
        if run.done:
            raise InputError(f"cell {cell_id} has its video; nothing to retry")
        # The journal may still show a gone task as running: only a new one can replace it.
        fresh = fresh or run.status is Phase.GONE
        follow = not fresh and self._follows(run)
        if not follow:
            self._check_budget(1)
        self._set(cell_id, status=Phase.WAITING, error=None, moderation=False, detail="")
        return self._spawn(self._work(cell_id, follow=follow, fresh=fresh))

    def cancel(self) -> None:
        """Stop waiting for every cell; tasks the provider took go on there.

        The journal keeps their ids: running the same comparison again picks them up
        instead of paying again.
        """
        for task in list(self._tasks):
            task.cancel()

    async def _settle(self) -> Comparison:
        if self.needs_confirmation:
            raise WavenbError(self._consent_text())
        self._launch()
        while pending := {task for task in self._tasks if not task.done()}:
            await asyncio.wait(pending)
        if self._failure is not None:
            raise self._failure
        if self.needs_confirmation:
            raise WavenbError(self._consent_text())
        return self

    def _consent_text(self) -> str:
        text = (
            f"this comparison would spend ${self.estimate.total:.2f} on the real API "
            f"({self.estimate.describe()}); click Spend in the grid or call cmp.start() first"
        )
        return text if self.problem is None else f"{self.problem}; {text}"

    def _launch(self) -> None:
        """Start the cells still to run, and measure finished ones (needs a running loop)."""
        if self.needs_confirmation:
            return
        for run in self.runs:
            if run.done:
                self._measure_soon(run.id)
        if self._main is not None and not self._main.done():
            return
        todo = [run.id for run in self.runs if not run.ended and run.id not in self._busy]
        if todo:
            self._failure = None
            self._main = self._spawn(self._run_all(todo))

    async def _run_all(self, cell_ids: Sequence[str]) -> None:
        try:
            if not await self._can_pay(cell_ids):
                return
        except WavenbError as error:  # nothing was sent: say why, and let `await cmp` raise it
            self._failure, self.problem = error, str(error)
            self._notify(None)
            return
        follows = {cell_id: self._follows(self._runs[cell_id]) for cell_id in cell_ids}
        await asyncio.gather(
            *(self._work(cell_id, follow=follows[cell_id], fresh=False) for cell_id in cell_ids)
        )

    async def _can_pay(self, cell_ids: Sequence[str]) -> bool:
        """Before anything is sent: quote, consent, ``max_cost`` and balance for the new cells.

        Returns False when the price changed and the run waits for consent again.
        """
        client = self.client
        if self._gate_base is None:
            self._gate_base = client.session.gate.rate_limited
        new = sum(not self._follows(self._runs[cell_id]) for cell_id in cell_ids)
        if new == 0:
            return True
        price = await client.price()
        self._summary = None
        self._notify(None)  # the estimate now shows the quote
        if client.backend == "sandbox" or price == 0:
            return True
        if not self._confirmed or abs(price - self._agreed) > _EPSILON:
            if self._confirmed:
                self.problem = f"the price is now ${price:.2f} a video (was ${self._agreed:.2f})"
            self._confirmed = False
            self._notify(None)
            return False
        self._check_budget(new)
        await client.check_balance(new * price)
        return True

    def _follows(self, run: CellRun) -> bool:
        """Whether running this cell follows an existing task (free) instead of submitting."""
        return run.prediction_id is not None and run.status in (
            Phase.STOPPED, Phase.QUEUED, Phase.PROCESSING, Phase.COMPLETED, Phase.ACCEPTED,
        )  # fmt: skip

    async def _work(self, cell_id: str, *, follow: bool, fresh: bool) -> CellRun:
        """Take one cell to a video (or an ending); never raises but for cancellation.

        ``follow``: its task exists (from before, or stopped): follow it, never submit.
        """
        self._busy.add(cell_id)
        self._ensure_ticker()
        job: Job | None = None
        observe = functools.partial(self._observe, cell_id)

        def uploading() -> None:
            self._set(cell_id, detail="uploading the image")

        async def again() -> Job:  # the sandbox forgot the task: a new render is free
            self._set(cell_id, prediction_id=None, reused=False)
            return await runner.job(self._runs[cell_id], follow=False, fresh=True,
                                    on_update=observe, uploading=uploading)  # fmt: skip

        runner = self._runner
        try:
            async with runner.slot():
                self._clocks[cell_id] = time.monotonic()
                job = await runner.job(self._runs[cell_id], follow=follow, fresh=fresh,
                                       on_update=observe, uploading=uploading)  # fmt: skip
                video = await runner.drive(job, free=not self.price, again=again)
            self._downloaded(cell_id, video.path, reused=video.reused)
        except asyncio.CancelledError as stop:
            self._end(cell_id, stop, job)
            raise
        except Exception as error:  # noqa: BLE001  (one cell must never sink the batch)
            self._end(cell_id, error, job)
        finally:
            self._busy.discard(cell_id)
            if not self._busy and self._ticker is not None:
                self._ticker.cancel()
                self._ticker = None
            self._notify(None)
        return self._runs[cell_id]

    def _observe(self, cell_id: str, update: Update) -> None:
        changes = changes_for(self._runs[cell_id], update, price=self.price, now=now())
        self._set(cell_id, **changes)
        if update.phase is Phase.ACCEPTED:
            self._remember(cell_id)

    def _downloaded(self, cell_id: str, path: Path | None, *, reused: bool) -> None:
        started = self._clocks.pop(cell_id, None)
        run = self._runs[cell_id]
        # A reused or resumed cell keeps the wall time measured when it was asked for (if
        # known): the time since this kernel picked it up would mean nothing.
        if reused or run.reused or started is None:
            wall = run.wall_s
        else:
            wall = round(time.monotonic() - started, 3)
        if path != run.path:
            run = dataclasses.replace(run, metrics=None, sha256=None)
        if run.metrics is None:
            self._measurer.forget(cell_id)
        self._set(
            cell_id, status=Phase.DOWNLOADED, path=path, wall_s=wall, error=None, detail="",
            moderation=False, finished_at=run.finished_at or now(), reused=reused or run.reused,
            metrics=run.metrics, sha256=run.sha256,
        )  # fmt: skip
        self._remember(cell_id)
        self._measure_soon(cell_id)

    def _end(self, cell_id: str, error: BaseException, job: Job | None) -> None:
        status, text, moderation = ending_of(error, None if job is None else job.phase)
        if status is Phase.FAILED and not isinstance(error, WavenbError):
            logger.error("wavenb: cell %s failed unexpectedly", cell_id, exc_info=error)
        self._clocks.pop(cell_id, None)
        finished = self._runs[cell_id].finished_at or now()
        self._set(cell_id, status=status, error=text, moderation=moderation, detail="",
                  finished_at=finished)  # fmt: skip

    def _check_budget(self, videos: int) -> None:
        cost = videos * self.price
        if self.max_cost is not None and self.spent + cost > self.max_cost + _EPSILON:
            raise BudgetExceeded(
                f"{videos} more video(s) cost ${cost:.2f}; this comparison has spent "
                f"${self.spent:.2f} of max_cost=${self.max_cost:.2f}. Nothing was sent."
            )

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = self._spawn(self._tick())

    async def _tick(self) -> None:
        # Elapsed times move even when no check is due (real-API checks are >= 5 s apart).
        while self._busy:
            await asyncio.sleep(TICK)
            self._notify(None)

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` on the running loop, keeping a reference until it ends."""
        return spawn(work, self._tasks, "the comparison")

    # -- metrics ---------------------------------------------------------------------------

    def _measure_soon(self, cell_id: str) -> None:
        """Measure a downloaded cell's video in the background (once per video)."""
        if self._measurer.wanted(self._runs[cell_id]):
            self._spawn(self._measure(cell_id))

    async def _measure(self, cell_id: str) -> None:
        run = self._runs[cell_id]
        client, journal = self._client, None
        if client is not None:
            journal = client.session.journal_or_none()
        digest = run.sha256
        if digest is None and journal is not None and run.prediction_id is not None:
            row = journal.get(run.prediction_id, self.base_url)
            digest = None if row is None else row.sha256
        source = self.design.image(run.cell.image).data
        measured = await self._measurer.measure(
            run, sha256=digest, source=source,
            cache_dir=None if journal is None else journal.path.parent / "metrics",
        )  # fmt: skip
        if measured is None:
            self._notify(None)
        elif self._runs[cell_id].path == run.path:
            self._set(cell_id, metrics=measured[0], sha256=measured[1])
            self._remember(cell_id)

    # -- display ---------------------------------------------------------------------------

    def pairwise(self, seed: int = 0) -> Pairwise:
        """A widget showing two finished cells side by side, unlabelled, to pick the better.

        Pairs differ in the prompt only; order and sides are random but fixed by ``seed``.
        Each pick is a ``vote`` (or a ``tie``) and counts in ``rank()`` and ``summary()``.
        """
        from wavenb.ab.widget import Pairwise  # noqa: PLC0415  (ipywidgets is heavy: lazy)

        return Pairwise(self, seed=seed)

    @property
    def widget(self) -> CompareGrid:
        """The live grid (made on first use; displaying the comparison shows it)."""
        if self._widget is None:
            from wavenb.ab.widget import CompareGrid  # noqa: PLC0415  (ipywidgets is heavy)

            self._widget = CompareGrid(self)
        return self._widget

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, Any]:
        try:
            bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        except ImportError as error:  # no widgets here: say which extra shows the grid
            note = (
                f"the live grid needs the 'notebook' extra (missing: {error.name}): "
                "pip install 'wavenb[notebook]'. cmp.rows and cmp.to_pandas() work without it."
            )
            page = f"<pre>{html.escape(note)}</pre>"
            return {"text/plain": f"{self!r}\n{note}", "text/html": page}
        return {**bundle, "text/plain": repr(self)}


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
