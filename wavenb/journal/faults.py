"""Journal faults as errors: a SQLite or file-system failure becomes ``JournalError``.

The message names the file and says what to do (move a damaged file aside, fix permissions,
free disk space), and every caller can rely on nothing having been sent when it is raised
before a submission.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from wavenb.core.errors import JournalError
from wavenb.core.redact import redact

__all__ = ["guarded", "journal_error"]

P = ParamSpec("P")
T = TypeVar("T")


def guarded(method: Callable[P, T]) -> Callable[P, T]:
    """Turn SQLite and file-system failures into ``JournalError`` naming the file."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as error:
            journal: Any = args[0]
            raise journal_error(journal.path, error) from None

    return run


def journal_error(path: Path, error: BaseException) -> JournalError:
    """The ``JournalError`` for a failure on the file at ``path``, saying what to do."""
    text = str(error).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        advice = (
            "is damaged. Move it aside (keep it: it lists your paid videos) and wavenb starts a "
            "new one; nothing was sent"
        )
    elif (
        "readonly" in text
        or "read-only" in text
        or "unable to open" in text
        or isinstance(error, PermissionError)
    ):
        advice = (
            "cannot be written (a read-only file, folder or disk). Fix its permissions or set "
            "WAVENB_HOME to a writable folder; nothing was sent"
        )
    elif "full" in text or getattr(error, "errno", None) == 28:  # noqa: PLR2004  (ENOSPC)
        advice = "cannot be written: the disk is full. Free some space; nothing was sent"
    elif "locked" in text or "busy" in text:
        advice = "is locked by another process for too long. Try again; nothing was sent"
    else:
        advice = f"could not be used ({type(error).__name__}: {redact(str(error))[:200]})"
    return JournalError(f"the journal {path} {advice}.", path=str(path))
