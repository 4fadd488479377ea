"""plot_timeline: one lane per task, a span per status phase, a tick per result check."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D

import wavenb
from wavenb import Event, Prediction, PredictionFailed, Status, Timeline, Video
from wavenb.testing import Sandbox
from wavenb.ui.timeline import (
    CHECKS_GID,
    COMPLETED,
    END_GID,
    FAILED,
    PHASE_GID,
    PROCESSING,
    QUEUED,
    SUBMIT_GID,
    plot_timeline,
)

T0 = datetime(2025, 9, 29, 23, 9, 43, tzinfo=UTC)


def timeline(
    statuses: list[tuple[float, Status]], *, start: float = 0.0, task: str = "a" * 32
) -> Timeline:
    """A submit at 0 then a check at each ``(seconds, status)``; ``start`` shifts the wall clock."""
    first, *checks = statuses
    events = [Event("submit", first[0], T0 + timedelta(seconds=start + first[0]), first[1])]
    events += [Event("check", at, T0 + timedelta(seconds=start + at), s) for at, s in checks]
    return Timeline(task, tuple(events))


COMPLETED_RUN = [
    (0.0, Status.CREATED),
    (1.0, Status.CREATED),
    (2.0, Status.PROCESSING),
    (3.0, Status.PROCESSING),
    (4.0, Status.COMPLETED),
]
FAILED_RUN = [(0.0, Status.CREATED), (1.0, Status.PROCESSING), (1.5, Status.FAILED)]


def prediction(statuses: list[tuple[float, Status]], task: str = "b" * 32) -> Prediction:
    line = timeline(statuses, task=task)
    return Prediction(task, wavenb.MODEL_ID, line.events[-1].status, events=line.events)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def spans(ax: Axes) -> list[PolyCollection]:
    return [c for c in ax.collections if c.get_gid() == PHASE_GID]


def lines(ax: Axes, gid: str) -> list[Line2D]:
    return [line for line in ax.lines if line.get_gid() == gid]


def span_extent(span: PolyCollection) -> tuple[float, float]:
    xs = span.get_paths()[0].vertices[:, 0]
    return float(xs.min()), float(xs.max())


def test_one_run_has_a_span_per_phase_a_tick_per_check_and_an_end() -> None:
    ax = plot_timeline(timeline(COMPLETED_RUN))
    assert [span_extent(s) for s in spans(ax)] == [(0.0, 2.0), (2.0, 4.0)]
    assert [s.get_label() for s in spans(ax)] == ["queued", "processing"]
    [ticks] = lines(ax, CHECKS_GID)
    assert list(ticks.get_xdata()) == [1.0, 2.0, 3.0, 4.0]
    [submit] = lines(ax, SUBMIT_GID)
    assert list(submit.get_xdata()) == [0.0]
    [end] = lines(ax, END_GID)
    assert (list(end.get_xdata()), end.get_marker()) == ([4.0], "D")


def test_phase_colors_say_queued_processing_completed() -> None:
    ax = plot_timeline(timeline(COMPLETED_RUN))
    colors = [tuple(s.get_facecolor()[0]) for s in spans(ax)]
    assert colors == [mpl.colors.to_rgba(QUEUED), mpl.colors.to_rgba(PROCESSING)]
    [end] = lines(ax, END_GID)
    assert mpl.colors.to_rgba(end.get_color()) == mpl.colors.to_rgba(COMPLETED)


def test_the_legend_follows_the_lifecycle() -> None:
    """Even when the first lane never showed "processing" to the client."""
    quick = timeline([(0.0, Status.CREATED), (1.0, Status.COMPLETED)], task="1" * 32)
    ax = plot_timeline([quick, timeline(FAILED_RUN), timeline(COMPLETED_RUN)])
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["queued", "processing", "completed", "failed", "submit", "result check"]


def test_a_failed_run_ends_with_a_cross() -> None:
    ax = plot_timeline(timeline(FAILED_RUN))
    [end] = lines(ax, END_GID)
    assert end.get_marker() == "X"
    assert mpl.colors.to_rgba(end.get_color()) == mpl.colors.to_rgba(FAILED)


def test_one_lane_per_job_top_to_bottom() -> None:
    runs = [
        timeline(COMPLETED_RUN, task="1" * 32),
        timeline(FAILED_RUN, task="2" * 32),
        timeline(COMPLETED_RUN, task="3" * 32),
    ]
    ax = plot_timeline(runs)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["11111111", "22222222", "33333333"]
    assert len(spans(ax)) == 2 + 2 + 2
    assert [len(t.get_xdata()) for t in lines(ax, CHECKS_GID)] == [4, 2, 4]
    assert [float(t.get_ydata()[0]) for t in lines(ax, CHECKS_GID)] == [0.0, 1.0, 2.0]
    low, high = ax.get_ylim()
    assert low > high, "the first job is drawn on top"


def test_lanes_share_the_clock_of_the_first_submit() -> None:
    """A job submitted 5 s after another starts 5 s to the right: sequential runs look so."""
    first = timeline(COMPLETED_RUN, task="1" * 32)
    later = timeline(COMPLETED_RUN, start=5.0, task="2" * 32)
    ax = plot_timeline([later, first])
    submits = [float(line.get_xdata()[0]) for line in lines(ax, SUBMIT_GID)]
    assert submits == pytest.approx([5.0, 0.0])
    assert span_extent(spans(ax)[0]) == pytest.approx((5.0, 7.0))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: timeline(COMPLETED_RUN), id="Timeline"),
        pytest.param(lambda: prediction(COMPLETED_RUN), id="Prediction"),
        pytest.param(
            lambda: Video(url="https://cdn/1.mp4", path=None, prediction=prediction(COMPLETED_RUN)),
            id="Video",
        ),
        pytest.param(
            lambda: PredictionFailed("failed", prediction(FAILED_RUN)), id="PredictionFailed"
        ),
        pytest.param(lambda: [prediction(COMPLETED_RUN)], id="list"),
        pytest.param(lambda: (timeline(COMPLETED_RUN),), id="tuple"),
    ],
)
def test_accepts_each_kind_of_run(make) -> None:
    ax = plot_timeline(make())
    assert len(ax.get_yticklabels()) == 1
    assert lines(ax, CHECKS_GID)


def test_draws_on_the_given_axes_and_titles_it() -> None:
    _, given = plt.subplots()
    ax = plot_timeline(timeline(COMPLETED_RUN), ax=given, title="one run")
    assert ax is given
    assert ax.get_title() == "one run"


def test_default_title_counts_tasks_and_checks() -> None:
    ax = plot_timeline([timeline(COMPLETED_RUN), timeline(FAILED_RUN)])
    assert ax.get_title() == "2 tasks · 6 result checks"


def test_a_shared_axis_is_not_narrowed_by_a_shorter_plot() -> None:
    _, (top, bottom) = plt.subplots(2, 1, sharex=True)
    one_after_another = [
        timeline(COMPLETED_RUN),
        timeline(COMPLETED_RUN, start=20.0, task="c" * 32),
    ]
    plot_timeline(one_after_another, ax=top)
    wide = top.get_xlim()[1]
    plot_timeline(timeline(FAILED_RUN), ax=bottom)
    assert bottom.get_xlim()[1] == wide > 24


def test_a_run_with_no_requests_gets_an_empty_lane() -> None:
    """A video reused from the journal made no requests in this session."""
    reused = Prediction("d" * 32, wavenb.MODEL_ID, Status.COMPLETED)
    ax = plot_timeline([reused, timeline(COMPLETED_RUN)])
    assert len(ax.get_yticklabels()) == 2
    assert any("no requests" in text.get_text() for text in ax.texts)
    assert len(spans(ax)) == 2


def test_nothing_to_plot_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        plot_timeline([])


def test_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="got str"):
        plot_timeline("a1b2c3")


def test_without_matplotlib_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'wavenb\[plot\]'"):
        plot_timeline(timeline(COMPLETED_RUN))


def test_is_exported_lazily_from_wavenb() -> None:
    assert wavenb.plot_timeline is plot_timeline


async def test_a_real_run_draws_every_check_it_made(wavenb_sandbox: Sandbox, portrait) -> None:
    video = await wavenb_sandbox.client.generate(portrait, "Camera slowly zooms in")
    ax = plot_timeline(video)
    [ticks] = lines(ax, CHECKS_GID)
    assert len(ticks.get_xdata()) == video.timeline().checks >= 1
    [end] = lines(ax, END_GID)
    assert float(end.get_xdata()[0]) == pytest.approx(video.timeline().events[-1].at)
