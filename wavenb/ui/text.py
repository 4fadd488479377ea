"""Words the views share: durations, money, short ids and marked word changes (pure).

The front ends put these into the page as text, never as HTML.
"""

from __future__ import annotations

import difflib
from typing import Final

__all__ = ["SHORT_ID", "changed_words", "money", "seconds", "short_id"]

SHORT_ID: Final = 8
"""Characters of a task id shown where space is short (the whole id is in the tooltip)."""


def seconds(value: float) -> str:
    """``"8 s"``, ``"1 min 05 s"``."""
    whole = max(0, round(value))
    if whole < 60:  # noqa: PLR2004
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


def money(value: float) -> str:
    """``"$0.50"``; ``"free"`` for nothing."""
    return "free" if value == 0 else f"${value:.2f}"


def short_id(prediction_id: str | None) -> str:
    """The first characters of a task id, enough to tell runs apart (``""`` without one)."""
    return (prediction_id or "")[:SHORT_ID]


def changed_words(reference: str, text: str) -> list[tuple[str, str]]:
    """``text`` as (kind, words) segments: ``"mark"`` where it differs from ``reference``.

    Words are compared case-insensitively, so only real changes are marked.

    >>> changed_words("camera zooms in", "camera pans left")
    [('same', 'camera'), ('mark', 'pans left')]
    """
    before, after = reference.split(), text.split()
    matcher = difflib.SequenceMatcher(
        a=[w.casefold() for w in before], b=[w.casefold() for w in after], autojunk=False
    )
    parts: list[tuple[str, str]] = []
    for op, _a0, _a1, b0, b1 in matcher.get_opcodes():
        if b1 > b0:
            parts.append(("same" if op == "equal" else "mark", " ".join(after[b0:b1])))
    return parts
