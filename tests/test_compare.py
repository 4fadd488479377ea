"""Prompt A/B comparison: design, cost, concurrency, failures, retries, table, judging.

Runs go through the in-process sandbox (instant, 1 s clips) or, where real money is the
point, a ``MockTransport`` fake of the paid API (``tests/compare_fakes.py``). The lifecycle
promises (one 429 policy, resume, joins) are in ``test_compare_lifecycle.py``; metrics and
rankings in ``test_compare_metrics.py``; saving and the report in ``test_compare_report.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compare_fakes import GORE, WALK, ZOOM, PaidApi, accepted, sandbox_state
from tests.conftest import API, CANARY_KEY, png_bytes
from wavenb import BudgetExceeded, InputError, InsufficientCreditsError, Phase, WavenbError
from wavenb.ab.comparison import (
    ROW_FIELDS,
    Cell,
    CellRun,
    Comparison,
    PromptFactor,
    Vote,
    blind_pairs,
    build_design,
    cell_key,
    compare,
    summarize_prompts,
)
from wavenb.ab.design import request_hash_of
from wavenb.client.async_client import AsyncClient
from wavenb.jobs.request import prepare


@pytest.fixture
async def client(sandbox_client: AsyncClient) -> AsyncClient:
    """The sandbox client, after one answer: a served sandbox is known to be free only then."""
    await sandbox_client.detect()
    return sandbox_client


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
    assert [c.id for c in cells[:3]] == ["model/A/16:9/0", "model/A/16:9/1", "model/A/1:1/0"]
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


def test_a_bad_concurrency_is_refused(portrait: Path, sandbox_client: AsyncClient) -> None:
    with pytest.raises(InputError, match="concurrency"):
        compare(portrait, [WALK], concurrency=0, client=sandbox_client)


def test_a_cell_key_names_the_repeat_and_the_server() -> None:
    base = {"model": "m", "image": "sha256:ab", "prompt": WALK, "aspect_ratio": None}
    key = cell_key(**base, repeat=0, base_url=API)
    assert key == cell_key(**base, repeat=0, base_url=API + "/")
    assert key != cell_key(**base, repeat=1, base_url=API)
    assert key != cell_key(**base, repeat=0, base_url="http://sandbox.wavenb.invalid")


async def test_repeat_zero_is_the_request_of_a_plain_generate_and_repeats_are_variants(
    portrait: Path,
) -> None:
    """The journal's identity: repeat 0 joins and reuses ``generate``; repeat n never does."""
    design = build_design(portrait, [WALK], ["16:9"], repeats=3)
    cells = design.cells(model="m", base_url=API)
    hashes = [request_hash_of(cell, design.images[0], API) for cell in cells]
    plain = await prepare(portrait, WALK, "16:9", base_url=API)
    second = await prepare(portrait, WALK, "16:9", base_url=API, variant="repeat-1")
    assert hashes[0] == plain.hash
    assert hashes[1] == second.hash
    assert len(set(hashes)) == 3
    assert [cell.variant for cell in cells] == [None, "repeat-1", "repeat-2"]


# -- cost first -----------------------------------------------------------------------------


async def test_over_max_cost_is_refused_before_any_request(portrait: Path, tmp_path: Path) -> None:
    api = PaidApi()
    with pytest.raises(BudgetExceeded, match=r"\$3\.00.*max_cost=\$2\.00") as caught:
        compare(portrait, [WALK, ZOOM], repeats=3, max_cost=2.0, client=api.client(tmp_path))
    assert isinstance(caught.value, WavenbError)
    assert api.seen == []


