"""Prompts are ranked from votes by Bradley-Terry, with honest intervals and P(best).

Votes are simulated from known scores (seeded), so every claim is checked against the truth:
the order comes back, and the 95 % intervals hold the true scores about 95 % of the time.
"""

from __future__ import annotations

import math
import re
import sys

import numpy as np
import pytest

from wavenb.ab.ranking import PRIOR_SD, Method, Ranking, rank, summarize, votes_from_ratings

IDS = ["A", "B", "C", "D", "E"]


def simulate(
    scores: list[float], votes: int, rng: np.random.Generator, ids: list[str] = IDS
) -> list[tuple[str, str]]:
    """Votes between random pairs, each won with the Bradley-Terry probability."""
    out = []
    for _ in range(votes):
        a, b = rng.choice(len(scores), 2, replace=False)
        a_wins = rng.random() < 1 / (1 + math.exp(scores[b] - scores[a]))
        out.append((ids[a], ids[b]) if a_wins else (ids[b], ids[a]))
    return out


def order(ranking: Ranking) -> list[str]:
    return [entry.prompt_id for entry in ranking.prompts]


# --- the ranking recovers the truth ----------------------------------------------------------


@pytest.mark.parametrize("method", ["bayes", "bootstrap"])
def test_a_known_order_is_recovered_from_simulated_votes(method: Method) -> None:
    truth = [1.6, 0.8, 0.0, -0.8, -1.6]  # A best ... E worst
    votes = simulate(truth, 600, np.random.default_rng(11))
    ranking = rank(votes, IDS[::-1], method=method, draws=1000)
    assert order(ranking) == IDS
    for entry, true in zip(ranking.prompts, truth, strict=True):
        assert entry.ci_low < true < entry.ci_high
        assert entry.score == pytest.approx(true, abs=0.35)
    assert ranking.prompts[0].p_best > 0.9


@pytest.mark.parametrize(("method", "draws"), [("bayes", 1000), ("bootstrap", 300)])
def test_the_95_percent_intervals_hold_the_true_scores_about_95_percent_of_the_time(
    method: Method, draws: int
) -> None:
    """200 simulated comparisons of 4 prompts, 60 votes each, true scores drawn N(0, 1)."""
    rng = np.random.default_rng(2026)
    ids = IDS[:4]
    hits = total = 0
    for run in range(200):
        truth = rng.normal(0.0, 1.0, len(ids))
        truth -= truth.mean()  # only differences are identified: compare centred scores
        ranking = rank(
            simulate(list(truth), 60, rng, ids), ids, method=method, draws=draws, seed=run
        )
        for entry in ranking.prompts:
            hits += entry.ci_low <= truth[ids.index(entry.prompt_id)] <= entry.ci_high
            total += 1
    assert 0.88 <= hits / total <= 0.99


def test_p_best_follows_the_evidence_and_sums_to_one() -> None:
    votes = [("A", "B")] * 6 + [("B", "A")] * 4 + [("B", "C")] * 5 + [("C", "B")] * 5
    ranking = rank(votes, ["A", "B", "C"])
    p_best = {entry.prompt_id: entry.p_best for entry in ranking.prompts}
    assert sum(p_best.values()) == pytest.approx(1.0)
    assert p_best["A"] > p_best["B"] > 0
    assert p_best["A"] > p_best["C"] > 0


def test_more_votes_narrow_the_intervals() -> None:
    few = rank([("A", "B")] * 7 + [("B", "A")] * 3, ["A", "B"])
    many = rank(([("A", "B")] * 7 + [("B", "A")] * 3) * 10, ["A", "B"])
    width = lambda r: r.prompts[0].ci_high - r.prompts[0].ci_low  # noqa: E731
    assert width(many) < width(few) / 2.5


def test_the_win_probability_is_the_logistic_of_the_score_difference() -> None:
    ranking = rank([("A", "B")] * 3 + [("B", "A")], ["A", "B"])
    a, b = ranking.prompts
    assert ranking.win_probability("A", "B") == pytest.approx(1 / (1 + math.exp(b.score - a.score)))
    assert ranking.win_probability("A", "B") + ranking.win_probability("B", "A") == pytest.approx(1)
    with pytest.raises(KeyError):
        ranking.win_probability("A", "Z")


