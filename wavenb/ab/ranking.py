"""Rank prompts from people's judgements: Bradley-Terry scores with 95 % intervals and P(best).

The model: each prompt ``i`` has a score ``s_i`` and wins a head-to-head against ``j`` with
probability ``1 / (1 + exp(s_j - s_i))`` (a lead of 1.0 wins 73 % of the time, 2.0 wins 88 %).
Scores are fitted by Newton's method on the log-likelihood plus a weak Gaussian prior,
``s_i ~ N(0, 2^2)``: with it the fit exists and is unique even with no votes, one prompt that
never lost, or prompts that never met, and it barely moves scores that votes pin down. Scores
are centred (they sum to zero): only differences mean anything.

What counts as a vote:

* A blind side-by-side choice: ``(winner, loser)``; a tie counts half a win each way
  (``ties=[(a, b)]``).
* Thumbs (``votes_from_ratings``): within one *block* (the same image and aspect ratio,
  so the videos differ in the prompt only), each 👍 cell beats each 👎 cell of *another*
  prompt. Two 👍 (or two 👎) say nothing about which is better, and a prompt is never
  compared with itself. The pairs are not independent: one 👍 against three 👎 is four
  verdicts, not three separate choices; counted as plain votes, the pairs gave 95 %
  intervals that held the truth only 50 to 85 % of the time in simulations. So each pair
  weighs ``2 / n`` for a block of ``n`` rated cells: a lone 👍/👎 pair is one vote, a block
  ``2 #👍 #👎 / n`` votes in all. Why: if a cell gets 👍 with probability
  ``logistic(s_i - c)`` (``c``: the block's bar), then in a 👍/👎 pair the 👍 went to ``i``
  rather than ``j`` with probability ``logistic(s_i - s_j)``, a Bradley-Terry vote on the
  same scores. Fitting all of a block's pairs is a composite likelihood: with level scores
  the variance of its gradient is ``n / 2`` times its curvature, so weight ``2 / n`` makes the
  fit's curvature the true information (the sandwich variance, which here equals the exact
  conditional likelihood's). ``tests/test_ranking_thumbs.py`` checks the coverage.
* Any vote may carry a weight, ``(winner, loser, weight)``: it counts as ``weight`` votes in
  the likelihood and the totals; the bootstrap resamples ``round(total weight)`` votes, each
  drawn in proportion to its weight, so a weight is a share of one independent vote.

How sure, two ways (``method=``):

* ``"bayes"`` (default): the Laplace approximation of the posterior, a normal around the fit
  with the inverse Hessian as covariance; the intervals are its 95 % intervals and ``p_best``
  the share of ``draws`` samples in which a prompt scores highest. One fit, so it is fast,
  and the prior keeps it honest with a handful of votes, where it is most needed.
* ``"bootstrap"``: the votes resampled with replacement ``draws`` times and refitted; the
  percentile intervals and the share of refits each prompt wins. It assumes nothing about
  the posterior's shape, but with few votes it is overconfident: a 3-0 record resamples to
  3-0 nearly every time.
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Judgement",
    "Method",
    "RankedPrompt",
    "Ranking",
    "rank",
    "summarize",
    "votes_from_ratings",
]

Method = Literal["bayes", "bootstrap"]
Judgement = tuple[str, str] | tuple[str, str, float]
"""Two prompt ids, ``(winner, loser)`` (for a tie, either order), with an optional weight (1)."""
_F64 = npt.NDArray[np.float64]

PRIOR_SD: Final = 2.0
"""Standard deviation of the Gaussian prior on each score (log-odds)."""
_Z95: Final = 1.959963984540054
_TOLERANCE: Final = 1e-10
_MAX_STEPS: Final = 100
_EVEN: Final = 1e-9
"""Scores closer than this count as level: they share a "best" draw."""


@dataclass(frozen=True, slots=True)
class RankedPrompt:
    """One prompt's place in a ``Ranking``."""

    prompt_id: str
    score: float
    """Fitted Bradley-Terry score (log-odds, centred on 0)."""
    ci_low: float
    """Lower end of the 95 % interval of ``score``."""
    ci_high: float
    p_best: float
    """Share of posterior draws (or bootstrap refits) in which this prompt scores highest."""
    wins: float
    """Votes won (weighted), ties counting half."""
    losses: float


