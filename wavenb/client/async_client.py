"""``AsyncClient``: the API's resources and the generation lifecycle, behind one object.

The client itself is thin. It resolves the settings (``wavenb.core.config``), builds the one
HTTP shell (``wavenb.api.http``) and the resources over it (``client.predictions``,
``client.media``, ``client.account``, ``client.models``, ``client.enhancer``), and a
``Session`` that carries the journal, the submit gate and the runtime to every generation.
Everything that moves money or a task lives in ``wavenb.jobs``; the methods here only start a
``Job`` and return what it made.

A generation travels: ``generate`` -> ``jobs.request.prepare`` (checked inputs) ->
``jobs.job.Job.run`` -> reserve in ``journal.store`` -> ``api.resources.Media.upload`` ->
``jobs.gate.SubmitGate`` -> ``api.resources.Predictions.create`` -> ``jobs.waiting.follow``
(``Predictions.get``) -> ``jobs.saving.save`` -> ``jobs.download.fetch`` -> the MP4 on disk.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Literal, TypedDict, Unpack

import httpx

from wavenb.api.embedded import embedded_transport
from wavenb.api.http import DEFAULT_CONNECTIONS, Http
from wavenb.api.resources import Account, Enhancer, Media, Models, Predictions
from wavenb.core import runtime as runtimes
from wavenb.core.config import SandboxSpeed, Settings, resolve
from wavenb.core.errors import InputError, InsufficientCreditsError
from wavenb.core.images import ImageInput, prepare_image
from wavenb.core.models import Prediction, Timeline, Video
from wavenb.core.polling import DurationStats, PollPolicy
from wavenb.core.runtime import Runtime
from wavenb.core.types import MODEL_ID, AspectRatio
from wavenb.core.version import VERSION
from wavenb.jobs import reconcile
from wavenb.jobs import resume as resuming
from wavenb.jobs.download import MAX_DOWNLOAD, fetch
from wavenb.jobs.events import ProgressCallback, Update
from wavenb.jobs.job import DEFAULT_WAIT, Job
from wavenb.jobs.request import prepare
from wavenb.jobs.resume import Resumed
from wavenb.jobs.session import Session
from wavenb.journal.store import Journal

__all__ = ["AsyncClient", "ClientOptions", "ProgressCallback", "Resumed", "Update"]

logger = logging.getLogger("wavenb")


class ClientOptions(TypedDict, total=False):
    """Keyword options of ``AsyncClient`` and ``Client`` (one definition for both)."""

    timeout: float
    """Seconds for each network operation (default 30; connecting at most 10)."""
    transport: httpx.AsyncBaseTransport | None
    """The test seam: ``httpx.MockTransport``, ``httpx.ASGITransport``; ``None`` for the network."""
    poll: PollPolicy | None
    """The poll schedule; by default the real API's etiquette (or the sandbox's)."""
    sandbox_speed: SandboxSpeed | None
    """The embedded sandbox's speed (``WAVENB_SANDBOX_SPEED``)."""
    output_dir: str | Path | None
    """Where videos are saved (default ``<data dir>/outputs``)."""
    journal: Journal | bool
    """The journal (default: the shared file); ``False`` switches it off."""
    max_spend: float | None
    """The most US dollars the journal may show as spent (``WAVENB_MAX_SPEND``)."""
    max_download: int
    """The largest output saved, in bytes (default 1 GiB)."""
    runtime: Runtime | None
    """Clock, sleep, randomness and registries (default ``wavenb.core.runtime.current()``)."""
    key_from_env: bool
    """``False``: never read ``WAVESPEED_API_KEY`` (for a server the key does not belong to)."""
    max_connections: int
    """Requests in flight at once (default 32); more wait their turn before the pool."""


