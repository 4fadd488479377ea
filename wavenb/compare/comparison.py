"""Prompt A/B comparison: the same image through several prompts (and ratios), side by side.

``compare()`` builds a *design* (images x prompts x aspect ratios x repeats), one *cell* per
combination, so that each video differs from its neighbours in one factor only. Then:

1. **Plan** (no request): each cell is keyed (``cell_key``) and looked up in the *cell cache*
   and the journal; cells done before are reused, cells still running are resumed, the rest
   are new. The cost (new cells x ``client.price_per_video``) is known now; over ``max_cost``
   the comparison refuses to exist (``BudgetExceeded``).
2. **Run** on the running event loop (the kernel's, in Jupyter): each image is uploaded once
   and its URL reused by every cell; at most ``concurrency`` cells are at the provider at once
   (``Throttle``); a 429 that outlasts the client's own retries halves that limit and pauses
   the batch for ``Retry-After``, then the cell goes again. One cell failing never stops the
   others; ``retry(cell_id)`` runs it again alone. Videos are downloaded as soon as they end.
3. **Judge and keep**: ratings and notes per cell, blind pairwise votes, ``summary()``,
   ``rows`` / ``to_pandas()``, ``save()`` (manifest, MP4s, HTML report) and ``load()``.

The cell cache — why it exists: the journal's ``request_hash`` is (model, image, prompt,
ratio, server), so two repeats of one cell are "the same request" to it and ``generate``
would collapse them into one video. A comparison asks for *N different* videos of the same
request, so it keys each cell with the repeat index too, and keeps ``cell key -> prediction
id`` (plus what the journal does not hold: when processing was first seen, the wall time,
the rating and note) in one small JSON file per key, ``compare-cells/<key>.json`` beside the
journal. Everything else about the task (status, output, file, timings, cost) is read from
the journal row of that prediction id, so the two never disagree. One file per key needs no
locking: writes are atomic renames and two kernels writing one key write the same fact.
Repeat 0 of a cell also reuses any finished journal row of the same request, e.g. a video
made earlier with ``generate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations, product
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar, cast

from wavenb.core import protocol
from wavenb.core.errors import (
    BudgetExceeded,
    InputError,
    NotFoundError,
    PredictionFailed,
    RateLimitError,
    WavenbError,
)
from wavenb.core.images import ImageInput, PreparedImage, prepare_image
from wavenb.core.models import Prediction, Status
from wavenb.core.types import MODEL_ID, AspectRatio
from wavenb.journal.store import JournalRow, request_hash
from wavenb.ui.tasks import spawn

if TYPE_CHECKING:
    from wavenb.client.async_client import AsyncClient, Update
    from wavenb.compare.widget import CompareGrid, Pairwise

__all__ = [
    "ROW_FIELDS",
    "Cell",
    "CellCache",
    "CellRun",
    "CellStatus",
    "Comparison",
    "Design",
    "Estimate",
    "ImageFactor",
    "PromptFactor",
    "PromptSummary",
    "Rating",
    "Throttle",
    "Vote",
    "blind_pairs",
    "build_design",
    "cell_key",
    "compare",
    "summarize",
]

logger = logging.getLogger("wavenb")

T = TypeVar("T")

CellStatus = Literal[
    "waiting", "submitting", "queued", "processing", "downloading", "completed", "failed",
    "cancelled",
]  # fmt: skip
"""Where a cell is: ``waiting`` (for a slot, or for the run to start), then the task's own
phases, then one of ``completed`` / ``failed`` / ``cancelled`` (wavenb stopped waiting)."""
ACTIVE: Final[frozenset[str]] = frozenset({"submitting", "queued", "processing", "downloading"})
_ENDED: Final = ("completed", "failed", "cancelled")
Rating = Literal[-1, 1]
"""👎 is -1, 👍 is +1."""
Winner = Literal["left", "right", "tie"]
ImagesInput: TypeAlias = "ImageInput | Sequence[ImageInput] | Mapping[str, ImageInput]"
PromptsInput: TypeAlias = "Sequence[str] | Mapping[str, str]"

MANIFEST: Final = "manifest.json"
REPORT: Final = "report.html"
FORMAT: Final = "wavenb.comparison"
FORMAT_VERSION: Final = 1
RATE_LIMIT_ROUNDS: Final = 5
"""How often one cell goes back to the queue after a 429 before it fails (retryable)."""
DEFAULT_PAUSE: Final = 10.0
"""Seconds the batch pauses after a 429 that carried no ``Retry-After``."""
MAX_PAUSE: Final = 120.0
TICK: Final = 1.0
"""Seconds between elapsed-time refreshes while cells run."""
_EPSILON: Final = 1e-9

ROW_FIELDS: Final = (
    "cell_id", "image", "prompt_id", "prompt", "aspect_ratio", "repeat", "prediction_id",
    "status", "submitted_at", "started_at", "finished_at", "inference_ms", "wall_s", "cost",
    "output_url", "path", "error", "rating", "note", "reused", "cell_key",
)  # fmt: skip
"""The columns of ``Comparison.rows`` and ``to_pandas()``, in order."""
_TIME_FIELDS: Final = ("submitted_at", "started_at", "finished_at")


# -- the design ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageFactor:
    """One source image of a comparison."""

    id: str
    """Its short name: the dict key given, else the file's stem, else ``image1``…"""
    source: str
    """Where it came from: a path, a URL, ``"bytes"`` or ``"PIL image"``."""
    sha256: str | None
    """SHA-256 of the bytes that are uploaded; ``None`` for URL images (sent as they are)."""
    url: str | None = None
    """The URL, for URL images."""
    width: int | None = None
    height: int | None = None
    prepared: PreparedImage | None = field(default=None, repr=False, compare=False)
    """The checked bytes to upload (local images)."""

    @property
    def identity(self) -> str:
        """What makes two images the same: the bytes' hash, or the URL."""
        return f"sha256:{self.sha256}" if self.sha256 is not None else self.url or self.source


@dataclass(frozen=True, slots=True)
class PromptFactor:
    """One prompt of a comparison."""

    id: str
    """Its short name: the dict key given, else ``A``, ``B``, …"""
    text: str
    """The prompt as sent."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One video of the design: one image, one prompt, one ratio, one repeat."""

    id: str
    """``"<prompt>/<ratio>/<repeat>"`` (``"<image>/…"`` first when there are several images),
    e.g. ``"A/16:9/0"``; ``"auto"`` stands for "match the source" ratio."""
    image: str
    """The image's id."""
    prompt_id: str
    prompt: str
    aspect_ratio: AspectRatio | None
    """``None`` matches the source image."""
    repeat: int
    """0, 1, …: the model takes no seed, so repeats are how variation is seen."""
    key: str
    """``cell_key(...)``: equal keys mean "this very cell, already asked for"."""


