"""wavenb: image-to-video with Runway Gen4 Turbo (WaveSpeedAI API) in Jupyter.

    >>> import wavenb
    >>> video = wavenb.generate("cat.jpg", "Camera slowly zooms in")   # doctest: +SKIP

With no ``WAVESPEED_API_KEY`` everything runs on the local sandbox: free, offline, labelled.
"""

from __future__ import annotations

import contextlib

from wavenb.client.async_client import AsyncClient, ProgressCallback, Resumed, Update, set_testing
from wavenb.client.history import History, history, resume, spent, unresolved
from wavenb.client.sync import Client, generate
from wavenb.core.errors import (
    APIError,
    AuthenticationError,
    BudgetExceeded,
    InputError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    PredictionError,
    PredictionFailed,
    PredictionTimeout,
    RateLimitError,
    ServerError,
    SubmissionUncertain,
    TransportError,
    WavenbError,
)
from wavenb.core.models import Event, Prediction, Status, Timeline, Video
from wavenb.core.polling import PollPolicy
from wavenb.core.types import ASPECT_RATIOS, MODEL_ID, OUTPUT_SIZES, AspectRatio
from wavenb.journal.store import JournalRow

__version__ = "0.1.0"

__all__ = [
    "ASPECT_RATIOS",
    "MODEL_ID",
    "OUTPUT_SIZES",
    "APIError",
    "AspectRatio",
    "AsyncClient",
    "AuthenticationError",
    "BudgetExceeded",
    "Client",
    "Event",
    "History",
    "InputError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JournalRow",
    "NotFoundError",
    "PollPolicy",
    "Prediction",
    "PredictionError",
    "PredictionFailed",
    "PredictionTimeout",
    "ProgressCallback",
    "RateLimitError",
    "Resumed",
    "ServerError",
    "Status",
    "SubmissionUncertain",
    "Timeline",
    "TransportError",
    "Update",
    "Video",
    "WavenbError",
    "generate",
    "history",
    "resume",
    "set_testing",
    "spent",
    "unresolved",
]

# Reprs and docs say ``wavenb.Client``, not ``wavenb._sync.Client``.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj


_LAZY = {
    "Studio": "wavenb.studio.widget",
    "compare": "wavenb.compare.comparison",
    "Comparison": "wavenb.compare.comparison",
    "plot_timeline": "wavenb.ui.timeline",
}
"""Names whose modules pull in ipywidgets or matplotlib: loaded only when asked for."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        value = getattr(importlib.import_module(_LAZY[name]), name)
        with contextlib.suppress(AttributeError, TypeError):
            value.__module__ = __name__  # reprs say wavenb.Studio
        return value
    raise AttributeError(f"module 'wavenb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
