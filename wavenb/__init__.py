"""wavenb: image-to-video with Runway Gen4 Turbo (WaveSpeedAI API) in Jupyter.

    >>> import wavenb
    >>> video = wavenb.generate("cat.jpg", "Camera slowly zooms in")   # doctest: +SKIP

With no ``WAVESPEED_API_KEY`` everything runs on the local sandbox: free, offline, labelled.
``pip install wavenb`` gives the client, the CLI and the journal; the Studio and the comparison
grid need ``pip install 'wavenb[notebook]'``.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Final

from wavenb.client.async_client import AsyncClient, ProgressCallback, Resumed, Update
from wavenb.client.history import History, history, resume, spent, unresolved
from wavenb.client.sync import Client, generate
from wavenb.core.errors import (
    APIError,
    AuthenticationError,
    BudgetExceeded,
    DownloadError,
    InputError,
    InsufficientCreditsError,
    InvalidRequestError,
    JournalError,
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
from wavenb.core.phase import Phase
from wavenb.core.polling import PollPolicy
from wavenb.core.runtime import Runtime, set_testing
from wavenb.core.types import ASPECT_RATIOS, MODEL_ID, OUTPUT_SIZES, AspectRatio
from wavenb.core.version import VERSION
from wavenb.jobs.job import Job
from wavenb.journal.rows import JournalRow

if TYPE_CHECKING:  # the lazily loaded names, for type checkers and IDEs
    from wavenb.ab.comparison import Comparison, compare
    from wavenb.studio.widget import Studio
    from wavenb.ui.timeline import plot_timeline

__version__: Final = VERSION

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
    "Comparison",
    "DownloadError",
    "Event",
    "History",
    "InputError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "Job",
    "JournalError",
    "JournalRow",
    "NotFoundError",
    "Phase",
    "PollPolicy",
    "Prediction",
    "PredictionError",
    "PredictionFailed",
    "PredictionTimeout",
    "ProgressCallback",
    "RateLimitError",
    "Resumed",
    "Runtime",
    "ServerError",
    "Status",
    "Studio",
    "SubmissionUncertain",
    "Timeline",
    "TransportError",
    "Update",
    "Video",
    "WavenbError",
    "compare",
    "generate",
    "history",
    "plot_timeline",
    "resume",
    "set_testing",
    "spent",
    "unresolved",
]

_LAZY: Final = {
    "Studio": ("wavenb.studio.widget", "notebook"),
    "compare": ("wavenb.ab.comparison", "notebook"),
    "Comparison": ("wavenb.ab.comparison", "notebook"),
    "plot_timeline": ("wavenb.ui.timeline", "plot"),
}
"""Names whose modules need an extra (widgets, matplotlib): loaded only when asked for."""

# Reprs and docs say ``wavenb.Client``, not ``wavenb.client.sync.Client``.
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) or callable(_obj):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj


def __getattr__(name: str) -> object:
    if name in _LAZY:
        module, extra = _LAZY[name]
        try:
            value = getattr(importlib.import_module(module), name)
        except ImportError as error:
            raise ImportError(
                f"wavenb.{name} needs the {extra!r} extra, which is not installed "
                f"(missing: {error.name}): pip install 'wavenb[{extra}]'"
            ) from None
        with contextlib.suppress(AttributeError, TypeError):
            value.__module__ = __name__  # reprs say wavenb.Studio
        globals()[name] = value  # loaded once: later lookups find it without __getattr__
        return value
    raise AttributeError(f"module 'wavenb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
