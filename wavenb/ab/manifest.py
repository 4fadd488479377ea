"""A saved comparison: the folder ``Comparison.save`` writes and ``Comparison.load`` reads.

The folder holds everything needed to look at the comparison again with no kernel and no API
call, and to zip and share it::

    manifest.json       the design, every cell (row, metrics, badges), votes, summary, ranking
    report.html         opens in any browser (``wavenb.ab.report``)
    videos/             the MP4s, ``01-A-auto-0.mp4`` ...
    images/             the source images
    previews/           an animated WebP per video (the report's posters)
    contact-sheet.png   one row per prompt, a few frames of each video

Manifest format ``wavenb.comparison`` version 2 stores statuses as ``wavenb.Phase`` words and
adds metrics, badges, previews, the contact sheet, the summary text and the ranking. Version 1
manifests still load: ``completed`` becomes ``downloaded``, ``cancelled`` becomes ``stopped``,
``downloading`` becomes ``completed``, and left/right/tie votes become winner/loser votes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from wavenb.ab.cache import write_atomic
from wavenb.ab.cells import CellMetrics, CellRun, iso, parse_time, rating_of
from wavenb.ab.design import Cell, Design, ImageFactor, PromptFactor
from wavenb.ab.judging import Summary, Vote
from wavenb.ab.report import write_report
from wavenb.ab.sharing import export_previews, export_sheet, slug
from wavenb.core import protocol
from wavenb.core.errors import InputError
from wavenb.core.images import PreparedImage
from wavenb.core.phase import Phase
from wavenb.core.types import MODEL_ID

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "Saved", "read", "write"]

MANIFEST: Final = "manifest.json"
FORMAT: Final = "wavenb.comparison"
FORMAT_VERSION: Final = 2
_V1_STATUS: Final = {
    "completed": Phase.DOWNLOADED,
    "failed": Phase.FAILED,
    "cancelled": Phase.STOPPED,
    "downloading": Phase.COMPLETED,
}
"""Version 1's words; its other (running) words load as ``stopped``, as version 1 did."""
INTERVAL: Final = "95 % interval of the Bradley-Terry score (Laplace approximation)"


@dataclass(frozen=True, slots=True)
class Saved:
    """What a manifest holds, ready to rebuild a ``Comparison`` from."""

    design: Design
    runs: list[CellRun]
    votes: list[Vote]
    backend: str
    base_url: str
    price: float
    max_cost: float | None
    concurrency: int


def write(
    target: Path,
    *,
    design: Design,
    runs: Sequence[CellRun],
    votes: Sequence[Vote],
    summary: Summary,
    backend: str,
    base_url: str,
    price: float,
    max_cost: float | None,
    concurrency: int,
    notes: Sequence[str],
) -> dict[str, Any]:
    """Write the folder (videos, images, previews, sheet, manifest, report); return the manifest.

    Raises:
        OSError: the folder cannot be written.
    """
    (target / "videos").mkdir(parents=True, exist_ok=True)
    names = [f"{index:02d}-{slug(run.id)}" for index, run in enumerate(runs, start=1)]
    previews, preview_note = export_previews(runs, names, target)
    sheet, sheet_note = export_sheet(design, runs, target)
    rows = []
    for run, name in zip(runs, names, strict=True):
        row = run.row()
        row["path"] = _keep_video(run, target, f"videos/{name}.mp4")
        row["preview"] = previews.get(run.id)
        row["sha256"] = run.sha256
        row["badge"] = run.metrics.badge if run.metrics is not None else None
        rows.append(row)
    ranking = summary.ranking
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "saved_at": iso(datetime.now(UTC)),
        "model": MODEL_ID,
        "backend": backend,
        "base_url": base_url,
        "price_per_video": price,
        "max_cost": max_cost,
        "concurrency": concurrency,
        "images": [_image_entry(image, target) for image in design.images],
        "prompts": [{"id": p.id, "text": p.text} for p in design.prompts],
        "aspect_ratios": list(design.aspect_ratios),
        "repeats": design.repeats,
        "cells": rows,
        "votes": [
            {"winner": v.winner, "loser": v.loser, "tie": v.tie, "at": iso(v.at)} for v in votes
        ],
        "summary": {
            "text": summary.text,
            "prompts": [dataclasses.asdict(s) for s in summary.prompts],
        },
        "ranking": None
        if ranking is None
        else {
            "method": ranking.method,
            "interval": INTERVAL if ranking.method == "bayes" else "bootstrap percentiles",
            "votes": ranking.votes,
            "prompts": [
                {"rank": place, **dataclasses.asdict(entry)}
                for place, entry in enumerate(ranking.prompts, start=1)
            ],
        },
        "contact_sheet": sheet,
        "notes": [n for n in (*notes, preview_note, sheet_note) if n],
    }
    write_atomic(target / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    write_report(target, manifest)
    return manifest


def read(folder: Path) -> Saved:
    """Read a saved comparison's manifest (version 1 or 2) and its images.

    Raises:
        InputError: no manifest, not JSON, not a comparison, or from a newer wavenb.
    """
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"no {MANIFEST} in {folder}: not a saved comparison") from None
    except ValueError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path} is not a wavenb comparison manifest")
    version = int(data.get("version", 1))
    if version > FORMAT_VERSION:
        raise InputError(f"{path} was saved by a newer wavenb: upgrade wavenb")
    try:
        return _saved(data, folder, version)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path} is damaged ({type(error).__name__}: {error})") from None