async def test_a_paid_run_waits_for_consent_and_then_spends(portrait: Path, tmp_path: Path) -> None:
    api = PaidApi()
    cmp = compare(portrait, [WALK, ZOOM], max_cost=5.0, client=api.client(tmp_path))
    assert cmp.needs_confirmation
    assert cmp.estimate.total == pytest.approx(1.0)
    await asyncio.sleep(0)
    with pytest.raises(WavenbError, match=r"cmp\.start\(\)"):
        await cmp
    assert api.seen == []

    cmp.start()
    await cmp
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED, Phase.DOWNLOADED]
    assert cmp.spent == pytest.approx(1.0)
    assert [row["cost"] for row in cmp.rows] == [0.5, 0.5]
    assert not cmp.needs_confirmation


async def test_a_changed_price_asks_for_consent_again_before_anything_is_sent(
    portrait: Path, tmp_path: Path
) -> None:
    api = PaidApi(price=0.75)  # the plan knows the list price ($0.50); the quote says $0.75
    cmp = compare(portrait, [WALK, ZOOM], client=api.client(tmp_path))
    assert cmp.estimate.total == pytest.approx(1.0)
    cmp.start()
    with pytest.raises(WavenbError, match=r"price is now \$0\.75 a video \(was \$0\.50\)"):
        await cmp
    assert api.submits() == []
    assert api.uploads() == []
    assert cmp.needs_confirmation
    assert cmp.estimate.total == pytest.approx(1.5)

    cmp.start()  # agreed at the new price
    await cmp
    assert cmp.spent == pytest.approx(1.5)
    assert len(api.submits()) == 2


async def test_a_batch_the_balance_cannot_pay_is_refused_before_anything_is_sent(
    portrait: Path, tmp_path: Path
) -> None:
    api = PaidApi(balance=0.6)
    cmp = compare(portrait, [WALK, ZOOM], client=api.client(tmp_path))
    cmp.start()
    with pytest.raises(InsufficientCreditsError, match=r"\$0\.40 is missing"):
        await cmp
    assert api.submits() == []
    assert api.uploads() == []
    assert cmp.problem is not None
    assert "$0.40 is missing" in cmp.problem
    assert {run.status for run in cmp.runs} == {Phase.WAITING}


async def test_a_retry_past_max_cost_is_refused(portrait: Path, tmp_path: Path) -> None:
    api = PaidApi(fail="zooms")
    cmp = compare(portrait, [WALK, ZOOM], max_cost=1.0, client=api.client(tmp_path))
    cmp.start()
    await cmp
    assert cmp["B/auto/0"].status is Phase.FAILED
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
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED] * 2


# -- running --------------------------------------------------------------------------------