def test_the_same_seed_gives_the_same_ranking() -> None:
    votes = simulate([0.5, 0.0, -0.5], 40, np.random.default_rng(5), IDS[:3])
    for method in ("bayes", "bootstrap"):
        assert rank(votes, IDS[:3], method=method, seed=1) == rank(
            votes, IDS[:3], method=method, seed=1
        )


# --- edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bayes", "bootstrap"])
def test_with_no_votes_every_prompt_is_level(method: Method) -> None:
    ranking = rank([], ["A", "B", "C"], method=method)
    assert order(ranking) == ["A", "B", "C"]  # the order given
    assert [entry.score for entry in ranking.prompts] == [0.0, 0.0, 0.0]
    assert [entry.p_best for entry in ranking.prompts] == pytest.approx([1 / 3] * 3, abs=0.03)
    assert ranking.votes == 0


def test_with_no_votes_the_bayes_interval_is_the_prior() -> None:
    """Centred scores of 3 prompts under N(0, 2^2) each: sd 2 * sqrt(2/3)."""
    entry = rank([], ["A", "B", "C"]).prompts[0]
    half = 1.959964 * PRIOR_SD * math.sqrt(2 / 3)
    assert (entry.ci_low, entry.ci_high) == pytest.approx((-half, half))


def test_one_prompt_is_best_for_sure() -> None:
    ranking = rank([], ["only"])
    (entry,) = ranking.prompts
    assert (entry.score, entry.ci_low, entry.ci_high, entry.p_best) == (0.0, 0.0, 0.0, 1.0)
    assert ranking.lead_sd == 0.0


def test_no_prompts_is_an_empty_ranking() -> None:
    ranking = rank([], [])
    assert (ranking.prompts, ranking.best) == ((), None)


@pytest.mark.parametrize("method", ["bayes", "bootstrap"])
def test_a_prompt_that_never_lost_gets_a_finite_score_on_top(method: Method) -> None:
    ranking = rank(
        [("A", "B")] * 5 + [("A", "C")] * 5 + [("B", "C")] * 3, ["C", "B", "A"], method=method
    )
    best = ranking.prompts[0]
    assert best.prompt_id == "A"
    assert (best.wins, best.losses) == (10.0, 0.0)
    assert all(math.isfinite(x) for x in (best.score, best.ci_low, best.ci_high))
    assert best.score < 3 * PRIOR_SD


def test_a_balanced_record_is_a_tie() -> None:
    ranking = rank([("A", "B"), ("B", "A")] * 3, ["A", "B"])
    a, b = ranking.prompts
    assert a.score == pytest.approx(b.score, abs=1e-12)
    assert a.p_best == pytest.approx(0.5, abs=0.03)


def test_a_tie_counts_half_a_win_each_way() -> None:
    ranking = rank([("A", "B")], ["A", "B"], ties=[("A", "B"), ("B", "A")])
    a, b = ranking.prompts
    assert (a.prompt_id, a.wins, a.losses, b.wins, b.losses) == ("A", 2.0, 1.0, 1.0, 2.0)
    assert ranking.votes == 3
    only_ties = rank([], ["A", "B"], ties=[("A", "B")] * 4)
    assert only_ties.prompts[0].score == pytest.approx(0.0, abs=1e-12)
    assert only_ties.prompts[0].ci_high < rank([], ["A", "B"]).prompts[0].ci_high


