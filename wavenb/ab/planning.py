"""``compare()``: plan a comparison before anything is spent, then start it.

Planning reads files only (no request): the design is checked, and each cell is looked up in
the journal by its request hash: a video already on disk is reused (free), a task still
running (or completed but not downloaded) is resumed (already paid), the rest are new. The
cell cache adds what only the comparison knew (rating, note, wall time). The cost is new cells
x ``client.price_per_video``; over ``max_cost`` the comparison refuses to exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from wavenb.ab.cache import CacheRecord
from wavenb.ab.cells import CellRun, Estimate
from wavenb.ab.design import (
    Cell,
    Design,
    ImagesInput,
    PromptsInput,
    build_design,
    request_hash_of,
)
from wavenb.ab.engine import Comparison, cache_of
from wavenb.core.errors import BudgetExceeded, InputError
from wavenb.core.phase import Phase
from wavenb.core.types import MODEL_ID, AspectRatio
from wavenb.journal.rows import JournalRow

if TYPE_CHECKING:
    from wavenb.client.async_client import AsyncClient

__all__ = ["compare", "recall"]

_EPSILON: Final = 1e-9


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
    repeat, on this server; repeat 0 also by a plain ``generate``) are reused for free, cells
    still running are waited for, and the rest cost ``client.price_per_video`` each ($0 on the
    sandbox). Then, inside a running event loop (Jupyter), the run starts at once as tasks —
    unless it costs real money: then it waits for the grid's Spend button or ``cmp.start()``.
    When it starts, the price is quoted again (a change asks for consent again) and the
    balance must cover it, before anything is sent.

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

    Examples:
        >>> cmp = compare("model.jpg", {"A": "The model walks forward slowly",  # doctest: +SKIP
        ...                             "B": "Camera slowly zooms in"}, repeats=2)
        >>> cmp                                       # the live grid
        >>> await cmp                                 # every cell done and measured
        >>> cmp.to_pandas()                           # one row per video, metrics included
        >>> cmp.vote("A/auto/0", "B/auto/0")          # A's video is better
        >>> cmp.rank(), print(cmp.summary())
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InputError(f"concurrency must be a whole number of 1 or more; got {concurrency!r}")
    design = build_design(image, prompts, aspect_ratios, repeats)
    if client is None:
        from wavenb.client.async_client import AsyncClient  # noqa: PLC0415  (the client is heavy)

        client = AsyncClient()
    cells = design.cells(model=MODEL_ID, base_url=client.base_url)
    runs = recall(design, cells, client)
    price = client.price_per_video
    estimate = Estimate.of(runs, price)
    if max_cost is not None and estimate.total > max_cost + _EPSILON:
        raise BudgetExceeded(
            f"this comparison costs ${estimate.total:.2f} ({estimate.describe()}), more than "
            f"max_cost=${max_cost:.2f}. Nothing was sent: use fewer prompts, ratios or repeats, "
            "or raise max_cost."
        )
    comparison = Comparison(
        design, cells, runs, client=client, backend=client.backend, base_url=client.base_url,
        price=price, max_cost=max_cost, concurrency=concurrency,
    )  # fmt: skip
    if _loop_running():
        comparison._launch()
    return comparison


def recall(design: Design, cells: Sequence[Cell], client: AsyncClient) -> list[CellRun]:
    """Each cell as earlier runs left it: reusable, resumable, or new (reads files only)."""
    cache = cache_of(client)
    journal = client.session.journal_or_none()
    running: dict[str, JournalRow] = {}
    if journal is not None:
        for waiting in journal.resumable(client.base_url):  # oldest first: the newest wins
            running[waiting.request_hash] = waiting
    runs = []
    for cell in cells:
        record = cache.get(cell.key) if cache is not None else None
        run = CellRun(cell)
        if record is not None:
            run = CellRun(cell, rating=record.rating, note=record.note)
        if journal is not None:
            digest = request_hash_of(cell, design.image(cell.image), client.base_url)
            found = journal.find_reusable(digest) or running.get(digest)
            run = _from_row(run, found, record)
        runs.append(run)
    return runs


def _from_row(run: CellRun, row: JournalRow | None, record: CacheRecord | None) -> CellRun:
    """A cell backed by the journal's row of its request: done, or still to follow."""
    if row is None or row.prediction_id is None:
        return run
    phase = row.phase
    if phase.ended and phase is not Phase.DOWNLOADED:
        return run  # gone (or lost with its kernel): a new attempt
    same = record is not None and record.prediction_id == row.prediction_id
    done = phase is Phase.DOWNLOADED and row.path is not None
    return dataclasses.replace(
        run,
        status=phase,
        prediction_id=row.prediction_id,
        submitted_at=row.sent_at or row.submitted_at,
        started_at=record.started_at if same and record is not None else None,
        finished_at=row.finished_at,
        inference_ms=row.inference_ms,
        wall_s=record.wall_s if same and record is not None else None,
        output_url=row.output_url,
        path=Path(row.path) if done and row.path is not None else None,
        reused=True,
        sha256=row.sha256 if done else None,
    )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
