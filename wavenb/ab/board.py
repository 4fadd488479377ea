"""The board of a comparison: its cells' states, what people judged, and how it all reads.

``Board`` is everything a ``Comparison`` holds and says, apart from running it: the cells'
``CellRun``s (changed only through ``_set``, which tells the watchers), votes and ratings,
``rows`` / ``to_pandas()``, ``summary()`` / ``rank()``, and ``save`` / ``load``. A loaded
comparison needs no client until a cell is run again. ``wavenb.ab.engine.Comparison``
adds the running and the views (the grid, the blind pairs).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Self

from wavenb.ab import judging
from wavenb.ab.cache import CacheRecord, CellCache
from wavenb.ab.cells import METRIC_FIELDS, ROW_FIELDS, CellRun, Estimate, Rating
from wavenb.ab.design import Cell, Design
from wavenb.ab.judging import Summary, Vote
from wavenb.ab.measuring import Measurer
from wavenb.core.errors import InputError

if TYPE_CHECKING:
    from wavenb.ab.ranking import Method
    from wavenb.client.async_client import AsyncClient

__all__ = ["Board", "Listener", "cache_of"]

logger = logging.getLogger("wavenb")

_TIME_FIELDS: Final = ("submitted_at", "started_at", "finished_at")
_NUMBERS: Final = tuple(f for f in METRIC_FIELDS if f not in ("camera_move", "motion_match"))

Listener = Callable[[str | None], None]
"""Called with a cell id after that cell changed, or ``None`` for everything (a tick, a vote,
a phase of the whole run)."""


class Board:
    """A comparison's cells, votes and ratings, and every way to read them (no running).

    Attributes:
        design: the factors. cells: every cell, in grid order. concurrency: the most cells at
        the provider at once. max_cost: the most US dollars this comparison may spend.
        problem: why the last run did not start (a changed price, the balance), or ``None``.
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
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InputError(f"concurrency must be a whole number, 1 or more; got {concurrency!r}")
        self.design = design
        self.cells: tuple[Cell, ...] = tuple(cells)
        self._runs: dict[str, CellRun] = {run.id: run for run in runs}
        self._client = client
        self.backend: Literal["sandbox", "api"] = backend
        """``"sandbox"`` or ``"api"``: where the videos come from."""
        self.base_url = base_url
        self.max_cost = max_cost
        self.concurrency = concurrency
        self.problem: str | None = None
        self._price = price
        self._planned = Estimate.of(list(self._runs.values()), price)
        self._votes: list[Vote] = list(votes)
        self._confirmed = False
        self._measurer = Measurer()
        self._listeners: list[Listener] = []
        self._summary: Summary | None = None

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
        """US dollars per new video: the client's (its quote once fetched), else the one saved.

        A sandbox served elsewhere is known to be free only once it has answered.
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
        """The current state of one cell, by id (``cmp["A/16:9/0"]``).

        Raises:
            KeyError: no such cell (the message lists some).
        """
        try:
            return self._runs[cell_id]
        except KeyError:
            known = ", ".join(cell.id for cell in self.cells[:6])
            raise KeyError(f"no cell {cell_id!r}; cells are {known}…") from None

    @property
    def votes(self) -> tuple[Vote, ...]:
        """The pairwise votes and ties so far."""
        return tuple(self._votes)

    @property
    def spent(self) -> float:
        """US dollars this comparison has paid (or may have paid) so far."""
        return sum(run.cost for run in self._runs.values())

    @property
    def metrics_note(self) -> str | None:
        """Why metrics are missing, in one line; ``None`` when nothing is missing for a reason.

        No numpy/PyAV here (``pip install 'wavenb[sandbox]'``), or videos that did not decode.
        """
        return self._measurer.note

    @property
    def needs_confirmation(self) -> bool:
        """Whether the run waits for ``start()`` (the grid's Spend button): it costs money."""
        return not self._confirmed and self.estimate.total > 0

    @property
    def finished(self) -> bool:
        """Whether every cell has ended (downloaded, failed, refused, stopped...)."""
        return all(run.ended for run in self.runs)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per cell (``ROW_FIELDS``), JSON-ready: times are ISO-8601 text."""
        return [run.row() for run in self.runs]

    def to_pandas(self) -> Any:  # noqa: ANN401  (pandas is optional: no type to name)
        """A ``pandas.DataFrame`` of ``rows``, one row per cell, columns ``ROW_FIELDS``.

        Times are UTC timestamps; ``inference_ms`` and ``rating`` are nullable integers;
        ``motion_match`` is a nullable boolean and the other metric columns are floats (missing
        values are ``<NA>`` / ``NaN``: not measured yet, or no numpy/PyAV here, then
        ``frame.attrs["metrics_note"]`` and ``cmp.metrics_note`` say why).

        Raises:
            ImportError: pandas is missing (``pip install 'wavenb[pandas]'``).
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            raise ImportError(
                "Comparison.to_pandas needs pandas, which is missing: pip install 'wavenb[pandas]' "
                "(or use cmp.rows, plain dicts)"
            ) from None
        frame = pandas.DataFrame(self.rows, columns=list(ROW_FIELDS))
        for column in _TIME_FIELDS:
            frame[column] = pandas.to_datetime(frame[column], utc=True, format="ISO8601")
        for column in ("inference_ms", "rating"):
            frame[column] = frame[column].astype("Int64")  # whole numbers with gaps, not floats
        for column in _NUMBERS:
            frame[column] = pandas.to_numeric(frame[column]).astype("float64")
        frame["motion_match"] = frame["motion_match"].astype("boolean")
        if self.metrics_note:
            frame.attrs["metrics_note"] = self.metrics_note
        return frame

    def summary(self) -> Summary:
        """Who leads, by how much, and what would settle it; per-prompt numbers too.

        ``str(cmp.summary())`` is the verdict (from ``rank()``: votes, ties and thumbs);
        iterate it (or ``.prompts``) for one ``PromptSummary`` per prompt: cells done and
        failed, mean rating, win rate, camera-move match, mean times.
        """
        if self._summary is None:
            self._summary = judging.summarize(self.design, self.runs, self._votes)
        return self._summary

    def rank(self, *, method: Method = "bayes", seed: int = 0) -> Any:  # noqa: ANN401  (pandas)
        """A DataFrame of the prompts, best first: ``score``, ``ci_low``, ``ci_high``, ``p_best``.

        Bradley-Terry scores fitted to the votes, ties (half a win each way) and thumbs (each
        👍 beats each 👎 of another prompt on the same image and ratio, weighted ``2 / n`` for
        ``n`` rated cells there: the pairs share cells, so they are not independent votes).
        ``method="bayes"`` (default): 95 % intervals of the Laplace approximation of the
        posterior (a weak N(0, 2²) prior keeps a handful of votes honest) and ``p_best`` from
        4000 posterior draws; ``"bootstrap"``: percentile intervals of 4000 resampled refits.
        Indexed by prompt id; also ``rank``, ``wins``, ``losses``.

        Raises:
            ImportError: numpy or pandas is missing.
        """
        fitted = judging.rank_prompts(self.design, self.runs, self._votes, method=method, seed=seed)
        return fitted.to_pandas()

    def watch(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- state -----------------------------------------------------------------------------

    def _set(self, cell_id: str, **changes: Any) -> None:  # noqa: ANN401
        self._runs[cell_id] = dataclasses.replace(self._runs[cell_id], **changes)
        self._summary = None
        self._notify(cell_id)

    def _notify(self, cell_id: str | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(cell_id)
            except Exception:  # a display problem must never stop a run
                logger.exception("wavenb: a comparison listener failed")

    def _remember(self, cell_id: str) -> None:
        """Write what only the comparison knows of the cell to the cell cache (if any)."""
        run = self._runs[cell_id]
        cache = None if self._client is None else cache_of(self._client)
        if cache is None:
            return
        record = CacheRecord(run.prediction_id, run.started_at, run.wall_s, run.rating, run.note,
                             run.sha256)  # fmt: skip
        try:
            cache.put(run.cell.key, record)
        except OSError:
            logger.exception("wavenb: could not write the comparison cache in %s", cache.folder)

    # -- judging ---------------------------------------------------------------------------

    def rate(self, cell_id: str, rating: Rating | None, note: str | None = None) -> CellRun:
        """Give a cell 👍 (``1``), 👎 (``-1``) or no rating (``None``), and a note if given.

        Thumbs count in ``rank()`` (each 👍 beats each 👎 of another prompt on the same image
        and ratio, as a weighted share of a vote). Kept in memory, in the cell cache
        (re-running the comparison keeps it) and in ``save()``'s manifest.

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

    def vote(self, winner: str, loser: str) -> Vote:
        """Record that cell ``winner``'s video is better than cell ``loser``'s.

        Cell ids as in ``to_pandas()["cell_id"]``; the two must show different prompts. The
        blind view (``pairwise()``) records its picks with this (and ``tie``).

        Raises:
            KeyError: no such cell. InputError: both cells show the same prompt.
        """
        return self._judge(winner, loser, tie=False)

    def tie(self, first: str, second: str) -> Vote:
        """Record that neither cell's video is better (half a win each way in ``rank()``).

        Raises:
            KeyError: no such cell. InputError: both cells show the same prompt.
        """
        return self._judge(first, second, tie=True)

    def _judge(self, first: str, second: str, *, tie: bool) -> Vote:
        a, b = self[first], self[second]
        if a.cell.prompt_id == b.cell.prompt_id:
            raise InputError(
                f"cells {first} and {second} both show prompt {a.cell.prompt_id}: a vote "
                "compares two prompts"
            )
        vote = Vote(first, second, now(), tie=tie)
        self._votes.append(vote)
        self._summary = None
        self._notify(None)
        return vote

    def pairs(self, seed: int = 0) -> list[tuple[str, str]]:
        """The blind pairs ``pairwise()`` shows, in its order (see ``judging.blind_pairs``)."""
        return judging.blind_pairs(self.runs, seed)

    # -- display ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for run in self._runs.values():
            counts[run.status.value] = counts.get(run.status.value, 0) + 1
        states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return f"<Comparison {len(self.cells)} cells on {self.backend}: {states}>"

    # -- saving ----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the comparison to a folder anyone can open: returns the folder.

        ``manifest.json`` (format version 2), the MP4s (``videos/``), the images, a contact
        sheet (``contact-sheet.png``), an animated WebP preview per video (``previews/``) and
        ``report.html``, which opens in any browser with no kernel (metrics, ranking, sheet,
        previews as the videos' posters). Cells without a video are saved as they are.

        Raises:
            OSError: the folder cannot be written.
        """
        from wavenb.ab import manifest  # noqa: PLC0415  (only saving needs it)

        target = Path(directory).expanduser()
        manifest.write(
            target, design=self.design, runs=self.runs, votes=self._votes,
            summary=self.summary(), backend=self.backend, base_url=self.base_url,
            price=self.price, max_cost=self.max_cost, concurrency=self.concurrency,
            notes=[self.metrics_note] if self.metrics_note else [],
        )  # fmt: skip
        return target

    @classmethod
    def load(cls, directory: str | Path, *, client: AsyncClient | None = None) -> Self:
        """Rebuild a saved comparison (grid, rows, ratings, votes, metrics) with no API call.

        Reads format versions 1 and 2. ``client`` is needed only to ``retry`` cells; by
        default one is made when asked.

        Raises:
            InputError: the folder holds no comparison manifest, or one of another format.
        """
        from wavenb.ab import manifest  # noqa: PLC0415  (only loading needs it)

        saved = manifest.read(Path(directory).expanduser())
        backend: Literal["sandbox", "api"] = "sandbox" if saved.backend == "sandbox" else "api"
        return cls(
            saved.design, [run.cell for run in saved.runs], saved.runs, client=client,
            backend=backend, base_url=saved.base_url, price=saved.price,
            max_cost=saved.max_cost, concurrency=saved.concurrency, votes=saved.votes,
        )  # fmt: skip


def cache_of(client: AsyncClient) -> CellCache | None:
    """The cell cache beside the client's journal (``None`` without a journal)."""
    journal = client.session.journal_or_none()
    return None if journal is None else CellCache(journal.path.parent / "compare-cells")


def now() -> datetime:
    """The time now, in UTC (for the cells' timestamps)."""
    return datetime.now(UTC)