def test_prompts_that_never_met_are_ranked_through_others() -> None:
    """A beat B, B beat C: A is above C without a vote between them."""
    ranking = rank([("A", "B")] * 4 + [("B", "C")] * 4, ["C", "B", "A"])
    assert order(ranking) == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("votes", "ids", "kwargs", "message"),
    [
        ([("A", "Z")], ["A", "B"], {}, "unknown prompt id 'Z'"),
        ([("A", "A")], ["A", "B"], {}, "against itself"),
        ([], ["A", "A"], {}, "unique"),
        ([], ["A", "B"], {"method": "frequentist"}, "method"),
        ([], ["A", "B"], {"draws": 10}, "draws"),
        ([], ["A", "B"], {"ties": [("A", "Q")]}, "unknown prompt id 'Q'"),
    ],
)
def test_bad_input_is_refused(
    votes: list[tuple[str, str]], ids: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        rank(votes, ids, **kwargs)  # type: ignore[arg-type]


# --- thumbs as votes ----------------------------------------------------------------------


def test_a_thumb_up_beats_each_thumb_down_of_another_prompt_in_its_block() -> None:
    ratings = [
        ("A", ("cat", "16:9"), 1),
        ("B", ("cat", "16:9"), -1),
        ("C", ("cat", "16:9"), -1),
        ("A", ("cat", "16:9"), -1),  # A against itself: nothing
        ("B", ("cat", "9:16"), 1),  # another block: never meets the 16:9 cells
        ("C", ("cat", "16:9"), 1),
    ]
    # Five rated cells in the 16:9 block: each pair weighs 2/5 (tests/test_ranking_thumbs.py).
    assert sorted(votes_from_ratings(ratings)) == [
        ("A", "B", 0.4),
        ("A", "C", 0.4),
        ("C", "A", 0.4),
        ("C", "B", 0.4),
    ]


def test_two_thumbs_the_same_way_say_nothing() -> None:
    assert votes_from_ratings([("A", 0, 1), ("B", 0, 1), ("C", 0, -1), ("D", 0, -1)]) == [
        ("A", "C", 0.5),
        ("A", "D", 0.5),
        ("B", "C", 0.5),
        ("B", "D", 0.5),
    ]
    assert votes_from_ratings([("A", 0, 1), ("B", 0, 1)]) == []


def test_a_rating_must_be_a_thumb() -> None:
    with pytest.raises(ValueError, match="1 or -1"):
        votes_from_ratings([("A", 0, 0)])


# --- pandas and words -----------------------------------------------------------------------


def test_to_pandas_is_indexed_by_prompt_and_sorted_best_first() -> None:
    frame = rank([("B", "A")] * 3 + [("B", "C")] * 3, ["A", "B", "C"]).to_pandas()
    assert frame.index.name == "prompt_id"
    assert frame.index[0] == "B"
    assert list(frame.columns) == ["rank", "score", "ci_low", "ci_high", "p_best", "wins", "losses"]
    assert list(frame["rank"]) == [1, 2, 3]
    assert frame["score"].is_monotonic_decreasing


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    ranking = rank([], ["A", "B"])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'wavenb[pandas]'")):
        ranking.to_pandas()


def test_summary_of_a_clear_lead() -> None:
    text = summarize(rank([("zoom", "walk")] * 30 + [("walk", "zoom")] * 6, ["walk", "zoom"]))
    assert text.startswith("“zoom” leads “walk”: it would win 8")
    assert "best in 100% of posterior draws" in text
    assert text.endswith("The lead is clear at 95 %.")


def test_summary_says_how_many_more_votes_would_settle_it() -> None:
    """Votes in the same proportions, as many as suggested (and a margin), settle it."""
    record = [("B", "A")] * 6 + [("A", "B")] * 3
    text = summarize(rank(record, ["A", "B"]))
    match = re.search(r"about (\d+) more votes", text)
    assert match is not None, text
    more = int(match[1])
    assert 5 <= more <= 200
    enough = record * math.ceil(1.3 * (len(record) + more) / len(record))
    assert summarize(rank(enough, ["A", "B"])).endswith("clear at 95 %.")


def test_summary_uses_the_methods_words() -> None:
    text = summarize(rank([("A", "B")] * 9 + [("B", "A")], ["A", "B"], method="bootstrap"))
    assert "bootstrap refits" in text


@pytest.mark.parametrize(
    ("ranking", "text"),
    [
        (rank([], []), "No prompts to rank."),
        (rank([], ["A"]), "Only one prompt (“A”): nothing to compare."),
        (
            rank([], ["A", "B"]),
            "No votes yet: rate cells 👍/👎 or vote side by side to rank the prompts.",
        ),
        (
            rank([("A", "B"), ("B", "A")], ["A", "B"]),
            "“A” and “B” are level after 2 votes: no prompt leads yet.",
        ),
    ],
)
def test_summary_edge_cases(ranking: Ranking, text: str) -> None:
    assert summarize(ranking) == text
