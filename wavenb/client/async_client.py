"""The async client: the one place wavenb does I/O with the API.

Every decision that needs no I/O lives in ``_protocol`` (requests, envelopes, errors) and
``_polling`` (when to check again); this module sends, awaits and retries. The transport is
the single test seam: pass ``transport=httpx.MockTransport(...)`` or an ``ASGITransport``.

Retries (stamina): reads (result checks, downloads, uploads) are retried on connection
errors, 429 (honouring ``Retry-After``) and 5xx. The paid submit is retried only when the
server certainly did not take it: a 429, or a connection that was never made. A timeout or a
5xx after the request went out raises ``SubmissionUncertain`` instead: resending could pay twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import stamina

from wavenb.core import protocol
from wavenb.core.config import Secret, Settings, outputs_dir, resolve
from wavenb.core.errors import (
    APIError,
    BudgetExceeded,
    InputError,
    NotFoundError,
    PredictionFailed,
    PredictionTimeout,
    RateLimitError,
    ServerError,
    SubmissionUncertain,
    TransportError,
    WavenbError,
)
from wavenb.core.images import ImageInput, PreparedImage, prepare_image
from wavenb.core.models import Event, Prediction, Status, Timeline, Video
from wavenb.core.polling import REAL_API, SANDBOX, TESTING, DurationStats, PollPolicy
from wavenb.core.types import MODEL_ID, PRICE_PER_VIDEO, AspectRatio
from wavenb.journal.store import Journal, JournalRow, request_hash, sha256_file

__all__ = ["AsyncClient", "ProgressCallback", "Resumed", "Update", "set_testing"]

logger = logging.getLogger("wavenb")

VERSION: Final = "0.1.0"
DEFAULT_WAIT: Final = 900.0
"""Seconds ``wait`` gives a video before ``PredictionTimeout``: generous, since tasks queue."""
ENHANCER_POLICY: Final = PollPolicy(
    min_interval=1.0, first_delay=1.0, growth=0.25, max_interval=3.0
)

_testing = False
_durations: dict[tuple[str, str], DurationStats] = {}
_sandbox_announced = False


def set_testing(testing: bool) -> None:  # noqa: FBT001
    """Switch off every wait (polls and retry backoff), for tests that replay cassettes."""
    global _testing  # noqa: PLW0603  (a library-wide test mode, like stamina's)
    _testing = testing
    stamina.set_testing(testing, attempts=5)


@dataclass(frozen=True, slots=True)
class Update:
    """What ``on_update`` receives after each check of a task."""

    prediction: Prediction
    """The task's state as of this check."""
    elapsed: float
    """Seconds since the task was submitted (or since waiting began, for tasks from elsewhere)."""
    checks: int
    """Result checks made so far by this wait."""
    next_check: float | None
    """Seconds until the next check; ``None`` once the task has ended."""
    eta: float | None
    """Expected seconds until completion, from past runs; ``None`` when nothing is known."""


class ProgressCallback(Protocol):
    """``on_update`` hooks: plain functions or coroutines taking an ``Update``."""

    def __call__(self, update: Update, /) -> object: ...


@dataclass(frozen=True, slots=True)
class Resumed:
    """What ``resume`` did for one journal row."""

    row: JournalRow
    """The journal row as it was before resuming."""
    video: Video | None
    """The finished, downloaded video; ``None`` when it could not be had."""
    error: WavenbError | None
    """Why not, when ``video`` is ``None``."""


@dataclass(frozen=True, slots=True)
class _Request:
    """A checked request, ready to journal and send."""

    prompt: str
    aspect_ratio: AspectRatio | None
    image: PreparedImage
    source: str
    image_sha256: str | None
    key: str


