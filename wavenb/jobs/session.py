"""Everything a generation needs from the client that runs it, in one object.

A ``Session`` is made by ``AsyncClient`` and handed to every ``Job``: the API resources, the
journal (through its writer thread), the submit gate, the runtime, where videos go, the budget,
what past runs taught the poll schedule, and this client's timelines. Jobs only read it and
call it; they never reach back into the client (so ``wavenb.jobs`` does not import
``wavenb.client``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from wavenb.api.http import Http
from wavenb.api.resources import Account, Enhancer, Media, Models, Predictions
from wavenb.core.config import outputs_dir
from wavenb.core.errors import BudgetExceeded, JournalError
from wavenb.core.models import Event, Prediction
from wavenb.core.polling import REAL_API, SANDBOX, DurationStats, PollPolicy
from wavenb.core.runtime import Runtime
from wavenb.core.types import MODEL_ID
from wavenb.jobs.download import MAX_DOWNLOAD
from wavenb.jobs.gate import SubmitGate
from wavenb.journal.store import Journal
from wavenb.journal.writer import JournalWriter

if TYPE_CHECKING:
    from wavenb.jobs.job import Job

__all__ = ["Session"]

logger = logging.getLogger("wavenb")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(eq=False)
class Session:
    """The services one client gives its generations."""

    http: Http
    runtime: Runtime
    journal_choice: Journal | bool = True
    poll: PollPolicy | None = None
    output_dir: Path | None = None
    max_spend: float | None = None
    max_download: int = MAX_DOWNLOAD
    predictions: Predictions = field(init=False)
    media: Media = field(init=False)
    account: Account = field(init=False)
    models: Models = field(init=False)
    enhancer: Enhancer = field(init=False)
    gate: SubmitGate = field(init=False)
    timelines: dict[str, list[Event]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    """Runtime clock when each task was submitted (or first seen)."""
    submitted: set[str] = field(default_factory=set)
    """Tasks this client submitted (their durations teach the poll schedule)."""
    inflight: dict[str, Job] = field(default_factory=dict)
    """Generations of this client in progress, by request hash: a second identical one joins."""
    spent_here: float = 0.0
    """US dollars this client reserved (the budget without a journal)."""
    _journal: Journal | None = field(default=None, init=False)
    _writer: JournalWriter | None = field(default=None, init=False)

    def hold(self, price: float) -> None:
        """Reserve ``price`` against ``max_spend`` in memory (the budget without a journal).

        Raises:
            BudgetExceeded: it would pass the limit (nothing is held).
        """
        limit = self.max_spend
        if limit is not None and price > 0 and self.spent_here + price > limit + 1e-9:
            raise BudgetExceeded(
                f"this video costs ${price:.2f} and this client has spent "
                f"${self.spent_here:.2f}; the limit is ${limit:.2f}. Nothing was sent."
            )
        self.spent_here += price

    def __post_init__(self) -> None:
        self.predictions = Predictions(self.http)
        self.media = Media(self.http)
        self.account = Account(self.http)
        self.models = Models(self.http)
        self.enhancer = Enhancer(self.http, self.predictions)
        self.gate = SubmitGate(self.predictions, self.runtime)
        if isinstance(self.journal_choice, Journal):
            self._journal = self.journal_choice

    # -- where and what --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server."""
        return self.http.base_url

    @property
    def backend(self) -> Literal["sandbox", "api"]:
        """``"sandbox"`` once the server said it is wavenb's sandbox (or it is embedded)."""
        return "sandbox" if self.http.sandbox_seen else "api"

    @property
    def outputs(self) -> Path:
        """Where downloads go by default."""
        return self.output_dir if self.output_dir is not None else outputs_dir()

    async def price(self, model: str = MODEL_ID) -> float:
        """US dollars one run costs here: nothing on a sandbox, else the (cached) quote."""
        if self.backend == "sandbox":
            return 0.0
        quote = await self.models.quote(model)
        # The quote's answer may have revealed a served sandbox (its header).
        return 0.0 if self.http.sandbox_seen else quote.price

    def policy(self, override: PollPolicy | None = None) -> PollPolicy:
        """The poll schedule: the caller's, the client's, else by backend."""
        if override is not None:
            return override
        if self.poll is not None:
            return self.poll
        # A served sandbox says what it is (a header): nobody to be polite to there either.
        return SANDBOX if self.backend == "sandbox" else REAL_API

    @property
    def durations(self) -> DurationStats:
        """Past task durations on this server (per runtime, seeded from the journal)."""
        # Keyed by backend too: sandbox runs recorded under the real API's address (tests,
        # cassettes, lessons) must not teach the real API's schedule.
        key = ("durations", self.base_url, self.backend)
        learned = self.runtime.learned
        with self.runtime.lock:
            stats = learned.get(key)
            if stats is None:
                stats = learned[key] = DurationStats()
                fresh = True
            else:
                fresh = False
        if fresh and self.backend == "api":
            journal = self.journal_or_none()
            if journal is not None:
                for seconds in journal.durations(self.base_url):
                    stats.add(seconds)
        assert isinstance(stats, DurationStats)  # noqa: S101  (only this property stores it)
        return stats

    # -- the journal -----------------------------------------------------------------------

    @property
    def journal(self) -> Journal | None:
        """The journal (opened on first use); ``None`` when switched off.

        Raises:
            JournalError: the file cannot be opened (nothing has been sent).
        """
        if self._journal is None and self.journal_choice is True:
            self._journal = Journal(clock=self.runtime.now)
        return self._journal

    def journal_or_none(self) -> Journal | None:
        """The journal, or ``None`` if it is off or cannot be opened (for reads that may fail)."""
        try:
            return self.journal
        except JournalError as error:
            logger.warning("%s", error)
            return None

    async def write(self, method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a journal call on the writer thread (never on the event loop)."""
        if self._writer is None:
            journal = self.journal
            assert journal is not None  # noqa: S101  (callers check journal first)
            self._writer = JournalWriter(journal)
        return await self._writer.call(method, *args, **kwargs)

    # -- timelines -------------------------------------------------------------------------

    def remember(self, prediction: Prediction, kind: Literal["submit", "check"]) -> Prediction:
        """Add this answer to the task's timeline; return the prediction carrying it."""
        now = self.runtime.clock()
        if kind == "submit":
            self.started[prediction.id] = now
            self.submitted.add(prediction.id)
        start = self.started.setdefault(prediction.id, now)
        events = self.timelines.setdefault(prediction.id, [])
        events.append(Event(kind, now - start, self.runtime.now(), prediction.status))
        return replace(prediction, events=tuple(events))

    def close(self) -> None:
        """Stop the journal's writer thread (pending writes finish first)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