@dataclass(frozen=True, slots=True)
class Ranking:
    """Prompts from best to worst, with how sure the order is."""

    prompts: tuple[RankedPrompt, ...]
    """Best first (ties keep the order the prompt ids were given in)."""
    method: Method
    draws: int
    votes: float
    """Votes counted: each choice and each tie its weight (1 unless given; thumbs less)."""
    lead_sd: float
    """Standard deviation of the score difference between the first two prompts (0 if fewer
    than two): how far apart the two are is known to about this much."""

    @property
    def best(self) -> RankedPrompt | None:
        """The leader, or None when there are no prompts."""
        return self.prompts[0] if self.prompts else None

    def win_probability(self, winner: str, loser: str) -> float:
        """Chance that ``winner`` beats ``loser`` in one more head-to-head, by the fit.

        Raises:
            KeyError: for a prompt id not in the ranking.
        """
        scores = {entry.prompt_id: entry.score for entry in self.prompts}
        return 1.0 / (1.0 + math.exp(scores[loser] - scores[winner]))

    def to_pandas(self) -> Any:  # noqa: ANN401  (pandas is optional: no type to name)
        """A DataFrame indexed by ``prompt_id``, best first.

        Columns: ``rank`` (1 is best), ``score``, ``ci_low``, ``ci_high``, ``p_best``,
        ``wins``, ``losses``.

        Raises:
            ImportError: if pandas is not installed (``pip install 'wavenb[pandas]'``).
        """
        try:
            pandas = importlib.import_module("pandas")  # optional: loaded when asked
        except ImportError as error:
            raise ImportError(
                "Ranking.to_pandas needs pandas: pip install 'wavenb[pandas]'"
            ) from error
        rows = [
            {
                "prompt_id": entry.prompt_id,
                "rank": place,
                "score": entry.score,
                "ci_low": entry.ci_low,
                "ci_high": entry.ci_high,
                "p_best": entry.p_best,
                "wins": entry.wins,
                "losses": entry.losses,
            }
            for place, entry in enumerate(self.prompts, start=1)
        ]
        columns = ["prompt_id", "rank", "score", "ci_low", "ci_high", "p_best", "wins", "losses"]
        return pandas.DataFrame(rows, columns=columns).set_index("prompt_id")


def votes_from_ratings(
    ratings: Iterable[tuple[str, Hashable, int]],
) -> list[tuple[str, str, float]]:
    """Turn thumbs into weighted votes: in each block, every 👍 beats every 👎 of another prompt.

    ``ratings`` are ``(prompt_id, block, rating)`` with rating ``1`` (👍) or ``-1`` (👎); a
    block is whatever makes cells comparable, e.g. ``(image, aspect_ratio)``. Each vote
    ``(winner, loser, weight)`` weighs ``2 / (#👍 + #👎)`` in its block (module docstring).

    Raises:
        ValueError: for a rating other than 1 or -1.

    Examples:
        >>> votes_from_ratings([("A", "16:9", 1), ("B", "16:9", -1), ("C", "9:16", -1)])
        [('A', 'B', 1.0)]
        >>> votes_from_ratings([("A", 0, 1), ("B", 0, -1), ("C", 0, -1), ("D", 0, -1)])
        [('A', 'B', 0.5), ('A', 'C', 0.5), ('A', 'D', 0.5)]

    """
    ups: dict[Hashable, list[str]] = {}
    downs: dict[Hashable, list[str]] = {}
    for prompt_id, block, rating in ratings:
        if rating not in (1, -1):
            raise ValueError(f"a rating is 1 or -1, got {rating!r}")
        (ups if rating == 1 else downs).setdefault(block, []).append(prompt_id)
    return [
        (up, down, 2.0 / (len(winners) + len(downs[block])))
        for block, winners in ups.items()
        if block in downs
        for up in winners
        for down in downs[block]
        if up != down
    ]