class _BearerAuth(httpx.Auth):
    """Adds the key to API requests only, at send time, so it never sits in client headers."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.reveal()}"
        yield request


class AsyncClient:
    """Async client for Runway Gen4 Turbo on WaveSpeedAI (or the local sandbox).

    With no key and no base URL (arguments or ``WAVESPEED_API_KEY`` / ``WAVENB_BASE_URL``) it
    talks to the embedded sandbox in-process, and says so once.

    Example:
        >>> async with AsyncClient() as client:                      # doctest: +SKIP
        ...     video = await client.generate("cat.jpg", "Camera slowly zooms in")
        ...     print(video.path)
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        poll: PollPolicy | None = None,
        sandbox_speed: Literal["instant", "fast", "realistic"] | None = None,
        output_dir: str | Path | None = None,
        journal: Journal | bool = True,
        max_spend: float | None = None,
    ) -> None:
        self._settings: Settings = resolve(api_key, base_url, sandbox_speed)
        if transport is None and self._settings.embedded:
            transport = _embedded_transport(self._settings.sandbox_speed)
        self._auth = _BearerAuth(self._settings.api_key)
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"X-Client-Name": "wavenb", "X-Client-Version": VERSION},
            follow_redirects=True,
        )
        self._poll = poll
        self._output_dir = Path(output_dir) if output_dir is not None else None
        self._saw_sandbox = self._settings.embedded
        self._submitted_at: dict[str, float] = {}
        self._events: dict[str, list[Event]] = {}
        self._first_seen: dict[str, float] = {}
        self._journaled: dict[str, tuple[object, ...]] = {}
        self._submit_not_before = 0.0
        self._journal_choice = journal
        self._journal: Journal | None = journal if isinstance(journal, Journal) else None
        self._max_spend = max_spend if max_spend is not None else _env_float("WAVENB_MAX_SPEND")

    # -- configuration ---------------------------------------------------------------------

    @property
    def backend(self) -> Literal["sandbox", "api"]:
        """``"sandbox"`` for wavenb's local sandbox (embedded or served), else ``"api"``."""
        return "sandbox" if self._saw_sandbox else "api"

    @property
    def base_url(self) -> str:
        """The server this client talks to."""
        return self._settings.base_url

    @property
    def output_dir(self) -> Path:
        """Where downloads go by default: ``output_dir=``, else ``<data dir>/outputs``."""
        return self._outputs()

    @property
    def price_per_video(self) -> float:
        """US dollars one video costs here: $0.50 on the real API, nothing on the sandbox."""
        return 0.0 if self.backend == "sandbox" else PRICE_PER_VIDEO

    @property
    def durations(self) -> DurationStats:
        """Past task durations on this server (shared in this process, seeded from the journal)."""
        # Keyed by backend too: sandbox runs recorded under the real API's address (tests,
        # cassettes, lessons) must not teach the real API's schedule.
        key = (self._settings.base_url, self.backend)
        if key not in _durations:
            stats = _durations[key] = DurationStats()
            if self.journal is not None and self.backend == "api":
                for seconds in self.journal.durations(self._settings.base_url):
                    stats.add(seconds)
        return _durations[key]

    @property
    def journal(self) -> Journal | None:
        """The journal every submission is recorded in (``None`` if switched off)."""
        if self._journal is None and self._journal_choice is True:
            self._journal = Journal()
        return self._journal

    def timeline(self, prediction_id: str) -> Timeline:
        """Every request this client made about a task, in order (empty if it made none)."""
        return Timeline(prediction_id, tuple(self._events.get(prediction_id, ())))

    def spent(self, since: datetime | None = None) -> float:
        """US dollars spent (or possibly spent) on this server's journal rows since ``since``."""
        return 0.0 if self.journal is None else self.journal.spent(since)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend!r} base_url={self.base_url!r}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- the API ---------------------------------------------------------------------------

    async def upload(self, image: ImageInput) -> str:
        """Upload a local image (path, bytes, PIL image) and return its URL; URLs pass through.

        The image is checked first (see ``prepare_image``); nothing is sent for bad input.

        Raises:
            InputError: the image is not usable. APIError / TransportError: the upload failed.
        """
        prepared = await asyncio.to_thread(prepare_image, image)
        return await self._resolve_image(prepared)

    async def submit(
        self, image: ImageInput, prompt: str, aspect_ratio: AspectRatio | None = None
    ) -> Prediction:
        """Start a video task and return it in its first state (``created``).

        This is the paid call ($0.50 on the real API). Prompt, ratio and image are checked
        before any request; local images are uploaded first.

        Raises:
            InputError: bad prompt, ratio or image (nothing was sent).
            SubmissionUncertain: sent, but whether it was accepted is unknown; not resent.
            APIError: the server refused it (auth, parameters, rate limit after retries...).
        """
        return await self._submit(await self._prepare(image, prompt, aspect_ratio))

    async def _prepare(
        self, image: ImageInput, prompt: str, aspect_ratio: AspectRatio | None
    ) -> _Request:
        text = protocol.validate_prompt(prompt)
        ratio = protocol.validate_aspect_ratio(aspect_ratio)
        prepared = await asyncio.to_thread(prepare_image, image)
        digest = hashlib.sha256(prepared.data).hexdigest() if prepared.data is not None else None
        source = _describe_source(image)
        key = request_hash(
            model=MODEL_ID,
            image_sha256=digest,
            image_source=source,
            prompt=text,
            aspect_ratio=ratio,
            base_url=self.base_url,
        )
        return _Request(text, ratio, prepared, source, digest, key)

    async def _submit(self, request: _Request) -> Prediction:
        self._check_budget()
        image_url = await self._resolve_image(request.image)
        body = protocol.build_submit_body(image_url, request.prompt, request.aspect_ratio)
        row = self._begin(request)
        try:
            async for attempt in stamina.retry_context(
                on=_submit_retryable, attempts=4, timeout=120.0, wait_initial=1.0, wait_max=20.0
            ):
                with attempt:
                    data = await self._paid_submit(body)
            try:
                prediction = protocol.parse_prediction(data)
            except ServerError as error:
                raise SubmissionUncertain(
                    "the submit was answered without a task id; it may have been accepted (and "
                    "charged). Check the account's history before submitting again."
                ) from error
        except SubmissionUncertain as error:
            reason = str(error)
            self._record(row, lambda journal, key: journal.unknown(key, reason))
            raise
        except WavenbError as error:
            reason = str(error)
            self._record(row, lambda journal, key: journal.refused(key, reason))
            raise
        except BaseException:
            # Cancelled or interrupted while the request may have been out: say so, never guess.
            self._record(
                row, lambda journal, key: journal.unknown(key, "interrupted while sending")
            )
            raise
        self._note_sandbox(prediction)
        prediction = self._remember(prediction, "submit")
        self._record(row, lambda journal, key: journal.accepted(key, prediction))
        logger.info("submitted %s (%s)", prediction.id, prediction.status.label)
        return prediction

    async def _paid_submit(self, body: dict[str, str]) -> Any:  # noqa: ANN401  (the envelope's data)
        """Send the submit behind one rate gate per client.

        A 429 creates nothing, so waiting out its Retry-After can never pay twice. Every submit
        of this client then waits for the same moment, instead of each retrying on its own
        clock until a retry budget runs out (at 2 a minute, a batch of 8 would lose tasks).
        """
        for _ in range(SUBMIT_429_LIMIT):
            wait = self._submit_not_before - time.monotonic()
            if wait > 0 and not _testing:
                await asyncio.sleep(wait)
            try:
                return await self._request("POST", protocol.SUBMIT_PATH, json=body, paid=True)
            except RateLimitError as error:
                asked = error.retry_after if error.retry_after is not None else 5.0
                if asked > LONGEST_SUBMIT_WAIT:
                    raise  # the caller decides whether to wait that long
                self._submit_not_before = max(self._submit_not_before, time.monotonic() + asked)
        return await self._request("POST", protocol.SUBMIT_PATH, json=body, paid=True)

    async def get(self, prediction_id: str) -> Prediction:
        """Fetch a task's current state (``GET /api/v3/predictions/{id}/result``)."""
        path = protocol.result_path(prediction_id)
        async for attempt in _read_retries():
            with attempt:
                data = await self._request("GET", path)
        prediction = protocol.parse_prediction(data)
        self._note_sandbox(prediction)
        return self._remember(prediction, "check")

    async def wait(
        self,
        prediction: Prediction | str,
        *,
        timeout: float | None = DEFAULT_WAIT,
        on_update: ProgressCallback | None = None,
    ) -> Prediction:
        """Check a task until it ends, politely, and return its completed state.

        Checks follow the poll policy (on the real API at least 5 s apart, aimed at when past
        runs finished). A long ``created`` phase is normal (the account's slots are full).

        Raises:
            PredictionFailed: the task ended failed / cancelled / timeout / deleted.
            PredictionTimeout: ``timeout`` seconds passed; the task goes on at the provider and
                its id is on the exception's ``prediction``.
        """
        return await self._wait(prediction, timeout, on_update, self._policy())

    async def download(
        self, source: str | Prediction | Video, path: str | Path | None = None
    ) -> Path:
        """Stream an output to disk and return the file's path.

        ``path`` may be a file or a folder; by default the file is ``<outputs>/<id>.mp4``. The
        file appears whole or not at all (written beside, then renamed).
        """
        url, name = _output_of(source)
        target = Path(path) if path is not None else self._outputs() / f"{name}.mp4"
        if target.is_dir():
            target = target / f"{name}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            async for attempt in _read_retries():
                with attempt:
                    await self._stream_to(url, partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        if self.journal is not None and not isinstance(source, str):
            digest, size = await asyncio.to_thread(sha256_file, target)
            prediction_id = source.id
            self._record(
                None, lambda journal, _: journal.downloaded(prediction_id, target, digest, size)
            )
        return target

    async def generate(
        self,
        image: ImageInput,
        prompt: str,
        aspect_ratio: AspectRatio | None = None,
        *,
        output: str | Path | None = None,
        timeout: float | None = DEFAULT_WAIT,
        on_update: ProgressCallback | None = None,
        fresh: bool = False,
    ) -> Video:
        """Submit, wait, and download: the whole job in one call. Returns the ``Video``.

        The same image, prompt and ratio already completed on this server (and still on disk)
        is returned from the journal, for free, with ``video.reused`` set; ``fresh=True`` pays
        for a new run instead.

        Raises what ``submit``, ``wait`` and ``download`` raise.
        """
        request = await self._prepare(image, prompt, aspect_ratio)
        if not fresh and (video := self._reusable(request, output)) is not None:
            return video
        prediction = await self._submit(request)
        done = await self.wait(prediction, timeout=timeout, on_update=on_update)
        path = await self.download(done, output)
        return Video(url=done.outputs[0], path=path, prediction=done)

    async def find_reusable(
        self, image: ImageInput, prompt: str, aspect_ratio: AspectRatio | None = None
    ) -> Video | None:
        """The stored video of the same request already completed here, or ``None``.

        What ``generate`` reuses instead of paying again; for callers that submit themselves.
        """
        return self._reusable(await self._prepare(image, prompt, aspect_ratio), None)

    async def resume(self, *, on_update: ProgressCallback | None = None) -> list[Resumed]:
        """Finish what the journal says was left undone on this server; never resubmits.

        Waits for tasks that were still running (after a kernel restart, a crash, a cancelled
        wait) and downloads completed videos that are not on disk. Submissions whose fate is
        unknown are not touched: see ``journal.unresolved()``.
        """
        if self.journal is None:
            return []
        rows = self.journal.resumable(self.base_url)
        return list(await asyncio.gather(*(self._resume_one(row, on_update) for row in rows)))

    async def enhance_prompt(
        self, prompt: str, image: ImageInput | None = None, style: str | None = None
    ) -> str:
        """Rewrite a prompt with the provider's prompt optimizer (video mode); returns the text.

        Costs $0.001 a run on the real API. ``image`` gives visual context; ``style`` is one of
        default, artistic, photographic, technical, anime, realistic.
        """
        image_url = None
        if image is not None:
            image_url = await self._resolve_image(await asyncio.to_thread(prepare_image, image))
        body = protocol.build_enhance_body(prompt, image_url, style)
        data = await self._request("POST", protocol.ENHANCER_PATH, json=body)
        prediction = protocol.parse_prediction(data)
        if not prediction.terminal:
            prediction = await self._wait(prediction, 120.0, None, self._policy(ENHANCER_POLICY))
        if not prediction.outputs:
            raise PredictionFailed("the prompt optimizer returned no text", prediction)
        return prediction.outputs[0].strip()

    async def balance(self) -> float:
        """The account balance in US dollars (``GET /api/v3/balance``)."""
        async for attempt in _read_retries():
            with attempt:
                data = await self._request("GET", protocol.BALANCE_PATH)
        value = data.get("balance") if isinstance(data, dict) else None
        if not isinstance(value, int | float):
            raise ServerError("the balance answer has no number in data.balance", status=200)
        return float(value)

    # -- the I/O chain ---------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, paid: bool = False, **kwargs: Any) -> Any:  # noqa: ANN401  (the envelope's data)
        # The paid submit never follows a redirect: a 307 would re-POST it somewhere else.
        follow = not paid
        failure: WavenbError | None = None
        try:
            response = await self._http.request(
                method, path, auth=self._auth, follow_redirects=follow, **kwargs
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            failure = TransportError(f"could not connect to {self.base_url}: {error}")
        except httpx.LocalProtocolError as error:
            # Refused on this side before sending (a malformed header); its text may quote
            # header values, so it is not kept as the cause.
            failure = TransportError(f"{method} {path}: not sent ({type(error).__name__})")
        except httpx.RequestError as error:
            what = _describe(error)
            if paid:
                failure = SubmissionUncertain(
                    f"the submit request was sent but {what}; it may have been accepted (and "
                    "charged). Check the account's history before submitting again."
                )
            else:
                failure = TransportError(f"{method} {path}: {what}")
        if failure is not None:
            raise failure
        if response.headers.get("x-wavenb-sandbox"):
            self._saw_sandbox = True
        logger.debug("%s %s -> %s", method, path, response.status_code)
        if paid and response.is_redirect:
            raise APIError(
                f"the submit was redirected (HTTP {response.status_code}); wavenb does not resend "
                "paid requests elsewhere. Check the base URL.",
                status=response.status_code,
            )
        try:
            return protocol.parse_envelope(response.status_code, response.content, response.headers)
        except ServerError as error:
            if paid:
                raise SubmissionUncertain(
                    f"the submit request got HTTP {error.status}; it may have been accepted (and "
                    "charged). Check the account's history before submitting again."
                ) from error
            raise

    async def _stream_to(self, url: str, partial: Path) -> None:
        # No auth: output URLs live on a CDN, and the key must never go to another host.
        failure: WavenbError | None = None
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code in _GONE:
                    raise NotFoundError(
                        f"the output at {url} is gone (HTTP {response.status_code}): outputs are "
                        "kept for 7 days, and their URLs expire",
                        status=response.status_code,
                    )
                if response.status_code >= 400:  # noqa: PLR2004
                    body = await response.aread()
                    protocol.parse_envelope(response.status_code, body, response.headers)
                with partial.open("wb") as file:
                    async for chunk in response.aiter_bytes(1 << 20):
                        file.write(chunk)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            failure = TransportError(f"could not connect to download {url}: {error}")
        except httpx.RequestError as error:
            failure = TransportError(f"download of {url} broke: {_describe(error)}")
        if failure is not None:
            raise failure

    async def _resolve_image(self, prepared: PreparedImage) -> str:
        if prepared.note:
            logger.warning("wavenb: image %s before upload", prepared.note)
        if prepared.url is not None:
            return prepared.url
        assert prepared.data is not None  # noqa: S101  (prepare_image sets url or data)
        files = {"file": (prepared.filename, prepared.data, prepared.content_type)}
        # A boundary derived from the content (not random) makes the same upload the same
        # request: recorded cassettes replay, and retries are byte-identical.
        boundary = hashlib.sha256(prepared.data).hexdigest()[:32]
        headers = {"Content-Type": f"multipart/form-data; boundary=wavenb{boundary}"}
        async for attempt in _read_retries():
            with attempt:
                data = await self._request(
                    "POST", protocol.UPLOAD_PATH, files=files, headers=headers
                )
        url = data.get("download_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise ServerError("the upload answer has no data.download_url", status=200)
        return url

    async def _wait(
        self,
        prediction: Prediction | str,
        timeout: float | None,
        on_update: ProgressCallback | None,
        policy: PollPolicy,
    ) -> Prediction:
        deadline = None if timeout is None else time.monotonic() + timeout
        if isinstance(prediction, Prediction):
            current = prediction
        else:
            current = Prediction(prediction, "", Status.UNKNOWN)
            current = await self._check(current, deadline, timeout)
        started = self._submitted_at.get(current.id) or self._first_seen.get(
            current.id, time.monotonic()
        )
        stats = self.durations
        checks, delay = 0, 0.0
        # The schedule is aimed at the task's run, not its time in the queue: while the account's
        # slots are full it sits in "created", and its run has not begun.
        running_since = started
        while not current.terminal:
            if checks and current.status in (Status.CREATED, Status.PENDING):
                running_since = time.monotonic()
            elapsed = time.monotonic() - started
            running = time.monotonic() - running_since
            delay = policy.next_delay(running, stats.expectation(), random.random())  # noqa: S311
            if deadline is not None and time.monotonic() + delay > deadline:
                delay = max(0.0, deadline - time.monotonic())
            await _notify(on_update, Update(current, elapsed, checks, delay, _eta(stats, running)))
            await asyncio.sleep(delay)
            current = await self._check(current, deadline, timeout)
            checks += 1
            if not current.terminal and deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(current, timeout)
        elapsed = time.monotonic() - started
        await _notify(on_update, Update(current, elapsed, checks, None, 0.0))
        if current.id in self._submitted_at and current.status.succeeded:
            # The task ended somewhere within the last interval: count the middle of it.
            stats.add(time.monotonic() - running_since - delay / 2)
        if not current.status.succeeded:
            reason = current.error or "no reason given"
            raise PredictionFailed(f"task {current.id} {current.status.value}: {reason}", current)
        if not current.outputs:
            raise PredictionFailed(f"task {current.id} completed without outputs", current)
        return current

    async def _resume_one(self, row: JournalRow, on_update: ProgressCallback | None) -> Resumed:
        assert row.prediction_id is not None  # noqa: S101  (resumable rows have ids)
        try:
            done = await self.wait(row.prediction_id, on_update=on_update)
            path = await self.download(done)
        except NotFoundError as error:
            # The provider (or a sandbox that has since stopped) no longer knows the task.
            gone = Prediction(row.prediction_id, row.model, Status.DELETED, error=str(error))
            self._record_state(gone)
            return Resumed(row, None, error)
        except WavenbError as error:
            return Resumed(row, None, error)
        return Resumed(row, Video(url=done.outputs[0], path=path, prediction=done), None)

    def _reusable(self, request: _Request, output: str | Path | None) -> Video | None:
        row = None if self.journal is None else self.journal.find_reusable(request.key)
        if row is None or row.path is None or row.prediction_id is None:
            return None
        path = Path(row.path)
        if output is not None:
            path = Video(url="", path=path, prediction=_stub(row)).save(output)
        logger.info("reusing %s from history (same image, prompt and ratio)", row.prediction_id)
        return Video(url=row.output_url or "", path=path, prediction=_stub(row), reused=True)

    def _check_budget(self) -> None:
        price = self.price_per_video
        if self._max_spend is None or price == 0:
            return
        spent = self.spent()
        if spent + price > self._max_spend + 1e-9:
            raise BudgetExceeded(
                f"this video costs ${price:.2f} and ${spent:.2f} is already spent; the limit is "
                f"${self._max_spend:.2f} (max_spend / WAVENB_MAX_SPEND). Nothing was sent."
            )

    def _begin(self, request: _Request) -> str | None:
        if self.journal is None:
            return None
        return self.journal.begin(
            request_hash=request.key,
            model=MODEL_ID,
            prompt=request.prompt,
            aspect_ratio=request.aspect_ratio,
            image_sha256=request.image_sha256,
            image_source=request.source,
            backend=self.backend,
            base_url=self.base_url,
            cost=self.price_per_video,
        )

    def _record_state(self, prediction: Prediction) -> None:
        state = (prediction.status, prediction.outputs, prediction.error)
        if self._journaled.get(prediction.id) == state:
            # Nothing new: no SQLite commit on the event loop (the largest source of loop lag
            # in a 32-task batch), only the in-memory "still running at" time.
            self._record(None, lambda journal, _: journal.seen(prediction.id))
            return
        self._journaled[prediction.id] = state
        self._record(None, lambda journal, _: journal.update(prediction))

    def _record(self, row: str | None, write: Callable[[Journal, str], None]) -> None:
        """Write to the journal; a journal failure is logged, never allowed to lose a task."""
        if self.journal is None:
            return
        try:
            write(self.journal, row or "")
        except (sqlite3.Error, KeyError, ValueError):
            logger.exception("wavenb: could not write the journal at %s", self.journal.path)

    def _remember(self, prediction: Prediction, kind: Literal["submit", "check"]) -> Prediction:
        """Add this answer to the task's timeline and return the prediction carrying it."""
        now = time.monotonic()
        if kind == "submit":
            self._submitted_at[prediction.id] = now
        started = self._submitted_at.get(prediction.id) or self._first_seen.setdefault(
            prediction.id, now
        )
        events = self._events.setdefault(prediction.id, [])
        events.append(Event(kind, now - started, datetime.now(UTC), prediction.status))
        return replace(prediction, events=tuple(events))

    async def _check(
        self, current: Prediction, deadline: float | None, timeout: float | None
    ) -> Prediction:
        """One result check (with its retries), cut short at the deadline."""
        remaining = None if deadline is None else max(deadline - time.monotonic(), 1.0)
        try:
            async with asyncio.timeout(remaining):
                fresh = await self.get(current.id)
        except TimeoutError:
            raise _timed_out(current, timeout) from None
        self._record_state(fresh)
        return fresh

    def _policy(self, policy: PollPolicy | None = None) -> PollPolicy:
        if _testing:
            return TESTING
        if policy is not None:
            return policy
        if self._poll is not None:
            return self._poll
        # A served sandbox says what it is (a header): nobody to be polite to there either.
        return SANDBOX if self.backend == "sandbox" else REAL_API

    def _outputs(self) -> Path:
        return self._output_dir if self._output_dir is not None else outputs_dir()

    def _note_sandbox(self, prediction: Prediction) -> None:
        self._saw_sandbox = self._saw_sandbox or prediction.sandbox


def _timed_out(current: Prediction, timeout: float | None) -> PredictionTimeout:
    return PredictionTimeout(
        f"task {current.id} is still {current.status.label} after {timeout:g} s; it goes on at "
        f"the provider: fetch it later with client.wait({current.id!r})",
        current,
    )


def _stub(row: JournalRow) -> Prediction:
    """A completed prediction rebuilt from a journal row, for a reused video."""
    assert row.prediction_id is not None  # noqa: S101
    return Prediction(
        id=row.prediction_id,
        model=row.model,
        status=Status.COMPLETED,
        outputs=(row.output_url,) if row.output_url else (),
        inference_ms=row.inference_ms,
        sandbox=row.backend == "sandbox",
        raw={"reused_from_journal": True},
    )


def _describe_source(image: ImageInput) -> str:
    """How the journal names an image: its path or URL, never its bytes."""
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return image
    if isinstance(image, str) and image.startswith("data:"):
        return "data URI"
    if isinstance(image, str | os.PathLike):
        return str(Path(image).expanduser().resolve())
    if isinstance(image, bytes | bytearray | memoryview):
        return "bytes"
    return "PIL image"


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{name} must be a number of US dollars; got {value!r}") from None


def _read_retries() -> AsyncIterator[stamina.Attempt]:
    """The retry schedule of every idempotent request."""
    return aiter(
        stamina.retry_context(
            on=_read_retryable, attempts=6, timeout=120.0, wait_initial=0.5, wait_max=30.0
        )
    )


LONGEST_RETRY_AFTER: Final = 30.0
"""A 429 on a read asking for a longer wait than this is raised to the caller, not slept."""
LONGEST_SUBMIT_WAIT: Final = 120.0
"""A 429 on the submit asking for longer than this is raised (the Bronze cap asks up to 60 s)."""
SUBMIT_429_LIMIT: Final = 50
"""How many 429s one submit waits out before giving up with the last one."""


def _after_429(error: RateLimitError) -> bool | float:
    wait = error.retry_after
    if wait is None:
        return True
    return wait if wait <= LONGEST_RETRY_AFTER else False


def _read_retryable(error: Exception) -> bool | float:
    """Reads are safe to repeat: retry on 429 (as long as asked), 5xx and broken connections."""
    if isinstance(error, RateLimitError):
        return _after_429(error)
    return isinstance(error, ServerError | TransportError)


def _submit_retryable(error: Exception) -> bool | float:
    """The paid submit is repeated only when it certainly was not taken.

    A plain ``TransportError`` from ``_request`` means the request was never sent; 429s are
    waited out by ``_paid_submit``'s gate, not here.
    """
    return type(error) is TransportError


def _describe(error: httpx.RequestError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "no answer came before the timeout"
    if isinstance(error, httpx.TransportError):
        return f"the connection broke ({type(error).__name__})"
    return f"its answer was unusable ({type(error).__name__})"


_GONE: Final = frozenset({403, 404, 410})
"""What a CDN answers for an output that has expired or was deleted (S3 says 403)."""


def _eta(stats: DurationStats, elapsed: float) -> float | None:
    typical = stats.typical()
    return None if typical is None else max(0.0, typical - elapsed)


async def _notify(callback: ProgressCallback | None, update: Update) -> None:
    if callback is None:
        return
    result = callback(update)
    if inspect.isawaitable(result):
        await result


def _output_of(source: str | Prediction | Video) -> tuple[str, str]:
    if isinstance(source, Video):
        source = source.prediction
    if isinstance(source, Prediction):
        if not source.outputs:
            raise InputError(f"task {source.id} has no output to download ({source.status.label})")
        return source.outputs[0], source.id
    if not source.startswith(("http://", "https://")):
        raise InputError(f"not a download URL: {source!r}")
    stem = Path(urlsplit(source).path).stem or "video"
    return source, stem


def _embedded_transport(speed: Literal["instant", "fast", "realistic"]) -> httpx.AsyncBaseTransport:
    """The in-process sandbox, one per speed and process, so every client sees the same tasks."""
    global _sandbox_announced  # noqa: PLW0603  (announce once per process, not per client)
    if not _sandbox_announced:
        _sandbox_announced = True
        logger.warning(
            "wavenb: no WAVESPEED_API_KEY set, using the local SANDBOX (free, offline; videos "
            "are local renders, not Runway). Set WAVESPEED_API_KEY to use the real API."
        )
    return httpx.ASGITransport(app=_sandbox_app(speed))


_apps: dict[str, Any] = {}


def _sandbox_app(speed: Literal["instant", "fast", "realistic"]) -> Any:  # noqa: ANN401
    if speed not in _apps:
        try:
            from wavenb.sandbox import SandboxConfig, create_app  # noqa: PLC0415  (heavy, optional)
        except ImportError as error:
            raise WavenbError(
                "the embedded sandbox needs the 'sandbox' extra: pip install 'wavenb[sandbox]' "
                f"(or set WAVESPEED_API_KEY to use the real API). Missing: {error.name}"
            ) from None
        _apps[speed] = create_app(SandboxConfig(speed=speed))
    return _apps[speed]
