"""A/B metrics and rankings of a comparison: measured from the pixels, ranked from the votes.

The sandbox films its picture with the camera move its prompt asks for, so a comparison of
every move must measure each video back as that move. Rankings are checked on simulated
votes of a known order; the summary's words on leads of known size.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.compare_fakes import WALK, ZOOM
from tests.conftest import API, ASSETS, png_bytes
from wavenb import Phase
from wavenb.ab import measuring
from wavenb.ab.comparison import (
    METRIC_FIELDS,
    CellRun,
    Comparison,
    build_design,
    cell_badges,
    compare,
)
from wavenb.ab.judging import verdict
from wavenb.ab.measuring import MISSING_EXTRA
from wavenb.ab.ranking import rank
from wavenb.client.async_client import AsyncClient

MOVES = {
    "pan_left": "Camera pans left",
    "pan_right": "Camera pans right",
    "tilt_up": "Camera tilts up",
    "tilt_down": "Camera tilts down",
    "zoom_in": "Camera slowly zooms in",
    "zoom_out": "Camera zooms out",
    "orbit": "Orbit left around the cup",
    "static": "Static shot of the cup",
}
"""A prompt for every move the sandbox renders, named by the move it must measure as."""


@pytest.fixture
async def client(sandbox_client: AsyncClient) -> AsyncClient:
    await sandbox_client.detect()
    return sandbox_client


# -- metrics ---------------------------------------------------------------------------------


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
async def test_every_sandbox_camera_move_is_measured_back_as_itself(
    landscape: Path, client: AsyncClient
) -> None:
    cmp = compare(landscape, MOVES, aspect_ratios=["4:3"], concurrency=2, client=client)
    await cmp
    frame = cmp.to_pandas()
    assert frame["status"].tolist() == ["downloaded"] * len(MOVES)
    assert frame.set_index("prompt_id")["camera_move"].to_dict() == {m: m for m in MOVES}
    assert frame["motion_match"].tolist() == [True] * len(MOVES)
    assert frame[list(METRIC_FIELDS)].notna().all().all()
    assert frame["first_frame_ssim"].between(0, 1).all()
    assert (frame["sharpness"] > 0).all()
    assert cmp.metrics_note is None
    assert all(s.motion_match_rate == 1 for s in cmp.summary())


async def test_badges_say_the_move_and_whether_it_was_asked_for(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, {"pan": "Camera pans left", "walk": WALK}, client=client)
    assert cmp["pan/auto/0"].badges == []  # nothing measured before the video exists
    await cmp
    pan, walk = cell_badges(cmp["pan/auto/0"]), cmp["walk/auto/0"].badges
    assert pan[0] == "pan left ✓"
    assert pan[1].startswith("SSIM ")
    assert pan[2].startswith("flicker ")
    assert not walk[0].endswith(("✓", "✗"))  # the prompt asked for no camera move
    assert "camera as asked 100%" in cmp.summary()["pan"].describe()


async def test_metrics_are_cached_by_the_videos_digest_beside_the_journal(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    await cmp
    assert client.journal is not None
    folder = client.journal.path.parent / "metrics"
    rows = {row.prediction_id: row for row in client.journal.rows()}
    files = {}
    for run in cmp.runs:
        assert run.sha256 == rows[run.prediction_id].sha256
        files[run.id] = folder / f"{run.sha256}.json"
        assert files[run.id].is_file()
    stamps = {cell: path.stat().st_mtime_ns for cell, path in files.items()}

    again = compare(portrait, [WALK, ZOOM], client=client)  # reused: measured from the cache
    await again
    assert [run.metrics for run in again.runs] == [run.metrics for run in cmp.runs]
    assert {cell: path.stat().st_mtime_ns for cell, path in files.items()} == stamps


async def test_without_numpy_or_pyav_the_columns_are_missing_and_a_note_says_why(
    portrait: Path, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wavenb.ab.metrics", None)
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    await cmp
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED] * 2
    assert cmp.metrics_note == MISSING_EXTRA
    assert "pip install 'wavenb[sandbox]'" in MISSING_EXTRA
    frame = cmp.to_pandas()
    assert frame[list(METRIC_FIELDS)].isna().all().all()
    assert frame.attrs["metrics_note"] == MISSING_EXTRA
    assert all(run.badges == [] for run in cmp.runs)


async def test_a_video_that_does_not_decode_has_no_metrics_and_a_note(
    portrait: Path, tmp_path: Path
) -> None:
    from tests.compare_fakes import PaidApi

    api = PaidApi()  # its CDN serves a structurally whole MP4 with no pictures in it
    cmp = compare(portrait, [WALK], client=api.client(tmp_path))
    cmp.start()
    await cmp
    assert cmp["A/auto/0"].status is Phase.DOWNLOADED
    assert cmp["A/auto/0"].metrics is None
    assert cmp.metrics_note is not None
    assert cmp.metrics_note.startswith("no metrics for A/auto/0:")


# -- rankings --------------------------------------------------------------------------------


def finished(prompts: dict[str, str], repeats: int) -> Comparison:
    """A comparison whose cells all have their videos (no client, no run): for judging."""
    design = build_design(png_bytes(), prompts, ["16:9"], repeats)
    cells = design.cells(model="m", base_url=API)
    runs = [CellRun(cell, status=Phase.DOWNLOADED) for cell in cells]
    return Comparison(design, cells, runs, client=None, backend="sandbox", base_url=API, price=0)


def test_rank_puts_simulated_votes_of_a_known_order_in_that_order() -> None:
    strength = {"A": 1.5, "B": 0.5, "C": -0.5, "D": -1.5}
    cmp = finished({p: f"prompt {p}" for p in "DBAC"}, repeats=3)
    rng = random.Random(3)  # noqa: S311  (simulated votes, not a secret)
    for _ in range(300):
        first, second = rng.sample(sorted(strength), 2)
        repeat = rng.randrange(3)
        p_first = 1 / (1 + math.exp(strength[second] - strength[first]))
        winner, loser = (first, second) if rng.random() < p_first else (second, first)
        cmp.vote(f"{winner}/16:9/{repeat}", f"{loser}/16:9/{repeat}")
    table = cmp.rank()
    assert table.index.tolist() == ["A", "B", "C", "D"]
    assert {"score", "ci_low", "ci_high", "p_best"} <= set(table.columns)
    assert (table["ci_low"] < table["score"]).all()
    assert (table["score"] < table["ci_high"]).all()
    assert table["p_best"].idxmax() == "A"
    assert table["p_best"].sum() == pytest.approx(1.0)
    assert (table["wins"] + table["losses"]).sum() == 2 * 300
    boot = cmp.rank(method="bootstrap")
    assert boot.index.tolist() == ["A", "B", "C", "D"]


def test_thumbs_and_ties_count_in_the_ranking() -> None:
    cmp = finished({"A": "prompt A", "B": "prompt B"}, repeats=2)
    cmp.rate("B/16:9/0", 1)
    cmp.rate("B/16:9/1", 1)
    cmp.rate("A/16:9/0", -1)  # the two 👍 of B each beat this 👎 of A: 2/3 of a vote each
    cmp.tie("A/16:9/1", "B/16:9/1")
    table = cmp.rank()
    assert table.index.tolist() == ["B", "A"]
    assert table.loc["B", "wins"] == pytest.approx(2 * 2 / 3 + 0.5)
    assert table.loc["A", "wins"] == 0.5


def test_the_summary_says_who_leads_and_what_would_settle_it() -> None:
    cmp = finished({"A": "prompt A", "B": "prompt B"}, repeats=2)
    assert str(cmp.summary()).startswith("No votes yet")
    cmp.vote("A/16:9/0", "B/16:9/0")
    cmp.vote("A/16:9/1", "B/16:9/1")
    text = str(cmp.summary())
    assert text.startswith("“A” leads “B”")
    assert "more votes like these" in text
    assert "more repeats of each prompt, judged side by side" in text
    for _ in range(20):
        cmp.vote("A/16:9/0", "B/16:9/0")
    assert "The lead is clear at 95 %" in str(cmp.summary())
    assert cmp.summary().ranking is not None
    assert [s.prompt_id for s in cmp.summary().prompts] == ["A", "B"]


def test_more_repeats_are_counted_per_block_of_image_and_ratio() -> None:
    """Each repeat judged side by side gives one head-to-head per image x ratio."""
    fitted = rank([("A", "B"), ("A", "B"), ("B", "A")], ["A", "B"])
    one, four = verdict(fitted, blocks=1), verdict(fitted, blocks=4)
    more = int(one.split("about ")[1].split(" more votes")[0])
    assert f"about {more} more repeats" in one
    assert f"about {math.ceil(more / 4)} more repeat" in four


def test_without_numpy_the_summary_says_why_and_keeps_the_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cmp = finished({"A": "prompt A", "B": "prompt B"}, repeats=1)
    cmp.vote("A/16:9/0", "B/16:9/0")
    monkeypatch.setitem(sys.modules, "wavenb.ab.ranking", None)
    summary = cmp.summary()
    assert str(summary) == "No ranking: ranking needs numpy: pip install 'wavenb[sandbox]'."
    assert summary.ranking is None
    assert summary["A"].win_rate == 1
    with pytest.raises(ImportError):
        cmp.rank()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="idle CPU priority: Linux")
async def test_metrics_are_measured_in_a_helper_process_at_idle_priority(
    portrait: Path, client: AsyncClient
) -> None:
    """Off the event loop, and off the kernel's process: no CPU or GIL taken from the run."""
    cmp = compare(portrait, [WALK], client=client)
    await cmp
    assert cmp["A/auto/0"].metrics is not None
    pid = measuring._HELPER.pid
    assert pid is not None
    assert pid != os.getpid()
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    [thread] = [t for t in threading.enumerate() if t.name.startswith("wavenb-metrics")]
    assert thread is not threading.current_thread()


