"""The metrics-cost benchmark's arithmetic and design (``bench/compare_metrics.py``).

No timing here: the figures are computed from made-up runs, and the default design is checked
to measure a different video in every cell (so no measurement comes from the cache).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import compare_metrics


def runs(*pairs: tuple[float, float]) -> list[dict[str, float]]:
    return [{"videos": videos, "settled": settled} for videos, settled in pairs]


def test_both_figures_get_a_slowdown_by_medians_and_by_back_to_back_pairs() -> None:
    results = {
        "with": runs((10.5, 12.0), (11.0, 13.0), (30.0, 33.0)),
        "without": runs((10.0, 10.0), (10.0, 10.0), (31.0, 31.0)),
    }
    figures = compare_metrics.slowdowns(results)
    assert set(figures) == {
        "slowdown", "paired_slowdown", "settled_slowdown", "paired_settled_slowdown"
    }  # fmt: skip
    assert figures["slowdown"] == pytest.approx(11.0 / 10.0 - 1)
    assert figures["paired_slowdown"] == pytest.approx(0.05)  # of +5 %, +10 %, -3.2 %
    assert figures["settled_slowdown"] == pytest.approx(13.0 / 10.0 - 1)
    assert figures["paired_settled_slowdown"] == pytest.approx(0.20)  # of +20 %, +30 %, +6.5 %


@pytest.mark.slow  # renders and measures four 5 s videos
def test_the_default_design_measures_a_different_video_in_every_cell(tmp_path: Path) -> None:
    """2x2 renders each prompt's repeats as the same bytes; the default must not."""
    prompts, repeats = compare_metrics.DESIGNS[compare_metrics.DEFAULT_DESIGN]
    run = asyncio.run(
        compare_metrics.one_run("instant", compare_metrics.DEFAULT_DESIGN, metrics=True,
                                folder=tmp_path)
    )  # fmt: skip
    assert run["distinct_videos"] == prompts * repeats
