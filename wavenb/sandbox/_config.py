"""How a sandbox app behaves: ``SandboxConfig``, one frozen value given to ``create_app``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from wavenb.core.config import SPEEDS, SandboxSpeed

if TYPE_CHECKING:
    from wavenb.sandbox._faultplan import FaultPlan

__all__ = ["HEADER_TIMEOUT", "SYNC_WAITS", "SandboxConfig", "Timing"]

HEADER_TIMEOUT: Final = 5.0
"""Seconds a client of the served sandbox has to send a whole request head (line and headers)
before its connection is dropped (see ``_hardening``)."""

Timing = Callable[[str, str], tuple[float, float]]
"""``(job id, key digest) -> (queue delay, processing time)`` in seconds, for exact timings."""

SYNC_WAITS: Final[dict[SandboxSpeed, float]] = {
    "instant": 30.0,
    "fast": 1.5,
    "realistic": 30.0,
}
"""Default seconds (on the sandbox clock) a sync-mode submit is held before the 5004 answer.

30 s at realistic speed, where tasks process for 20-60 s, so sync mode sometimes answers the
video and sometimes times out, as the docs warn it does for video. ``fast`` scales it like its
processing times (2-3 s against 20-60 s: a twentieth), so there too a sync submit usually
times out. ``instant`` tasks end when their render does: 30 s is only a safety net.
"""


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How a sandbox app behaves. Every field has a default that suits a notebook.

    Raises:
        ValueError: a field out of its range (an unknown speed, a negative balance...).

    >>> from wavenb.sandbox import create_app
    >>> app = create_app(SandboxConfig(speed="instant"))
    """

    speed: SandboxSpeed = "fast"
    """``instant`` (done when rendered), ``fast`` (a few seconds), ``realistic`` (20-60 s)."""
    storage_dir: Path | None = None
    """Where uploads and videos are kept; ``None`` makes a temporary directory per app."""
    clock: Callable[[], float] = field(default=time.monotonic)
    """Seconds on a monotonic clock; tests inject a fake one to walk the lifecycle."""
    seed: int = 0
    """Makes ids and simulated timings repeat from run to run."""
    max_concurrent: int | None = None
    """Tasks one key may have processing at once; more wait in ``created`` (real default: 2)."""
    duration: float = 5.0
    """Length of each rendered clip, in seconds."""
    balance: float = 1000.0
    """Starting balance in (fake) US dollars; each accepted run is charged its quoted price,
    and a submission the balance cannot pay is refused (HTTP 402) before any task is made."""
    api_keys: frozenset[str] | None = field(default=None, repr=False)
    """Keys to accept; ``None`` (the default) accepts any non-empty key. Any other key gets a
    401, so tests can drive the wrong-key path. Kept out of ``repr``; only digests are used."""
    submit_rate: tuple[int, float] | None = None
    """At most ``n`` video submissions per ``seconds`` for one key, as ``(n, seconds)``; more
    get a 429 with ``Retry-After`` (the real Bronze level: 2 a minute). ``None``: no cap."""
    timing: Timing | None = None
    """Exact timings for benchmarks: called as ``timing(job_id, key_digest)`` for each accepted
    video, it returns ``(queue delay, processing time)`` in seconds, replacing ``speed``'s random
    ones. A job still never completes before its render is done (keep clips short)."""
    record_requests: bool = False
    """Keep a ``RequestRecord`` of every request in ``state.request_log`` (grows without end:
    for benchmarks and tests)."""
    faults: FaultPlan | None = None
    """Inject failures (429s, 5xx, resets, timeouts, failed tasks...) per this plan, and serve
    the ``/sandbox-admin/`` routes; see ``wavenb.sandbox._faults``. ``None``: no faults."""
    sync_wait: float | None = None
    """Seconds (sandbox clock) ``enable_sync_mode`` holds a submit before answering ``data.code
    5004`` (the task goes on); ``None``: ``SYNC_WAITS`` for the speed."""
    webhook_attempts: int = 4
    """Deliveries tried per webhook (the first and up to three retries)."""
    webhook_backoff: float = 1.0
    """Real seconds before the first webhook retry; each further retry waits twice as long."""

    def describe(self) -> str:
        """The settings a person needs to know, e.g. ``speed fast, 5 s clips, 2 at once``."""
        parts = [f"speed {self.speed}", f"{self.duration:g} s clips"]
        if self.max_concurrent is not None:
            parts.append(f"{self.max_concurrent} at once per key")
        if self.submit_rate is not None:
            parts.append(f"{self.submit_rate[0]} submissions per {self.submit_rate[1]:g} s")
        return ", ".join(parts)

    @property
    def sync_limit(self) -> float:
        """Seconds a sync-mode submit is held: ``sync_wait``, or the speed's default."""
        return SYNC_WAITS[self.speed] if self.sync_wait is None else self.sync_wait

    def __post_init__(self) -> None:
        if self.speed not in SPEEDS:
            raise ValueError(f"speed must be one of {', '.join(SPEEDS)}; got {self.speed!r}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be 1 or more (or None): {self.max_concurrent}")
        if not self.duration > 0:
            raise ValueError(f"duration must be positive; got {self.duration}")
        if self.submit_rate is not None and (self.submit_rate[0] < 1 or self.submit_rate[1] <= 0):
            raise ValueError(f"submit_rate must be (n >= 1, seconds > 0); got {self.submit_rate}")
        if not self.balance >= 0:
            raise ValueError(f"balance must be 0 or more; got {self.balance}")
        if self.sync_wait is not None and not self.sync_wait >= 0:
            raise ValueError(f"sync_wait must be seconds >= 0 (or None); got {self.sync_wait}")
        if self.webhook_attempts < 1 or not self.webhook_backoff >= 0:
            raise ValueError(
                "webhook_attempts must be 1 or more and webhook_backoff >= 0; got "
                f"{self.webhook_attempts} and {self.webhook_backoff}"
            )
