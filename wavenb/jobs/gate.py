"""The submit gate: one rate-limit policy per client, in front of the paid POST.

Every submit of a client goes through the same gate, so a batch shares one view of the
account's submit cap instead of each task retrying on its own clock until a retry budget runs
out (at the default 2 videos a minute, a batch of 8 used to lose 2). The gate:

- waits until the pacer says the next submit may go (``SubmitPacer.delay``, asked again after
  every wait), so a batch at the cap meets few 429s (the pacer learns the cap from them);
- on a 429 (which creates nothing, so waiting it out can never pay twice) tells the pacer and
  tries again, as long as the server's ``Retry-After`` is reasonable (``LONGEST_SUBMIT_WAIT``);
- on a request that never left the machine (no connection, no free pooled connection) tries
  again a few times, then gives up cleanly: nothing was sent, so nothing can be charged;
- never retries after the request may have reached the server (``SubmissionUncertain``).

There is no second layer: the comparison and the Studio rely on this gate alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from wavenb.api.resources import Predictions
from wavenb.core.errors import APIError, RateLimitError, TransportError
from wavenb.core.models import Prediction
from wavenb.core.pacing import SubmitPacer
from wavenb.core.runtime import Runtime

__all__ = ["LONGEST_SUBMIT_WAIT", "SubmitGate"]

logger = logging.getLogger("wavenb")

LONGEST_SUBMIT_WAIT: Final = 120.0
"""A 429 asking for a longer wait than this is raised (the default cap asks up to 60 s)."""
MAX_RATE_LIMITED: Final = 50
"""How many 429s one submit waits out before giving up with the last one."""
MAX_NOT_SENT: Final = 3
"""How often a submit that never left the machine is tried again."""
NOT_SENT_PAUSE: Final = 1.0
PACER_WINDOW: Final = 60.0
"""WaveSpeed's submit caps are per minute (2 videos a minute at the default account level)."""


class SubmitGate:
    """Paces and sends paid submits for one client."""

    def __init__(self, predictions: Predictions, runtime: Runtime) -> None:
        self._predictions = predictions
        self._runtime = runtime
        self.pacer = SubmitPacer(window=PACER_WINDOW)
        """What the gate has learned of the account's submit cap (per minute, runtime time)."""
        self.rate_limited = 0
        """429s met by this client's submits (for reports and tests)."""

    async def submit(
        self,
        body: Mapping[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]],
        on_wait: Callable[[float, str], Awaitable[None]],
    ) -> Prediction:
        """Send ``body`` when the pacer allows; ``before_send`` runs before each attempt.

        ``before_send`` runs once the attempt holds a connection slot (just before the request
        goes out), so "sending" is recorded only for a request that really leaves.

        Raises:
            RateLimitError: 429s beyond ``MAX_RATE_LIMITED`` or asking for too long.
            TransportError: with ``request_sent`` False, it never left the machine.
            SubmissionUncertain, APIError: as ``Predictions.create``.
        """
        runtime, pacer = self._runtime, self.pacer
        limited = not_sent = 0
        while True:
            # Ask again after every wait: many submits waiting for one moment must not all
            # leave at that moment.
            while (delay := pacer.delay(runtime.clock())) > 0:
                await on_wait(delay, f"pacing submits: next in {delay:.0f} s")
                await runtime.sleep(delay)
            # Counted at once, before any await: the submits waiting on the pacer must see this
            # one, or they all pass the same check (with the journal's write awaited in
            # between, a batch of 100 met 450 429s).
            pacer.sent(runtime.clock())
            admitted = False

            async def on_admitted() -> None:
                nonlocal admitted
                await before_send()
                admitted = True

            try:
                prediction = await self._predictions.create(body, on_admitted=on_admitted)
            except RateLimitError as error:
                self.rate_limited += 1
                limited += 1
                asked = error.retry_after  # seconds as the server counts them
                wait = None if asked is None else asked * runtime.server_seconds
                pacer.limited(runtime.clock(), wait)
                too_long = asked is not None and asked > LONGEST_SUBMIT_WAIT
                if limited >= MAX_RATE_LIMITED or too_long:
                    raise
                logger.info("wavenb: submit rate limited; waiting %s", _wait_text(asked))
                continue
            except TransportError as error:
                if error.request_sent:  # not raised for the paid submit; counted as taken
                    pacer.accepted(runtime.clock())
                    raise
                pacer.dropped(runtime.clock())
                if not_sent >= MAX_NOT_SENT:
                    raise
                not_sent += 1
                await on_wait(NOT_SENT_PAUSE, "no connection; trying again (nothing was sent)")
                await runtime.sleep(NOT_SENT_PAUSE * not_sent)
                continue
            except APIError:
                pacer.dropped(runtime.clock())  # refused for another reason: not a cap
                raise
            except BaseException:
                if not admitted:  # cancelled (or the journal failed) before it went out
                    pacer.dropped(runtime.clock())
                    raise
                # Uncertain, or cancelled while the request may be out: it may count.
                pacer.accepted(runtime.clock())
                raise
            pacer.accepted(runtime.clock())
            return prediction


def _wait_text(seconds: float | None) -> str:
    return "as the pacer learned" if seconds is None else f"{seconds:g} s as asked"
