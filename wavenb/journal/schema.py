"""The journal's file format: the table, its migrations, and the columns rows are read from.

The file carries its schema version in ``PRAGMA user_version``. ``MIGRATIONS[i]`` brings a file
from version ``i`` to ``i + 1``: append, never edit (golden tests pin the format).
"""

from __future__ import annotations

from typing import Final

__all__ = ["COLUMNS", "MIGRATIONS", "SCHEMA_VERSION"]

SCHEMA_VERSION: Final = 2

COLUMNS: Final = (
    "request_key, prediction_id, status, model, prompt, aspect_ratio, image_sha256, "
    "image_source, request_hash, backend, base_url, cost, output_url, path, sha256, size, "
    "error, inference_ms, submitted_at, accepted_at, finished_at, downloaded_at, updated_at, "
    "sent_at, image_url, variant"
)
"""The columns a ``JournalRow`` is read from, in its field order."""

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the table.
    (
        """
        CREATE TABLE IF NOT EXISTS jobs (
            id            INTEGER PRIMARY KEY,
            request_key   TEXT NOT NULL UNIQUE,
            prediction_id TEXT,          -- not unique: sandbox ids repeat across restarts
            status        TEXT NOT NULL,
            model         TEXT NOT NULL,
            prompt        TEXT NOT NULL,
            aspect_ratio  TEXT,
            image_sha256  TEXT,
            image_source  TEXT NOT NULL, -- a path, URL, "bytes" or "PIL image"; never the bytes
            request_hash  TEXT NOT NULL,
            backend       TEXT NOT NULL CHECK (backend IN ('sandbox', 'api')),
            base_url      TEXT NOT NULL,
            price         REAL NOT NULL, -- what the caller said one video costs there
            cost          REAL NOT NULL, -- what this row cost: price, or 0 when refused
            output_url    TEXT,
            path          TEXT,
            sha256        TEXT,
            size          INTEGER,
            error         TEXT,
            inference_ms  INTEGER,
            submitted_at  TEXT NOT NULL, -- ISO-8601 UTC, fixed width, so text order is time order
            accepted_at   TEXT,
            finished_at   TEXT,
            downloaded_at TEXT,
            updated_at    TEXT NOT NULL,
            owner         TEXT NOT NULL, -- host:pid that began it, to tell dead submits from live
            seen_gap_ms   INTEGER        -- how late the end may have been seen; see durations()
        )
        """,
        "CREATE INDEX IF NOT EXISTS jobs_prediction_id ON jobs (prediction_id)",
        "CREATE INDEX IF NOT EXISTS jobs_request_hash ON jobs (request_hash)",
        "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
        "CREATE INDEX IF NOT EXISTS jobs_submitted_at ON jobs (submitted_at)",
    ),
    # 1 -> 2: the budget is reserved before the upload, so "written" no longer means "sent";
    # the image URL the submit carried (to find the task in the account's history); a variant
    # for videos wanted on purpose from one request; one downloader per task (a claim).
    (
        "ALTER TABLE jobs ADD COLUMN sent_at TEXT",
        "ALTER TABLE jobs ADD COLUMN image_url TEXT",
        "ALTER TABLE jobs ADD COLUMN variant TEXT",
        "ALTER TABLE jobs ADD COLUMN claim TEXT",  # owner:token of the process downloading it
        "ALTER TABLE jobs ADD COLUMN claim_at TEXT",
        # Rows written by version 1 were written just before sending: count them as sent.
        "UPDATE jobs SET sent_at = submitted_at WHERE sent_at IS NULL",
        "CREATE INDEX IF NOT EXISTS jobs_server_task ON jobs (base_url, prediction_id)",
    ),
)
