"""A sandbox app's state: its jobs, storage, fake money, upload tickets, webhooks and counters.

One ``SandboxState`` per app, at ``app.state.sandbox``. Routes call its methods; tests and
benchmarks read its counters. Everything here is thread-safe: an app may be driven from several
event loops and threads over its life (``httpx.ASGITransport`` from any loop, uvicorn).

Money: every accepted run is charged its quoted price (``wavenb.sandbox._catalog``) from one
fake balance shared by all keys (an account may have several keys). A submission the balance
cannot pay is refused before any task is made, with HTTP 402 and the message "Insufficient
balance ...". No public source documents the real service's answer to an empty balance (see
``wavenb/core/protocol.py``): 402 is HTTP's own status for it, so any client reading the status
understands it, and the wording carries "insufficient" and "balance" for a client that reads
the message instead; wavenb's classifier maps both to ``InsufficientCreditsError``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import weakref
from collections import Counter, deque
from typing import IO, TYPE_CHECKING, Any

from wavenb.core.types import ENHANCER_MODEL_ID, ENHANCER_PRICE, MODEL_ID, PRICE_PER_VIDEO
from wavenb.sandbox._config import SandboxConfig
from wavenb.sandbox._envelope import ApiError
from wavenb.sandbox._jobs import (
    MODERATION_ERROR,
    Job,
    JobStore,
    Outcome,
    VideoRequest,
    finished,
    flagged,
)
from wavenb.sandbox._keys import key_digest
from wavenb.sandbox._pool import submit_render
from wavenb.sandbox._renderjob import RenderTask
from wavenb.sandbox._requestlog import RequestRecord
from wavenb.sandbox._storage import Storage, StoredFile
from wavenb.sandbox._uploads import UploadTickets
from wavenb.sandbox._webhooks import Webhooks

if TYPE_CHECKING:
    from wavenb.sandbox._faultplan import Faults

__all__ = ["SandboxState", "request_digest"]


class SandboxState:
    """A sandbox app's state, at ``app.state.sandbox``: its jobs, storage and counters.

    Counters, for tests and benchmarks:
    ``requests`` (``Counter`` of ``"METHOD /route/{template}"``), ``accepted`` (video
    submissions accepted), ``balance``, ``peak_processing``, ``completion_times``,
    ``webhooks.deliveries`` (every webhook attempt) and ``submissions``.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        if config.storage_dir is None:
            self.storage = Storage.temporary()
        else:
            self.storage = Storage(config.storage_dir)
        self.jobs = JobStore(
            clock=config.clock,
            seed=config.seed,
            speed=config.speed,
            max_concurrent=config.max_concurrent,
            timing=config.timing,
        )
        self.requests: Counter[str] = Counter()
        self.request_log: list[RequestRecord] = []
        """Every request, when ``config.record_requests`` is on (see ``_requestlog``)."""
        self._recent_submits: dict[str, deque[float]] = {}
        self.accepted = 0
        self.submissions: list[tuple[str, str]] = []
        """``(prediction id, request_digest)`` of every accepted video submission, in order."""
        self.faults: Faults | None = None
        """The fault plan in force and its counters, when ``config.faults`` is set."""
        self.balance = config.balance
        self.tickets = UploadTickets(config.clock)
        """The two-step upload's one-time ``PUT`` tickets."""
        self.webhooks = Webhooks(config)
        """Webhook deliveries: started when a task with ``?webhook=`` ends, logged here."""
        self._money = threading.Lock()
        self._key_digests = (
            None if config.api_keys is None else frozenset(map(key_digest, config.api_keys))
        )
        # A dropped app must not leave its queued renders to the shared pool.
        weakref.finalize(self, self.jobs.cancel_waiting)

    def refusal(self, owner: str | None) -> str | None:
        """Say why a request with this key digest is refused (401), or ``None`` to let it in."""
        if owner is None:
            return "Unauthorized: send your API key as 'Authorization: Bearer <key>'."
        if self._key_digests is not None and owner not in self._key_digests:
            return "Unauthorized: invalid API key."
        return None

    def close(self, timeout: float = 30.0) -> None:
        """Cancel queued renders (their jobs fail), then wait for running ones; blocking.

        Safe to call more than once. Raises ``TimeoutError`` if renders outlast ``timeout``.
        """
        self.jobs.cancel_waiting()
        self.jobs.wait_all(timeout)

    @property
    def peak_processing(self) -> int:
        """The most video tasks that were ever processing at the same moment."""
        return self.jobs.peak_processing()

    @property
    def completion_times(self) -> dict[str, float]:
        """Prediction id -> clock time it completed (or failed), for jobs finished so far."""
        return self.jobs.completion_times()

    def wait_for_render(self, job_id: str, timeout: float = 60.0) -> None:
        """Block until the job's render is done (its status still follows the clock).

        Raises ``KeyError`` for an unknown id, ``TimeoutError`` after ``timeout`` seconds.
        """
        self.jobs.wait_for_work(job_id, timeout)

    def check_rate(self, owner: str) -> None:
        """Refuse (429 with ``Retry-After``) a submission over the key's per-window cap."""
        if self.config.submit_rate is None:
            return
        limit, window = self.config.submit_rate
        now = self.config.clock()
        with self._money:
            recent = self._recent_submits.setdefault(owner, deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= limit:
                wait = max(1, math.ceil(recent[0] + window - now))
                raise ApiError(
                    429,
                    f"Rate limit exceeded: at most {limit} video submissions per {window:g} s "
                    "for this account level.",
                    headers={"Retry-After": str(wait)},
                )
            recent.append(now)

    def charge(self, price: float) -> None:
        """Take ``price`` from the balance, or refuse (402) when the balance cannot pay it."""
        with self._money:
            if self.balance + 1e-9 < price:
                raise ApiError(
                    402,
                    f"Insufficient balance: this run costs ${price:g} and the balance is "
                    f"${self.balance:.3f} (sandbox fake money). Top up, then submit again.",
                )
            self.balance = round(self.balance - price, 6)

    def submit_video(
        self, video: VideoRequest, owner: str, inputs: dict[str, Any] | None = None
    ) -> Job:
        """Accept a video job: check the rate and the balance, charge, start its render.

        Raises ``ApiError``: 429 over the rate cap, 402 when the balance cannot pay.
        """
        self.check_rate(owner)
        self.charge(PRICE_PER_VIDEO)
        job_id = self.jobs.new_id()
        if flagged(video.prompt):
            outcome = finished(Outcome(finished_at=self.config.clock(), error=MODERATION_ERROR))
        else:
            task = RenderTask(
                prompt=video.prompt,
                image=video.image,
                aspect_ratio=video.aspect_ratio,
                duration=self.config.duration,
                path=self.storage.video_path(job_id),
                media_dir=self.storage.root / "media",
                url_path=self.storage.video_url_path(job_id),
            )
            outcome = submit_render(task, self.config.clock)
        job = self.jobs.add(job_id, MODEL_ID, owner, outcome, timed=True, inputs=inputs)
        with self._money:
            self.accepted += 1
            self.submissions.append((job_id, request_digest(video)))
        return job

    def submit_enhancement(
        self, text: str, owner: str, inputs: dict[str, Any] | None = None
    ) -> Job:
        """Charge and record a prompt-optimizer run whose answer (``text``) is already known.

        Raises ``ApiError`` (402) when the balance cannot pay for it.
        """
        self.charge(ENHANCER_PRICE)
        job_id = self.jobs.new_id()
        outcome = finished(Outcome(finished_at=self.config.clock(), output=text))
        return self.jobs.add(job_id, ENHANCER_MODEL_ID, owner, outcome, timed=False, inputs=inputs)

    def delete(self, job_ids: list[str], owner: str) -> list[str]:
        """Remove the key's predictions and their videos; return the ids removed."""
        removed = self.jobs.remove(job_ids, owner)
        for job in removed:
            # Now, or when a render still running ends: its file must not outlive the job.
            job.outcome.add_done_callback(functools.partial(self._forget_video, job.id))
        return [job.id for job in removed]

    def _forget_video(self, job_id: str, _done: object) -> None:
        self.storage.remove_video(job_id)

    def output_sha256(self, job_id: str) -> str | None:
        """The SHA-256 of a job's rendered video, or ``None`` while (or if) there is none."""
        try:
            path = self.storage.video_path(job_id)
            with path.open("rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest()
        except (OSError, ValueError):
            return None

    def store_upload(self, file: IO[bytes], filename: str | None) -> StoredFile:
        """Check an uploaded file is an image, store it under its digest; blocking.

        Raises ``ApiError`` (400) when Pillow cannot read it as one of the documented formats.
        """
        return self.storage.store_image(file, filename)


def request_digest(video: VideoRequest) -> str:
    """The SHA-256 of what a submission asked for: equal digests mean the same request."""
    canonical = json.dumps(
        [video.prompt, video.image, video.aspect_ratio], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
