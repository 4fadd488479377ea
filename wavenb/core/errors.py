"""Every error wavenb raises, in one tree.

```
WavenbError                      base of everything below; catch this to catch all of wavenb
├── InputError (ValueError)      bad input found locally, before any request (nothing was spent)
├── TransportError               no HTTP answer: connection refused or reset, timeout
│                                (``request_sent`` says whether the request left the machine)
├── SubmissionUncertain          the paid submit was sent but its fate is unknown: never resent
├── BudgetExceeded               the spending limit would be passed: refused before any request
├── JournalError                 the journal file cannot be read or written (names the file)
├── DownloadError                the output could not be saved whole (cut, not an MP4, too big)
├── APIError                     the API answered with an error (HTTP status or envelope code)
│   ├── AuthenticationError      401 / 403: missing, wrong or inactive key; account problem
│   ├── InsufficientCreditsError the account balance cannot pay for the run
│   ├── InvalidRequestError      400 / 422: the server rejected the parameters
│   ├── NotFoundError            404: unknown prediction id (or expired: outputs live 7 days)
│   ├── RateLimitError           429: too many requests; carries ``retry_after`` seconds
│   └── ServerError              5xx, or an answer that is not the documented envelope
└── PredictionError              the task was accepted but did not produce a video
    ├── PredictionFailed         terminal status failed / cancelled / timeout / deleted
    └── PredictionTimeout        wavenb stopped waiting (deadline or cancel); the task goes on
```

Every message says what happened and what to do next. None contains the API key: errors are
built from status codes and response bodies, never from request headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wavenb.core.redact import redact_data

if TYPE_CHECKING:
    from wavenb.core.models import Prediction

__all__ = [
    "APIError",
    "AuthenticationError",
    "BudgetExceeded",
    "DownloadError",
    "InputError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JournalError",
    "NotFoundError",
    "PredictionError",
    "PredictionFailed",
    "PredictionTimeout",
    "RateLimitError",
    "ServerError",
    "SubmissionUncertain",
    "TransportError",
    "WavenbError",
]


class WavenbError(Exception):
    """Base class of every error wavenb raises."""


class InputError(WavenbError, ValueError):
    """Input rejected locally before any request was sent: nothing was spent.

    Raised for an unknown aspect ratio, an empty or over-long prompt, a file that is missing or
    not an image, an image the model cannot take (aspect outside 0.5-2.0), and the like.
    """


class TransportError(WavenbError):
    """No HTTP answer came back: the connection failed, was reset, or timed out.

    ``request_sent`` is False when the request certainly never left this machine (no
    connection could be made, no pooled connection was free, the name did not resolve): such
    a paid submit was not sent, so it cannot have been charged.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class SubmissionUncertain(WavenbError):
    """The paid submit was sent, but no answer says whether it was accepted.

    Raised when the connection broke or timed out after the request went out, or the server
    answered 5xx. wavenb never resends it blindly (that could pay twice). The task may exist
    and may be charged: look in the account's history before submitting again. The cause is
    chained as ``__cause__``.
    """


class BudgetExceeded(WavenbError):
    """The run would take spending past the limit (``max_spend`` / ``WAVENB_MAX_SPEND``).

    Raised before any request: nothing was sent, nothing was spent.
    """


class JournalError(WavenbError):
    """The journal (the SQLite record of paid submissions) cannot be read or written.

    Raised before anything is paid when the file is corrupt, read-only, on a full disk or from
    a newer wavenb. The message names the file and what to do. ``path`` is the file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class DownloadError(WavenbError):
    """The output could not be saved whole.

    Cut short, not an MP4 (an HTML error page), or larger than the download limit. Nothing was
    recorded as downloaded; resume tries again.
    """


class APIError(WavenbError):
    """The API answered with an error.

    Attributes:
        status: the HTTP status code of the answer.
        code: the envelope's ``code`` field when there was one (else the HTTP status).
        message: the server's message, or a description of the unexpected body.
        request_id: the server's request id header, when it sent one.
        body: the parsed JSON body when it was JSON, for "details" views.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code if code is not None else status
        self.request_id = request_id
        # Kept whole for "details" views (the Studio's), so scrubbed like the message.
        self.body: Mapping[str, Any] | None = None if body is None else redact_data(body)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status}, code={self.code}, message={self.message!r})"


class AuthenticationError(APIError):
    """401 or 403: the key is missing, wrong or inactive, or the account cannot use the model."""


class InsufficientCreditsError(APIError):
    """The account's balance cannot pay for the run: top up, then submit again."""


class InvalidRequestError(APIError):
    """400 or 422: the server rejected the parameters (its message says which)."""


class NotFoundError(APIError):
    """404: no such prediction (ids are kept for 7 days) or no such path."""


class RateLimitError(APIError):
    """429: too many requests. ``retry_after`` is the wait the server asked for, if any."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int = 429,
        code: int | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, body=body)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx, or an answer that is not the documented JSON envelope (e.g. a proxy's HTML page)."""


class PredictionError(WavenbError):
    """The task was accepted but did not produce a video. ``prediction`` is its last state."""

    def __init__(self, message: str, prediction: Prediction) -> None:
        super().__init__(message)
        self.prediction = prediction


class PredictionFailed(PredictionError):
    """The task ended in a failure status (``failed``, ``cancelled``, ``timeout``, ``deleted``).

    ``moderation`` is true when the message reads like a content-policy refusal.
    """

    @property
    def moderation(self) -> bool:
        """Whether the failure looks like a content-policy / safety refusal."""
        text = (self.prediction.error or "").lower()
        return any(word in text for word in _MODERATION_WORDS)


class PredictionTimeout(PredictionError):
    """wavenb stopped waiting before the task ended; the task goes on at the provider.

    The prediction id is kept on ``prediction.id``: fetch it later with ``client.wait(id)``.
    """


_MODERATION_WORDS = ("content policy", "nsfw", "safety", "moderation", "flagged")
