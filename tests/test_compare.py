"""Prompt A/B comparison: design, cost, concurrency, failures, resume, table, judging, grid.

Runs go through the in-process sandbox (instant, 1 s clips) or, where real money is the
point, a ``MockTransport`` fake of the paid API.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API, CANARY_KEY, png_bytes
from wavenb import BudgetExceeded, InputError, WavenbError
from wavenb.client.async_client import AsyncClient
from wavenb.compare.comparison import (
    ROW_FIELDS,
    Cell,
    CellRun,
    Comparison,
    PromptFactor,
    Throttle,
    Vote,
    blind_pairs,
    build_design,
    cell_key,
    compare,
    summarize,
)
from wavenb.sandbox import SandboxConfig, create_app

WALK = "The model walks forward slowly"
ZOOM = "Camera slowly zooms in"
GORE = "Camera zooms in on the gore"
"""The sandbox's moderation filter refuses prompts with this word."""
CDN = "https://cdn.example.net"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
async def client(sandbox_client: AsyncClient) -> AsyncClient:
    """The sandbox client, after one answer: a served sandbox is known to be free only then."""
    await sandbox_client.balance()
    return sandbox_client


def sandbox(app: Any) -> Any:
    return app.state.sandbox


def fake_api(seen: list[httpx.Request], fail: str = "\x00") -> httpx.MockTransport:
    """The paid API, faked: uploads, submits, instant completion, CDN downloads.

    Prompts containing ``fail`` end ``failed``.
    """
    prompts: dict[str, str] = {}

    def prediction(pid: str) -> dict[str, Any]:
        failed = fail in prompts[pid]
        return {
            "id": pid,
            "model": "runwayml/gen4-turbo",
            "status": "failed" if failed else "completed",
            "outputs": [] if failed else [f"{CDN}/{pid}/1.mp4"],
            "error": "Request failed." if failed else "",
            "timings": {"inference": 1500},
        }

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if request.url.host == "cdn.example.net":
            return httpx.Response(200, content=MP4)
        if path == "/api/v3/media/upload/binary":
            data = {"download_url": f"{CDN}/media/image.png", "type": "image"}
        elif path == "/api/v3/runwayml/gen4-turbo":
            pid = f"{len(prompts):032x}"
            prompts[pid] = json.loads(request.content)["prompt"]
            data = {**prediction(pid), "status": "created", "outputs": [], "error": ""}
        else:
            data = prediction(path.split("/")[4])
        return httpx.Response(200, json={"code": 200, "message": "success", "data": data})

    return httpx.MockTransport(handle)


@pytest.fixture
def paid(tmp_path: Path) -> Callable[..., tuple[AsyncClient, list[httpx.Request]]]:
    """A client of the (fake) real API: $0.50 a video. Returns (client, requests seen)."""

    def make(fail: str = "\x00") -> tuple[AsyncClient, list[httpx.Request]]:
        seen: list[httpx.Request] = []
        transport = fake_api(seen, fail)
        client = AsyncClient(CANARY_KEY, API, transport=transport, output_dir=tmp_path / "paid")
        return client, seen

    return make


class FailFirstSubmit(httpx.AsyncBaseTransport):
    """Answers the first submit whose body contains ``marker`` with a 400; passes the rest."""

    def __init__(self, inner: httpx.AsyncBaseTransport, marker: str) -> None:
        self.inner, self.marker, self.failed = inner, marker, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = (await request.aread()).decode(errors="replace")
        if not self.failed and request.url.path.endswith("gen4-turbo") and self.marker in body:
            self.failed = True
            message = {"code": 400, "message": "Invalid parameters: try again", "data": None}
            return httpx.Response(400, json=message)
        return await self.inner.handle_async_request(request)


def text(html_value: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html_value)).strip()


# -- the design -----------------------------------------------------------------------------


def test_cells_are_the_cross_product_of_images_prompts_ratios_and_repeats(
    portrait: Path, landscape: Path
) -> None:
    design = build_design(
        {"model": portrait, "cup": landscape}, [WALK, ZOOM, "Slow orbit"], ["16:9", "1:1"], 2
    )
    cells = design.cells(model="m", base_url=API)
    assert len(cells) == 2 * 3 * 2 * 2
    combos = {(c.image, c.prompt_id, c.aspect_ratio, c.repeat) for c in cells}
    assert len(combos) == len(cells)
    assert cells[0].id == "model/A/16:9/0"
    assert cells[1].id == "model/A/16:9/1"
    assert cells[2].id == "model/A/1:1/0"
    assert cells[-1].id == "cup/C/1:1/1"
    assert len({c.key for c in cells}) == len(cells)
    assert {c.prompt for c in cells if c.prompt_id == "B"} == {ZOOM}