async def test_every_cell_gets_its_own_video_and_the_image_is_uploaded_once(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    cmp = compare(portrait, {"A": WALK, "B": ZOOM}, repeats=2, client=client)
    await cmp
    runs = cmp.runs
    assert [run.status for run in runs] == [Phase.DOWNLOADED] * 4
    assert all(run.done and run.ended and not run.active for run in runs)
    assert len({run.prediction_id for run in runs}) == 4
    for run in runs:
        assert run.path is not None
        assert run.path.read_bytes()[4:8] == b"ftyp"
        assert run.wall_s is not None
        assert run.inference_ms is not None
        assert run.submitted_at is not None
        assert run.finished_at is not None
        assert not run.reused
    state = sandbox_state(sandbox_app)
    assert state.requests["POST /api/v3/media/upload/binary"] == 1
    assert state.accepted == 4


async def test_concurrency_never_exceeds_the_limit(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    cmp = compare(portrait, [WALK, ZOOM, "Slow orbit"], repeats=2, concurrency=2, client=client)
    await cmp
    assert all(run.done for run in cmp.runs)
    assert sandbox_state(sandbox_app).peak_processing <= 2
    assert cmp.peak == 2


async def test_a_failed_cell_leaves_the_others_done_and_keeps_its_own_retry(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    cmp = compare(portrait, {"ok": WALK, "bad": GORE}, repeats=2, client=client)
    await cmp
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED] * 2 + [Phase.FAILED] * 2
    bad = cmp["bad/auto/0"]
    assert bad.moderation
    assert bad.error is not None
    assert "content policy" in bad.error.lower()
    summary = cmp.summary()
    assert (summary["ok"].completed, summary["bad"].failed) == (2, 2)

    retried = await cmp.retry("bad/auto/0")  # the filter refuses it again: a new task, failed
    assert retried.status is Phase.FAILED
    assert accepted(sandbox_app) == 5
    assert cmp["bad/auto/1"].status is Phase.FAILED  # the other failed cell was left alone


async def test_retry_runs_one_refused_cell_again_alone(
    portrait: Path, sandbox_app: Any, tmp_path: Path
) -> None:
    transport = FailFirstSubmit(httpx.ASGITransport(app=sandbox_app), ZOOM)
    async with AsyncClient(CANARY_KEY, API, transport=transport, output_dir=tmp_path) as flaky:
        await flaky.detect()
        cmp = compare(portrait, [WALK, ZOOM], repeats=2, client=flaky)
        await cmp
        refused = [run.id for run in cmp.runs if run.status is Phase.REFUSED]
        assert len(refused) == 1  # a 400: the server did not take it, nothing was charged
        assert "try again" in (cmp[refused[0]].error or "")
        ids_before = {run.id: run.prediction_id for run in cmp.runs if run.done}

        with pytest.raises(InputError, match="has its video"):
            cmp.retry("A/auto/0")
        retried = await cmp.retry(refused[0])

        assert retried.status is Phase.DOWNLOADED
        assert retried.error is None
        assert accepted(sandbox_app) == 4
        assert {run.id: run.prediction_id for run in cmp.runs if run.id != refused[0]} == ids_before


async def test_the_same_comparison_again_reuses_every_cell(
    portrait: Path, client: AsyncClient, sandbox_app: Any
) -> None:
    first = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    await first
    assert accepted(sandbox_app) == 4

    again = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    assert (again.estimate.new, again.estimate.reused) == (0, 4)
    assert [run.status for run in again.runs] == [Phase.DOWNLOADED] * 4
    await again
    assert accepted(sandbox_app) == 4  # nothing submitted the second time
    assert [r.prediction_id for r in again.runs] == [r.prediction_id for r in first.runs]
    assert [r.wall_s for r in again.runs] == [r.wall_s for r in first.runs]  # from the cache
    assert all(row["reused"] and row["cost"] == 0 for row in again.rows)


async def test_two_cells_never_share_a_video(
    client: AsyncClient, portrait: Path, sandbox_app: Any
) -> None:
    """A URL image: each repeat is its own request (a variant), so its own video."""
    url = await client.upload(portrait)
    first = compare(url, [WALK], repeats=3, client=client)
    await first
    ids = [run.prediction_id for run in first.runs]
    assert len(set(ids)) == 3

    again = compare(url, [WALK], repeats=3, client=client)
    await again
    assert [run.prediction_id for run in again.runs] == ids
    assert accepted(sandbox_app) == 3


def test_outside_a_loop_wait_runs_the_comparison(
    portrait: Path, sandbox_app: Any, tmp_path: Path
) -> None:
    """A script: no running loop, so compare() only plans and wait() runs it."""
    transport = httpx.ASGITransport(app=sandbox_app)
    api = AsyncClient(
        CANARY_KEY, "http://sandbox.wavenb.invalid", transport=transport, output_dir=tmp_path
    )
    cmp = compare(portrait, [WALK, ZOOM], client=api)
    assert {run.status for run in cmp.runs} == {Phase.WAITING}
    assert cmp.wait(timeout=120) is cmp
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED] * 2


async def test_wait_refuses_to_block_the_loop_the_cells_run_on(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK], client=client)
    with pytest.raises(WavenbError, match="await cmp"):
        cmp.wait()
    await cmp
    assert cmp.finished


