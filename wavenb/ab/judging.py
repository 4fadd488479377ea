"""Judging a comparison: votes, thumbs, blind pairs, per-prompt numbers, ranking and summary.

What people say about the videos, and what it adds up to:

- a **vote** (``Comparison.vote(winner, loser)``, or a side-by-side pick in ``pairwise()``)
  says one cell's video is better than another's, of another prompt; a **tie** says neither;
- **thumbs** (👍/👎, ``Comparison.rate``) count as votes too, as ``ranking.votes_from_ratings``
  defines: within one block (same image and ratio), each 👍 cell beats each 👎 cell of another
  prompt, each such pair weighing ``2 / n`` for the block's ``n`` rated cells (the pairs share
  cells, so they are worth fewer independent votes than their number);
- ``rank_prompts`` fits Bradley-Terry scores to all of them (``wavenb.ab.ranking``: by
  default the Laplace approximation of the posterior, normal 95 % intervals);
- ``Summary`` says in words who leads, by how much, and roughly how many more votes (or
  repeats, judged side by side) would settle it, and keeps the per-prompt numbers.

The ranking needs numpy (the ``sandbox`` extra); without it the summary says so and keeps the
per-prompt numbers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import TYPE_CHECKING, Final, Literal

from wavenb.ab.cells import CellRun
from wavenb.ab.design import Design, PromptFactor
from wavenb.ab.transitions import NOT_SENT
from wavenb.core.phase import Phase

if TYPE_CHECKING:
    from wavenb.ab.ranking import Method, Ranking

__all__ = [
    "PromptSummary",
    "Summary",
    "Vote",
    "Winner",
    "blind_pairs",
    "rank_prompts",
    "summarize",
    "summarize_prompts",
]

Winner = Literal["left", "right", "tie"]
"""A side-by-side pick, as the blind view's buttons say it."""
_Z95: Final = 1.959963984540054
NEEDS_NUMPY: Final = "ranking needs numpy: pip install 'wavenb[sandbox]'"


@dataclass(frozen=True, slots=True)
class Vote:
    """One judgement between two cells of different prompts."""

    winner: str
    """The better cell's id (with ``tie``, simply the first one named)."""
    loser: str
    at: datetime
    tie: bool = False
    """True when neither was better."""


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """How one prompt did across its cells."""

    prompt_id: str
    prompt: str
    cells: int
    completed: int
    """Cells with their video (``downloaded``)."""
    failed: int
    """Cells that ended without a video (failed, refused, gone...)."""
    rated: int
    mean_rating: float | None
    """Mean of the ratings given (👍 +1, 👎 -1); ``None`` with no rating."""
    comparisons: int
    """Votes this prompt took part in."""
    win_rate: float | None
    """(wins + ties / 2) / comparisons; ``None`` with no vote."""
    mean_inference_s: float | None
    """Mean provider inference time of its videos, in seconds."""
    mean_wall_s: float | None
    motion_match_rate: float | None = None
    """Share of its measured videos whose camera move is one the prompt asked for; ``None``
    when none was measured or the prompt asked for no move."""

    def describe(self) -> str:
        """One line for people: rating, win rate, camera match, times, failures."""
        parts = [f"{self.completed}/{self.cells} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.mean_rating is not None:
            parts.append(f"rating {self.mean_rating:+.2f} ({self.rated} rated)")
        if self.win_rate is not None:
            parts.append(f"wins {self.win_rate:.0%} of {self.comparisons}")
        if self.motion_match_rate is not None:
            parts.append(f"camera as asked {self.motion_match_rate:.0%}")
        if self.mean_inference_s is not None:
            parts.append(f"inference {self.mean_inference_s:.1f} s")
        if self.mean_wall_s is not None:
            parts.append(f"wall {self.mean_wall_s:.1f} s")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class Summary:
    """``Comparison.summary()``: the verdict in words, the per-prompt numbers, the ranking.

    ``str(summary)`` is the verdict; iterating gives one ``PromptSummary`` per prompt, in the
    design's order (``summary.prompts``); ``summary["A"]`` is prompt A's.
    """

    text: str
    """Who leads, by how much, how sure, and what would settle it (one paragraph)."""
    prompts: tuple[PromptSummary, ...]
    ranking: Ranking | None
    """The Bradley-Terry ranking (``None`` without numpy)."""

    def __iter__(self) -> Iterator[PromptSummary]:
        return iter(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, prompt_id: str) -> PromptSummary:
        """The numbers of one prompt, by id.

        Raises:
            KeyError: no such prompt.
        """
        for summary in self.prompts:
            if summary.prompt_id == prompt_id:
                return summary
        raise KeyError(prompt_id)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        lines = [self.text, *(f"  {s.prompt_id}: {s.describe()}" for s in self.prompts)]
        return "\n".join(lines)


def summarize_prompts(
    prompts: Sequence[PromptFactor], runs: Sequence[CellRun], votes: Sequence[Vote]
) -> tuple[PromptSummary, ...]:
    """One ``PromptSummary`` per prompt, in the design's order."""
    prompt_of = {run.id: run.cell.prompt_id for run in runs}
    return tuple(
        _prompt_summary(
            prompt,
            [run for run in runs if run.cell.prompt_id == prompt.id],
            [v for v in votes if prompt.id in (prompt_of[v.winner], prompt_of[v.loser])],
            prompt_of,
        )
        for prompt in prompts
    )


def _prompt_summary(
    prompt: PromptFactor, runs: list[CellRun], votes: list[Vote], prompt_of: Mapping[str, str]
) -> PromptSummary:
    ratings = [run.rating for run in runs if run.rating is not None]
    completed = [run for run in runs if run.done]
    score = sum(0.5 if v.tie else float(prompt_of[v.winner] == prompt.id) for v in votes)
    inference = [run.inference_ms / 1000 for run in completed if run.inference_ms is not None]
    wall = [run.wall_s for run in completed if run.wall_s is not None]
    matches = [
        float(run.metrics.motion_match)
        for run in completed
        if run.metrics is not None and run.metrics.motion_match is not None
    ]
    return PromptSummary(
        prompt_id=prompt.id,
        prompt=prompt.text,
        cells=len(runs),
        completed=len(completed),
        failed=sum(run.ended and not run.done and not _not_run(run) for run in runs),
        rated=len(ratings),
        mean_rating=_mean([float(r) for r in ratings]),
        comparisons=len(votes),
        win_rate=score / len(votes) if votes else None,
        mean_inference_s=_mean(inference),
        mean_wall_s=_mean(wall),
        motion_match_rate=_mean(matches),
    )


def blind_pairs(runs: Sequence[CellRun], seed: int) -> list[tuple[str, str]]:
    """Pairs of finished cells to judge blind, shuffled by ``seed``, each side random.

    Two cells pair when they differ in the prompt only: same image, ratio and repeat.
    """
    done = {(r.cell.image, r.cell.aspect_ratio, r.cell.repeat, r.cell.prompt_id): r.id
            for r in runs if r.done}  # fmt: skip
    groups: dict[tuple[str, str | None, int], list[str]] = {}
    for (image, ratio, repeat, _prompt), cell_id in done.items():
        groups.setdefault((image, ratio, repeat), []).append(cell_id)
    pairs = [pair for ids in groups.values() for pair in combinations(ids, 2)]
    rng = random.Random(seed)  # noqa: S311  (an order for people, not a secret)
    rng.shuffle(pairs)
    return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in pairs]  # noqa: PLR2004