def test_a_single_image_names_cells_without_the_image(portrait: Path) -> None:
    design = build_design(portrait, {"walk": WALK, "zoom": ZOOM})
    assert design.images[0].id == "portrait-astronaut"
    assert [c.id for c in design.cells(model="m", base_url=API)] == ["walk/auto/0", "zoom/auto/0"]


def test_images_in_a_list_are_named_by_file_stem_else_numbered(
    portrait: Path, landscape: Path
) -> None:
    assert [i.id for i in build_design([portrait, landscape], [WALK]).images] == [
        "portrait-astronaut",
        "product-coffee",
    ]
    two = [png_bytes(color="red"), png_bytes(color="blue")]
    assert [i.id for i in build_design(two, [WALK]).images] == ["image1", "image2"]


@pytest.mark.parametrize(
    ("prompts", "kwargs", "message"),
    [
        ([WALK, WALK], {}, "same text"),
        ([], {}, "at least one prompt"),
        (WALK, {}, "not one string"),
        ([WALK, ""], {}, "empty"),
        ([WALK], {"repeats": 0}, "repeats"),
        ([WALK], {"aspect_ratios": ["2:1"]}, "16:9"),
        ([WALK], {"aspect_ratios": ["16:9", "16:9"]}, "distinct"),
    ],
)
def test_bad_designs_are_refused_before_anything_is_sent(
    portrait: Path, prompts: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        build_design(portrait, prompts, **kwargs)


def test_the_same_picture_twice_is_refused(portrait: Path) -> None:
    with pytest.raises(InputError, match="same picture"):
        build_design({"a": portrait, "b": portrait.read_bytes()}, [WALK])


def test_a_cell_key_names_the_repeat_and_the_server() -> None:
    base = {"model": "m", "image": "sha256:ab", "prompt": WALK, "aspect_ratio": None}
    key = cell_key(**base, repeat=0, base_url=API)
    assert key == cell_key(**base, repeat=0, base_url=API + "/")
    assert key != cell_key(**base, repeat=1, base_url=API)
    assert key != cell_key(**base, repeat=0, base_url="http://sandbox.wavenb.invalid")


# -- cost first -----------------------------------------------------------------------------


async def test_over_max_cost_is_refused_before_any_request(portrait: Path, paid: Any) -> None:
    api, seen = paid()
    with pytest.raises(BudgetExceeded, match=r"\$3\.00.*max_cost=\$2\.00") as caught:
        compare(portrait, [WALK, ZOOM], repeats=3, max_cost=2.0, client=api)
    assert isinstance(caught.value, WavenbError)
    assert seen == []


async def test_a_paid_run_waits_for_consent_and_then_spends(portrait: Path, paid: Any) -> None:
    api, seen = paid()
    cmp = compare(portrait, [WALK, ZOOM], max_cost=5.0, client=api)
    assert cmp.needs_confirmation
    assert cmp.estimate.total == pytest.approx(1.0)
    grid = cmp.widget
    assert grid.confirm.layout.display != "none"
    assert grid.confirm.description == "Spend $1.00 and start"
    await asyncio.sleep(0)
    with pytest.raises(WavenbError, match=r"cmp\.start\(\)"):
        await cmp
    assert seen == []

    grid.confirm.click()
    await cmp
    assert [run.status for run in cmp.runs] == ["completed", "completed"]
    assert cmp.spent == pytest.approx(1.0)
    assert [row["cost"] for row in cmp.rows] == [0.5, 0.5]
    assert grid.confirm.layout.display == "none"


async def test_a_retry_past_max_cost_is_refused(portrait: Path, paid: Any) -> None:
    api, _ = paid(fail="zooms")
    cmp = compare(portrait, [WALK, ZOOM], max_cost=1.0, client=api)
    cmp.start()
    await cmp
    assert cmp["B/auto/0"].status == "failed"
    assert cmp.spent == pytest.approx(1.0)  # a failed task is paid for all the same
    with pytest.raises(BudgetExceeded, match="max_cost"):
        cmp.retry("B/auto/0")


async def test_the_sandbox_needs_no_consent_and_costs_nothing(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK, ZOOM], max_cost=0.0, client=client)
    assert not cmp.needs_confirmation
    assert "free" in cmp.estimate.describe()
    await cmp
    assert cmp.spent == 0


