"""The cell cache: what a comparison remembers of a cell that the journal does not hold.

The journal is the truth about every cell's task (status, output, file, timings, cost): a cell
finds its task there by its request hash (``wavenb.ab.design.request_hash_of``). The cell
cache keeps the rest, per ``Cell.key``, in one small JSON file per key in
``<journal folder>/compare-cells/``: the rating and note, the wall time, when processing was
first seen (both about one task, named by its prediction id), and the video's SHA-256 (the key
of its cached metrics, ``<journal folder>/metrics/<sha256>.json``).

One file per key needs no locking: writes are atomic renames, and two kernels writing one key
write the same facts. Unreadable files count as missing: the cache only ever keeps judgements
and timings, never money.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from wavenb.ab.cells import Rating, iso, parse_time, rating_of

__all__ = ["CacheRecord", "CellCache", "write_atomic"]

CACHE_VERSION: Final = 2
"""Version 1 records (a prediction id per cell key, from before variants) still read."""


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """What the cell cache keeps for one cell key."""

    prediction_id: str | None = None
    """The task ``started_at`` and ``wall_s`` were measured on."""
    started_at: datetime | None = None
    wall_s: float | None = None
    rating: Rating | None = None
    note: str = ""
    sha256: str | None = None
    """The video's SHA-256: where its metrics are cached."""


class CellCache:
    """``cell key -> CacheRecord``: one JSON file per key in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> CacheRecord | None:
        """The record of a cell key, or ``None`` (missing or unreadable)."""
        try:
            data = json.loads((self.folder / f"{key}.json").read_text("utf-8"))
            wall = data.get("wall_s")
            return CacheRecord(
                prediction_id=_text(data.get("prediction_id")),
                started_at=parse_time(data.get("started_at")),
                wall_s=None if wall is None else float(wall),
                rating=rating_of(data.get("rating")),
                note=str(data.get("note") or ""),
                sha256=_text(data.get("sha256")),
            )
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    def put(self, key: str, record: CacheRecord) -> None:
        """Write a cell's record (whole or not at all).

        Raises:
            OSError: the folder cannot be written.
        """
        data = {
            "v": CACHE_VERSION,
            "prediction_id": record.prediction_id,
            "started_at": iso(record.started_at),
            "wall_s": record.wall_s,
            "rating": record.rating,
            "note": record.note,
            "sha256": record.sha256,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / f"{key}.json", json.dumps(data, indent=1))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, "utf-8")
    partial.replace(path)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
