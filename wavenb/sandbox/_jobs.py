"""The sandbox's jobs: storage layout, the render executor, and a lazily advanced lifecycle.

A job's status is never pushed by a background task. Each job records *when* (on the injected
clock) it was accepted, how long it queues and processes, and a future for its render; every
read advances all jobs to "now". That keeps the app usable under ``httpx.ASGITransport`` from
any event loop (loops may come and go between requests) and makes tests exact with a fake clock.

Lifecycle, as the real service shows it::

    created ──(queue delay, and a free slot for the key)──▶ processing
    processing ──(processing time elapsed, and render done)──▶ completed | failed

Renders run in ``wavenb.sandbox._pool`` (worker processes, or a thread for tiny clips); they
start at accept time, so a queued job may find its video ready when its turn comes. A job also
keeps what was submitted (its ``inputs``) for the history route, and can be removed from the
store (``POST /api/v3/predictions/delete``).

Moderation: a prompt containing any of the words ``nude``, ``nudity``, ``naked``, ``nsfw``,
``porn``, ``gore`` or ``gory`` (whole words, any case) is accepted, then ends ``failed`` with
"Content policy violation: the prompt was flagged by the safety filter." - a deterministic way
to exercise the failed path, worded like the real service's moderation errors.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from wavenb.core.config import SandboxSpeed
from wavenb.core.types import AspectRatio
from wavenb.sandbox._config import Timing

__all__ = [
    "CANCELLED_ERROR",
    "MODERATION_ERROR",
    "TERMINAL",
    "Job",
    "JobStore",
    "Outcome",
    "Speed",
    "Status",
    "VideoRequest",
    "finished",
    "flagged",
]

Speed = SandboxSpeed
Status = Literal["created", "processing", "completed", "failed"]
TERMINAL: Final[frozenset[str]] = frozenset({"completed", "failed"})
Clock = Callable[[], float]

CANCELLED_ERROR: Final = "Cancelled: the sandbox shut down before this video was rendered."
MODERATION_ERROR: Final = "Content policy violation: the prompt was flagged by the safety filter."
_FLAGGED_WORDS: Final = re.compile(r"\b(nude|nudity|naked|nsfw|porn|gore|gory)\b", re.IGNORECASE)


def flagged(prompt: str) -> bool:
    """Tell whether the prompt trips the sandbox's small moderation word list."""
    return _FLAGGED_WORDS.search(prompt) is not None


# --------------------------------------------------------------------------- timings


@dataclass(frozen=True, slots=True)
class _Timing:
    queue: tuple[float, float]
    processing: tuple[float, float]


_TIMINGS: Final[dict[Speed, _Timing]] = {
    "instant": _Timing(queue=(0.0, 0.0), processing=(0.0, 0.0)),
    "fast": _Timing(queue=(0.3, 0.3), processing=(2.0, 3.0)),
    "realistic": _Timing(queue=(1.0, 4.0), processing=(20.0, 60.0)),
}
_FAILURE_FRACTION: Final = 0.25
"""A failing job fails a quarter of the way into its processing time: errors come sooner than
videos on the real service too, but not instantly."""


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the worker produced: an output (a URL path or text) or an error, and when."""

    finished_at: float
    output: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """A validated gen4-turbo submission."""

    prompt: str
    image: str
    aspect_ratio: AspectRatio | None


@dataclass(slots=True)
class Job:
    """One prediction and the times that decide its status."""

    id: str
    model: str
    owner: str
    """The API key's digest: concurrency is per key, and the key itself is never stored."""
    created_at: str
    accepted: float
    queue_delay: float
    processing_time: float
    outcome: Future[Outcome]
    uses_slot: bool
    """Video jobs count against ``max_concurrent``; the instant prompt enhancer does not."""
    output_is_path: bool
    """True when the output is a URL path on this server (a video), False for plain text."""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    """What was submitted (the body's model fields), as the history route shows it."""
    status: Status = "created"
    started: float | None = None
    finished: float | None = None
    output: str | None = None
    error: str = ""

    @property
    def ready_at(self) -> float:
        """When the job leaves the queue, given a free slot."""
        return self.accepted + self.queue_delay

    def end_time(self) -> float | None:
        """When the processing job ends, or ``None`` while its work is still running."""
        if self.started is None or not self.outcome.done():
            return None
        result = self.result()
        busy = self.processing_time
        if result.error is not None:
            busy *= _FAILURE_FRACTION
        return max(self.started + busy, result.finished_at)

    def result(self) -> Outcome:
        """Return the finished work's outcome; a render cancelled at shutdown is a failure."""
        if self.outcome.cancelled():
            return Outcome(finished_at=self.accepted, error=CANCELLED_ERROR)
        return self.outcome.result()

    def finish(self, at: float) -> None:
        """Move to ``completed`` or ``failed`` with the outcome's output or error."""
        result = self.result()
        self.finished = at
        if result.error is not None:
            self.status, self.error = "failed", result.error
        else:
            self.status, self.output = "completed", result.output