class AsyncClient:
    """Async client for Runway Gen4 Turbo on WaveSpeedAI (or the local sandbox).

    With no key and no base URL (arguments or ``WAVESPEED_API_KEY`` / ``WAVENB_BASE_URL``) it
    talks to the embedded sandbox in-process, and says so once.

    Args:
        api_key: the key; by default ``WAVESPEED_API_KEY``. It is sent only to ``base_url``.
        base_url: the server; by default ``WAVENB_BASE_URL``, else the real API with a key,
            else the embedded sandbox.
        **options: the keyword options of ``ClientOptions`` (``timeout``, ``transport``,
            ``journal``, ``max_spend``...).

    Examples:
        >>> async with AsyncClient() as client:                      # doctest: +SKIP
        ...     video = await client.generate("cat.jpg", "Camera slowly zooms in")
        ...     print(video.path)

    Raises:
        InputError: a malformed key, a key over plain HTTP to another machine, a bad option.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        runtime = options.get("runtime") or runtimes.current()
        self.settings: Settings = resolve(
            api_key, base_url, options.get("sandbox_speed"),
            key_from_env=options.get("key_from_env", True),
        )  # fmt: skip
        transport = options.get("transport")
        if transport is None and self.settings.embedded:
            transport = embedded_transport(self.settings.sandbox_speed, runtime)
        http = Http(
            self.settings, transport=transport, timeout=options.get("timeout", 30.0),
            version=VERSION, runtime=runtime,
            max_connections=options.get("max_connections", DEFAULT_CONNECTIONS),
        )  # fmt: skip
        output_dir = options.get("output_dir")
        max_spend = options.get("max_spend")
        self.session = Session(
            http=http,
            runtime=runtime,
            journal_choice=options.get("journal", True),
            poll=options.get("poll"),
            output_dir=Path(output_dir) if output_dir is not None else None,
            max_spend=max_spend if max_spend is not None else _env_float("WAVENB_MAX_SPEND"),
            max_download=options.get("max_download", MAX_DOWNLOAD),
        )
        """What every generation of this client shares (journal, gate, runtime...)."""

    # -- resources -------------------------------------------------------------------------

    @property
    def predictions(self) -> Predictions:
        """Tasks: ``create`` (the raw paid POST), ``get``, ``list`` (history), ``delete``."""
        return self.session.predictions

    @property
    def media(self) -> Media:
        """Image uploads."""
        return self.session.media

    @property
    def account(self) -> Account:
        """The account's balance."""
        return self.session.account

    @property
    def models(self) -> Models:
        """The model catalog and price quotes."""
        return self.session.models

    @property
    def enhancer(self) -> Enhancer:
        """The prompt optimizer."""
        return self.session.enhancer

    # -- configuration ---------------------------------------------------------------------

    @property
    def backend(self) -> Literal["sandbox", "api"]:
        """``"sandbox"`` for wavenb's local sandbox (embedded or served), else ``"api"``."""
        return self.session.backend

    @property
    def base_url(self) -> str:
        """The server this client talks to."""
        return self.session.base_url

    @property
    def output_dir(self) -> Path:
        """Where downloads go by default: ``output_dir=``, else ``<data dir>/outputs``."""
        return self.session.outputs

    @property
    def runtime(self) -> Runtime:
        """The clock, sleep and registries this client uses."""
        return self.session.runtime

    @property
    def price_per_video(self) -> float:
        """US dollars one video costs here, as last known (no request).

        0 on a sandbox; the quote once ``price()`` fetched it, else the list price ($0.50).
        """
        if self.backend == "sandbox":
            return 0.0
        return self.session.models.cached(MODEL_ID)

    async def price(self) -> float:
        """US dollars one video costs here, from the price endpoint (cached; $0.50 offline)."""
        return await self.session.price(MODEL_ID)

    async def detect(self) -> Literal["sandbox", "api"]:
        """Ask the server once what it is; returns ``backend``.

        A served sandbox says so in every answer: asking at start makes the price and the
        SANDBOX label right before the first generation.
        """
        if not self.session.http.sandbox_seen:
            try:
                await self.session.models.quote(MODEL_ID)
            except Exception as error:  # noqa: BLE001  (a probe: any failure leaves it "api")
                logger.debug("wavenb: backend probe failed (%s)", type(error).__name__)
        return self.backend

    @property
    def durations(self) -> DurationStats:
        """Past task durations on this server (per runtime, seeded from the journal)."""
        return self.session.durations

    @property
    def journal(self) -> Journal | None:
        """The journal every submission is recorded in (``None`` if switched off)."""
        return self.session.journal

    def timeline(self, prediction_id: str) -> Timeline:
        """Every request this client made about a task, in order (empty if it made none)."""
        return Timeline(prediction_id, tuple(self.session.timelines.get(prediction_id, ())))

    def spent(self, since: datetime | None = None) -> float:
        """US dollars spent (or possibly spent) on this journal since ``since``."""
        journal = self.journal
        return self.session.spent_here if journal is None else journal.spent(since)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend!r} base_url={self.base_url!r}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool and the journal's writer thread."""
        await self.session.http.aclose()
        self.session.close()

    # -- generations -----------------------------------------------------------------------

    async def job(
        self,
        image: ImageInput,
        prompt: str,
        aspect_ratio: AspectRatio | None = None,
        *,
        fresh: bool = False,
        output: str | Path | None = None,
        variant: str | None = None,
        on_update: ProgressCallback | None = None,
    ) -> Job:
        """A ``Job`` for one generation, checked but not started: ``await job.run()``.

        For callers that observe the lifecycle (``job.subscribe``) or drive its steps.

        Raises:
            InputError: bad prompt, ratio or image (nothing was reserved or sent).
        """
        request = await prepare(image, prompt, aspect_ratio, base_url=self.base_url,
                                variant=variant)  # fmt: skip
        return Job(self.session, request, fresh=fresh, output=output, on_update=on_update)

    def follow(
        self, task: Prediction | str, *, on_update: ProgressCallback | None = None
    ) -> Job:
        """A ``Job`` following a task that already exists: ``await job.finish()``; never submits."""
        return Job.following(self.session, task, on_update=on_update)

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
        is returned from the journal for free (``video.reused``); one already running (here,
        in another kernel, or left by a crash) is joined instead of paid again. ``fresh=True``
        pays for a new run instead.

        Raises what ``submit``, ``wait`` and ``download`` raise.
        """
        job = await self.job(image, prompt, aspect_ratio, fresh=fresh, output=output,
                             on_update=on_update)  # fmt: skip
        return await job.run(timeout=timeout)

    async def submit(
        self,
        image: ImageInput,
        prompt: str,
        aspect_ratio: AspectRatio | None = None,
        *,
        fresh: bool = False,
    ) -> Prediction:
        """Start a video task and return it in its first state (``created``).

        This is the paid call ($0.50 on the real API). Prompt, ratio and image are checked
        before any request; the budget is reserved before the upload; an identical request in
        flight is joined (``fresh=True`` pays again on purpose).

        Raises:
            InputError: bad prompt, ratio or image (nothing was sent).
            BudgetExceeded: over ``max_spend`` (nothing was sent).
            SubmissionUncertain: sent, but whether it was accepted is unknown; not resent.
            APIError: the server refused it (auth, parameters, rate limit after retries...).
        """
        job = await self.job(image, prompt, aspect_ratio, fresh=fresh)
        return await job.submit()

    async def get(self, prediction_id: str) -> Prediction:
        """Fetch a task's current state (``GET /api/v3/predictions/{id}/result``)."""
        prediction = await self.session.predictions.get(prediction_id)
        return self.session.remember(prediction, "check")

    async def wait(
        self,
        prediction: Prediction | str,
        *,
        timeout: float | None = DEFAULT_WAIT,
        on_update: ProgressCallback | None = None,
    ) -> Prediction:
        """Check a task until it ends, politely, and return its completed state.

        Raises:
            PredictionFailed: the task ended without a video.
            PredictionTimeout: ``timeout`` seconds passed; the task goes on at the provider and
                its id is on the exception's ``prediction``.
        """
        job = Job.following(self.session, prediction, on_update=on_update)
        return await job.wait(timeout=timeout)

    async def download(
        self, source: str | Prediction | Video, path: str | Path | None = None
    ) -> Path:
        """Save an output, verified (a whole MP4), and return the file's path.

        ``path`` may be a file or a folder; by default ``<outputs>/<id>.mp4``. The file appears
        whole or not at all.

        Raises:
            DownloadError: cut, not an MP4, too big. NotFoundError: the output is gone.
        """
        if isinstance(source, Video):
            source = source.prediction
        if isinstance(source, Prediction):
            return await Job.following(self.session, source).download(path)
        if not source.startswith(("http://", "https://")):
            raise InputError(f"not a download URL: {source!r}")
        from wavenb.core.protocol import check_output_url  # noqa: PLC0415

        url = check_output_url(source, "(url)")
        stem = Path(httpx.URL(url).path).stem or "video"
        target = Path(path) if path is not None else self.output_dir / f"{stem}.mp4"
        if target.is_dir():
            target = target / f"{stem}.mp4"
        saved = await fetch(self.session.http, url, target,
                            max_bytes=self.session.max_download)  # fmt: skip
        return saved.path

    async def find_reusable(
        self, image: ImageInput, prompt: str, aspect_ratio: AspectRatio | None = None
    ) -> Video | None:
        """The stored video of the same request already completed here, or ``None``."""
        job = await self.job(image, prompt, aspect_ratio)
        return await job._reusable()

    async def resume(self, *, on_update: ProgressCallback | None = None) -> list[Resumed]:
        """Finish what the journal says was left undone on this server; never resubmits.

        Settles uncertain submissions from the account's history first, then waits for tasks
        still running and downloads completed videos that are not on disk.
        """
        return await resuming.resume(self.session, on_update=on_update)

    async def reconcile(self) -> list[reconcile.Settlement]:
        """Settle this server's uncertain submissions from the account's history."""
        journal = self.journal
        if journal is None:
            return []
        rows = [row for row in journal.unresolved() if row.base_url == self.base_url]
        return await reconcile.settle(self.session, rows)

    async def upload(self, image: ImageInput) -> str:
        """Upload a local image (path, bytes, PIL image) and return its URL; URLs pass through.

        Raises:
            InputError: the image is not usable. APIError / TransportError: the upload failed.
        """
        import asyncio  # noqa: PLC0415

        prepared = await asyncio.to_thread(prepare_image, image)
        return await self.session.media.upload(prepared)

    async def enhance_prompt(
        self, prompt: str, image: ImageInput | None = None, style: str | None = None
    ) -> str:
        """Rewrite a prompt with the provider's prompt optimizer (video mode); returns the text.

        Costs $0.001 a run on the real API. ``image`` gives visual context; ``style`` is one of
        default, artistic, photographic, technical, anime, realistic.
        """
        image_url = None if image is None else await self.upload(image)
        return await self.session.enhancer.enhance(prompt, image_url, style)

    async def balance(self) -> float:
        """The account balance in US dollars (``GET /api/v3/balance``)."""
        return await self.session.account.balance()

    async def check_balance(self, cost: float) -> None:
        """Refuse a batch the account cannot pay for, before anything is sent.

        Raises:
            InsufficientCreditsError: ``cost`` is more than the balance (says how much is missing).
        """
        if cost <= 0:
            return
        balance = await self.balance()
        if balance + 1e-9 < cost:
            raise InsufficientCreditsError(
                f"this costs ${cost:.2f} but the balance is ${balance:.2f}: ${cost - balance:.2f} "
                "is missing. Top up the account first; nothing was sent.",
                status=402,
            )


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{name} must be a number of US dollars; got {value!r}") from None
