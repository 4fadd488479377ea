"""Results: the status of a task, a ``Prediction`` snapshot, and a ``Video`` on disk.

All are frozen: a poll returns a new ``Prediction``, it never mutates an old one.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

__all__ = ["Event", "Prediction", "Status", "Timeline", "Video"]


class Status(StrEnum):
    """Where a task is. ``terminal`` statuses never change again.

    The API documents ``created``, ``processing``, ``completed`` and ``failed``; the server also
    has ``cancelled`` and ``timeout``, clients see ``deleted`` and ``pending``. A status wavenb
    does not know parses as ``UNKNOWN`` and is treated as still running.
    """

    CREATED = "created"
    """Accepted and waiting for a worker; long waits here mean the account's slots are full."""
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DELETED = "deleted"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """Whether the task has ended (successfully or not)."""
        return self in _TERMINAL

    @property
    def succeeded(self) -> bool:
        """Whether the task ended with outputs."""
        return self is Status.COMPLETED

    @property
    def label(self) -> str:
        """A word for people: ``created`` reads as ``queued``, which is what it means."""
        return "queued" if self in (Status.CREATED, Status.PENDING) else self.value


_TERMINAL = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMEOUT, Status.DELETED}
)


@dataclass(frozen=True, slots=True)
class Event:
    """One request wavenb made about a task, and what it learned."""

    kind: Literal["submit", "check"]
    """``submit`` (the paid POST was answered) or ``check`` (a result request)."""
    at: float
    """Seconds since the task was submitted (or first seen, for tasks from elsewhere)."""
    wall: datetime
    """When the answer came, UTC."""
    status: Status
    """The status the answer reported."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """The life of one task as wavenb saw it: every request and its answer, in order."""

    prediction_id: str
    events: tuple[Event, ...]

    @property
    def checks(self) -> int:
        """How many result requests were made."""
        return sum(event.kind == "check" for event in self.events)

    def phases(self) -> list[tuple[Status, float, float]]:
        """``(status, start, end)`` spans in seconds: when each status was first and last seen.

        A status starts at the first answer that reported it; it ends where the next begins.
        """
        spans: list[tuple[Status, float, float]] = []
        for event in self.events:
            if spans and spans[-1][0] is event.status:
                spans[-1] = (event.status, spans[-1][1], event.at)
            else:
                if spans:
                    spans[-1] = (spans[-1][0], spans[-1][1], event.at)
                spans.append((event.status, event.at, event.at))
        return spans

    def rows(self) -> list[dict[str, object]]:
        """The events as plain dicts, for a table."""
        return [
            {
                "kind": e.kind,
                "at": round(e.at, 3),
                "wall": e.wall.isoformat(),
                "status": e.status.value,
            }
            for e in self.events
        ]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One snapshot of a task, as the API reported it."""

    id: str
    """The task id (32 hex characters on the real API)."""
    model: str
    """The model path, e.g. ``runwayml/gen4-turbo``."""
    status: Status
    """Where the task is; see ``Status``."""
    outputs: tuple[str, ...] = ()
    """Output URLs once completed (temporary: download them at once). Text for the enhancer."""
    urls: Mapping[str, str] = field(default_factory=dict)
    """Links the API gives; ``urls["get"]`` is where the result is polled."""
    has_nsfw_contents: tuple[bool, ...] = ()
    """One flag per output."""
    created_at: datetime | None = None
    """When the server created the task (UTC)."""
    error: str | None = None
    """The server's failure text; ``None`` when it sent none."""
    inference_ms: int | None = None
    """``timings.inference``: milliseconds the model ran, once known."""
    execution_ms: int | None = None
    """``executionTime`` in milliseconds, once known."""
    sandbox: bool = False
    """True when wavenb's local sandbox made this, not Runway."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The ``data`` object exactly as received, extra fields included."""
    events: tuple[Event, ...] = field(default=(), repr=False, compare=False)
    """Every request this client made about the task so far (see ``timeline()``)."""

    def timeline(self) -> Timeline:
        """The task's status history with request times, as this client saw it."""
        return Timeline(self.id, self.events)

    @property
    def terminal(self) -> bool:
        """Whether the task has ended."""
        return self.status.terminal

    @property
    def output_url(self) -> str | None:
        """The first output, or ``None`` before completion."""
        return self.outputs[0] if self.outputs else None


@dataclass(frozen=True, slots=True)
class Video:
    """A generated video: where it came from and where it is on disk.

    Displaying a ``Video`` in Jupyter plays it inline. The player is an ipywidgets ``Video``
    fed from the local file, so it works on remote kernels (the browser needs no route to the
    kernel's machine) and does not put megabytes of base64 into the saved notebook.
    """

    url: str
    """The output URL the API gave (temporary on the real API)."""
    path: Path | None
    """The local MP4 file, once downloaded."""
    prediction: Prediction
    """The final state of the task that made it."""
    reused: bool = False
    """True when this came from the journal instead of a new (paid) run: same image, prompt
    and ratio already completed. Pass ``fresh=True`` to ``generate`` to make a new one."""

    @property
    def id(self) -> str:
        """The prediction id."""
        return self.prediction.id

    @property
    def sandbox(self) -> bool:
        """True when the local sandbox rendered this, not Runway."""
        return self.prediction.sandbox

    def timeline(self) -> Timeline:
        """The status history of the task that made this video, with request times."""
        return self.prediction.timeline()

    def read_bytes(self) -> bytes:
        """The MP4's bytes, read from the local file.

        Raises:
            FileNotFoundError: the video was never downloaded, or the file was removed.
        """
        if self.path is None:
            raise FileNotFoundError(f"video {self.id} was not downloaded; use client.download()")
        return self.path.read_bytes()

    def save(self, path: str | Path) -> Path:
        """Copy the downloaded MP4 to ``path`` (a file, or a folder to put ``<id>.mp4`` in)."""
        if self.path is None:
            raise FileNotFoundError(f"video {self.id} was not downloaded; use client.download()")
        target = Path(path)
        if target.is_dir():
            target = target / f"{self.id}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, target)
        return target

    def _label(self) -> str:
        origin = "SANDBOX render (not Runway)" if self.sandbox else self.prediction.model
        ms = self.prediction.inference_ms
        took = f" · {ms / 1000:.1f} s" if ms else ""
        reused = " · reused from history" if self.reused else ""
        return f"{origin} · {self.id}{took}{reused}"

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, Any]:
        # A bounded player in every front end: an anywidget with the notebook extra (bytes over
        # the comm, nothing in the saved notebook), else plain HTML (inline when small).
        from wavenb.ui.display import video_html, video_view  # noqa: PLC0415  (display only)

        plain = {"text/plain": f"<Video {self._label()} path={self.path}>"}
        if self.path is not None and self.path.exists():
            view = video_view(self.path, self._label(), sandbox=self.sandbox)
            if view is not None:
                data, _metadata = view._repr_mimebundle_(**kwargs)
                return {**data, **plain}
        return {**plain, "text/html": video_html(self.path, self.url, self._label(),
                                                 sandbox=self.sandbox)}  # fmt: skip
