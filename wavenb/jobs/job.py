"""``Job``: one paid generation, from the request to the verified MP4 on disk.

This is the only code that moves a task through its lifecycle (``wavenb.core.phase``)::

    run()  ─▶  reuse?  ─▶  submit()  ─▶  wait()  ─▶  download()
               (same     reserve (budget, join) · upload · gate · send · accepted
                request  │                       │
                done)    └─▶ join an identical   └─▶ refused / unknown (then: settle from the
                             request in flight        account's history, never resend)

Every transition is written to the journal (on its writer thread) *before* the next step and
emitted to observers as an ``Update``. ``generate``, the blocking ``Client``, the Studio, the
comparison, ``resume`` and the CLI all drive a ``Job`` and only observe its updates.

The money rules live here and nowhere else:

- the budget is reserved in the journal, in one transaction, before the upload's first await;
- an identical request already being sent, running, uncertain or done (this process, another
  kernel, a killed one) is joined, not paid again, unless ``fresh=True``;
- a submit is resent only when it certainly was not taken (a 429, or never sent); otherwise its
  fate is settled from the account's history (``wavenb.jobs.reconcile``);
- a task id the server already gave another submission, or a result about another task, is not
  trusted; an accepted task whose row cannot be written is saved in the rescue file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

from wavenb.core import protocol
from wavenb.core.errors import (
    APIError,
    InputError,
    JournalError,
    NotFoundError,
    PredictionFailed,
    PredictionTimeout,
    ServerError,
    SubmissionUncertain,
    TransportError,
    WavenbError,
)
from wavenb.core.models import Prediction, Status, Video
from wavenb.core.phase import Phase, phase_of_status
from wavenb.core.polling import PollPolicy
from wavenb.jobs import reconcile
from wavenb.jobs.download import fetch
from wavenb.jobs.events import ProgressCallback, Update, notify
from wavenb.jobs.request import Request
from wavenb.jobs.saving import JOIN_LIMIT, JOIN_POLL, JOINED_UNCERTAIN, save
from wavenb.jobs.session import Session
from wavenb.jobs.waiting import follow
from wavenb.journal import rescue
from wavenb.journal.rows import JournalRow, file_ok
from wavenb.journal.store import TaskIdConflict, owner_token

__all__ = ["DEFAULT_WAIT", "Job"]

logger = logging.getLogger("wavenb")

DEFAULT_WAIT: Final = 900.0
"""Seconds ``wait`` gives a video before ``PredictionTimeout``: generous, since tasks queue."""


def phase_of(prediction: Prediction) -> Phase:
    """The phase a task's status stands for while wavenb follows it."""
    return phase_of_status(prediction.status)