@dataclass(frozen=True, slots=True)
class Design:
    """What is compared: every cell is one of images x prompts x ratios x repeats."""

    images: tuple[ImageFactor, ...]
    prompts: tuple[PromptFactor, ...]
    aspect_ratios: tuple[AspectRatio | None, ...]
    repeats: int

    def cells(self, *, model: str, base_url: str) -> tuple[Cell, ...]:
        """The cross product, image by image, prompt by prompt, then ratio, then repeat."""
        several = len(self.images) > 1
        cells = []
        for image, prompt, ratio, repeat in product(
            self.images, self.prompts, self.aspect_ratios, range(self.repeats)
        ):
            parts = [image.id] if several else []
            cell_id = "/".join([*parts, prompt.id, ratio or "auto", str(repeat)])
            key = cell_key(
                model=model,
                image=image.identity,
                prompt=prompt.text,
                aspect_ratio=ratio,
                repeat=repeat,
                base_url=base_url,
            )
            cells.append(Cell(cell_id, image.id, prompt.id, prompt.text, ratio, repeat, key))
        if len({cell.id for cell in cells}) != len(cells):
            raise InputError("image and prompt names must not contain '/' (cell ids collide)")
        return tuple(cells)

    @property
    def columns(self) -> tuple[tuple[AspectRatio | None, int], ...]:
        """The grid's columns: (ratio, repeat) pairs."""
        return tuple(product(self.aspect_ratios, range(self.repeats)))


