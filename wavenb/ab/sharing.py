"""The pictures a saved comparison shares: one contact sheet, and an animated preview per cell.

``export_sheet`` draws ``contact-sheet.png`` (one row per prompt, a few frames of each of its
videos; ``wavenb.ab.sheets.contact_sheet``) and ``export_previews`` writes
``previews/<n>-<cell>.webp`` (a small looping WebP per video; the report uses them as the
videos' posters and anyone can drop them in a chat or a slide). Both need numpy and PyAV;
without them, or for a video that cannot be decoded, they return a note instead of failing the
save.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from wavenb.ab.cells import CellRun
from wavenb.ab.design import Design

__all__ = ["CONTACT_SHEET", "PREVIEWS", "export_previews", "export_sheet", "slug"]

logger = logging.getLogger("wavenb")

CONTACT_SHEET: Final = "contact-sheet.png"
PREVIEWS: Final = "previews"
NO_PICTURES: Final = (
    "no contact sheet or previews: they need numpy and PyAV (pip install 'wavenb[sandbox]')"
)


def export_sheet(
    design: Design, runs: Sequence[CellRun], folder: Path
) -> tuple[str | None, str | None]:
    """Write the contact sheet into ``folder``; return (its relative path, a note) — one is set.

    A row per prompt (several images: per image and prompt), every video of it in grid order,
    four frames each (two, then one, when that many do not fit readably).
    """
    try:
        from wavenb.ab.sheets import contact_sheet  # noqa: PLC0415  (numpy, PyAV)
    except ImportError:
        return None, NO_PICTURES
    rows = []
    several = len(design.images) > 1
    for image in design.images:
        for prompt in design.prompts:
            label = f"{image.id} · " if several else ""
            videos = [
                run.path if run.done else None
                for run in runs
                if run.cell.prompt_id == prompt.id and run.cell.image == image.id
            ]
            rows.append((f"{label}{prompt.id}: {prompt.text}", videos))
    if not any(path for _label, videos in rows for path in videos):
        return None, "no contact sheet: no cell has a video yet"
    for frames in (4, 2, 1):
        try:
            png = contact_sheet(rows, frames)
        except ValueError as error:  # too many videos to fit readably: fewer frames each
            reason = str(error)
            continue
        except Exception as error:  # noqa: BLE001  (an undecodable video must not lose the save)
            logger.warning("wavenb: no contact sheet: %s", error)
            return None, f"no contact sheet: {error}"
        (folder / CONTACT_SHEET).write_bytes(png)
        return CONTACT_SHEET, None
    return None, f"no contact sheet: {reason}"


def export_previews(
    runs: Sequence[CellRun], names: Sequence[str], folder: Path
) -> tuple[dict[str, str], str | None]:
    """Write an animated WebP per downloaded cell; return ``{cell id: relative path}`` and a note.

    ``names`` are the files' stems, one per run (as the videos are named). A cell that already
    has a preview (a loaded comparison) has it copied, not drawn again.
    """
    try:
        from wavenb.ab.sheets import animated_preview  # noqa: PLC0415  (numpy, PyAV)
    except ImportError:
        return {}, NO_PICTURES
    made: dict[str, str] = {}
    failed: list[str] = []
    for run, name in zip(runs, names, strict=True):
        if not run.done or run.path is None:
            continue
        relative = f"{PREVIEWS}/{name}.webp"
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if run.preview is not None and run.preview.exists():
                if run.preview.resolve() != target.resolve():
                    shutil.copyfile(run.preview, target)
            else:
                target.write_bytes(animated_preview(run.path))
        except Exception as error:  # noqa: BLE001  (one undecodable video: no preview for it)
            logger.warning("wavenb: no preview for %s: %s", run.id, error)
            failed.append(run.id)
            continue
        made[run.id] = relative
    note = f"no preview for {', '.join(failed)} (not decodable)" if failed else None
    return made, note


def slug(text: str) -> str:
    """A file-name-safe form of a cell id: ``"A/16:9/0"`` -> ``"A-16-9-0"``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "cell"
