"""A comparison drives the one generation lifecycle: its money promises hold cell by cell.

Each cell is a ``wavenb.Job``: the client's submit gate is the one 429 policy, the journal is
the truth about every cell's task (so an interrupted comparison resumes without paying again,
repeat 0 and a plain ``generate`` are one request), and a task from before is followed, never
submitted again. Scripted paid APIs (``tests/compare_fakes.py``) count the submits; the
sandbox counts what it accepted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.compare_fakes import WALK, ZOOM, PaidApi, accepted
from tests.conftest import API, CANARY_KEY
from wavenb import (
    DownloadError,
    InvalidRequestError,
    NotFoundError,
    Phase,
    Prediction,
    PredictionFailed,
    Status,
    Update,
)
from wavenb.ab.comparison import Cell, CellRun, Comparison, compare
from wavenb.ab.design import request_hash_of
from wavenb.ab.transitions import changes_for, ending_of
from wavenb.client.async_client import AsyncClient
from wavenb.testing import SandboxFactory


async def all_submitted(cmp: Comparison) -> None:
    """Return once every cell has a task at the provider."""
    submitted = asyncio.Event()

    def look(_cell: str | None) -> None:
        if all(run.prediction_id for run in cmp.runs):
            submitted.set()

    stop = cmp.watch(look)
    try:
        await submitted.wait()
    finally:
        stop()


# -- one 429 policy -------------------------------------------------------------------------


async def test_a_rate_limited_batch_completes_with_one_submission_per_cell(
    portrait: Path, wavenb_sandbox_factory: SandboxFactory
) -> None:
    """The client's gate paces the batch through 429s: no cell fails, none pays twice."""
    sandbox = wavenb_sandbox_factory(submit_rate=(2, 0.1), api_key=CANARY_KEY)
    client = sandbox.client
    await client.detect()
    cmp = compare(portrait, [WALK, ZOOM], repeats=2, concurrency=4, client=client)
    await cmp
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED] * 4
    assert client.session.gate.rate_limited >= 1  # the cap was met...
    assert cmp.rate_limited == client.session.gate.rate_limited
    assert accepted(sandbox.app) == 4  # ...and only waited out
    assert client.journal is not None
    rows = client.journal.rows()
    image = cmp.design.images[0]
    for run in cmp.runs:
        mine = [r for r in rows if r.request_hash == request_hash_of(run.cell, image, API)]
        assert [(r.status, r.prediction_id) for r in mine] == [("completed", run.prediction_id)]
    assert {r.status for r in rows} == {"completed"}  # no refused or unknown submission


# -- the journal is the truth ---------------------------------------------------------------


async def test_an_interrupted_comparison_resumes_without_paying_again(
    portrait: Path, tmp_path: Path
) -> None:
    api = PaidApi(checks=10**6)  # the tasks run until told otherwise
    client = api.client(tmp_path)
    first = compare(portrait, [WALK, ZOOM], client=client)
    first.start()
    await all_submitted(first)
    first.cancel()  # the kernel "dies": the tasks go on at the provider
    await first
    assert {run.status for run in first.runs} == {Phase.STOPPED}
    assert client.spent() == 1.0

    api.checks = 0  # now they are done
    again = compare(portrait, [WALK, ZOOM], client=client)
    assert (again.estimate.resumed, again.estimate.new, again.estimate.total) == (2, 0, 0)
    assert not again.needs_confirmation  # nothing new to pay for: no consent needed
    await again
    assert [run.status for run in again.runs] == [Phase.DOWNLOADED] * 2
    assert [r.prediction_id for r in again.runs] == [r.prediction_id for r in first.runs]
    assert len(api.submits()) == 2
    assert client.spent() == 1.0
    assert again.spent == 0  # paid by the first run, not this one


async def test_a_stopped_cell_is_retried_by_following_its_task_for_free(
    portrait: Path, tmp_path: Path
) -> None:
    api = PaidApi(checks=10**6)
    cmp = compare(portrait, [WALK, ZOOM], client=api.client(tmp_path), max_cost=1.0)
    cmp.start()
    await all_submitted(cmp)
    cmp.cancel()
    await cmp
    api.checks = 0
    retried = await cmp.retry("A/auto/0")  # within max_cost: following costs nothing
    assert retried.status is Phase.DOWNLOADED
    assert retried.prediction_id == cmp["A/auto/0"].prediction_id
    assert len(api.submits()) == 2
    assert cmp["B/auto/0"].status is Phase.STOPPED