async def test_display_shows_the_grid_and_a_cheap_repr(portrait: Path, client: AsyncClient) -> None:
    cmp = compare(portrait, [WALK, ZOOM], client=client)
    bundle = cmp._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("<Comparison 2 cells on sandbox")
    await cmp
    assert repr(cmp) == "<Comparison 2 cells on sandbox: 2 downloaded>"


def test_load_of_a_missing_folder_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a saved comparison"):
        Comparison.load(tmp_path)


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
        "downloaded",
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
    with pytest.raises(ImportError, match=r"pip install .wavenb\[pandas\]."):
        cmp.to_pandas()


# -- judging --------------------------------------------------------------------------------


def run_of(cell_id: str, prompt_id: str, repeat: int = 0, *, done: bool = True) -> CellRun:
    cell = Cell(cell_id, "img", prompt_id, f"prompt {prompt_id}", "16:9", repeat, cell_id)
    status = Phase.DOWNLOADED if done else Phase.FAILED
    return CellRun(cell, status=status, path=Path("/nonexistent"))


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
    votes = [Vote("A0", "B0", now), Vote("B0", "A0", now), Vote("A0", "B0", now, tie=True)]
    prompts = [PromptFactor("A", "prompt A"), PromptFactor("B", "prompt B")]
    a, b = summarize_prompts(prompts, runs, votes)
    assert a.win_rate == pytest.approx(1.5 / 3)
    assert b.win_rate == pytest.approx(1.5 / 3)
    assert a.comparisons == 3


def test_cells_stopped_or_never_sent_are_not_counted_as_failed() -> None:
    from wavenb.ab.transitions import NOT_SENT

    runs = [run_of("A0", "A"), run_of("A1", "A", done=False), run_of("A2", "A"), run_of("A3", "A")]
    runs[2] = replace(runs[2], status=Phase.STOPPED, path=None)
    runs[3] = replace(runs[3], status=Phase.REFUSED, path=None, error=NOT_SENT)
    [summary] = summarize_prompts([PromptFactor("A", "prompt A")], runs, [])
    assert (summary.completed, summary.failed) == (1, 1)  # only the cell that really failed


async def test_ratings_and_notes_show_in_the_summary_and_survive_a_rerun(
    portrait: Path, client: AsyncClient
) -> None:
    cmp = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    await cmp
    cmp.rate("A/auto/0", 1)
    cmp.rate("A/auto/1", -1)
    cmp.rate("B/auto/0", 1, note="smooth")
    summary = cmp.summary()
    assert summary["A"].mean_rating == 0
    assert summary["B"].mean_rating == 1
    assert summary["B"].rated == 1
    assert [s.prompt_id for s in summary] == ["A", "B"]  # iterating gives the prompts
    assert "rating +1.00" in summary["B"].describe()
    with pytest.raises(InputError, match="rating"):
        cmp.rate("A/auto/0", 5)  # type: ignore[arg-type]

    again = compare(portrait, [WALK, ZOOM], repeats=2, client=client)
    assert (again["B/auto/0"].rating, again["B/auto/0"].note) == (1, "smooth")
    assert again["A/auto/1"].rating == -1


async def test_a_vote_names_the_winner_then_the_loser(portrait: Path, client: AsyncClient) -> None:
    cmp = compare(portrait, {"A": WALK, "B": ZOOM}, repeats=2, client=client)
    await cmp
    vote = cmp.vote("B/auto/0", "A/auto/0")
    tie = cmp.tie("A/auto/1", "B/auto/1")
    assert (vote.winner, vote.loser, vote.tie) == ("B/auto/0", "A/auto/0", False)
    assert tie.tie
    assert cmp.votes == (vote, tie)
    summary = cmp.summary()
    assert summary["B"].win_rate == pytest.approx(0.75)
    assert summary["A"].comparisons == 2
    with pytest.raises(InputError, match="both show prompt A"):
        cmp.vote("A/auto/0", "A/auto/1")
    with pytest.raises(KeyError, match="no cell"):
        cmp.vote("C/auto/0", "A/auto/0")
    assert len(cmp.votes) == 2
