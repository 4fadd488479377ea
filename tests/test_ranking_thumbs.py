"""Thumbs and weighted votes in the ranking: honest intervals although thumbs share cells.

Thumbs are simulated from known scores: a cell gets 👍 with probability
``logistic(score - bar)``, the bar drawn afresh for each block (one image and ratio), several
repeats of each prompt per block. The pairs ``votes_from_ratings`` makes of them share cells,
so they are weighted (``wavenb.ab.ranking``'s docstring says why ``2 / n``); the 95 % intervals
must then hold the true scores about 95 % of the time, as they do for independent votes
(tests/test_ranking.py).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from wavenb.ab.ranking import Method, rank, summarize, votes_from_ratings

IDS = ["A", "B", "C", "D", "E", "F"]


def thumbs(
    truth: np.ndarray, blocks: int, repeats: int, rng: np.random.Generator
) -> list[tuple[str, int, int]]:
    """``(prompt_id, block, rating)`` for ``repeats`` cells of each prompt in each block."""
    ratings = []
    for block in range(blocks):
        bar = rng.normal(0.0, 0.5)  # some images are judged more harshly than others
        for prompt, score in enumerate(truth):
            for _ in range(repeats):
                up = rng.random() < 1 / (1 + math.exp(bar - score))
                ratings.append((IDS[prompt], block, 1 if up else -1))
    return ratings


def coverage(
    method: Method, prompts: int, blocks: int, repeats: int, *, weighted: bool = True
) -> float:
    """Share of 95 % intervals holding the true (centred) score, over 200 simulated comparisons."""
    rng = np.random.default_rng(2027)
    ids = IDS[:prompts]
    hits = total = 0
    for run in range(200):
        truth = rng.normal(0.0, 1.0, prompts)
        truth -= truth.mean()  # only differences are identified: compare centred scores
        votes = votes_from_ratings(thumbs(truth, blocks, repeats, rng))
        if not weighted:
            votes = [(winner, loser, 1.0) for winner, loser, _ in votes]
        draws = 1000 if method == "bayes" else 300
        ranking = rank(votes, ids, method=method, draws=draws, seed=run)
        for entry in ranking.prompts:
            hits += entry.ci_low <= truth[ids.index(entry.prompt_id)] <= entry.ci_high
            total += 1
    return hits / total


@pytest.mark.parametrize("method", ["bayes", "bootstrap"])
@pytest.mark.parametrize(
    ("prompts", "blocks", "repeats"),
    [(4, 30, 1), (4, 10, 3), (6, 8, 4)],  # one cell per prompt per block, or several
)
def test_the_95_percent_intervals_from_thumbs_hold_the_truth_about_95_percent_of_the_time(
    method: Method, prompts: int, blocks: int, repeats: int
) -> None:
    assert 0.88 <= coverage(method, prompts, blocks, repeats) <= 1.0


def test_counted_as_independent_votes_the_thumbs_would_overstate_certainty() -> None:
    """Why the weights: the same thumbs as plain votes give intervals that miss far too often."""
    assert coverage("bayes", 4, 10, 3, weighted=False) < 0.8


def test_a_lone_thumbs_pair_is_one_vote_and_a_block_weighs_its_pairs_2_over_n() -> None:
    assert votes_from_ratings([("A", 0, 1), ("B", 0, -1)]) == [("A", "B", 1.0)]
    one_up_three_down = [("A", 0, 1), ("B", 0, -1), ("C", 0, -1), ("D", 0, -1)]
    votes = votes_from_ratings(one_up_three_down)
    assert [weight for _, _, weight in votes] == [0.5, 0.5, 0.5]
    assert rank(votes, ["A", "B", "C", "D"]).votes == pytest.approx(1.5)


def test_a_weighted_vote_counts_as_that_share_of_a_vote() -> None:
    halves = rank([("A", "B", 0.5)] * 6 + [("B", "A", 0.5)] * 2, ["A", "B"])
    whole = rank([("A", "B")] * 3 + [("B", "A")], ["A", "B"])
    assert halves.votes == whole.votes == 4
    assert halves.prompts[0].score == pytest.approx(whole.prompts[0].score, abs=1e-9)
    assert halves.prompts[0].ci_high == pytest.approx(whole.prompts[0].ci_high, abs=1e-9)
    assert (halves.prompts[0].wins, halves.prompts[0].losses) == (3.0, 1.0)
    # A weight of 1 is a plain vote; a weighted tie is half that weight each way.
    assert rank([("A", "B", 1.0)], ["A", "B"]) == rank([("A", "B")], ["A", "B"])
    tied = rank([], ["A", "B"], ties=[("A", "B", 0.5)])
    assert (tied.votes, tied.prompts[0].wins) == (0.5, 0.25)


def test_the_bootstrap_resamples_as_many_votes_as_the_weights_are_worth() -> None:
    """Eight pairs worth four votes vary like four votes, not like eight."""
    halves = rank([("A", "B", 0.5)] * 6 + [("B", "A", 0.5)] * 2, ["A", "B"], method="bootstrap")
    whole = rank([("A", "B")] * 3 + [("B", "A")], ["A", "B"], method="bootstrap")
    assert halves.lead_sd == pytest.approx(whole.lead_sd, rel=0.1)
    doubled = rank([("A", "B")] * 6 + [("B", "A")] * 2, ["A", "B"], method="bootstrap")
    assert halves.lead_sd > 1.2 * doubled.lead_sd


def test_more_votes_needed_counts_whole_votes_and_prints_fractions_briefly() -> None:
    ratings = [("A", 0, 1), ("B", 0, -1), ("C", 0, -1), ("A", 1, 1), ("B", 1, -1), ("C", 1, -1)]
    ranking = rank(votes_from_ratings(ratings), ["A", "B", "C"])
    assert ranking.votes == pytest.approx(8 / 3)
    text = summarize(ranking)
    assert re.search(r"about \d+ more votes", text), text
    level = rank([("A", "B", 2 / 3), ("B", "A", 2 / 3)], ["A", "B"])
    assert summarize(level) == "“A” and “B” are level after 1.3 votes: no prompt leads yet."


@pytest.mark.parametrize("weight", [0.0, -1.0, math.inf, math.nan])
def test_a_weight_must_be_positive_and_finite(weight: float) -> None:
    with pytest.raises(ValueError, match="weight must be positive and finite"):
        rank([("A", "B", weight)], ["A", "B"])