async def test_without_a_python_to_start_the_thread_measures_itself(
    portrait: Path, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An embedded interpreter (no ``python`` to run): metrics all the same, in the kernel."""
    monkeypatch.setattr(measuring, "_HELPER", measuring._Helper())
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    cmp = compare(portrait, ["Camera pans left"], client=client)
    await cmp
    metrics = cmp["A/auto/0"].metrics
    assert metrics is not None
    assert metrics.camera_move == "pan_left"
    assert measuring._HELPER.pid is None
    assert cmp.metrics_note is None


def test_the_helper_answers_one_line_per_request(tmp_path: Path) -> None:
    """The helper's protocol, in this process: a measured video, then a refused file."""
    from io import StringIO

    from wavenb.sandbox._motion import parse_motion
    from wavenb.sandbox._render import render_video

    clip = tmp_path / "clip.mp4"
    with Image.open(ASSETS / "product-coffee.jpg") as picture:
        render_video(picture, parse_motion("tilt up"), clip, aspect_ratio="16:9", duration=0.5)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    requests = "".join(
        json.dumps({"path": str(path), "prompt": "Camera tilts up", "sha256": None,
                    "cache_dir": str(tmp_path / "cache"), "source": None}) + "\n"
        for path in (clip, tmp_path / "junk.mp4")
    )  # fmt: skip
    answers = StringIO()
    measuring.serve(StringIO(requests), answers)
    first, second = (json.loads(line) for line in answers.getvalue().splitlines())
    assert first["metrics"]["camera_move"] == "tilt_up"
    assert (tmp_path / "cache" / f"{first['sha256']}.json").is_file()
    assert "error" in second