@dataclass
class JobStore:
    """All jobs of one app, advanced lazily to the clock's "now" under a lock.

    A lock rather than an asyncio primitive: the app may be driven from several event loops
    (and threads) over its life.
    """

    clock: Clock
    seed: int
    speed: Speed
    max_concurrent: int | None
    timing: Timing | None = None
    """Decides each video job's queue delay and processing time instead of ``speed``."""
    _jobs: dict[str, Job] = field(default_factory=dict, init=False, repr=False)
    _free_slots: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)
    # Ids must not repeat across processes (journals outlive a sandbox), so each store mixes a
    # random nonce into them; the seed only makes timings repeat.
    _nonce: str = field(default_factory=lambda: os.urandom(8).hex(), init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def new_id(self) -> str:
        """Make a fresh id: 32 hex digits, unique across stores and processes."""
        with self._lock:
            self._count += 1
            material = f"wavenb-sandbox/{self.seed}/{self._nonce}/{self._count}"
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def add(
        self,
        job_id: str,
        model: str,
        owner: str,
        outcome: Future[Outcome],
        *,
        timed: bool,
        inputs: Mapping[str, Any] | None = None,
    ) -> Job:
        """Register an accepted job; ``timed`` jobs follow ``timing`` or the speed's times.

        Untimed jobs (the prompt enhancer) finish at once and take no concurrency slot.
        """
        if timed and self.timing is not None:
            queue_delay, processing_time = self.timing(job_id, owner)
        else:
            rng = random.Random(f"{self.seed}:{job_id}")  # noqa: S311  (timings, not secrets)
            timing = _TIMINGS[self.speed] if timed else _TIMINGS["instant"]
            queue_delay = rng.uniform(*timing.queue)
            processing_time = rng.uniform(*timing.processing)
        job = Job(
            id=job_id,
            model=model,
            owner=owner,
            created_at=_iso_now(),
            accepted=self.clock(),
            queue_delay=queue_delay,
            processing_time=processing_time,
            outcome=outcome,
            uses_slot=timed,
            output_is_path=timed,
            inputs=dict(inputs or {}),
        )
        with self._lock:
            self._jobs[job_id] = job
            return replace(job)

    def get(self, job_id: str) -> Job | None:
        """Return a snapshot of the job advanced to now, or ``None`` if unknown.

        A copy, so a reader never sees a job half-updated by another thread's request.
        """
        with self._lock:
            self.advance()
            job = self._jobs.get(job_id)
            return None if job is None else replace(job)

    def owned_by(self, owner: str) -> list[Job]:
        """Snapshots of the key's jobs advanced to now, newest first."""
        with self._lock:
            self.advance()
            return [replace(job) for job in reversed(self._jobs.values()) if job.owner == owner]

    def remove(self, job_ids: list[str], owner: str) -> list[Job]:
        """Forget the key's jobs among ``job_ids``; return the jobs removed, in the given order.

        Other keys' jobs and unknown ids are left alone. A render not yet started is cancelled;
        a processing job gives its concurrency slot back at once.
        """
        removed: list[Job] = []
        now = self.clock()
        with self._lock:
            self.advance()
            for job_id in job_ids:
                job = self._jobs.get(job_id)
                if job is None or job.owner != owner:
                    continue
                del self._jobs[job_id]
                job.outcome.cancel()
                if job.status == "processing" and job.uses_slot and self.max_concurrent:
                    heapq.heappush(self._slots(owner), now)
                removed.append(job)
        return removed

    def advance(self) -> None:
        """Bring every job's status up to the clock's now.

        Repeats until nothing moves: a job ending frees a slot, which may let a queued job
        start (at the moment the slot freed), which may itself already be over.
        """
        now = self.clock()
        with self._lock:
            moved = True
            while moved:
                moved = self._finish_due(now) | self._start_due(now)

    def _finish_due(self, now: float) -> bool:
        moved = False
        for job in self._in_status("processing"):
            end = job.end_time()
            if end is not None and end <= now:
                job.finish(end)
                if job.uses_slot and self.max_concurrent is not None:
                    heapq.heappush(self._slots(job.owner), end)
                moved = True
        return moved

    def _start_due(self, now: float) -> bool:
        moved = False
        for job in self._in_status("created"):
            start = self._start_time(job)
            if start is not None and start <= now:
                if job.uses_slot and self.max_concurrent is not None:
                    heapq.heappop(self._slots(job.owner))
                job.status, job.started = "processing", start
                moved = True
        return moved

    def _start_time(self, job: Job) -> float | None:
        """When the job can start: its queue delay over and (if limited) a slot free."""
        if not job.uses_slot or self.max_concurrent is None:
            return job.ready_at
        slots = self._slots(job.owner)
        return max(job.ready_at, slots[0]) if slots else None

    def _slots(self, owner: str) -> list[float]:
        """Return the heap of times this key's free slots freed (at first: free "forever")."""
        if owner not in self._free_slots:
            limit = self.max_concurrent or 0
            self._free_slots[owner] = [float("-inf")] * limit
        return self._free_slots[owner]

    def _in_status(self, status: Status) -> Iterator[Job]:
        # A list, not a generator over the dict: jobs change status while we iterate.
        return iter([job for job in self._jobs.values() if job.status == status])

    def peak_processing(self) -> int:
        """Count the most video jobs ever processing at one clock time, as far as known now."""
        with self._lock:
            self.advance()
            events: list[tuple[float, int]] = []
            for job in self._jobs.values():
                if job.uses_slot and job.started is not None:
                    events.append((job.started, 1))
                    if job.finished is not None:
                        events.append((job.finished, -1))
        peak = running = 0
        # At equal times the -1 sorts first: a slot freed at t and taken at t is not an overlap.
        for _, delta in sorted(events):
            running += delta
            peak = max(peak, running)
        return peak

    def completion_times(self) -> dict[str, float]:
        """Each finished job's end time on the clock (completed and failed alike)."""
        with self._lock:
            self.advance()
            return {j.id: j.finished for j in self._jobs.values() if j.finished is not None}

    def cancel_waiting(self) -> None:
        """Cancel work not yet started (renders queued for a worker); running work goes on."""
        for future in self._futures():
            future.cancel()

    def wait_all(self, timeout: float) -> None:
        """Block until all work not cancelled is done; ``TimeoutError`` after ``timeout`` s."""
        pending = [f for f in self._futures() if not f.cancelled()]
        _, not_done = wait(pending, timeout=timeout)
        if not_done:
            raise TimeoutError(f"{len(not_done)} renders still running after {timeout} s")

    def _futures(self) -> list[Future[Outcome]]:
        with self._lock:
            return [job.outcome for job in self._jobs.values()]

    def wait_for_work(self, job_id: str, timeout: float) -> None:
        """Block until the job's render (or other work) is done; for tests and benchmarks.

        Raises ``KeyError`` for an unknown id and ``TimeoutError`` when it takes too long.
        """
        with self._lock:
            job = self._jobs[job_id]
        job.outcome.result(timeout=timeout)


def _iso_now() -> str:
    """UTC wall time as the API writes it: ISO-8601, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finished(outcome: Outcome) -> Future[Outcome]:
    """Wrap work done at accept time in an already resolved future."""
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future