def rank_prompts(
    design: Design,
    runs: Sequence[CellRun],
    votes: Sequence[Vote],
    *,
    method: Method = "bayes",
    seed: int = 0,
) -> Ranking:
    """Bradley-Terry ranking of the prompts from votes, ties and thumbs.

    Raises:
        ImportError: numpy is missing (the ``sandbox`` extra).
    """
    from wavenb.ab.ranking import rank, votes_from_ratings  # noqa: PLC0415  (numpy)

    prompt_of = {run.id: run.cell.prompt_id for run in runs}
    wins = [(prompt_of[v.winner], prompt_of[v.loser]) for v in votes if not v.tie]
    ties = [(prompt_of[v.winner], prompt_of[v.loser]) for v in votes if v.tie]
    thumbs = votes_from_ratings(
        (run.cell.prompt_id, (run.cell.image, run.cell.aspect_ratio), run.rating)
        for run in runs
        if run.rating is not None
    )
    return rank([*wins, *thumbs], [p.id for p in design.prompts], ties=ties, method=method,
                seed=seed)  # fmt: skip


def summarize(design: Design, runs: Sequence[CellRun], votes: Sequence[Vote]) -> Summary:
    """The comparison's ``Summary``: ranking in words, per-prompt numbers (numpy optional)."""
    prompts = summarize_prompts(design.prompts, runs, votes)
    try:
        fitted = rank_prompts(design, runs, votes)
    except ImportError:
        return Summary(f"No ranking: {NEEDS_NUMPY}.", prompts, None)
    return Summary(verdict(fitted, blocks=len(design.images) * len(design.aspect_ratios)),
                   prompts, fitted)  # fmt: skip


def verdict(fitted: Ranking, *, blocks: int) -> str:
    """``ranking.summarize``'s words, plus how many more repeats would give those votes.

    Each more repeat of every prompt, judged side by side, gives one head-to-head of the two
    leaders per block (image x ratio).
    """
    from wavenb.ab.ranking import summarize as in_words  # noqa: PLC0415  (numpy)

    text = in_words(fitted)
    if len(fitted.prompts) < 2 or fitted.votes == 0:  # noqa: PLR2004
        return text
    first, second = fitted.prompts[:2]
    lead = first.score - second.score
    if lead <= 0 or lead > _Z95 * fitted.lead_sd:
        return text
    more = math.ceil(fitted.votes * (_Z95 * fitted.lead_sd / lead) ** 2 - fitted.votes)
    repeats = math.ceil(more / max(1, blocks))
    return text + (
        f" That is about {repeats} more repeat{'s' if repeats != 1 else ''} of each prompt, "
        "judged side by side."
    )


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _not_run(run: CellRun) -> bool:
    """Stopped while waiting, or cancelled before it was sent: not a failure of the cell."""
    return run.status is Phase.STOPPED or (run.status is Phase.REFUSED and run.error == NOT_SENT)