def rank(
    votes: Iterable[Judgement],
    prompt_ids: Sequence[str],
    *,
    ties: Iterable[Judgement] = (),
    method: Method = "bayes",
    draws: int = 4000,
    seed: int = 0,
) -> Ranking:
    """Fit Bradley-Terry scores to ``votes`` (``(winner, loser)`` prompt ids) and rank.

    Every id in ``prompt_ids`` is ranked, voted on or not; each of ``ties`` counts half a win
    each way. A vote or tie may carry a weight as a third item (``votes_from_ratings`` does).
    ``method="bayes"`` (the default: one fit, right with few votes) or ``"bootstrap"``,
    ``draws`` samples or refits (see the module docstring). The same votes, method, draws and
    seed give the same ranking.

    Raises:
        ValueError: for an unknown or repeated prompt id, a prompt voted against itself, a
            weight that is not a positive finite number, an unknown method, or fewer than 100
            draws.

    Examples:
        >>> r = rank([("zoom", "walk"), ("zoom", "walk"), ("walk", "zoom")], ["walk", "zoom"])
        >>> r.best.prompt_id, round(r.win_probability("zoom", "walk"), 2)
        ('zoom', 0.64)

    """
    ids = list(prompt_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("prompt ids must be unique")
    if method not in ("bayes", "bootstrap"):
        raise ValueError(f"method must be 'bayes' or 'bootstrap', got {method!r}")
    if draws < 100:  # noqa: PLR2004 - fewer draws make p_best a coin toss of its own
        raise ValueError(f"draws must be at least 100, got {draws}")
    units = _units(ids, votes, ties)
    if not ids:
        return Ranking(prompts=(), method=method, draws=draws, votes=0.0, lead_sd=0.0)
    kinds = list(units)
    weighted = np.array([[units[kind] * kind[3] for kind in kinds]], dtype=np.float64)
    counts = _counts(kinds, weighted, len(ids))
    score, hessian = _fit(counts)
    counts = counts[0]
    rng = np.random.default_rng(seed)
    if method == "bayes":
        covariance = _centred(np.linalg.inv(-hessian[0]))
        sd = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        low, high = score[0] - _Z95 * sd, score[0] + _Z95 * sd
        samples = rng.multivariate_normal(score[0], covariance, size=draws, method="eigh")
    else:
        samples = _bootstrap(units, len(ids), draws, rng)
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    # Rounded, so that level prompts keep the order given despite float noise.
    order = sorted(range(len(ids)), key=lambda i: -round(float(score[0, i]), 9))
    lead_sd = float(np.std(samples[:, order[0]] - samples[:, order[1]])) if len(ids) > 1 else 0.0
    p_best = _share_best(samples)
    wins, losses = counts.sum(axis=1), counts.sum(axis=0)
    return Ranking(
        prompts=tuple(
            RankedPrompt(
                prompt_id=ids[i],
                score=float(score[0, i]),
                ci_low=float(low[i]),
                ci_high=float(high[i]),
                p_best=float(p_best[i]),
                wins=float(wins[i]),
                losses=float(losses[i]),
            )
            for i in order
        ),
        method=method,
        draws=draws,
        votes=float(counts.sum()),
        lead_sd=lead_sd,
    )


def summarize(ranking: Ranking) -> str:
    """Say in words who leads, by how much, how sure that is, and what would settle it.

    Examples:
        >>> votes = [("B", "A")] * 8 + [("A", "B")] * 2
        >>> summarize(rank(votes, ["A", "B"]))  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        '“B” leads “A”: it would win 78% of head-to-heads, and is best in 96% of ... draws. Not
        settled: about 3 more votes like these would separate the two at 95 %.'

    """
    if not ranking.prompts:
        return "No prompts to rank."
    if len(ranking.prompts) == 1:
        return f"Only one prompt (“{ranking.prompts[0].prompt_id}”): nothing to compare."
    if ranking.votes == 0:
        return "No votes yet: rate cells 👍/👎 or vote side by side to rank the prompts."
    first, second = ranking.prompts[:2]
    lead = first.score - second.score
    if lead < _EVEN:
        return (
            f"“{first.prompt_id}” and “{second.prompt_id}” are level after "
            f"{_count(ranking.votes)}: no prompt leads yet."
        )
    draws = "bootstrap refits" if ranking.method == "bootstrap" else "posterior draws"
    text = (
        f"“{first.prompt_id}” leads “{second.prompt_id}”: it would win "
        f"{ranking.win_probability(first.prompt_id, second.prompt_id):.0%} of head-to-heads, "
        f"and is best in {first.p_best:.0%} of {draws}."
    )
    if lead > _Z95 * ranking.lead_sd:
        return text + " The lead is clear at 95 %."
    # Interval widths shrink as 1 / sqrt(n): n votes like these separate the two when the
    # lead is 1.96 standard deviations, so n grows with (1.96 sd / lead) squared.
    needed = ranking.votes * (_Z95 * ranking.lead_sd / lead) ** 2
    more = math.ceil(needed - ranking.votes)
    return (
        text + f" Not settled: about {more} more votes like these would separate the two at 95 %."
    )


# --- fitting ------------------------------------------------------------------------------


_Unit = tuple[int, int, bool, float]
"""One judgement: (winner, loser, False, weight) for a vote, (a, b, True, weight) with a < b
for a tie."""


def _units(ids: list[str], votes: Iterable[Judgement], ties: Iterable[Judgement]) -> Counter[_Unit]:
    """How often each distinct judgement was made, by prompt index."""
    index = {prompt_id: i for i, prompt_id in enumerate(ids)}
    units: Counter[_Unit] = Counter()
    for judgements, tie in ((votes, False), (ties, True)):
        for first, second, *rest in judgements:
            for prompt_id in (first, second):
                if prompt_id not in index:
                    raise ValueError(f"vote for an unknown prompt id {prompt_id!r}")
            if first == second:
                raise ValueError(f"a prompt cannot be voted against itself: {first!r}")
            weight = float(rest[0]) if rest else 1.0
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"a vote's weight must be positive and finite, got {weight!r}")
            a, b = index[first], index[second]
            units[(min(a, b), max(a, b), True, weight) if tie else (a, b, False, weight)] += 1
    return units