def cell_key(
    *,
    model: str,
    image: str,
    prompt: str,
    aspect_ratio: str | None,
    repeat: int,
    base_url: str,
) -> str:
    """A stable SHA-256 (hex) naming one cell: the request *and* which repeat of it it is.

    ``image`` is ``ImageFactor.identity`` (the bytes' hash, so a renamed file still matches).
    The server is part of it: a sandbox render must never stand in for a Runway video.
    """
    identity = {
        "v": 1,
        "kind": "compare-cell",
        "model": model,
        "image": image,
        "prompt": prompt,
        "aspect_ratio": aspect_ratio,
        "repeat": repeat,
        "base_url": base_url.rstrip("/"),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_design(
    image: ImagesInput,
    prompts: PromptsInput,
    aspect_ratios: Iterable[AspectRatio | str | None] | None = None,
    repeats: int = 1,
) -> Design:
    """Check and name the factors; read and check local images (no request is made).

    Raises:
        InputError: no prompt, an invalid prompt or ratio, a duplicate, ``repeats`` < 1, or
            an image the model cannot take.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InputError(f"repeats must be a whole number of 1 or more; got {repeats!r}")
    return Design(
        images=_images(image),
        prompts=_prompts(prompts),
        aspect_ratios=_ratios(aspect_ratios),
        repeats=repeats,
    )


def _prompts(prompts: PromptsInput) -> tuple[PromptFactor, ...]:
    if isinstance(prompts, str):
        raise InputError("prompts must be a list or a dict of prompts, not one string")
    if isinstance(prompts, Mapping):
        named = [(_name(key, "prompt"), text) for key, text in prompts.items()]
    else:
        named = [(_letter(i), text) for i, text in enumerate(prompts)]
    if not named:
        raise InputError("give at least one prompt")
    factors = tuple(PromptFactor(name, protocol.validate_prompt(text)) for name, text in named)
    _unique([f.id for f in factors], "prompt names")
    seen: dict[str, str] = {}
    for factor in factors:
        if factor.text in seen:
            raise InputError(f"prompts {seen[factor.text]} and {factor.id} are the same text")
        seen[factor.text] = factor.id
    return factors


def _ratios(ratios: Iterable[AspectRatio | str | None] | None) -> tuple[AspectRatio | None, ...]:
    if isinstance(ratios, str):
        ratios = [ratios]
    checked = tuple(protocol.validate_aspect_ratio(r) for r in (ratios or [None]))
    if not checked:
        raise InputError("aspect_ratios is empty: leave it out to match the source image")
    _unique([r or "auto" for r in checked], "aspect ratios")
    return checked


def _images(image: ImagesInput) -> tuple[ImageFactor, ...]:
    if isinstance(image, Mapping):
        named = [(_name(key, "image"), value) for key, value in image.items()]
    elif isinstance(image, list | tuple):
        items = list(image)
        stems = [_stem(item) for item in items]
        if all(stems) and len(set(stems)) == len(stems):
            named = [(str(stem), item) for stem, item in zip(stems, items, strict=True)]
        else:
            named = [(f"image{i + 1}", item) for i, item in enumerate(items)]
    else:
        single = cast("ImageInput", image)
        named = [(_stem(single) or "image", single)]
    if not named:
        raise InputError("give at least one image")
    factors = tuple(_image_factor(name, value) for name, value in named)
    _unique([f.id for f in factors], "image names")
    _unique([f.identity for f in factors], "images (two are the same picture)")
    return factors


def _image_factor(name: str, image: ImageInput) -> ImageFactor:
    prepared = prepare_image(image)
    if prepared.url is not None:
        return ImageFactor(name, prepared.url, None, url=prepared.url)
    assert prepared.data is not None  # noqa: S101  (prepare_image sets url or data)
    digest = hashlib.sha256(prepared.data).hexdigest()
    return ImageFactor(
        name, _source(image), digest, width=prepared.width, height=prepared.height,
        prepared=prepared,
    )  # fmt: skip


def _source(image: ImageInput) -> str:
    if isinstance(image, str | os.PathLike):
        text = str(image)
        return text if text.startswith(("http://", "https://", "data:")) else str(Path(text))
    return "bytes" if isinstance(image, bytes | bytearray | memoryview) else "PIL image"


def _stem(image: object) -> str | None:
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return Path(image.split("?", 1)[0]).stem or None
    if isinstance(image, str | os.PathLike) and not str(image).startswith("data:"):
        return Path(image).stem or None
    return None


def _name(key: object, what: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"{what} names must be non-empty strings; got {key!r}")
    return key.strip()


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"P{index + 1}"  # noqa: PLR2004


def _unique(values: Sequence[str], what: str) -> None:
    if len(set(values)) != len(values):
        duplicate = next(v for v in values if values.count(v) > 1)
        raise InputError(f"{what} must be distinct; {duplicate!r} appears twice")


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellRun:
    """A cell's state at one moment; each change makes a new ``CellRun``."""

    cell: Cell
    status: CellStatus = "waiting"
    prediction_id: str | None = None
    submitted_at: datetime | None = None
    """When the submit request was about to go out (UTC; the last one, after a 429)."""
    started_at: datetime | None = None
    """When wavenb first saw the task ``processing``; ``None`` if it never did (a fast task
    can go from queued to completed between two checks)."""
    finished_at: datetime | None = None
    """When wavenb saw the task end."""
    inference_ms: int | None = None
    """The provider's ``timings.inference``."""
    wall_s: float | None = None
    """Seconds from submit to the video on disk: what the user waited."""
    cost: float = 0.0
    """US dollars this comparison paid for the cell: 0 when reused, and on the sandbox."""
    output_url: str | None = None
    path: Path | None = None
    """The local MP4, once downloaded."""
    error: str | None = None
    """Why the cell failed, in one sentence."""
    moderation: bool = False
    """True when the failure reads like a content-policy refusal."""
    reused: bool = False
    """True when the video came from an earlier run (cell cache or journal), not paid now."""
    rating: Rating | None = None
    note: str = ""

    @property
    def id(self) -> str:
        """The cell's id."""
        return self.cell.id

    @property
    def active(self) -> bool:
        """Whether wavenb is working on it right now."""
        return self.status in ACTIVE

    @property
    def done(self) -> bool:
        """Whether it has a video."""
        return self.status == "completed"

    def row(self) -> dict[str, Any]:
        """The cell as a plain, JSON-ready dict with the ``ROW_FIELDS`` keys."""
        cell = self.cell
        return {
            "cell_id": cell.id,
            "image": cell.image,
            "prompt_id": cell.prompt_id,
            "prompt": cell.prompt,
            "aspect_ratio": cell.aspect_ratio,
            "repeat": cell.repeat,
            "prediction_id": self.prediction_id,
            "status": self.status,
            "submitted_at": _iso(self.submitted_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "inference_ms": self.inference_ms,
            "wall_s": self.wall_s,
            "cost": self.cost,
            "output_url": self.output_url,
            "path": None if self.path is None else str(self.path),
            "error": self.error,
            "rating": self.rating,
            "note": self.note,
            "reused": self.reused,
            "cell_key": cell.key,
        }


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a comparison will cost, known before anything is sent."""

    cells: int
    new: int
    """Cells to submit (and pay for)."""
    reused: int
    """Cells whose video exists already: free."""
    resumed: int
    """Cells submitted earlier and still running: waited for, not paid again."""
    price: float
    """US dollars per video on this backend (0 on the sandbox)."""

    @property
    def total(self) -> float:
        """US dollars to spend: new cells x price."""
        return self.new * self.price

    def describe(self) -> str:
        """One line, e.g. ``"4 videos: 3 new x $0.50 = $1.50, 1 reused (free)"``."""
        cost = "free (sandbox)" if self.price == 0 else f"{self.new} new x ${self.price:.2f}"
        if self.price:
            cost += f" = ${self.total:.2f}"
        parts = [f"{self.cells} videos: {cost}"]
        if self.reused:
            parts.append(f"{self.reused} reused (free)")
        if self.resumed:
            parts.append(f"{self.resumed} still running from before (already paid)")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Vote:
    """One blind pairwise judgement: two cells shown side by side, and which won."""

    left: str
    """The cell id shown on the left."""
    right: str
    winner: Winner
    at: datetime


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """How one prompt did across its cells."""

    prompt_id: str
    prompt: str
    cells: int
    completed: int
    failed: int
    rated: int
    mean_rating: float | None
    """Mean of the ratings given (👍 +1, 👎 -1); ``None`` with no rating."""
    comparisons: int
    """Pairwise votes this prompt took part in."""
    win_rate: float | None
    """(wins + ties / 2) / comparisons; ``None`` with no vote."""
    mean_inference_s: float | None
    """Mean provider inference time of its videos, in seconds."""
    mean_wall_s: float | None

    def describe(self) -> str:
        """One line for people: rating, win rate, times, failures."""
        parts = [f"{self.completed}/{self.cells} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.mean_rating is not None:
            parts.append(f"rating {self.mean_rating:+.2f} ({self.rated} rated)")
        if self.win_rate is not None:
            parts.append(f"wins {self.win_rate:.0%} of {self.comparisons}")
        if self.mean_inference_s is not None:
            parts.append(f"inference {self.mean_inference_s:.1f} s")
        if self.mean_wall_s is not None:
            parts.append(f"wall {self.mean_wall_s:.1f} s")
        return " · ".join(parts)


def summarize(
    prompts: Sequence[PromptFactor], runs: Sequence[CellRun], votes: Sequence[Vote]
) -> tuple[PromptSummary, ...]:
    """One ``PromptSummary`` per prompt, in the design's order."""
    prompt_of = {run.id: run.cell.prompt_id for run in runs}
    return tuple(
        _summary(
            prompt,
            [run for run in runs if run.cell.prompt_id == prompt.id],
            [vote for vote in votes if prompt.id in (prompt_of[vote.left], prompt_of[vote.right])],
            prompt_of,
        )
        for prompt in prompts
    )


def _summary(
    prompt: PromptFactor, runs: list[CellRun], votes: list[Vote], prompt_of: Mapping[str, str]
) -> PromptSummary:
    ratings = [run.rating for run in runs if run.rating is not None]
    completed = [run for run in runs if run.done]
    score = 0.0
    for vote in votes:
        if vote.winner == "tie":
            score += 0.5
        elif prompt_of[vote.left if vote.winner == "left" else vote.right] == prompt.id:
            score += 1.0
    inference = [run.inference_ms / 1000 for run in completed if run.inference_ms is not None]
    wall = [run.wall_s for run in completed if run.wall_s is not None]
    return PromptSummary(
        prompt_id=prompt.id,
        prompt=prompt.text,
        cells=len(runs),
        completed=len(completed),
        failed=sum(run.status == "failed" for run in runs),
        rated=len(ratings),
        mean_rating=_mean([float(r) for r in ratings]),
        comparisons=len(votes),
        win_rate=score / len(votes) if votes else None,
        mean_inference_s=_mean(inference),
        mean_wall_s=_mean(wall),
    )


def blind_pairs(runs: Sequence[CellRun], seed: int) -> list[tuple[str, str]]:
    """Pairs of finished cells to judge blind, shuffled by ``seed``, each side random.

    Two cells pair when they differ in the prompt only: same image, ratio and repeat.
    """
    done = {(r.cell.image, r.cell.aspect_ratio, r.cell.repeat, r.cell.prompt_id): r.id
            for r in runs if r.done}  # fmt: skip
    groups: dict[tuple[str, AspectRatio | None, int], list[str]] = {}
    for (image, ratio, repeat, _prompt), cell_id in done.items():
        groups.setdefault((image, ratio, repeat), []).append(cell_id)
    pairs = [pair for ids in groups.values() for pair in combinations(ids, 2)]
    rng = random.Random(seed)  # noqa: S311  (an order for people, not a secret)
    rng.shuffle(pairs)
    return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in pairs]  # noqa: PLR2004


# -- the cell cache ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """What the cell cache keeps for one cell key (the journal keeps the rest)."""

    prediction_id: str
    started_at: datetime | None = None
    wall_s: float | None = None
    rating: Rating | None = None
    note: str = ""


class CellCache:
    """``cell key -> CacheRecord``: one JSON file per key in ``folder`` (see module docstring).

    Unreadable files count as missing: the cache only ever saves money, never costs a run.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> CacheRecord | None:
        """The record of a cell key, or ``None``."""
        try:
            data = json.loads((self.folder / f"{key}.json").read_text("utf-8"))
            return CacheRecord(
                prediction_id=str(data["prediction_id"]),
                started_at=_parse_time(data.get("started_at")),
                wall_s=data.get("wall_s"),
                rating=_rating(data.get("rating")),
                note=str(data.get("note") or ""),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, record: CacheRecord) -> None:
        """Write a cell's record (whole or not at all)."""
        data = {
            "v": 1,
            "prediction_id": record.prediction_id,
            "started_at": _iso(record.started_at),
            "wall_s": record.wall_s,
            "rating": record.rating,
            "note": record.note,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.folder / f"{key}.json", json.dumps(data, indent=1))


# -- bounded, adaptive concurrency ---------------------------------------------------------


class Throttle:
    """At most ``limit`` cells at the provider at once; a 429 slows the whole batch down.

    ``slow_down`` halves the limit (at least 1; it stays down for this comparison) and holds
    every new slot until the pause is over. The clock and sleep are injectable for tests.
    """

    def __init__(
        self,
        limit: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"concurrency must be a whole number of 1 or more; got {limit!r}")
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        """The most slots ever held at once."""
        self.slowdowns = 0
        self.resume_at = 0.0
        self._clock = clock
        self._sleep = sleep
        self._condition: asyncio.Condition | None = None
        self._condition_loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots for the body; waits for one (and for any pause)."""
        condition = self._bound()
        while True:
            async with condition:
                await condition.wait_for(lambda: self.in_flight < self.limit)
                pause = self.resume_at - self._clock()
                if pause <= 0:
                    self.in_flight += 1
                    self.peak = max(self.peak, self.in_flight)
                    break
            await self._sleep(pause)
        try:
            yield
        finally:
            async with condition:
                self.in_flight -= 1
                condition.notify_all()

    def slow_down(self, retry_after: float | None) -> float:
        """React to a 429: halve the limit, pause new slots; return the pause in seconds."""
        pause = min(MAX_PAUSE, retry_after if retry_after is not None else DEFAULT_PAUSE)
        self.limit = max(1, self.limit // 2)
        self.resume_at = max(self.resume_at, self._clock() + pause)
        self.slowdowns += 1
        return pause

    def _bound(self) -> asyncio.Condition:
        # asyncio primitives belong to one loop: a comparison waited on a private loop (a
        # script) and later on the kernel's gets a fresh condition there.
        loop = asyncio.get_running_loop()
        if self._condition is None or self._condition_loop is not loop:
            self._condition, self._condition_loop = asyncio.Condition(), loop
        return self._condition


# -- the comparison ------------------------------------------------------------------------

Listener = Callable[[str | None], None]
"""Called with a cell id after that cell changed, or ``None`` for everything (a tick, a
phase change)."""


class Comparison:
    """A prompt A/B comparison: its design, its cells' runs, ratings and votes.

    Made by ``compare()`` (which plans and starts it) or ``Comparison.load()`` (a saved one,
    no API call). Display it in a notebook to see the live grid; ``await`` it (or ``wait()``)
    to have every cell finished.

    Attributes:
        design: the factors. cells: every cell, in grid order. estimate: the cost, as planned.
        max_cost: the most US dollars this comparison may spend (``None``: no limit).
    """

    def __init__(
        self,
        design: Design,
        cells: Sequence[Cell],
        runs: Sequence[CellRun],
        *,
        client: AsyncClient | None,
        backend: Literal["sandbox", "api"],
        base_url: str,
        price: float,
        max_cost: float | None = None,
        concurrency: int = 4,
        votes: Sequence[Vote] = (),
    ) -> None:
        self.design = design
        self.cells: tuple[Cell, ...] = tuple(cells)
        self._runs: dict[str, CellRun] = {run.id: run for run in runs}
        self._client = client
        self.backend: Literal["sandbox", "api"] = backend
        """``"sandbox"`` or ``"api"``: where the videos come from."""
        self.base_url = base_url
        self.max_cost = max_cost
        self.throttle = Throttle(concurrency)
        """The concurrency limit in force (lowered by rate limits) and its peak."""
        self._price = price
        self._planned = _estimate(list(self._runs.values()), price)
        self._votes: list[Vote] = list(votes)
        self._confirmed = False
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy: set[str] = set()
        self._clocks: dict[str, float] = {}
        self._urls: dict[str, str] = {}
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._main: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._widget: CompareGrid | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def client(self) -> AsyncClient:
        """The ``AsyncClient`` cells run through (made on first use for a loaded comparison)."""
        if self._client is None:
            from wavenb.client.async_client import AsyncClient  # noqa: PLC0415  (a loaded comparison may need none)

            self._client = AsyncClient()
        return self._client

    @property
    def price(self) -> float:
        """US dollars per new video here: the client's price, else the one saved.

        A sandbox served on another address is known to be free only once it has answered:
        until then it is priced like the real API.
        """
        return self._price if self._client is None else self._client.price_per_video

    @property
    def estimate(self) -> Estimate:
        """The cost as planned: cells new, reused and resumed, at today's price."""
        return dataclasses.replace(self._planned, price=self.price)

    @property
    def runs(self) -> tuple[CellRun, ...]:
        """Every cell's current state, in grid order."""
        return tuple(self._runs[cell.id] for cell in self.cells)

    def __getitem__(self, cell_id: str) -> CellRun:
        """The current state of one cell, by id (``cmp["A/16:9/0"]``)."""
        try:
            return self._runs[cell_id]
        except KeyError:
            known = ", ".join(cell.id for cell in self.cells[:6])
            raise KeyError(f"no cell {cell_id!r}; cells are {known}…") from None

    @property
    def votes(self) -> tuple[Vote, ...]:
        """The blind pairwise votes so far."""
        return tuple(self._votes)

    @property
    def spent(self) -> float:
        """US dollars this comparison has paid (or may have paid) so far."""
        return sum(run.cost for run in self._runs.values())

    @property
    def needs_confirmation(self) -> bool:
        """Whether the run waits for ``start()`` (the grid's Spend button): it costs money."""
        return not self._confirmed and self.estimate.total > 0

    @property
    def running(self) -> bool:
        """Whether any cell is being worked on."""
        return bool(self._busy) or any(not task.done() for task in self._tasks)

    @property
    def finished(self) -> bool:
        """Whether every cell has ended (completed, failed or cancelled)."""
        return all(run.status in _ENDED for run in self.runs)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per cell (``ROW_FIELDS``), JSON-ready: times are ISO-8601 text."""
        return [run.row() for run in self.runs]

    def to_pandas(self) -> Any:  # noqa: ANN401  (pandas is optional: no type to name)
        """A ``pandas.DataFrame`` of ``rows``, one row per cell, columns ``ROW_FIELDS``.

        Times are UTC timestamps; ``inference_ms`` and ``rating`` are nullable integers
        (``<NA>`` where unknown or unrated).

        Raises:
            ImportError: pandas is missing (``pip install pandas``).
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            raise ImportError(
                "Comparison.to_pandas needs pandas, which is missing: pip install pandas "
                "(or use cmp.rows, plain dicts)"
            ) from None
        frame = pandas.DataFrame(self.rows, columns=list(ROW_FIELDS))
        for column in _TIME_FIELDS:
            frame[column] = pandas.to_datetime(frame[column], utc=True, format="ISO8601")
        for column in ("inference_ms", "rating"):
            frame[column] = frame[column].astype("Int64")  # whole numbers with gaps, not floats
        return frame

    def summary(self) -> tuple[PromptSummary, ...]:
        """Per prompt: cells done and failed, mean rating, pairwise win rate, mean times."""
        return summarize(self.design.prompts, self.runs, self._votes)

    def watch(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Agree to the cost and start (what the grid's Spend button does).

        Inside a running event loop (Jupyter) the cells start at once as tasks; elsewhere
        ``wait()`` runs them. Calling it again does nothing.
        """
        self._confirmed = True
        self._notify(None)
        if _loop_running():
            self._launch()

    def __await__(self) -> Generator[Any, None, Comparison]:
        """``await cmp``: start if needed, then wait until every cell (and retry) has ended."""
        return self._settle().__await__()

    def wait(self, timeout: float | None = None) -> Comparison:
        """Block until every cell has ended, and return the comparison (scripts).

        Without a running event loop the cells run on a private one, here. In Jupyter the
        cells run on the kernel's loop, which a blocking call would stop: write
        ``await cmp`` there (cells can await) instead.

        Raises:
            WavenbError: called on a thread whose event loop is running (Jupyter), or the run
                costs money and was not confirmed with ``start()``.
            TimeoutError: ``timeout`` seconds passed (the cells go on at the provider).
        """
        if _loop_running():
            # Re-entering the running loop (nest-asyncio) breaks ipykernel 7; see _sync.
            raise WavenbError(
                "cmp.wait() would block the event loop the videos run on: in Jupyter write "
                "`await cmp` in the cell instead"
            )
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(asyncio.wait_for(self._settle(), timeout))

    def retry(self, cell_id: str) -> asyncio.Task[CellRun]:
        """Run one failed (or cancelled) cell again, alone; returns its task.

        A new submission: it costs ``price`` on the real API, within ``max_cost``.

        Raises:
            KeyError: no such cell. InputError: the cell is running or has its video.
            BudgetExceeded: it would take spending past ``max_cost``.
            WavenbError: no running event loop (use it in Jupyter, or ``await`` code).
        """
        run = self[cell_id]
        if run.active or cell_id in self._busy:
            raise InputError(f"cell {cell_id} is running already")
        if run.done:
            raise InputError(f"cell {cell_id} has its video; nothing to retry")
        self._check_budget(1)
        self._set(cell_id, status="waiting", error=None, moderation=False)
        return self._spawn(self._work(cell_id, fresh=True))

    def cancel(self) -> None:
        """Stop waiting for every cell; tasks the provider took go on there.

        Their ids stay in the cell cache: running the same comparison again picks them up
        instead of paying again.
        """
        for task in list(self._tasks):
            task.cancel()

    async def _settle(self) -> Comparison:
        if self.needs_confirmation:
            raise WavenbError(
                f"this comparison would spend ${self.estimate.total:.2f} on the real API "
                f"({self.estimate.describe()}); click Spend in the grid or call cmp.start() "
                "first"
            )
        self._launch()
        while pending := {task for task in self._tasks if not task.done()}:
            await asyncio.wait(pending)
        return self

    def _launch(self) -> None:
        """Start the planned cells once (needs a running loop)."""
        if self._main is not None or self.needs_confirmation:
            return
        todo = [run.id for run in self.runs if run.status not in _ENDED]
        self._main = self._spawn(self._run_all(todo))

    async def _run_all(self, cell_ids: Sequence[str]) -> None:
        await asyncio.gather(*(self._work(cell_id, fresh=False) for cell_id in cell_ids))

    async def _work(self, cell_id: str, *, fresh: bool) -> CellRun:
        """Take one cell to a video (or a failure); never raises but for cancellation."""
        self._busy.add(cell_id)
        self._ensure_ticker()
        try:
            run = self._runs[cell_id]
            if not fresh and run.prediction_id is not None:
                done = await self._resume(cell_id, run.prediction_id)
            else:
                done = await self._produce(cell_id)
            await self._download(cell_id, done)
        except asyncio.CancelledError:
            self._set(cell_id, status="cancelled", error="cancelled: wavenb stopped waiting")
            raise
        except Exception as error:  # noqa: BLE001  (one cell must never sink the batch)
            self._fail(cell_id, error)
        finally:
            self._busy.discard(cell_id)
            if not self._busy and self._ticker is not None:
                self._ticker.cancel()
                self._ticker = None
            self._notify(None)
        return self._runs[cell_id]

    async def _produce(self, cell_id: str) -> Prediction:
        """Submit a new task for the cell (within a slot) and wait for it to end."""
        cell = self._runs[cell_id].cell
        image = next(i for i in self.design.images if i.id == cell.image)
        for round_ in range(1, RATE_LIMIT_ROUNDS + 1):
            async with self.throttle.slot():
                url = await self._image_url(image)
                self._clocks.setdefault(cell_id, time.monotonic())
                self._set(cell_id, status="submitting", submitted_at=_now())
                try:
                    prediction = await self.client.submit(url, cell.prompt, cell.aspect_ratio)
                except RateLimitError as error:
                    if round_ == RATE_LIMIT_ROUNDS:
                        raise
                    pause = self.throttle.slow_down(error.retry_after)
                    logger.warning(
                        "wavenb: rate limited; %s waits %.0f s, at most %d at once now",
                        cell_id, pause, self.throttle.limit,
                    )  # fmt: skip
                    self._set(
                        cell_id, status="waiting", error=f"rate limited: retry in {pause:g} s"
                    )
                    continue
                self._accepted(cell_id, prediction)
                return await self._wait(cell_id, prediction)
        raise AssertionError  # pragma: no cover  (the loop returns or raises)

    async def _resume(self, cell_id: str, prediction_id: str) -> Prediction:
        """Wait for a task submitted earlier; it is gone only if the provider forgot it."""
        self._clocks.setdefault(cell_id, time.monotonic())
        try:
            return await self._wait(cell_id, prediction_id)
        except NotFoundError as error:
            if self.price:
                # A new task would cost money nobody agreed to: retry() is the way to ask.
                raise WavenbError(
                    f"task {prediction_id} is gone at the provider (tasks are kept 7 days); "
                    f"cmp.retry({cell_id!r}) pays for a new one"
                ) from error
            # The sandbox forgets its tasks when the kernel restarts; a new render is free.
            self._set(cell_id, prediction_id=None, reused=False)
            return await self._produce(cell_id)

    async def _wait(self, cell_id: str, prediction: Prediction | str) -> Prediction:
        def on_update(update: Update) -> None:
            status = update.prediction.status
            changes: dict[str, Any] = {}
            if status is Status.PROCESSING and self._runs[cell_id].started_at is None:
                changes["started_at"] = _now()
            label = _PHASES.get(status)
            if label is not None and label != self._runs[cell_id].status:
                changes["status"] = label
            if update.next_check is None:
                changes["finished_at"] = _now()
            if changes:
                self._set(cell_id, **changes)

        return await self.client.wait(prediction, on_update=on_update)

    async def _download(self, cell_id: str, done: Prediction) -> None:
        self._set(
            cell_id, status="downloading", output_url=done.output_url,
            inference_ms=done.inference_ms,
        )  # fmt: skip
        path = await self.client.download(done)
        started = self._clocks.pop(cell_id, None)
        run = self._runs[cell_id]
        # A resumed cell keeps the wall time measured when it was asked for (if known): the
        # time since this kernel picked it up would mean nothing.
        wall = run.wall_s if run.reused or started is None else time.monotonic() - started
        wall = None if wall is None else round(wall, 3)
        self._set(cell_id, status="completed", path=path, wall_s=wall, error=None)
        self._remember(cell_id)

    def _accepted(self, cell_id: str, prediction: Prediction) -> None:
        self._set(
            cell_id, status="queued", prediction_id=prediction.id,
            cost=0.0 if prediction.sandbox else self.price,
            error=None, reused=False,
        )  # fmt: skip
        self._remember(cell_id)

    def _fail(self, cell_id: str, error: Exception) -> None:
        moderation = isinstance(error, PredictionFailed) and error.moderation
        if isinstance(error, PredictionFailed):
            text = error.prediction.error or str(error)
        elif isinstance(error, WavenbError):
            text = str(error)
        else:
            text = f"{type(error).__name__}: {error}"
            logger.error("wavenb: cell %s failed unexpectedly", cell_id, exc_info=error)
        self._clocks.pop(cell_id, None)
        finished = self._runs[cell_id].finished_at or _now()
        self._set(cell_id, status="failed", error=text, moderation=moderation, finished_at=finished)

    async def _image_url(self, image: ImageFactor) -> str:
        """The image's URL: uploaded on first need, once, then shared by every cell."""
        if image.url is not None:
            return image.url
        lock = self._upload_locks.setdefault(image.id, asyncio.Lock())
        async with lock:
            if image.id not in self._urls:
                assert image.prepared is not None  # noqa: S101  (local images carry bytes)
                assert image.prepared.data is not None  # noqa: S101
                self._urls[image.id] = await self.client.upload(image.prepared.data)
        return self._urls[image.id]

    def _check_budget(self, videos: int) -> None:
        cost = videos * self.price
        if self.max_cost is not None and self.spent + cost > self.max_cost + _EPSILON:
            raise BudgetExceeded(
                f"{videos} more video(s) cost ${cost:.2f}; this comparison has spent "
                f"${self.spent:.2f} of max_cost=${self.max_cost:.2f}. Nothing was sent."
            )

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = self._spawn(self._tick())

    async def _tick(self) -> None:
        # Elapsed times move even when no check is due (real-API checks are >= 5 s apart).
        while self._busy:
            await asyncio.sleep(TICK)
            self._notify(None)

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` on the running loop, keeping a reference until it ends."""
        return spawn(work, self._tasks, "the comparison")

    # -- state -----------------------------------------------------------------------------

    def _set(self, cell_id: str, **changes: Any) -> None:  # noqa: ANN401
        self._runs[cell_id] = dataclasses.replace(self._runs[cell_id], **changes)
        self._notify(cell_id)

    def _notify(self, cell_id: str | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(cell_id)
            except Exception:  # a display problem must never stop a run
                logger.exception("wavenb: a comparison listener failed")

    def _remember(self, cell_id: str) -> None:
        """Write the cell's record to the cell cache (if there is one)."""
        run = self._runs[cell_id]
        cache = self._cache()
        if cache is None or run.prediction_id is None:
            return
        record = CacheRecord(run.prediction_id, run.started_at, run.wall_s, run.rating, run.note)
        try:
            cache.put(run.cell.key, record)
        except OSError:
            logger.exception("wavenb: could not write the comparison cache in %s", cache.folder)

    def _cache(self) -> CellCache | None:
        if self._client is None:
            return None
        return _cache_of(self._client)

    # -- judging ---------------------------------------------------------------------------

    def rate(self, cell_id: str, rating: Rating | None, note: str | None = None) -> CellRun:
        """Give a cell 👍 (``1``), 👎 (``-1``) or no rating (``None``), and a note if given.

        Kept in memory, in the cell cache (so re-running the comparison keeps it) and in
        ``save()``'s manifest.

        Raises:
            KeyError: no such cell. InputError: a rating other than 1, -1 or None.
        """
        self[cell_id]
        if rating not in (1, -1, None):
            raise InputError(f"rating must be 1 (👍), -1 (👎) or None; got {rating!r}")
        changes: dict[str, Any] = {"rating": rating}
        if note is not None:
            changes["note"] = note
        self._set(cell_id, **changes)
        self._remember(cell_id)
        return self._runs[cell_id]

    def vote(self, left: str, right: str, winner: Winner) -> Vote:
        """Record a blind pairwise judgement (what the ``pairwise()`` widget's buttons do)."""
        self[left]
        self[right]
        if winner not in ("left", "right", "tie"):
            raise InputError(f"winner must be 'left', 'right' or 'tie'; got {winner!r}")
        vote = Vote(left, right, winner, _now())
        self._votes.append(vote)
        self._notify(None)
        return vote

    def pairs(self, seed: int = 0) -> list[tuple[str, str]]:
        """The blind pairs ``pairwise()`` shows, in its order (see ``blind_pairs``)."""
        return blind_pairs(self.runs, seed)

    def pairwise(self, seed: int = 0) -> Pairwise:
        """A widget showing two finished cells side by side, unlabelled, to pick the better.

        Pairs differ in the prompt only; order and sides are random but fixed by ``seed``.
        Each choice is a ``Vote`` (``cmp.votes``) and counts in ``summary()``.
        """
        from wavenb.compare.widget import Pairwise  # noqa: PLC0415  (ipywidgets is heavy: lazy)

        return Pairwise(self, seed=seed)

    # -- display ---------------------------------------------------------------------------

    @property
    def widget(self) -> CompareGrid:
        """The live grid (made on first use; displaying the comparison shows it)."""
        if self._widget is None:
            from wavenb.compare.widget import CompareGrid  # noqa: PLC0415  (ipywidgets is heavy)

            self._widget = CompareGrid(self)
        return self._widget

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        return {**bundle, "text/plain": repr(self)}

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for run in self._runs.values():
            counts[run.status] = counts.get(run.status, 0) + 1
        states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return f"<Comparison {len(self.cells)} cells on {self.backend}: {states}>"

    # -- saving ----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``manifest.json``, the MP4s (``videos/``), images and ``report.html``.

        The report opens in any browser with no kernel (videos by relative path). Cells
        without a video are saved as they are (status, error). Returns the folder.
        """
        from wavenb.compare.report import write_report  # noqa: PLC0415  (only saving needs it)

        target = Path(directory).expanduser()
        (target / "videos").mkdir(parents=True, exist_ok=True)
        rows = []
        for index, run in enumerate(self.runs, start=1):
            row = run.row()
            row["path"] = _keep_video(run, target, f"videos/{index:02d}-{_slug(run.id)}.mp4")
            rows.append(row)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "saved_at": _iso(_now()),
            "model": MODEL_ID,
            "backend": self.backend,
            "base_url": self.base_url,
            "price_per_video": self.price,
            "max_cost": self.max_cost,
            "concurrency": self.throttle.limit,
            "images": [_image_entry(image, target) for image in self.design.images],
            "prompts": [{"id": p.id, "text": p.text} for p in self.design.prompts],
            "aspect_ratios": list(self.design.aspect_ratios),
            "repeats": self.design.repeats,
            "cells": rows,
            "votes": [
                {"left": v.left, "right": v.right, "winner": v.winner, "at": _iso(v.at)}
                for v in self._votes
            ],
            "summary": [dataclasses.asdict(s) for s in self.summary()],
        }
        _write_atomic(target / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
        write_report(target, manifest)
        return target

    @classmethod
    def load(cls, directory: str | Path, *, client: AsyncClient | None = None) -> Comparison:
        """Rebuild a saved comparison (grid, rows, ratings, votes) with no API call.

        ``client`` is needed only to ``retry`` cells; by default one is made when asked.

        Raises:
            InputError: the folder holds no comparison manifest, or one of another format.
        """
        folder = Path(directory).expanduser()
        try:
            data = json.loads((folder / MANIFEST).read_text("utf-8"))
        except FileNotFoundError:
            raise InputError(f"no {MANIFEST} in {folder}: not a saved comparison") from None
        except ValueError as error:
            raise InputError(f"{folder / MANIFEST} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{folder / MANIFEST} is not a wavenb comparison manifest")
        if data.get("version", 0) > FORMAT_VERSION:
            raise InputError(f"{folder / MANIFEST} was saved by a newer wavenb: upgrade wavenb")
        return _from_manifest(data, folder, client)


# -- planning ------------------------------------------------------------------------------


def compare(
    image: ImagesInput,
    prompts: PromptsInput,
    *,
    aspect_ratios: Iterable[AspectRatio | str | None] | None = None,
    repeats: int = 1,
    max_cost: float | None = None,
    concurrency: int = 4,
    client: AsyncClient | None = None,
) -> Comparison:
    """Compare prompts on the same image(s): one video per image x prompt x ratio x repeat.

    Plans before it spends: cells finished before (same image bytes, prompt, ratio and
    repeat, on this server) are reused for free, cells still running are waited for, and
    the rest cost ``client.price_per_video`` each ($0 on the sandbox). Then, inside a running
    event loop (Jupyter), the run starts at once as tasks — unless it costs real money: then
    it waits for the grid's Spend button or ``cmp.start()``.

    Args:
        image: one image (path, URL, bytes, PIL image), a list, or a dict ``{name: image}``.
        prompts: a list (named A, B, …) or a dict ``{name: prompt}``.
        aspect_ratios: ratios to try (``None`` in the list: match the source); default: match.
        repeats: videos per cell (the model takes no seed: repeats show its variation).
        max_cost: refuse to start (or retry) past this many US dollars.
        concurrency: at most this many videos at the provider at once.
        client: an ``AsyncClient``; by default ``AsyncClient()`` (the sandbox without a key).

    Raises:
        InputError: a bad image, prompt, ratio or count (nothing was sent).
        BudgetExceeded: the new cells would cost more than ``max_cost`` (nothing was sent).

    Example:
        >>> cmp = compare("model.jpg", {"A": "The model walks forward slowly",  # doctest: +SKIP
        ...                             "B": "Camera slowly zooms in"}, repeats=2)
        >>> cmp                                       # the live grid
        >>> await cmp                                 # every cell done
        >>> cmp.to_pandas()
    """
    design = build_design(image, prompts, aspect_ratios, repeats)
    throttle = Throttle(concurrency)  # checks the number before anything else happens
    if client is None:
        from wavenb.client.async_client import AsyncClient  # noqa: PLC0415  (import cycle: _client is heavy)

        client = AsyncClient()
    cells = design.cells(model=MODEL_ID, base_url=client.base_url)
    claimed = _claimed(cells, client)
    runs = [_recall(cell, design, client, claimed) for cell in cells]
    price = client.price_per_video
    estimate = _estimate(runs, price)
    if max_cost is not None and estimate.total > max_cost + _EPSILON:
        raise BudgetExceeded(
            f"this comparison costs ${estimate.total:.2f} ({estimate.describe()}), more than "
            f"max_cost=${max_cost:.2f}. Nothing was sent: use fewer prompts, ratios or repeats, "
            "or raise max_cost."
        )
    comparison = Comparison(
        design, cells, runs, client=client, backend=client.backend, base_url=client.base_url,
        price=price, max_cost=max_cost, concurrency=throttle.limit,
    )  # fmt: skip
    if _loop_running():
        comparison._launch()  # the factory starts what it planned
    return comparison


def _recall(cell: Cell, design: Design, client: AsyncClient, claimed: set[str]) -> CellRun:
    """A cell as earlier runs left it: reusable, resumable, or new (reads files only).

    ``claimed`` holds the prediction ids the cell cache gives to cells of this design: a
    video found by request (repeat 0) must not be one of them, or two cells would share it.
    """
    cache = _cache_of(client)
    record = cache.get(cell.key) if cache is not None else None
    run = CellRun(cell) if record is None else CellRun(cell, rating=record.rating, note=record.note)
    journal = client.journal
    if journal is None:
        return run
    row = journal.get(record.prediction_id) if record is not None else None
    if row is not None and row.base_url == client.base_url:
        return _from_row(run, row, record)
    if cell.repeat == 0:
        # Repeat 0 is exactly what generate() makes: reuse a finished one, whoever made it.
        image = next(i for i in design.images if i.id == cell.image)
        key = request_hash(
            model=MODEL_ID, image_sha256=image.sha256, image_source=image.source,
            prompt=cell.prompt, aspect_ratio=cell.aspect_ratio, base_url=client.base_url,
        )  # fmt: skip
        row = journal.find_reusable(key)
        if row is not None and row.prediction_id not in claimed:
            return _from_row(run, row, None)
    return run


def _claimed(cells: Sequence[Cell], client: AsyncClient) -> set[str]:
    """The prediction ids the cell cache holds for these cells."""
    cache = _cache_of(client)
    records = [cache.get(cell.key) for cell in cells] if cache is not None else []
    return {record.prediction_id for record in records if record is not None}


def _from_row(run: CellRun, row: JournalRow, record: CacheRecord | None) -> CellRun:
    """A cell backed by an earlier task: done (file on disk) or still to wait for."""
    if row.status != "completed" and row.terminal:
        return run  # failed or refused before: a new attempt
    done = row.status == "completed" and not row.needs_download and row.path is not None
    return dataclasses.replace(
        run,
        status="completed" if done else "queued",
        prediction_id=row.prediction_id,
        submitted_at=row.submitted_at,
        started_at=record.started_at if record is not None else None,
        finished_at=row.finished_at,
        inference_ms=row.inference_ms,
        wall_s=record.wall_s if record is not None else None,
        output_url=row.output_url,
        path=Path(row.path) if done and row.path is not None else None,
        reused=True,
    )


def _estimate(runs: Sequence[CellRun], price: float) -> Estimate:
    reused = sum(run.done for run in runs)
    resumed = sum(not run.done and run.prediction_id is not None for run in runs)
    return Estimate(len(runs), len(runs) - reused - resumed, reused, resumed, price)


def _cache_of(client: AsyncClient) -> CellCache | None:
    journal = client.journal
    return None if journal is None else CellCache(journal.path.parent / "compare-cells")


_PHASES: Final[dict[Status, CellStatus]] = {
    Status.CREATED: "queued",
    Status.PENDING: "queued",
    Status.PROCESSING: "processing",
    Status.UNKNOWN: "processing",
}


# -- loading -------------------------------------------------------------------------------


def _from_manifest(data: Mapping[str, Any], folder: Path, client: AsyncClient | None) -> Comparison:
    images = tuple(_image_from_entry(entry, folder) for entry in data["images"])
    prompts = tuple(PromptFactor(p["id"], p["text"]) for p in data["prompts"])
    ratios = tuple(protocol.validate_aspect_ratio(r) for r in data["aspect_ratios"])
    design = Design(images, prompts, ratios, int(data["repeats"]))
    runs = [_run_from_row(row, folder) for row in data["cells"]]
    votes = [
        Vote(v["left"], v["right"], v["winner"], _parse_time(v["at"]) or _now())
        for v in data.get("votes", [])
    ]
    return Comparison(
        design, [run.cell for run in runs], runs, client=client, backend=data["backend"],
        base_url=data["base_url"], price=float(data["price_per_video"]),
        max_cost=data.get("max_cost"), concurrency=int(data.get("concurrency") or 4), votes=votes,
    )  # fmt: skip


def _run_from_row(row: Mapping[str, Any], folder: Path) -> CellRun:
    cell = Cell(
        row["cell_id"], row["image"], row["prompt_id"], row["prompt"],
        protocol.validate_aspect_ratio(row["aspect_ratio"]), int(row["repeat"]), row["cell_key"],
    )  # fmt: skip
    path = folder / row["path"] if row.get("path") else None
    status = row["status"] if row["status"] in ("completed", "failed") else "cancelled"
    if status == "completed" and (path is None or not path.exists()):
        status = "failed"
    return CellRun(
        cell,
        status=cast("CellStatus", status),
        prediction_id=row.get("prediction_id"),
        submitted_at=_parse_time(row.get("submitted_at")),
        started_at=_parse_time(row.get("started_at")),
        finished_at=_parse_time(row.get("finished_at")),
        inference_ms=row.get("inference_ms"),
        wall_s=row.get("wall_s"),
        cost=float(row.get("cost") or 0.0),
        output_url=row.get("output_url"),
        path=path,
        error=row.get("error") or (None if status != "failed" else "the video file is missing"),
        reused=bool(row.get("reused")),
        rating=_rating(row.get("rating")),
        note=str(row.get("note") or ""),
    )


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
        relative = f"images/{_slug(image.id)}{suffix}"
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


# -- small helpers -------------------------------------------------------------------------


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text)


def _rating(value: object) -> Rating | None:
    return value if value in (1, -1) else None


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "cell"


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, "utf-8")
    partial.replace(path)
