"""The rescue file: task ids that could not be written to the journal, kept anyway.

If the provider accepted a submission but its journal row cannot be updated (the disk filled up,
the file turned read-only mid-run), the task id must not live only in a log line: it is appended
here, one JSON line per event, beside the journal (``journal.sqlite3.rescue.jsonl``), flushed and
fsynced, and also printed by the caller. The next time the journal opens writable it applies the
lines (the rows get their ids back) and renames the file ``*.applied-<time>``.

Appending a short line to a file can succeed where a SQLite transaction cannot (no journal
pages, no locks); if even this fails, the id is still in the exception and on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["append", "pending", "rescue_path", "retire"]


def rescue_path(journal: Path) -> Path:
    """Where the rescue lines of a journal file go."""
    return journal.with_name(journal.name + ".rescue.jsonl")


def append(journal: Path, record: Mapping[str, object]) -> Path:
    """Append one record (plain JSON values) and make it durable; returns the file's path.

    Raises:
        OSError: even this could not be written.
    """
    path = rescue_path(journal)
    line = json.dumps({**record, "rescued_at": datetime.now(UTC).isoformat()}) + "\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    descriptor = os.open(path, flags, 0o600)
    try:
        os.write(descriptor, line.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


def pending(journal: Path) -> list[dict[str, object]]:
    """The records waiting to be applied (unreadable lines are skipped, never fatal)."""
    path = rescue_path(journal)
    try:
        text = path.read_text("utf-8")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def retire(journal: Path) -> None:
    """Rename the applied rescue file so it is not applied twice (kept for the record)."""
    path = rescue_path(journal)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    with contextlib.suppress(OSError):
        path.rename(path.with_name(f"{path.name}.applied-{stamp}"))