class Job:
    """One generation. Observe it with ``subscribe``; drive it with ``run`` (or the steps).

    Args:
        session: what the client gives its generations.
        request: the checked request (``wavenb.jobs.request.prepare``); ``None`` for a task
            that already exists (``Job.following``).
        fresh: pay for a new video even if an identical request is running or done.
        output: where the MP4 goes (a file or a folder); default ``<outputs>/<id>.mp4``.
    """

    def __init__(
        self,
        session: Session,
        request: Request | None,
        *,
        fresh: bool = False,
        output: str | Path | None = None,
        on_update: ProgressCallback | None = None,
    ) -> None:
        self.session = session
        self.request = request
        self.fresh = fresh
        self.output = Path(output) if output is not None else None
        self.key: str | None = None
        """The journal's request key, once reserved (or joined)."""
        self.prediction: Prediction | None = None
        self.phase = Phase.WAITING
        self.video: Video | None = None
        self.error: WavenbError | None = None
        self.checks = 0
        self.joined = False
        """True when this job joined an identical request instead of paying again."""
        self._listeners: list[ProgressCallback] = [] if on_update is None else [on_update]
        self._began = session.runtime.clock()
        self._sent = False
        self._held = 0.0  # the price held in memory (journal=False) until taken or not
        self._done: asyncio.Future[Video] | None = None
        self.claim_token = f"{owner_token()}|{uuid.uuid4().hex[:12]}"
        """Who this job is when it claims a download (``host:pid|<random>``)."""

    @classmethod
    def following(
        cls,
        session: Session,
        task: Prediction | str | JournalRow,
        *,
        on_update: ProgressCallback | None = None,
        output: str | Path | None = None,
    ) -> Job:
        """A job for a task that already exists (resume, ``client.wait(id)``): never submits."""
        job = cls(session, None, on_update=on_update, output=output)
        if isinstance(task, JournalRow):
            assert task.prediction_id is not None  # noqa: S101  (resumable rows have ids)
            job.key = task.request_key
            task = Prediction(task.prediction_id, task.model, Status.UNKNOWN,
                              sandbox=task.backend == "sandbox")  # fmt: skip
        elif isinstance(task, str):
            task = Prediction(task, "", Status.UNKNOWN)
        job.prediction = task
        job.phase = phase_of(task) if task.status is not Status.UNKNOWN else Phase.QUEUED
        return job

    def subscribe(self, listener: ProgressCallback) -> Callable[[], None]:
        """Call ``listener`` with every update from now on; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def __repr__(self) -> str:
        what = self.prediction.id if self.prediction is not None else (self.key or "new")
        return f"<Job {what} {self.phase.value}>"

    # -- the whole thing -------------------------------------------------------------------

    async def run(self, *, timeout: float | None = DEFAULT_WAIT) -> Video:
        """Reuse, submit (or join), wait and download; return the ``Video``.

        Raises:
            InputError, BudgetExceeded, JournalError: before anything is sent.
            SubmissionUncertain: sent, no answer, and the account's history does not say (yet).
            APIError: refused by the server. PredictionFailed / PredictionTimeout: as ``wait``.
            DownloadError: the output could not be saved whole (the task stays resumable).
        """
        request = self.request
        if request is None:
            raise InputError("this job follows an existing task: use finish()")
        loop = asyncio.get_running_loop()
        same = None if self.fresh else self.session.inflight.get(request.hash)
        if same is not None and same is not self and same._done is not None:
            return await self._mirror(same)
        self._done = loop.create_future()
        if not self.fresh:
            self.session.inflight[request.hash] = self
        try:
            video = await self._run(timeout)
        except BaseException as error:
            if not self._done.done():
                self._done.set_exception(error if isinstance(error, Exception) else
                                         asyncio.CancelledError())  # fmt: skip
                self._done.exception()  # retrieved: a mirror may never look
            raise
        else:
            self._done.set_result(video)
            return video
        finally:
            if self.session.inflight.get(request.hash) is self:
                del self.session.inflight[request.hash]

    async def _run(self, timeout: float | None) -> Video:
        if not self.fresh and (video := await self._reusable()) is not None:
            return video
        try:
            await self.submit()
        except SubmissionUncertain:
            # The answer was lost: the account's history may already show the task.
            if not await self._settle():
                raise
        if self.video is not None:  # joined a request that was already done
            return self.video
        return await self.finish(timeout=timeout)

    async def finish(self, *, timeout: float | None = DEFAULT_WAIT) -> Video:
        """Wait for the task and download its video (what ``resume`` does for each row)."""
        await self.wait(timeout=timeout)
        await self.download()
        assert self.video is not None  # noqa: S101  (download sets it or raises)
        return self.video

    # -- submit ----------------------------------------------------------------------------

    async def submit(self) -> Prediction:
        """Reserve, upload, send through the gate; return the accepted (or joined) task.

        Raises:
            BudgetExceeded, JournalError: nothing was sent.
            SubmissionUncertain: sent, but no answer says whether it was taken (never resent).
            TransportError / APIError: not sent, or refused: nothing was charged.
        """
        session, request = self.session, self.request
        if request is None:
            raise InputError("this job follows an existing task; it has nothing to submit")
        price = await session.price(request.model)
        key = uuid.uuid4().hex
        await self._emit(Phase.WAITING, detail="reserving the budget")
        journal = session.journal  # JournalError here: before anything is sent
        if journal is None:
            session.hold(price)  # BudgetExceeded: nothing was sent
            self._held = price
        else:
            try:
                reservation = await session.write(
                    journal.reserve, request_hash=request.hash, model=request.model,
                    prompt=request.prompt, aspect_ratio=request.aspect_ratio,
                    image_sha256=request.image_sha256, image_source=request.source,
                    backend=session.backend, base_url=session.base_url, cost=price,
                    max_spend=session.max_spend, join=not self.fresh, variant=request.variant,
                    key=key,
                )  # fmt: skip
            except asyncio.CancelledError:
                await self._unsent(key, "cancelled before sending")
                raise
            if reservation.existing is not None:
                return await self._join(reservation.existing)
        self.key = key
        try:
            prediction = await self._send(request)
        except BaseException as error:
            await self._not_accepted(error)
            raise
        return await self._accepted(prediction)

    async def _send(self, request: Request) -> Prediction:
        session = self.session
        if request.image.url is None:
            await self._emit(Phase.WAITING, detail="uploading the image")
        image_url = await session.media.upload(request.image)
        body = protocol.build_submit_body(image_url, request.prompt, request.aspect_ratio)

        async def before_send() -> None:
            journal = session.journal
            if journal is not None and self.key is not None:
                await session.write(journal.sending, self.key, image_url)
            self._sent = True
            await self._emit(Phase.SUBMITTING)

        async def on_wait(seconds: float, why: str) -> None:
            await self._emit(Phase.WAITING, detail=why, next_check=seconds)

        return await session.gate.submit(body, before_send=before_send, on_wait=on_wait)

    async def _accepted(self, prediction: Prediction) -> Prediction:
        session = self.session
        if prediction.sandbox:
            session.http.sandbox_seen = True
        prediction = session.remember(prediction, "submit")
        self.prediction = prediction
        journal = session.journal_or_none()
        if journal is not None and self.key is not None:
            try:
                await session.write(journal.accepted, self.key, prediction)
            except TaskIdConflict as conflict:
                reason = f"{conflict}; the answer was not trusted (may have been charged)"
                await session.write(journal.unknown, self.key, reason)
                error = ServerError(f"untrusted answer to the submit: {conflict}", status=200)
                await self._end(Phase.UNKNOWN, error)
                raise error from None
            except (JournalError, KeyError, ValueError) as failure:
                self._rescue(journal, prediction, failure)
        logger.info("submitted %s (%s)", prediction.id, prediction.status.label)
        await self._emit(Phase.ACCEPTED)
        await self._emit(phase_of(prediction))
        return prediction

    async def _not_accepted(self, error: BaseException) -> None:
        """Record what a failed send means: refused, never sent, or maybe charged."""
        key = self.key
        assert key is not None  # noqa: S101
        if isinstance(error, SubmissionUncertain):
            await self._record_unknown(key, str(error))
            await self._end(Phase.UNKNOWN, error)
        elif not self._sent:
            # Never left the machine (refused before sending, or cancelled while it waited for
            # the pacer or a connection): nothing can have been charged.
            reason = str(error) if isinstance(error, WavenbError) else "cancelled before sending"
            await self._unsent(key, reason)
            await self._end(Phase.REFUSED, error if isinstance(error, WavenbError) else None,
                            detail="not sent: nothing charged")  # fmt: skip
        elif isinstance(error, APIError | TransportError):
            # A refusal (4xx, or 429s beyond patience) or a request that never left: not taken.
            await self._write_quietly("refused", key, str(error))
            await self._end(Phase.REFUSED, error)
        elif isinstance(error, WavenbError):
            await self._record_unknown(key, str(error))
            await self._end(Phase.UNKNOWN, error)
        else:
            # Cancelled or interrupted while the request may have been out: say so, never guess.
            await self._record_unknown(key, "interrupted while sending")
            await self._end(Phase.UNKNOWN, None, detail="interrupted while sending: may be charged")

    async def _record_unknown(self, key: str, reason: str) -> None:
        await self._write_quietly("unknown", key, reason)

    async def _unsent(self, key: str, reason: str) -> None:
        await self._write_quietly("released", key, reason)

    async def _write_quietly(self, method: str, key: str, reason: str) -> None:
        journal = self.session.journal_or_none()
        if journal is None:
            if method in ("released", "refused"):  # not taken: give back the in-memory hold
                self.session.spent_here, self._held = self.session.spent_here - self._held, 0.0
            return
        try:
            await self.session.write(getattr(journal, method), key, reason)
        except (JournalError, KeyError) as failure:
            logger.error(  # noqa: TRY400  (the message says it all; no traceback for users)
                "wavenb: could not record submission %s as %s: %s", key, method, failure
            )


    def _rescue(self, journal: object, prediction: Prediction, failure: Exception) -> None:
        """The task was accepted but its row could not be updated: keep the id anyway."""
        from wavenb.journal.store import Journal  # noqa: PLC0415  (typing of the one caller)

        assert isinstance(journal, Journal)  # noqa: S101
        record = {"request_key": self.key, "prediction_id": prediction.id,
                  "base_url": self.session.base_url, "sandbox": prediction.sandbox}  # fmt: skip
        try:
            where = str(rescue.append(journal.path, record))
        except OSError:
            where = "nowhere (the disk refused that too): write it down"
        logger.error(
            "wavenb: task %s was accepted but the journal could not record it (%s); its id is "
            "saved in %s and the video is still being fetched",
            prediction.id, failure, where,
        )  # fmt: skip

    # -- joining ---------------------------------------------------------------------------

    async def _join(self, row: JournalRow) -> Prediction:
        """Follow an identical request instead of paying again (see ``Journal.reserve``)."""
        self.joined = True
        self.key = row.request_key
        journal = self.session.journal
        assert journal is not None  # noqa: S101  (rows come from it)
        waited = 0.0
        while row.prediction_id is None:
            if row.status == "submitting" and await self._abandoned(row):
                # Sent by a process that died before the answer: as uncertain as "unknown".
                row = replace(row, status="unknown")
            if row.status == "unknown" and not await self._settle(row):
                # Settled as "not charged" (then it is ``refused`` now), or still uncertain.
                latest = await self.session.write(journal.by_key, row.request_key)
                row = latest if latest is not None else row
                if row.status != "refused":
                    error = SubmissionUncertain(JOINED_UNCERTAIN)
                    await self._end(Phase.UNKNOWN, error)
                    raise error
            if row.status == "refused":  # the other one was not taken after all: go ourselves
                self.joined = False
                return await self.submit()
            if waited >= JOIN_LIMIT:
                raise SubmissionUncertain(
                    "an identical submission by another run has had no answer for "
                    f"{JOIN_LIMIT:g} s; wavenb.resume() settles it, or pass fresh=True"
                )
            await self._emit(Phase.SUBMITTING, detail="an identical request is being sent: joining")
            await self.session.runtime.sleep(JOIN_POLL)
            waited += JOIN_POLL
            latest = await self.session.write(journal.by_key, row.request_key)
            row = latest if latest is not None else row
        logger.info("wavenb: joined identical request %s (no second payment)", row.prediction_id)
        prediction = Prediction(row.prediction_id, row.model, Status.UNKNOWN,
                                outputs=(row.output_url,) if row.output_url else (),
                                sandbox=row.backend == "sandbox")  # fmt: skip
        self.prediction = prediction
        if row.status == "completed" and file_ok(row.path, row.size) and row.path is not None:
            self._reused(row)
            await self._end(Phase.DOWNLOADED, None, reused=True)
        return prediction

    async def _abandoned(self, row: JournalRow) -> bool:
        """Whether a ``submitting`` row was left by a process that died (or is stale)."""
        journal = self.session.journal
        assert journal is not None  # noqa: S101
        unresolved = await self.session.write(journal.unresolved)
        return any(item.request_key == row.request_key for item in unresolved)

    async def _mirror(self, other: Job) -> Video:
        """Share an identical generation of this client (a double click): one payment."""
        self.joined = True

        async def forward(update: Update) -> None:
            for listener in list(self._listeners):
                await notify(listener, replace(update, detail=update.detail or "joined"))

        stop = other.subscribe(forward)
        try:
            assert other._done is not None  # noqa: S101  (checked by the caller)
            video = await asyncio.shield(other._done)
        finally:
            stop()
        self.key, self.prediction, self.video = other.key, other.prediction, video
        self.phase = other.phase
        return video

    async def _settle(self, row: JournalRow | None = None) -> bool:
        """Look for an uncertain submission in the account's history; True once it is known."""
        journal = self.session.journal_or_none()
        key = row.request_key if row is not None else self.key
        if journal is None or key is None:
            return False
        current = await self.session.write(journal.by_key, key)
        if current is None:
            return False
        if current.status == "submitting":  # abandoned (checked by the caller): uncertain
            current = replace(current, status="unknown")
        settled = await reconcile.settle(self.session, [current])
        if not settled or settled[0].outcome != "accepted" or settled[0].prediction is None:
            return False
        self.key = key
        self.prediction = self.session.remember(settled[0].prediction, "submit")
        await self._emit(Phase.ACCEPTED, detail="found in the account's history: not resent")
        return True

    # -- wait ------------------------------------------------------------------------------

    async def wait(
        self, *, timeout: float | None = DEFAULT_WAIT, policy: PollPolicy | None = None
    ) -> Prediction:
        """Check the task until it ends, politely, and return its completed state.

        Checks follow the poll schedule (on the real API at least 5 s apart, aimed at when past
        runs finished). A long ``created`` phase is normal (the account's slots are full).

        Raises:
            PredictionFailed: the task ended failed / cancelled / timeout / deleted, or completed
                without an output.
            PredictionTimeout: ``timeout`` seconds passed; the task goes on at the provider.
            NotFoundError: the provider no longer knows the task (recorded as gone).
        """
        if self.prediction is None:
            raise InputError("nothing to wait for: the job has no task yet (submit first)")
        try:
            done = await follow(self, timeout=timeout, policy=policy)
        except PredictionTimeout as error:
            await self._end(Phase.STOPPED, error)
            raise
        except PredictionFailed as error:
            await self._end(phase_of(error.prediction), error)
            raise
        except NotFoundError as error:  # the provider no longer knows the task (kept 7 days)
            await self._gone(self.prediction.id, error)
            raise
        except asyncio.CancelledError:
            self.phase = Phase.STOPPED
            with contextlib.suppress(Exception):
                await self._emit(Phase.STOPPED, detail="stopped waiting; resume picks it up")
            raise
        self.prediction = done
        await self._emit(Phase.COMPLETED)
        return done

    # -- download --------------------------------------------------------------------------

    async def download(self, path: str | Path | None = None) -> Path:
        """Save the completed task's video, verified, as the one downloader of it.

        Raises:
            DownloadError: cut, not an MP4, or too big (nothing recorded; resumable).
            NotFoundError: the output is gone (recorded as gone).
            ServerError: the output URL is unusable (for this task only).
        """
        prediction = self.prediction
        if prediction is None or not prediction.outputs:
            raise InputError("nothing to download: the task has no output yet")
        target = Path(path) if path is not None else self.output
        try:
            try:
                url = protocol.check_output_url(prediction.outputs[0], prediction.id)
                saved_path, reused = await save(self, url, target, fetch)
            except NotFoundError:
                # Output URLs expire; a fresh result check may carry a new one. One more try.
                prediction = await self._refresh()
                url = protocol.check_output_url(prediction.outputs[0], prediction.id)
                saved_path, reused = await save(self, url, target, fetch)
        except NotFoundError as error:
            await self._gone(prediction.id, error)
            raise
        except WavenbError as error:
            self.error = error
            await self._emit(Phase.COMPLETED, error=error, detail="download failed; resumable")
            raise
        self.video = Video(url=url, path=saved_path, prediction=prediction, reused=reused)
        await self._end(Phase.DOWNLOADED, None, path=saved_path)
        return saved_path

    async def _gone(self, prediction_id: str, error: NotFoundError) -> None:
        """The task or its output no longer exists: recorded (final) and said."""
        journal = self.session.journal_or_none()
        if journal is not None:
            await self.session.write(journal.gone, prediction_id, str(error),
                                     self.session.base_url)  # fmt: skip
        await self._end(Phase.GONE, error)

    async def _refresh(self) -> Prediction:
        """The task's state now (new output URLs), or ``NotFoundError`` if it has none."""
        assert self.prediction is not None  # noqa: S101
        fresh = await self.session.predictions.get(self.prediction.id)
        self.prediction = self.session.remember(fresh, "check")
        if not fresh.outputs:
            raise NotFoundError(f"task {fresh.id} no longer has an output", status=404)
        return self.prediction

    def _reused(self, row: JournalRow) -> None:
        assert row.prediction_id is not None  # noqa: S101  (reusable rows have both)
        assert row.path is not None  # noqa: S101
        prediction = Prediction(row.prediction_id, row.model, Status.COMPLETED,
                                outputs=(row.output_url,) if row.output_url else (),
                                inference_ms=row.inference_ms, sandbox=row.backend == "sandbox",
                                raw={"reused_from_journal": True})  # fmt: skip
        self.prediction = prediction
        self.key = row.request_key
        path = Path(row.path)
        if self.output is not None:
            path = Video(url="", path=path, prediction=prediction).save(self.output)
        self.video = Video(url=row.output_url or "", path=path, prediction=prediction,
                           reused=True)  # fmt: skip

    async def _reusable(self) -> Video | None:
        journal = self.session.journal_or_none()
        if journal is None or self.request is None:
            return None
        row = await self.session.write(journal.find_reusable, self.request.hash)
        if row is None:
            return None
        logger.info("reusing %s from history (same image, prompt and ratio)", row.prediction_id)
        self._reused(row)
        await self._end(Phase.DOWNLOADED, None, reused=True)
        return self.video

    # -- updates ---------------------------------------------------------------------------

    async def _end(
        self,
        phase: Phase,
        error: WavenbError | None,
        *,
        path: Path | None = None,
        reused: bool = False,
        detail: str = "",
    ) -> None:
        self.error = error
        await self._emit(phase, error=error, path=path, reused=reused, detail=detail)

    async def _emit(
        self,
        phase: Phase,
        *,
        detail: str = "",
        next_check: float | None = None,
        eta: float | None = None,
        error: WavenbError | None = None,
        path: Path | None = None,
        reused: bool = False,
    ) -> None:
        self.phase = phase
        if not self._listeners:
            return
        update = Update(
            prediction=self.prediction, elapsed=self.session.runtime.clock() - self._began,
            checks=self.checks, next_check=next_check, eta=eta, phase=phase, key=self.key,
            detail=detail, error=error, path=path,
            reused=reused or bool(self.video and self.video.reused),
        )  # fmt: skip
        for listener in list(self._listeners):
            await notify(listener, update)
