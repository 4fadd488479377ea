"""The comparison grid and the pairwise judge, headless: driven through their comm as the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CANARY_KEY, widget_states
from tests.frontend import Page, recorded_comms
from wavenb import AsyncClient
from wavenb.ab.engine import Comparison
from wavenb.ab.planning import compare
from wavenb.ab.widget import CompareGrid, Pairwise

pytestmark = pytest.mark.usefixtures(recorded_comms.__name__)

WALK = "The model walks forward slowly"
ZOOM = "Camera slowly zooms in"


@pytest.fixture
async def done(portrait: Path, sandbox_client: AsyncClient) -> Comparison:
    await sandbox_client.detect()  # the in-process sandbox says what it is: free
    cmp = compare(portrait, {"A": WALK, "B": ZOOM}, aspect_ratios=["16:9", "9:16"],
                  client=sandbox_client)  # fmt: skip
    await cmp
    return cmp


async def test_the_grid_draws_every_cell_by_phase_with_rows_and_columns(done: Comparison) -> None:
    grid = done.widget
    await_flush = grid._flush  # changes are gathered for a moment on a running loop
    await_flush()
    assert grid.columns == ["16:9", "9:16"]
    [section] = grid.sections
    assert [row["prompt_id"] for row in section["rows"]] == ["A", "B"]
    assert section["rows"][1]["cells"] == ["B/16:9/0", "B/9:16/0"]
    assert ["mark", "Camera"] in section["rows"][1]["words"]  # words that differ, marked
    phases = {run.id: run.status.value for run in done.runs}
    assert {cid: cell["phase"] for cid, cell in grid.cells.items()} == phases  # the Phase words
    assert all(cell["video"] == (cell["phase"] == "downloaded") for cell in grid.cells.values())
    assert all(cell["short"] for cell in grid.cells.values())
    assert grid.sandbox
    finished = sum(run.done for run in done.runs)
    assert grid.progress.startswith(f"{finished} of 4 done")


async def test_videos_go_to_the_page_only_when_asked_and_posters_in_batches(
    done: Comparison,
) -> None:
    grid = done.widget
    page = Page(grid)
    assert page.replies("video") == []  # nothing heavy is pushed
    page.click("video", cell="A/16:9/0")
    [(reply, [data])] = page.replies("video")
    assert reply["cell"] == "A/16:9/0"
    assert done["A/16:9/0"].path is not None
    assert data == done["A/16:9/0"].path.read_bytes()
    page.click("posters", cells=list(grid.cells))
    for task in list(grid._tasks):
        await task
    [(reply, jpegs)] = page.replies("posters")
    assert reply["cells"] == list(grid.cells)
    assert all(jpeg[:2] == b"\xff\xd8" and len(jpeg) < 40_000 for jpeg in jpegs)


async def test_rating_a_note_and_errors_go_through_the_comparison(done: Comparison) -> None:
    grid = done.widget
    page = Page(grid)
    page.click("rate", cell="A/16:9/0", rating=1)
    assert done["A/16:9/0"].rating == 1
    page.click("rate", cell="A/16:9/0", rating=1)  # the same button again takes it back
    assert done["A/16:9/0"].rating is None
    page.click("note", cell="B/9:16/0", note="too fast")
    assert done["B/9:16/0"].note == "too fast"
    grid._flush()
    assert grid.cells["B/9:16/0"]["note"] == "too fast"
    page.click("retry", cell="A/16:9/0")  # it has its video: the comparison refuses
    assert "A/16:9/0" in grid.errors


async def test_play_pause_and_the_saved_state_stay_small(done: Comparison) -> None:
    grid: CompareGrid = done.widget
    grid.pause_all()
    assert not grid.playing
    grid.play_all()
    assert grid.playing and grid.restarts == 1
    state = grid.get_state()
    assert not any(isinstance(v, bytes) and b"ftyp" in v for v in state.values())
    canary = CANARY_KEY
    assert all(canary not in repr(each) for each in widget_states(grid))
    assert len(repr({k: v for k, v in state.items() if k not in ("_esm", "_css")})) < 20_000


async def test_pairwise_never_tells_the_page_which_prompt_is_where(done: Comparison) -> None:
    judge = done.pairwise(seed=1)
    assert isinstance(judge, Pairwise)
    left, right = judge.current or ("", "")
    state = repr(judge.get_state())
    assert left not in state and right not in state and WALK not in state
    page = Page(judge)
    page.click("video", side="left", position=0)
    [(reply, [data])] = page.replies("video")
    assert reply["side"] == "left" and data[4:8] == b"ftyp"
    page.click("choose", side="right")
    [vote] = done.votes
    assert (vote.winner, vote.loser, vote.tie) == (right, left, False)
    if judge.current is not None:
        page.click("choose", side="tie")
        assert done.votes[-1].tie
