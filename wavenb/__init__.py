"""wavenb: image-to-video with Runway Gen4 Turbo (WaveSpeedAI API) in Jupyter.

    >>> import wavenb
    >>> video = wavenb.generate("cat.jpg", "Camera slowly zooms in")   # doctest: +SKIP

With no ``WAVESPEED_API_KEY`` everything runs on the local sandbox: free, offline, labelled.
"""

from __future__ import annotations

import contextlib

from ._client import AsyncClient, ProgressCallback, Resumed, Update, set_testing
from ._exceptions import (
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
from ._history import History, history, resume, spent, unresolved
from ._journal import JournalRow
from ._models import Prediction, Status, Video
from ._polling import PollPolicy
from ._sync import Client, generate
from ._types import ASPECT_RATIOS, MODEL_ID, OUTPUT_SIZES, AspectRatio

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


def __getattr__(name: str) -> object:
    # The widget pulls in ipywidgets: load it only when asked for.
    if name == "Studio":
        from ._studio import Studio  # noqa: PLC0415

        return Studio
    raise AttributeError(f"module 'wavenb' has no attribute {name!r}")
