"""Submit pacing (placeholder until the learned pacer lands): honour the last Retry-After.

``SubmitPacer`` keeps one "not before" moment for every submit of a client: a 429 pushes it to
``now + Retry-After`` (5 s when the server gave none).
"""

from __future__ import annotations

from typing import Final

__all__ = ["SubmitPacer"]

DEFAULT_PAUSE: Final = 5.0


class SubmitPacer:
    """When the next submit may go, from what 429s said."""

    def __init__(self) -> None:
        self._not_before = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next submit."""
        return max(0.0, self._not_before - now)

    def sent(self, now: float) -> None:
        """A submit goes out now."""

    def accepted(self, now: float) -> None:
        """A submit was accepted."""

    def limited(self, now: float, retry_after: float | None) -> None:
        """A submit met a 429 asking to wait ``retry_after`` seconds (or saying nothing)."""
        pause = DEFAULT_PAUSE if retry_after is None else retry_after
        self._not_before = max(self._not_before, now + pause)