def _saved(data: Mapping[str, Any], folder: Path, version: int) -> Saved:
    images = tuple(_image_from_entry(entry, folder) for entry in data["images"])
    prompts = tuple(PromptFactor(p["id"], p["text"]) for p in data["prompts"])
    ratios = tuple(protocol.validate_aspect_ratio(r) for r in data["aspect_ratios"])
    design = Design(images, prompts, ratios, int(data["repeats"]))
    runs = [_run_from_row(row, folder, version) for row in data["cells"]]
    votes = [_vote(v, version) for v in data.get("votes", [])]
    return Saved(
        design, runs, votes, backend=data["backend"], base_url=data["base_url"],
        price=float(data["price_per_video"]), max_cost=data.get("max_cost"),
        concurrency=int(data.get("concurrency") or 4),
    )  # fmt: skip


def _vote(entry: Mapping[str, Any], version: int) -> Vote:
    at = parse_time(entry.get("at")) or datetime.now(UTC)
    if version >= 2:  # noqa: PLR2004
        return Vote(entry["winner"], entry["loser"], at, tie=bool(entry.get("tie")))
    left, right, winner = entry["left"], entry["right"], entry["winner"]
    if winner == "right":
        return Vote(right, left, at)
    return Vote(left, right, at, tie=winner == "tie")


def _status(word: str, version: int) -> Phase:
    if version < 2:  # noqa: PLR2004
        return _V1_STATUS.get(word, Phase.STOPPED)
    phase = Phase(word)
    # A comparison saved mid-run: nothing waits for those cells any more.
    return Phase.STOPPED if phase.active and phase is not Phase.COMPLETED else phase


def _run_from_row(row: Mapping[str, Any], folder: Path, version: int) -> CellRun:
    cell = Cell(
        row["cell_id"], row["image"], row["prompt_id"], row["prompt"],
        protocol.validate_aspect_ratio(row["aspect_ratio"]), int(row["repeat"]), row["cell_key"],
    )  # fmt: skip
    path = folder / row["path"] if row.get("path") else None
    status = _status(row["status"], version)
    error = row.get("error")
    if status is Phase.DOWNLOADED and (path is None or not path.exists()):
        status, error = Phase.FAILED, error or "the video file is missing"
    preview = folder / row["preview"] if row.get("preview") else None
    return CellRun(
        cell,
        status=status,
        prediction_id=row.get("prediction_id"),
        submitted_at=parse_time(row.get("submitted_at")),
        started_at=parse_time(row.get("started_at")),
        finished_at=parse_time(row.get("finished_at")),
        inference_ms=row.get("inference_ms"),
        wall_s=row.get("wall_s"),
        cost=float(row.get("cost") or 0.0),
        output_url=row.get("output_url"),
        path=path,
        error=error,
        reused=bool(row.get("reused")),
        rating=rating_of(row.get("rating")),
        note=str(row.get("note") or ""),
        sha256=row.get("sha256"),
        metrics=_metrics(row),
        preview=preview if preview is not None and preview.exists() else None,
    )


def _metrics(row: Mapping[str, Any]) -> CellMetrics | None:
    if row.get("camera_move") is None or row.get("badge") is None:
        return None
    try:
        return CellMetrics.from_dict(dict(row))
    except (KeyError, TypeError, ValueError):
        return None  # a damaged record: measured again when the comparison runs


def _image_from_entry(entry: Mapping[str, Any], folder: Path) -> ImageFactor:
    prepared = None
    file = entry.get("file")
    if file and (folder / file).exists():
        data = (folder / file).read_bytes()
        prepared = PreparedImage(data=data, filename=Path(file).name)
    return ImageFactor(
        entry["id"], entry["source"], entry.get("sha256"), url=entry.get("url"),
        width=entry.get("width"), height=entry.get("height"), prepared=prepared,
    )  # fmt: skip


def _image_entry(image: ImageFactor, folder: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": image.id, "source": image.source, "sha256": image.sha256, "url": image.url,
        "width": image.width, "height": image.height, "file": None,
    }  # fmt: skip
    if image.prepared is not None and image.prepared.data is not None:
        suffix = Path(image.prepared.filename).suffix or ".img"
        relative = f"images/{slug(image.id)}{suffix}"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(image.prepared.data)
        entry["file"] = relative
    return entry


def _keep_video(run: CellRun, folder: Path, relative: str) -> str | None:
    """Copy a cell's MP4 into the saved folder; return its relative path (``None``: no video)."""
    if run.path is None or not run.path.exists():
        return None
    target = folder / relative
    if not (target.exists() and target.resolve() == run.path.resolve()):
        shutil.copyfile(run.path, target)
    return relative
