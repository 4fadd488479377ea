"""A journal row, its statuses, the request hash, and how rows are shown (table, pandas).

The journal stores the provider's own statuses (``created`` ... ``deleted``) plus three of its
own (``submitting``, ``unknown``, ``refused``); views show ``phase`` (``wavenb.core.phase``),
the one vocabulary every part of wavenb speaks.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

from wavenb.core.config import SANDBOX_BASE_URL
from wavenb.core.phase import Phase

__all__ = [
    "STATUSES",
    "TERMINAL",
    "JournalRow",
    "JournalStatus",
    "format_table",
    "request_hash",
    "sha256_file",
    "to_pandas",
]

JournalStatus = Literal[
    "submitting",
    "unknown",
    "refused",
    "created",
    "pending",
    "processing",
    "completed",
    "failed",
    "cancelled",
    "timeout",
    "deleted",
]
"""Where a submission is, as stored; see ``wavenb.journal.store`` for the diagram."""

STATUSES: Final[tuple[JournalStatus, ...]] = get_args(JournalStatus)
TERMINAL: Final[frozenset[str]] = frozenset(
    {"refused", "completed", "failed", "cancelled", "timeout", "deleted"}
)
"""Statuses that never change again on their own."""
LOST_WITH_KERNEL: Final = "lost with the kernel (sandbox, nothing charged)"
"""What a row of an embedded sandbox that ended with its process says."""


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One submission as the journal knows it."""

    request_key: str
    """wavenb's own key for the submission, made before the request is sent (uuid4 hex)."""
    prediction_id: str | None
    """The provider's task id; ``None`` until the submit was answered (or if it never was)."""
    status: JournalStatus
    """The stored status (the provider's word, or submitting / unknown / refused)."""
    model: str
    """The model path, e.g. ``runwayml/gen4-turbo``."""
    prompt: str
    """The prompt as sent."""
    aspect_ratio: str | None
    """The ratio asked for; ``None`` means "match the source"."""
    image_sha256: str | None
    """SHA-256 of the image bytes sent, for local images; ``None`` for URLs."""
    image_source: str
    """Where the image came from: a path, a URL, ``"bytes"`` or ``"PIL image"``."""
    request_hash: str
    """See ``request_hash()``: equal for requests that would make the same video."""
    backend: Literal["sandbox", "api"]
    """``"sandbox"`` for wavenb's local sandbox, ``"api"`` for the provider."""
    base_url: str
    """The server the request went to."""
    cost: float
    """US dollars this submission cost (or may have cost): 0 on the sandbox and when refused."""
    output_url: str | None
    """The first output URL (temporary on the real API)."""
    path: str | None
    """The downloaded file, once downloaded."""
    sha256: str | None
    """SHA-256 of the downloaded file."""
    size: int | None
    """Size of the downloaded file in bytes."""
    error: str | None
    """Why it was refused, failed, or is unknown (redacted)."""
    inference_ms: int | None
    """Milliseconds the model ran, as the provider reported."""
    submitted_at: datetime
    """When the row was written: the budget was reserved then, before any upload (UTC)."""
    accepted_at: datetime | None
    """When the provider's answer with the id came back."""
    finished_at: datetime | None
    """When wavenb saw the end (a terminal status, or a refusal)."""
    downloaded_at: datetime | None
    """When the file was saved."""
    updated_at: datetime
    """When the row last changed."""
    sent_at: datetime | None = None
    """When the paid request went out; ``None`` if it never did (nothing can be charged)."""
    image_url: str | None = None
    """The image URL the submit carried (after upload): how the account's history finds it."""
    variant: str | None = None
    """Set when several videos of the same request are wanted on purpose (a comparison's
    repeats): part of ``request_hash``."""

    @property
    def terminal(self) -> bool:
        """Whether the submission has ended: refused, or a terminal task status."""
        return self.status in TERMINAL

    @property
    def needs_download(self) -> bool:
        """Whether it completed but no good local file exists (never saved, removed, or cut).

        Looks at the file system: the file must exist and have the recorded size.
        """
        return self.status == "completed" and not file_ok(self.path, self.size)

    @property
    def resumable(self) -> bool:
        """Whether the provider took it and something is left to do: wait, or download."""
        return self.prediction_id is not None and (not self.terminal or self.needs_download)

    @property
    def embedded(self) -> bool:
        """Whether the in-process sandbox made it (it ends with the kernel that ran it)."""
        return self.base_url == SANDBOX_BASE_URL

    @property
    def phase(self) -> Phase:
        """Where the submission is, in the vocabulary every view uses."""
        return phase_of(self)

    def as_dict(self) -> dict[str, object]:
        """The fields as plain values (times as ISO-8601 text), ready for JSON or a table."""
        values = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
        }
        values["phase"] = self.phase.value
        return values


