"""The two-step upload's tickets: one-time, expiring permissions to ``PUT`` one announced file.

``POST /api/v3/media/uploads`` announces a file (name, size, type) and gets a ticket: the final
``download_url`` and an ``upload`` instruction, a ``PUT`` to a URL that carries its own
unguessable token (like a presigned storage URL). Only the token's SHA-256 is kept. A ticket
works once, for ``UPLOAD_TTL`` seconds of the sandbox clock, for exactly the announced
size and content type; whatever is wrong, the answer is 403 (a storage service says no more to
a bad signature), and the ticket stays usable unless the ``PUT`` got as far as its body.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from wavenb.sandbox._envelope import ApiError

__all__ = ["UPLOAD_TTL", "Ticket", "UploadTickets"]

UPLOAD_TTL: Final = 900.0
"""Seconds (sandbox clock) an upload ticket stays valid, as a presigned URL's 15 minutes."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """What an upload ticket allows: one ``PUT`` of ``size`` bytes, stored as ``name``."""

    name: str
    """The media name the file will be served under (fixed when the ticket is made)."""
    filename: str
    size: int
    content_type: str
    expires: float
    """Sandbox clock time after which the ticket is refused."""


class UploadTickets:
    """Tickets by the digest of their token; thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def issue(self, name: str, filename: str, size: int, content_type: str) -> tuple[str, Ticket]:
        """Make a ticket; return its token (shown once, never stored) and the ticket."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        ticket = Ticket(name, filename, size, content_type, expires=now + UPLOAD_TTL)
        with self._lock:
            # Forget expired tickets as new ones come, so the table cannot grow without end.
            for digest in [d for d, t in self._tickets.items() if t.expires < now]:
                del self._tickets[digest]
            self._tickets[_digest(token)] = ticket
        return token, ticket

    def claim(
        self, name: str, token: str, *, content_type: str | None, content_length: str | None
    ) -> Ticket:
        """Use the ticket for ``token`` to ``PUT`` the file ``name``; it cannot be used again.

        Raises ``ApiError``: 403 for an unknown, used or expired token, a token for another
        name, or a content type other than the announced one; 400 when the ``Content-Length``
        is not the announced size. The ticket is consumed only when everything matches.
        """
        digest = _digest(token)
        with self._lock:
            ticket = self._tickets.get(digest)
            if ticket is None or ticket.name != name:
                raise ApiError(403, "Access denied: the upload URL is not valid (used or unknown).")
            if self._clock() > ticket.expires:
                del self._tickets[digest]
                raise ApiError(403, "Access denied: the upload URL has expired; request another.")
            if (content_type or "") != ticket.content_type:
                raise ApiError(
                    403,
                    "Access denied: the Content-Type is not the one the upload was announced "
                    f"with ({ticket.content_type}); send exactly the headers given.",
                )
            if content_length is None or content_length != str(ticket.size):
                raise ApiError(
                    400,
                    f"Invalid upload: Content-Length must be the announced size, {ticket.size}.",
                )
            del self._tickets[digest]
        return ticket


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