def _counts(units: list[_Unit], tallies: _F64, size: int) -> _F64:
    """Win-count matrices ``[d, winner, loser]`` of ``tallies[d, k]`` votes of unit ``k``."""
    counts = np.zeros((tallies.shape[0], size, size))
    for k, (a, b, tie, _weight) in enumerate(units):
        counts[:, a, b] += tallies[:, k] * (0.5 if tie else 1.0)
        if tie:
            counts[:, b, a] += tallies[:, k] * 0.5
    return counts


def _fit(counts: _F64) -> tuple[_F64, _F64]:
    """MAP scores and the log-posterior's Hessian for a stack of win-count matrices.

    ``counts[d, i, j]`` is how often ``i`` beat ``j`` in data set ``d``. Newton's method on
    the log-likelihood plus the Gaussian prior: the Hessian is negative definite, so it
    converges from zero in a few steps. The prior's pull on the mean keeps scores centred.
    """
    sets, size = counts.shape[:2]
    score = np.zeros((sets, size))
    eye = np.eye(size)
    for _ in range(_MAX_STEPS):
        p = _logistic(score[:, :, None] - score[:, None, :])  # p[d, i, j]: i beats j
        surprise = counts * (1 - p)
        gradient = surprise.sum(axis=2) - surprise.sum(axis=1) - score / PRIOR_SD**2
        weight = counts * p * (1 - p)
        weight = weight + weight.transpose(0, 2, 1)
        hessian = weight - eye * weight.sum(axis=2)[:, :, None] - eye / PRIOR_SD**2
        step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
        score = score - step
        if float(np.abs(step).max(initial=0.0)) < _TOLERANCE:
            break
    return score, hessian


def _bootstrap(units: Counter[_Unit], size: int, draws: int, rng: np.random.Generator) -> _F64:
    """Scores refitted to ``draws`` resamples of the judgements, drawn with replacement.

    A resample has ``round(total weight)`` judgements of weight 1, each drawn in proportion to
    the weight it had: so weighted thumbs vary as much as the independent votes they are worth
    (resampling every pair with its weight would shrink the spread back to the pairs' count).
    """
    kinds = list(units)
    tallies = np.array([units[kind] * kind[3] for kind in kinds], dtype=np.float64)
    total = max(1, round(float(tallies.sum()))) if kinds else 0
    if total == 0:
        return np.zeros((draws, size))
    picks = rng.multinomial(total, tallies / tallies.sum(), size=draws).astype(np.float64)
    return _fit(_counts(kinds, picks, size))[0]


def _centred(covariance: _F64) -> _F64:
    """Covariance of the centred scores: the common offset is not something votes measure."""
    size = covariance.shape[0]
    centre = np.eye(size) - 1.0 / size
    return np.asarray(centre @ covariance @ centre, dtype=np.float64)


def _share_best(samples: _F64) -> _F64:
    """Per prompt, the share of samples in which it scores highest (level leaders share)."""
    top = samples.max(axis=1, keepdims=True)
    leaders = samples >= top - _EVEN
    return np.asarray((leaders / leaders.sum(axis=1, keepdims=True)).mean(axis=0), np.float64)


def _logistic(x: _F64) -> _F64:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _count(votes: float) -> str:
    # Weighted thumbs make fractions: "2.3 votes", never "2.33333 votes".
    return f"{round(votes, 1):g} vote" + ("" if votes == 1 else "s")
