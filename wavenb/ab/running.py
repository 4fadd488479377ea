"""How a comparison drives one cell's generation: slots, the shared upload, the cell's ``Job``.

``Runner`` holds what the cells of one comparison share while they run: the semaphore that
bounds how many are at the provider at once (``concurrency``; the only limit the comparison
adds: 429s are the client's submit gate's), each image's URL (uploaded once, under a lock,
whichever cell needs it first). It makes a cell's ``Job`` and runs it; the comparison observes
the job's updates.

asyncio primitives belong to the loop that made them, and a comparison may run on a script's
private loop and later on the kernel's: ``Runner`` makes them afresh for each loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from wavenb.ab.cells import CellRun
from wavenb.ab.design import Design, ImageFactor
from wavenb.core.errors import NotFoundError
from wavenb.core.images import PreparedImage
from wavenb.core.models import Video
from wavenb.jobs.events import ProgressCallback
from wavenb.jobs.job import DEFAULT_WAIT, Job
from wavenb.jobs.request import identify

if TYPE_CHECKING:
    from wavenb.client.async_client import AsyncClient

__all__ = ["Runner"]


class _Bound:
    """The asyncio primitives of one event loop."""

    def __init__(self, concurrency: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.slots = asyncio.Semaphore(concurrency)
        self.uploads: dict[str, asyncio.Lock] = {}


class Runner:
    """Runs the cells of one comparison through the client's lifecycle."""

    def __init__(self, design: Design, concurrency: int, client: Callable[[], AsyncClient]) -> None:
        self.design = design
        self.concurrency = concurrency
        self._client = client
        self.in_flight = 0
        """Cells holding a slot now."""
        self.peak = 0
        """The most cells that held a slot at once."""
        self._urls: dict[str, str] = {}
        self._bound: _Bound | None = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``concurrency`` slots for the body (waits for one)."""
        async with self._now().slots:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1

    async def job(
        self,
        run: CellRun,
        *,
        follow: bool,
        fresh: bool,
        on_update: ProgressCallback,
        uploading: Callable[[], None],
    ) -> Job:
        """The cell's job: following its task (``follow``, never submits) or a new request.

        ``uploading`` is called when this cell is the one that uploads its image.

        Raises:
            APIError, TransportError: the image upload failed (nothing was sent).
        """
        client = self._client()
        if follow and run.prediction_id is not None:
            journal = client.session.journal_or_none()
            row = None if journal is None else journal.get(run.prediction_id, client.base_url)
            task = row if row is not None and row.prediction_id is not None else run.prediction_id
            return Job.following(client.session, task, on_update=on_update)
        cell = run.cell
        image = self.design.image(cell.image)
        prepared = await self._prepared(image, uploading)
        request = identify(
            prepared, cell.prompt, cell.aspect_ratio, source=image.source,
            base_url=client.base_url, variant=cell.variant, image_sha256=image.sha256,
        )  # fmt: skip
        return Job(client.session, request, fresh=fresh, on_update=on_update)

    async def drive(
        self, job: Job, *, free: bool, again: Callable[[], Awaitable[Job]] | None = None
    ) -> Video:
        """Run ``job`` to its video: ``run()`` for a request, ``finish()`` for a task followed.

        A followed task the provider no longer knows is made again only when that is ``free``
        (a sandbox forgets its tasks when it restarts): ``again`` gives the new job.

        Raises:
            WavenbError: as ``Job.run`` / ``Job.finish``. NotFoundError: the task followed is
                gone on a paid backend (the message says a retry pays for a new one).
        """
        if job.request is not None:
            return await job.run(timeout=DEFAULT_WAIT)
        try:
            return await job.finish(timeout=DEFAULT_WAIT)
        except NotFoundError as error:
            if not free or again is None:
                # A new task would cost money nobody agreed to: retry() is the way to ask.
                task = job.prediction.id if job.prediction is not None else "?"
                raise NotFoundError(
                    f"task {task} is gone at the provider (tasks are kept 7 days); retry the "
                    "cell to pay for a new one",
                    status=404,
                ) from error
        return await (await again()).run(timeout=DEFAULT_WAIT)

    async def _prepared(self, image: ImageFactor, uploading: Callable[[], None]) -> PreparedImage:
        """The image as the request sends it: uploaded on first need, once, then shared.

        The request names it by the digest of its bytes, so it is the same request as when a
        plain ``generate`` sends the bytes (``identify(..., image_sha256=...)``).
        """
        if image.url is not None:
            return PreparedImage(url=image.url, width=image.width, height=image.height)
        lock = self._now().uploads.setdefault(image.id, asyncio.Lock())
        async with lock:
            if image.id not in self._urls:
                assert image.prepared is not None  # noqa: S101  (local images carry bytes)
                uploading()
                self._urls[image.id] = await self._client().media.upload(image.prepared)
        return PreparedImage(url=self._urls[image.id], width=image.width, height=image.height)

    def _now(self) -> _Bound:
        loop = asyncio.get_running_loop()
        if self._bound is None or self._bound.loop is not loop:
            self._bound = _Bound(self.concurrency)
        return self._bound
