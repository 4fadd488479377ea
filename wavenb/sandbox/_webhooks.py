"""Webhooks: when a task submitted with ``?webhook=<url>`` ends, POST its final envelope there.

The docs name the webhook only as a query parameter of the submit. A notebook has no public
URL, but on one machine a lesson can run a receiver on 127.0.0.1 and watch the sandbox call it.

Each delivery is a background ``asyncio`` task on the loop of the submit request: it waits for
the task to end (through the callback the route gives), then POSTs ``{"code": 200, "message":
"success", "data": <prediction>}`` as JSON with ``X-Wavenb-Sandbox: 1``. A connection error or an
answer other than 2xx is retried, ``SandboxConfig.webhook_attempts`` tries in all, waiting
``webhook_backoff`` seconds before the first retry and twice as long before each next one.
Every attempt is logged in ``Webhooks.deliveries`` for tests and lessons to read.

Only ``http`` and ``https`` URLs with a host are taken; anything else is a 400 at submit time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from wavenb.sandbox._config import SandboxConfig
from wavenb.sandbox._envelope import SANDBOX_HEADER, ApiError

__all__ = ["MAX_WEBHOOK_URL", "WebhookDelivery", "Webhooks", "check_webhook_url"]

MAX_WEBHOOK_URL: Final = 2048
_TIMEOUT: Final = 5.0
"""Seconds one delivery may take: a receiver that hangs is a failed attempt, then retried."""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt to deliver a webhook."""

    prediction_id: str
    url: str
    attempt: int
    """1 for the first try, 2 for the first retry, ..."""
    status: int | None
    """The receiver's HTTP status, or ``None`` when no answer came."""
    error: str | None
    """Why the attempt failed (an exception's name, or ``HTTP <status>``); ``None`` on success."""
    at: float
    """When the attempt ended, on the sandbox clock."""

    @property
    def ok(self) -> bool:
        """Whether the receiver took it (a 2xx answer)."""
        return self.error is None


def check_webhook_url(url: str) -> str:
    """Return ``url`` if it can take a webhook (http or https, with a host); else raise 400."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_WEBHOOK_URL:
        raise ApiError(400, "Invalid parameters: 'webhook' must be an http(s) URL with a host.")
    return url


class Webhooks:
    """The deliveries of one app: the tasks in flight and the log of every attempt."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self.deliveries: list[WebhookDelivery] = []
        """Every attempt so far, in the order they ended."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    def start(
        self, prediction_id: str, url: str, final: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> None:
        """Deliver to ``url`` the envelope ``final()`` returns once the task has ended.

        ``final`` returns ``None`` when the prediction is gone (deleted): nothing is sent.
        Must be called from a running event loop (a request handler).
        """
        task = asyncio.get_running_loop().create_task(self._deliver(prediction_id, url, final))
        with self._lock:
            self._tasks.add(task)  # a reference, or the task could be collected mid-run
        task.add_done_callback(self._forget)

    def pending(self) -> int:
        """How many deliveries are still waiting or retrying."""
        with self._lock:
            return len(self._tasks)

    async def join(self) -> None:
        """Wait until the deliveries pending on the running loop are over (delivered or not)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = [task for task in self._tasks if task.get_loop() is loop]
        await asyncio.gather(*mine, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the deliveries still pending on the running loop (at server shutdown)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = [task for task in self._tasks if task.get_loop() is loop]
        for task in mine:
            task.cancel()
        await asyncio.gather(*mine, return_exceptions=True)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._tasks.discard(task)

    async def _deliver(
        self, prediction_id: str, url: str, final: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> None:
        payload = await final()
        if payload is None:
            return
        headers = {SANDBOX_HEADER: "1", "User-Agent": "wavenb-sandbox-webhook"}
        delay = self._config.webhook_backoff
        async with httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False) as client:
            for attempt in range(1, self._config.webhook_attempts + 1):
                status, error = await _post(client, url, payload, headers)
                self._log(WebhookDelivery(prediction_id, url, attempt, status, error,
                                          at=self._config.clock()))  # fmt: skip
                if error is None or attempt == self._config.webhook_attempts:
                    return
                await asyncio.sleep(delay)
                delay *= 2

    def _log(self, delivery: WebhookDelivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)


async def _post(
    client: httpx.AsyncClient, url: str, payload: dict[str, Any], headers: dict[str, str]
) -> tuple[int | None, str | None]:
    """POST once; return the status and, unless it was a 2xx, why it failed."""
    try:
        response = await client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    if response.is_success:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"