def phase_of(row: JournalRow) -> Phase:  # noqa: PLR0911  (one return per stored status)
    """The phase a stored row stands for (the file may also be checked on disk)."""
    status = row.status
    if status in ("submitting", "unknown", "refused"):
        return Phase(status)
    if status in ("created", "pending"):
        return Phase.QUEUED
    if status == "processing":
        return Phase.PROCESSING
    if status == "completed":
        if file_ok(row.path, row.size):
            return Phase.DOWNLOADED
        return Phase.GONE if row.error else Phase.COMPLETED
    if status == "deleted":
        return Phase.GONE
    return Phase.FAILED


def request_hash(
    *,
    model: str,
    image_sha256: str | None,
    image_source: str,
    prompt: str,
    aspect_ratio: str | None,
    base_url: str,
    variant: str | None = None,
) -> str:
    """A stable SHA-256 (hex) of what makes a video: equal hashes mean the same request.

    The image counts by its bytes' hash when local (so a file moved or renamed still matches)
    and by its URL otherwise. ``variant`` separates videos wanted on purpose from the same
    request (a comparison's repeats); without one the hash is the same as version 1's. The hash
    is part of the file format: changing how it is computed would stop old rows from being
    reused, so the input carries a version number.
    """
    identity: dict[str, object] = {
        "v": 1,
        "model": model,
        "image": f"sha256:{image_sha256}" if image_sha256 is not None else image_source,
        "prompt": prompt,
        "aspect_ratio": aspect_ratio,
        "base_url": base_url.rstrip("/"),
    }
    if variant is not None:
        identity["variant"] = variant
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """The SHA-256 (hex) and size in bytes of a file, read in chunks (videos can be large)."""
    digest, size = hashlib.sha256(), 0
    with Path(path).open("rb") as file:
        while block := file.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def file_ok(path: str | None, size: int | None) -> bool:
    """Whether ``path`` exists with the recorded size."""
    if path is None:
        return False
    try:
        return Path(path).stat().st_size == size
    except OSError:
        return False


# -- presenting ----------------------------------------------------------------------------


def format_table(rows: Sequence[JournalRow], *, width: int = 100) -> str:
    """A plain-text table of rows for ``wavenb history``: time, id, phase, ratio, cost, prompt.

    Times are local; ids are shortened to 12 characters (``~`` and the request key when the
    provider gave no id); the prompt fills what is left of ``width``. The last line is the total.
    """
    head = ("submitted (local)", "id", "phase", "ratio", "cost", "prompt")
    body = [
        (
            row.submitted_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            row.prediction_id[:12] if row.prediction_id else "~" + row.request_key[:11],
            row.phase.value,
            row.aspect_ratio or "auto",
            f"${row.cost:.2f}",
            " ".join(row.prompt.split()),
        )
        for row in rows
    ]
    if not body:
        return "no submissions in the journal"
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head) - 1)]
    room = max(10, width - sum(widths) - 2 * len(widths))
    lines = []
    for line in (head, *body):
        cells = [cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)]
        prompt = line[-1] if len(line[-1]) <= room else line[-1][: room - 1] + "…"
        lines.append("  ".join([*cells, prompt]).rstrip())
    return "\n".join(lines)


def to_pandas(rows: Sequence[JournalRow]) -> Any:  # noqa: ANN401  (pandas is optional: no type to name)
    """A ``pandas.DataFrame`` of rows, one column per field plus ``phase``, times as UTC.

    Raises:
        ImportError: pandas is not installed (``pip install 'wavenb[pandas]'``).
    """
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        raise ImportError(
            "to_pandas needs pandas, which is missing: pip install 'wavenb[pandas]'"
        ) from None
    columns = [*JournalRow.__slots__, "phase"]
    frame = pandas.DataFrame([row.as_dict() for row in rows], columns=columns)
    for column in ("submitted_at", "accepted_at", "finished_at", "downloaded_at", "updated_at",
                   "sent_at"):  # fmt: skip
        frame[column] = pandas.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