async def test_a_task_gone_at_the_provider_is_not_paid_again_unasked(
    portrait: Path, tmp_path: Path
) -> None:
    api = PaidApi(checks=10**6)
    client = api.client(tmp_path)
    first = compare(portrait, [WALK], client=client)
    first.start()
    await all_submitted(first)
    first.cancel()
    await first
    api.forget()  # the provider keeps tasks 7 days

    again = compare(portrait, [WALK], client=client)
    await again
    gone = again["A/auto/0"]
    assert gone.status is Phase.GONE
    assert "retry the cell to pay for a new one" in (gone.error or "")
    assert len(api.submits()) == 1

    api.checks = 0
    retried = await again.retry("A/auto/0")  # asked for: a new task
    assert retried.status is Phase.DOWNLOADED
    assert retried.prediction_id != gone.prediction_id
    assert len(api.submits()) == 2


async def test_a_task_a_restarted_sandbox_forgot_is_rendered_again_for_free(
    portrait: Path, wavenb_sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    before = wavenb_sandbox_factory(speed="realistic", api_key=CANARY_KEY)
    await before.client.detect()
    first = compare(portrait, [WALK], client=before.client)
    await all_submitted(first)
    first.cancel()
    await first

    after = wavenb_sandbox_factory(api_key=CANARY_KEY)  # a new sandbox at the same address
    client = AsyncClient(CANARY_KEY, API, transport=after.transport(), output_dir=tmp_path)
    await client.detect()
    again = compare(portrait, [WALK], client=client)
    assert again.estimate.resumed == 1
    await again
    assert again["A/auto/0"].status is Phase.DOWNLOADED
    assert again["A/auto/0"].prediction_id != first["A/auto/0"].prediction_id
    assert accepted(after.app) == 1
    await client.aclose()


# -- repeat 0 is a plain generate's request -------------------------------------------------


async def test_repeat_zero_reuses_a_video_made_by_generate(
    portrait: Path, sandbox_client: AsyncClient, sandbox_app: Any
) -> None:
    await sandbox_client.detect()
    video = await sandbox_client.generate(portrait, WALK, "16:9")
    cmp = compare(portrait, [WALK], aspect_ratios=["16:9"], repeats=2, client=sandbox_client)
    assert (cmp.estimate.reused, cmp.estimate.new) == (1, 1)
    assert cmp["A/16:9/0"].prediction_id == video.id
    assert cmp["A/16:9/0"].status is Phase.DOWNLOADED
    await cmp
    assert accepted(sandbox_app) == 2
    assert cmp["A/16:9/1"].prediction_id != video.id


async def test_generate_reuses_repeat_zero_of_a_comparison(
    portrait: Path, sandbox_client: AsyncClient, sandbox_app: Any
) -> None:
    await sandbox_client.detect()
    cmp = compare(portrait, [WALK], aspect_ratios=["16:9"], repeats=2, client=sandbox_client)
    await cmp
    video = await sandbox_client.generate(portrait, WALK, "16:9")
    assert video.reused
    assert video.id == cmp["A/16:9/0"].prediction_id
    assert accepted(sandbox_app) == 2


async def test_repeat_zero_joins_a_generate_still_running(portrait: Path, tmp_path: Path) -> None:
    """An identical request in flight is joined, not paid twice (the journal's join)."""
    api = PaidApi(checks=3)
    client = api.client(tmp_path)
    accepted_once = asyncio.Event()

    def seen(update: Update) -> None:
        if update.phase is Phase.ACCEPTED:
            accepted_once.set()

    generating = asyncio.ensure_future(client.generate(portrait, WALK, "16:9", on_update=seen))
    await accepted_once.wait()
    cmp = compare(portrait, [WALK], aspect_ratios=["16:9"], repeats=2, client=client)
    assert (cmp.estimate.resumed, cmp.estimate.new) == (1, 1)
    cmp.start()
    await cmp
    video = await generating
    assert cmp["A/16:9/0"].prediction_id == video.id
    assert cmp["A/16:9/0"].cost == 0  # the generate paid for it
    assert [run.status for run in cmp.runs] == [Phase.DOWNLOADED] * 2
    assert len(api.submits()) == 2
    assert client.spent() == 1.0


async def test_the_image_is_uploaded_once_even_for_many_cells_at_once(
    portrait: Path, tmp_path: Path
) -> None:
    api = PaidApi()
    cmp = compare(portrait, [WALK, ZOOM], repeats=3, concurrency=6, client=api.client(tmp_path))
    cmp.start()
    await cmp
    assert len(api.uploads()) == 1
    assert len(api.submits()) == 6
    sent = {json.loads(request.content)["image"] for request in api.submits()}
    assert sent == {"https://cdn.example.net/media/image.png"}  # the one uploaded URL


# -- how a cell reads its job (pure) ---------------------------------------------------------


def a_run(**fields: Any) -> CellRun:
    cell = Cell("A/16:9/0", "img", "A", WALK, "16:9", 0, "key")
    return CellRun(cell, **fields)


def an_update(phase: Phase, *, sandbox: bool = False, **fields: Any) -> Update:
    task = Prediction("p1", "runwayml/gen4-turbo", Status.PROCESSING, sandbox=sandbox)
    return Update(task, 1.0, 1, None, None, phase=phase, **fields)


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_cell_costs_the_price_only_when_its_own_submission_is_accepted() -> None:
    paid = changes_for(a_run(), an_update(Phase.ACCEPTED), price=0.5, now=NOW)
    assert (paid["cost"], paid["prediction_id"], paid["status"]) == (0.5, "p1", Phase.ACCEPTED)
    joined = changes_for(a_run(), an_update(Phase.ACCEPTED, detail="joined"), price=0.5, now=NOW)
    assert "cost" not in joined
    sandbox = changes_for(a_run(), an_update(Phase.ACCEPTED, sandbox=True), price=0.5, now=NOW)
    assert sandbox["cost"] == 0
    reused = changes_for(a_run(), an_update(Phase.DOWNLOADED, reused=True), price=0.5, now=NOW)
    assert (reused["cost"], reused["reused"]) == (0, True)


def test_a_new_video_drops_the_old_metrics_and_times_come_from_the_phases() -> None:
    run = a_run(prediction_id="p1", path=Path("/old.mp4"), sha256="ab" * 32)
    new = changes_for(run, an_update(Phase.DOWNLOADED, path=Path("/new.mp4")), price=0, now=NOW)
    assert (new["path"], new["metrics"], new["sha256"]) == (Path("/new.mp4"), None, None)
    assert changes_for(run, an_update(Phase.PROCESSING), price=0, now=NOW)["started_at"] == NOW
    assert changes_for(run, an_update(Phase.COMPLETED), price=0, now=NOW)["finished_at"] == NOW
    sent = changes_for(run, an_update(Phase.SUBMITTING), price=0, now=NOW)
    assert sent["submitted_at"] == NOW


def test_how_a_cell_ends_keeps_the_lifecycles_word() -> None:
    stop = asyncio.CancelledError()
    assert ending_of(stop, Phase.WAITING)[:2] == (
        Phase.REFUSED, "stopped before it was sent: nothing was paid",
    )  # fmt: skip
    assert ending_of(stop, Phase.REFUSED)[0] is Phase.REFUSED  # the job said: never sent
    assert ending_of(stop, Phase.PROCESSING)[0] is Phase.STOPPED
    assert ending_of(stop, Phase.UNKNOWN)[0] is Phase.UNKNOWN  # maybe charged: never resent
    refused = ending_of(InvalidRequestError("bad ratio", status=400), Phase.REFUSED)
    assert refused[:2] == (Phase.REFUSED, "bad ratio")
    assert ending_of(NotFoundError("gone", status=404), Phase.QUEUED)[0] is Phase.GONE
    failed = Prediction("p1", "m", Status.FAILED, error="Content policy violation")
    status, text, moderation = ending_of(PredictionFailed("failed", failed), Phase.FAILED)
    assert (status, text, moderation) == (Phase.FAILED, "Content policy violation", True)
    assert ending_of(DownloadError("cut"), Phase.COMPLETED)[0] is Phase.FAILED