# -- running --------------------------------------------------------------------------------


async def test_every_cell_gets_its_own_video_and_the_image_is_uploaded_once(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    cmp = compare(portrait, {"A": WALK, "B": ZOOM}, repeats=2, client=client)
    await cmp
    runs = cmp.runs
    assert [run.status for run in runs] == ["completed"] * 4
    assert len({run.prediction_id for run in runs}) == 4
    for run in runs:
        assert run.path is not None
        assert run.path.read_bytes()[4:8] == b"ftyp"
        assert run.wall_s is not None
        assert run.inference_ms is not None
        assert not run.reused
    state = sandbox(sandbox_app)
    assert state.requests["POST /api/v3/media/upload/binary"] == 1
    assert state.accepted == 4


async def test_concurrency_never_exceeds_the_limit(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    cmp = compare(portrait, [WALK, ZOOM, "Slow orbit"], repeats=2, concurrency=2, client=client)
    await cmp
    assert all(run.done for run in cmp.runs)
    assert sandbox(sandbox_app).peak_processing <= 2
    assert cmp.throttle.peak == 2


async def test_a_failed_cell_leaves_the_others_done(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    cmp = compare(portrait, {"ok": WALK, "bad": GORE}, repeats=2, client=client)
    await cmp
    assert [run.status for run in cmp.runs] == ["completed", "completed", "failed", "failed"]
    bad = cmp["bad/auto/0"]
    assert bad.moderation
    assert bad.error is not None
    assert "content policy" in bad.error.lower()
    summary = {s.prompt_id: s for s in cmp.summary()}
    assert (summary["ok"].completed, summary["bad"].failed) == (2, 2)

    grid = cmp.widget
    view = grid.cells["bad/auto/0"]
    assert view.retry.layout.display != "none"
    assert "content filter" in text(view.error.value)
    assert grid.cells["ok/auto/0"].retry.layout.display == "none"

    view.retry.click()  # the filter refuses it again: a new task, failed again
    await cmp
    assert sandbox(sandbox_app).accepted == 5
    assert cmp["bad/auto/0"].status == "failed"


async def test_retry_runs_one_failed_cell_again_alone(
    portrait: Path, sandbox_app: Any, tmp_path: Path
) -> None:
    transport = FailFirstSubmit(httpx.ASGITransport(app=sandbox_app), ZOOM)
    async with AsyncClient(CANARY_KEY, API, transport=transport, output_dir=tmp_path) as flaky:
        await flaky.balance()
        cmp = compare(portrait, [WALK, ZOOM], repeats=2, client=flaky)
        await cmp
        failed = [run.id for run in cmp.runs if run.status == "failed"]
        assert len(failed) == 1
        assert "try again" in (cmp[failed[0]].error or "")
        ids_before = {run.id: run.prediction_id for run in cmp.runs if run.done}

        with pytest.raises(InputError, match="has its video"):
            cmp.retry("A/auto/0")
        retried = await cmp.retry(failed[0])

        assert retried.status == "completed"
        assert retried.error is None
        assert sandbox(sandbox_app).accepted == 4
        assert {run.id: run.prediction_id for run in cmp.runs if run.id != failed[0]} == ids_before


async def test_a_rate_limit_slows_the_batch_down_instead_of_failing_it(
    portrait: Path, tmp_path: Path
) -> None:
    app = create_app(SandboxConfig(speed="instant", duration=1.0, submit_rate=(2, 0.5)))
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient(CANARY_KEY, API, transport=transport, output_dir=tmp_path) as api:
        await api.balance()
        cmp = compare(portrait, [WALK, ZOOM], repeats=2, concurrency=4, client=api)
        await cmp
    assert [run.status for run in cmp.runs] == ["completed"] * 4
    assert cmp.throttle.slowdowns >= 1
    assert cmp.throttle.limit < 4
    assert sandbox(app).accepted == 4


async def test_the_same_comparison_again_reuses_every_cell(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    first = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    await first
    assert sandbox(sandbox_app).accepted == 4

    again = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    assert (again.estimate.new, again.estimate.reused) == (0, 4)
    await again
    assert sandbox(sandbox_app).accepted == 4  # nothing submitted the second time
    assert [r.prediction_id for r in again.runs] == [r.prediction_id for r in first.runs]
    assert all(row["reused"] and row["cost"] == 0 for row in again.rows)
    assert "reused" in text(again.widget.cells["A/auto/1"].status.value)


async def test_repeat_zero_reuses_a_video_made_by_generate(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    video = await client.generate(portrait, WALK, "16:9")
    cmp = compare(portrait, [WALK], aspect_ratios=["16:9"], repeats=2, client=client)
    assert (cmp.estimate.reused, cmp.estimate.new) == (1, 1)
    assert cmp["A/16:9/0"].prediction_id == video.id
    await cmp
    assert sandbox(sandbox_app).accepted == 2
    assert cmp["A/16:9/1"].prediction_id != video.id


async def test_two_cells_never_share_a_video(portrait: Path, client: AsyncClient) -> None:
    """A URL image: the journal knows each repeat's video as "the same request"."""
    url = await client.upload(portrait)
    first = compare(url, [WALK], repeats=3, client=client)
    await first
    assert client.journal is not None
    cache = client.journal.path.parent / "compare-cells"
    (cache / f"{first['A/auto/0'].cell.key}.json").unlink()  # repeat 0 forgotten by the cache

    again = compare(url, [WALK], repeats=3, client=client)
    await again
    ids = [run.prediction_id for run in again.runs]
    assert len(set(ids)) == 3
    assert ids[1:] == [run.prediction_id for run in first.runs][1:]


async def test_an_interrupted_comparison_resumes_without_paying_again(
    portrait: Path, tmp_path: Path
) -> None:
    app = create_app(SandboxConfig(speed="fast", duration=1.0))
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient(CANARY_KEY, API, transport=transport, output_dir=tmp_path) as api:
        await api.balance()
        first = compare(portrait, [WALK, ZOOM], client=api)
        submitted = asyncio.Event()
        first.watch(lambda _: all(r.prediction_id for r in first.runs) and submitted.set())
        await submitted.wait()
        first.cancel()  # the kernel "dies": the tasks go on at the provider
        await first
        assert {run.status for run in first.runs} == {"cancelled"}

        again = compare(portrait, [WALK, ZOOM], client=api)
        assert (again.estimate.resumed, again.estimate.new) == (2, 0)
        await again
    assert [run.status for run in again.runs] == ["completed", "completed"]
    assert [r.prediction_id for r in again.runs] == [r.prediction_id for r in first.runs]
    assert sandbox(app).accepted == 2


# -- the table ------------------------------------------------------------------------------


async def test_rows_and_to_pandas_have_one_row_per_cell(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, {"A": WALK, "B": ZOOM}, aspect_ratios=["9:16"], client=client)
    await cmp
    cmp.rate("A/9:16/0", 1, note="natural gait")
    rows = cmp.rows
    assert json.loads(json.dumps(rows)) == rows  # plain, JSON-ready values
    frame = cmp.to_pandas()
    assert list(frame.columns) == list(ROW_FIELDS)
    assert len(frame) == 2
    first = frame.iloc[0].to_dict()
    assert {k: first[k] for k in ("cell_id", "image", "prompt_id", "prompt", "aspect_ratio")} == {
        "cell_id": "A/9:16/0",
        "image": "portrait-astronaut",
        "prompt_id": "A",
        "prompt": WALK,
        "aspect_ratio": "9:16",
    }
    assert (first["repeat"], first["status"], first["cost"], first["reused"]) == (
        0,
        "completed",
        0,
        False,
    )
    assert (first["rating"], first["note"], first["error"]) == (1, "natural gait", None)
    assert len(first["prediction_id"]) == 32
    assert await asyncio.to_thread(Path(first["path"]).is_file)
    assert first["output_url"].endswith("/1.mp4")
    assert str(frame["submitted_at"].dtype).startswith("datetime64")
    assert first["submitted_at"] <= first["finished_at"]
    assert first["inference_ms"] > 0
    assert first["wall_s"] > 0
    assert frame["rating"].isna().tolist() == [False, True]
    assert str(frame["rating"].dtype) == str(frame["inference_ms"].dtype) == "Int64"


async def test_to_pandas_without_pandas_says_how_to_get_it(
    portrait: Path, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmp = compare(portrait, [WALK], client=client)
    await cmp
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        cmp.to_pandas()


# -- judging --------------------------------------------------------------------------------


def run_of(cell_id: str, prompt_id: str, repeat: int = 0, *, done: bool = True) -> CellRun:
    cell = Cell(cell_id, "img", prompt_id, f"prompt {prompt_id}", "16:9", repeat, cell_id)
    return CellRun(cell, status="completed" if done else "failed", path=Path("/nonexistent"))


def test_blind_pairs_differ_in_the_prompt_only_and_repeat_with_the_seed() -> None:
    runs = [run_of(f"{p}{r}", p, r) for p in "ABC" for r in range(2)]
    runs.append(run_of("D0", "D", done=False))
    pairs = blind_pairs(runs, seed=7)
    assert len(pairs) == 3 * 2  # 3 prompt pairs x 2 repeats; the failed cell is left out
    for left, right in pairs:
        assert left[0] != right[0]  # different prompts
        assert left[1] == right[1]  # same repeat
    assert blind_pairs(runs, seed=7) == pairs
    orders = {tuple(blind_pairs(runs, seed=s)) for s in range(5)}
    assert len(orders) > 1


def test_win_rate_counts_ties_as_half() -> None:
    runs = [run_of("A0", "A"), run_of("B0", "B")]
    now = datetime.now(UTC)
    votes = [
        Vote("A0", "B0", "left", now),
        Vote("B0", "A0", "left", now),
        Vote("A0", "B0", "tie", now),
    ]
    prompts = [PromptFactor("A", "prompt A"), PromptFactor("B", "prompt B")]
    a, b = summarize(prompts, runs, votes)
    assert a.win_rate == pytest.approx(1.5 / 3)
    assert b.win_rate == pytest.approx(1.5 / 3)
    assert a.comparisons == 3


async def test_ratings_and_notes_show_in_the_summary_and_survive_a_rerun(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    await cmp
    grid = cmp.widget
    grid.cells["A/auto/0"].rating.value = 1
    grid.cells["A/auto/1"].rating.value = -1
    grid.cells["B/auto/0"].rating.value = 1
    grid.cells["B/auto/0"].note.value = "smooth"
    summary = {s.prompt_id: s for s in cmp.summary()}
    assert summary["A"].mean_rating == 0
    assert summary["B"].mean_rating == 1
    assert summary["B"].rated == 1
    assert "rating +1.00" in text(grid.summary.value)
    with pytest.raises(InputError, match="rating"):
        cmp.rate("A/auto/0", 5)  # type: ignore[arg-type]

    again = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    assert (again["B/auto/0"].rating, again["B/auto/0"].note) == (1, "smooth")
    assert again.widget.cells["A/auto/1"].rating.value == -1


async def test_pairwise_records_blind_votes(portrait: Path, client: AsyncClient) -> None:
    cmp = compare(portrait, {"A": WALK, "B": ZOOM}, repeats=2, client=client)
    await cmp
    judge = cmp.pairwise(seed=3)
    assert judge.pairs == cmp.pairs(3)
    assert len(judge.pairs) == 2
    assert "A" not in text(judge.counter.value)
    first = judge.current
    assert first is not None
    judge.choose_left.click()
    judge.choose_tie.click()
    assert judge.current is None
    assert judge.choose_left.disabled
    assert [(v.left, v.right, v.winner) for v in cmp.votes] == [
        (*first, "left"),
        (*judge.pairs[1], "tie"),
    ]
    winner = cmp[first[0]].cell.prompt_id
    summary = {s.prompt_id: s for s in cmp.summary()}
    assert summary[winner].win_rate == pytest.approx(0.75)


# -- bounded concurrency, pure --------------------------------------------------------------


async def test_throttle_holds_the_limit_and_pauses_after_a_rate_limit() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(4, clock=lambda: now[0], sleep=sleep)
    inside = []

    async def work() -> None:
        async with throttle.slot():
            inside.append(throttle.in_flight)
            await asyncio.sleep(0)

    await asyncio.gather(*(work() for _ in range(10)))
    assert max(inside) == throttle.peak == 4
    assert slept == []

    assert throttle.slow_down(7.0) == 7.0
    assert throttle.limit == 2
    await asyncio.gather(*(work() for _ in range(3)))
    assert slept[0] == pytest.approx(7.0)
    throttle.slow_down(None)
    throttle.slow_down(None)
    assert throttle.limit == 1
    with pytest.raises(InputError):
        Throttle(0)


# -- the grid -------------------------------------------------------------------------------


async def test_the_grid_has_a_row_per_prompt_with_the_changed_words_marked(
    portrait: Path, client: AsyncClient
) -> None:
    prompts = {"A": "The model walks forward slowly", "B": "The model turns around slowly"}
    cmp = compare(portrait, prompts, aspect_ratios=["16:9", "9:16"], repeats=2, client=client)
    grid = cmp.widget
    [section] = [c for c in grid.children if type(c).__name__ == "GridBox"]
    values = [getattr(child, "value", "") for child in section.children]
    headings = [v for v in values if "wavenb-prompt" in str(v)]
    assert len(headings) == 2
    assert "<mark>" not in headings[0]
    assert "<mark>turns around</mark>" in headings[1]
    assert "<b>16:9 · run 1</b>" in values
    assert "<b>9:16 · run 2</b>" in values
    assert len(grid.cells) == 8
    await cmp
    for view in grid.cells.values():
        assert view.player is not None
        assert bytes(view.player.value)[4:8] == b"ftyp"
        assert view.player.autoplay is False
    assert "8 of 8 done" in text(grid.progress.value)
    assert "SANDBOX" in grid.header.value


async def test_the_grid_never_points_the_browser_at_the_kernel(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    await cmp
    state = json.dumps(
        [
            {k: v for k, v in view.player.get_state().items() if k != "value"}
            for view in cmp.widget.cells.values()
        ]
    )
    assert "127.0.0.1" not in state
    assert "http" not in state


async def test_playback_controls_are_synced_traits(portrait: Path, client: AsyncClient) -> None:
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    await cmp
    grid = cmp.widget
    controls = grid.controls
    assert type(controls).__name__ == "SyncedPlayback"
    assert controls.scope in grid._dom_classes
    assert "wavenbPlayback" in controls._esm
    controls.pause_all()
    assert controls.playing is False
    controls.play_all()
    assert (controls.playing, controls.restarts) == (True, 1)
    controls.loop = False
    assert all(view.player.loop is False for view in grid.cells.values())


def test_without_anywidget_the_grid_says_so_instead_of_faking_controls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wavenb.compare import widget as _compare_widget

    monkeypatch.setitem(sys.modules, "anywidget", None)
    _compare_widget._playback_class.cache_clear()
    try:
        note = _compare_widget.playback_controls("wavenb-compare-x")
    finally:
        _compare_widget._playback_class.cache_clear()
    assert type(note).__name__ == "HTML"
    assert "pip install anywidget" in note.value


async def test_display_shows_the_grid_and_a_cheap_repr(portrait: Path, client: AsyncClient) -> None:
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    bundle = cmp._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("<Comparison 2 cells on sandbox")
    await cmp
    assert repr(cmp) == "<Comparison 2 cells on sandbox: 2 completed>"


def test_outside_a_loop_wait_runs_the_comparison(
    portrait: Path, sandbox_app: Any, tmp_path: Path
) -> None:
    """A script: no running loop, so compare() only plans and wait() runs it."""
    transport = httpx.ASGITransport(app=sandbox_app)
    api = AsyncClient(
        CANARY_KEY, "http://sandbox.wavenb.invalid", transport=transport, output_dir=tmp_path
    )
    cmp = compare(portrait, [WALK, ZOOM], client=api)
    assert {run.status for run in cmp.runs} == {"waiting"}
    assert cmp.wait(timeout=60) is cmp
    assert [run.status for run in cmp.runs] == ["completed", "completed"]


def test_load_of_a_missing_folder_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a saved comparison"):
        Comparison.load(tmp_path)


async def test_wait_refuses_to_block_the_loop_the_cells_run_on(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK], client=client)
    with pytest.raises(WavenbError, match="await cmp"):
        cmp.wait()
    await cmp
    assert cmp.finished


async def test_a_finished_cell_draws_its_timeline_when_opened(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    await cmp
    view = next(iter(cmp.widget.cells.values()))
    assert view.details.layout.display == ""
    assert view.timeline.children == ()  # lazy: nothing drawn before it is opened
    view.details.value = True
    [image] = view.timeline.children
    assert type(image).__name__ == "Image"
    assert bytes(image.value).startswith(b"\x89PNG\r\n\x1a\n")
    assert view.timeline.layout.display == ""
    view.details.value = False
    assert view.timeline.layout.display == "none"
    view.details.value = True
    assert view.timeline.children == (image,)  # drawn once per task


async def test_without_matplotlib_the_timeline_says_how_to_get_it(
    portrait: Path, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmp = compare(portrait, [WALK], client=client)
    await cmp
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    view = next(iter(cmp.widget.cells.values()))
    view.details.value = True
    [note] = view.timeline.children
    assert type(note).__name__ == "HTML"
    assert "pip install 'wavenb[plot]'" in note.value
    assert "⚠" not in cmp.widget.errors.value
