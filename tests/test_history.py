"""History, cost and resume: every submission journaled, nothing paid twice, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import wavenb
from tests.conftest import API, ASSETS, CANARY_KEY, ROOT, serve_sandbox
from wavenb import AsyncClient, BudgetExceeded, Status, SubmissionUncertain
from wavenb.cli.main import main
from wavenb.journal.store import Journal
from wavenb.sandbox import SandboxConfig

CAT = ASSETS / "animal-chelsea.jpg"
PID = "feedfacefeedfacefeedfacefeedface"


def answer(status: str = "created", **extra: object) -> dict[str, object]:
    data: dict[str, object] = {"id": PID, "model": "runwayml/gen4-turbo", "status": status, "outputs": []}
    data.update(extra)
    return {"code": 200, "message": "success", "data": data}


def upload_answer() -> httpx.Response:
    data = {"type": "image", "download_url": "https://cdn.example/i.jpg", "filename": "i.jpg", "size": 1}
    return httpx.Response(200, json={"code": 200, "message": "success", "data": data})


def api_client(handler, tmp_path: Path, **kwargs) -> AsyncClient:
    return AsyncClient(CANARY_KEY, API, transport=httpx.MockTransport(handler), output_dir=tmp_path / "out", **kwargs)


async def test_row_is_written_before_the_submit_is_sent(tmp_path):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/upload/binary"):
            return upload_answer()
        with Journal() as other:  # another connection, as another kernel would see it
            seen.extend(row.status for row in other.rows())
        return httpx.Response(200, json=answer())

    async with api_client(handler, tmp_path) as client:
        await client.submit(CAT, "zoom in")
        row = client.journal.get(PID)
    assert seen == ["submitting"]
    assert row is not None and row.status == "created" and row.cost == 0.5
    assert row.image_sha256 is not None and row.image_source == str(CAT.resolve())


async def test_uncertain_submit_is_recorded_unknown_and_never_resent(tmp_path):
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/upload/binary"):
            return upload_answer()
        raise httpx.ReadTimeout("no answer")

    async with api_client(handler, tmp_path) as client:
        with pytest.raises(SubmissionUncertain):
            await client.submit(CAT, "zoom in")
        assert await client.resume() == []
    unresolved = wavenb.unresolved()
    assert [row.status for row in unresolved] == ["unknown"]
    assert unresolved[0].cost == 0.5
    assert calls.count("/api/v3/runwayml/gen4-turbo") == 1
    assert wavenb.spent() == 0.5


async def test_refused_submit_costs_nothing(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": 401, "message": "Invalid API key", "data": None})

    async with api_client(handler, tmp_path) as client:
        with pytest.raises(wavenb.AuthenticationError):
            await client.submit("https://img.example/cat.jpg", "zoom in")
    assert [(r.status, r.cost) for r in wavenb.history()] == [("refused", 0.0)]
    assert wavenb.spent() == 0.0


async def test_budget_refuses_before_any_request(tmp_path):
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/model/" not in request.url.path:  # the price quote (404: the list price) is free
            requests.append(request)
        return httpx.Response(200, json=answer())

    async with api_client(handler, tmp_path, max_spend=0.75) as client:
        await client.submit("https://img.example/cat.jpg", "zoom in")
        with pytest.raises(BudgetExceeded, match=r"\$0\.50 is already spent or reserved; the limit is \$0\.75"):
            await client.submit("https://img.example/cat.jpg", "pan left")
    assert len(requests) == 1


async def test_budget_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVENB_MAX_SPEND", "0.25")
    async with api_client(lambda r: httpx.Response(200, json=answer()), tmp_path) as client:
        with pytest.raises(BudgetExceeded):
            await client.submit("https://img.example/cat.jpg", "zoom in")


async def test_generate_journals_every_step_and_downloads(sandbox_client):
    video = await sandbox_client.generate(CAT, "Camera slowly zooms in", "1:1")
    row = sandbox_client.journal.get(video.id)
    assert row.status == "completed" and row.backend == "sandbox" and row.cost == 0.0
    assert Path(row.path) == video.path
    assert row.size == video.path.stat().st_size and len(row.sha256) == 64
    assert row.output_url == video.url and row.accepted_at and row.finished_at and row.downloaded_at


async def test_same_request_is_reused_unless_fresh(sandbox_client, sandbox_app):
    first = await sandbox_client.generate(CAT, "Camera slowly zooms in")
    again = await sandbox_client.generate(CAT, "Camera slowly zooms in")
    other_ratio = await sandbox_client.generate(CAT, "Camera slowly zooms in", "9:16")
    fresh = await sandbox_client.generate(CAT, "Camera slowly zooms in", fresh=True)
    assert not first.reused and again.reused and not other_ratio.reused and not fresh.reused
    assert again.id == first.id and again.path == first.path
    assert "reused from history" in repr(again._repr_mimebundle_()["text/plain"])
    assert sandbox_app.state.sandbox.accepted == 3


async def test_a_deleted_file_is_downloaded_again_not_paid_again(sandbox_client, sandbox_app):
    first = await sandbox_client.generate(CAT, "Camera slowly zooms in")
    first.path.unlink()
    again = await sandbox_client.generate(CAT, "Camera slowly zooms in")
    assert again.id == first.id and again.path.exists()
    assert sandbox_app.state.sandbox.accepted == 1


async def test_resume_finishes_a_cancelled_wait_without_resubmitting(sandbox_client, sandbox_app, tmp_path):
    prediction = await sandbox_client.submit(CAT, "pan left")
    waiting = asyncio.create_task(sandbox_client.wait(prediction))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    resumed = await sandbox_client.resume()
    assert [r.row.prediction_id for r in resumed] == [prediction.id]
    assert resumed[0].video is not None and resumed[0].video.path.exists()
    assert sandbox_client.journal.get(prediction.id).status == "completed"
    assert sandbox_app.state.sandbox.accepted == 1
    assert await sandbox_client.resume() == []


async def test_resume_marks_tasks_the_server_forgot(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=answer())
        return httpx.Response(404, json={"code": 404, "message": "prediction not found", "data": None})

    async with api_client(handler, tmp_path) as client:
        await client.submit("https://img.example/cat.jpg", "zoom in")
        resumed = await client.resume()
        assert resumed[0].video is None and "not found" in str(resumed[0].error)
        assert client.journal.get(PID).status == "deleted"
        assert await client.resume() == []


async def test_journal_and_outputs_never_hold_the_key(sandbox_client):
    await sandbox_client.generate(CAT, "Camera slowly zooms in")
    with pytest.raises(wavenb.PredictionFailed):
        await sandbox_client.generate(CAT, "the gore")
    files = [sandbox_client.journal.path, *sandbox_client.journal.path.parent.glob("*"),
             *sandbox_client.output_dir.rglob("*")]
    assert len(files) >= 3
    for path in files:
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path


def test_history_cli_lists_rows_and_spend(sandbox_app, tmp_path, capsys):
    with wavenb.Client(CANARY_KEY, API, transport=httpx.ASGITransport(app=sandbox_app), output_dir=tmp_path) as client:
        video = client.generate(CAT, "Camera slowly zooms in")
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert video.id[:8] in out and "downloaded" in out and "spent: $0.00" in out
    assert main(["history", "--json", "--status", "completed"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["prediction_id"] for r in rows] == [video.id]
    assert wavenb.history(text="slowly")[0].prediction_id == video.id
    assert wavenb.history(status="failed") == []


@pytest.mark.slow
def test_kill_mid_poll_then_resume_in_a_new_process(tmp_path):
    """A batch is killed with SIGKILL while polling; `wavenb resume` finishes it, no resubmits."""
    config = SandboxConfig(speed="instant", duration=1.0)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "WAVESPEED_API_KEY"} | {"WAVENB_HOME": str(home)}
    with serve_sandbox(config) as (url, app):
        batch = (
            "import asyncio, wavenb\n"
            "async def main():\n"
            f"    async with wavenb.AsyncClient({CANARY_KEY!r}, {url!r}) as c:\n"
            f"        await asyncio.gather(*(c.generate({str(CAT)!r}, p) for p in ['zoom in', 'pan left', 'tilt up']))\n"
            "asyncio.run(main())\n"
        )
        child = subprocess.Popen([sys.executable, "-c", batch], env=env, cwd=ROOT)
        journal_path = home / "journal.sqlite3"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal_path.exists():
                with Journal(journal_path) as journal:
                    if sum(r.prediction_id is not None for r in journal.rows()) == 3:
                        break
            time.sleep(0.05)
        else:
            child.kill()
            pytest.fail("the batch never submitted its three tasks")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        with Journal(journal_path) as journal:
            before = journal.rows()
        assert len(before) == 3 and all(r.path is None for r in before), "killed before any download"
        result = subprocess.run(
            [sys.executable, "-m", "wavenb", "resume", "--base-url", url, "--api-key", CANARY_KEY],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert app.state.sandbox.accepted == 3
    with Journal(journal_path) as journal:
        after = journal.rows()
    assert sorted(r.status for r in after) == ["completed"] * 3
    assert all(r.path and Path(r.path).stat().st_size == r.size for r in after)
    assert len(result.stdout.strip().splitlines()) == 3
    assert CANARY_KEY not in result.stdout + result.stderr
    assert Status.COMPLETED.value in {r.status for r in after}


class CountingJournal(Journal):
    """A real journal that counts its writes of task state."""

    updates = 0

    def update(self, prediction, base_url=None):
        type(self).updates += 1
        super().update(prediction, base_url)


async def test_checks_that_find_nothing_new_write_nothing(tmp_path):
    """Only changes are committed; an unchanged check is noted in memory (no loop-blocking write)."""
    answers = [answer("created")] + [answer("processing")] * 5 + [answer("completed", outputs=["https://cdn.example/1.mp4"])]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=answer())
        return httpx.Response(200, json=answers.pop(0))

    journal = CountingJournal(tmp_path / "j.sqlite3")
    async with api_client(handler, tmp_path, journal=journal) as client:
        await client.wait(await client.submit("https://img.example/cat.jpg", "zoom in"))
    # processing, completed: "created" came with the submit's answer, and 4 of the 6 checks
    # found nothing new (noted in memory, no write).
    assert CountingJournal.updates == 2
    row = journal.get(PID)
    assert row.status == "completed" and row.output_url == "https://cdn.example/1.mp4"


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
async def test_submit_waits_out_many_429s_behind_one_gate(tmp_path):
    """A 429 creates nothing: the submit waits as long as asked, more times than reads retry."""
    posts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/model/" in request.url.path:
            return httpx.Response(404, json={"code": 404, "message": "no quote"})
        posts.append(1)
        if len(posts) <= 8:
            return httpx.Response(429, json={"code": 429, "message": "slow"}, headers={"Retry-After": "20"})
        return httpx.Response(200, json=answer())

    async with api_client(handler, tmp_path) as client:
        prediction = await client.submit("https://img.example/cat.jpg", "zoom in")
    assert prediction.id == PID and len(posts) == 9
    assert [r.status for r in wavenb.history()] == ["created"]


async def test_submit_asked_to_wait_too_long_raises_rate_limit(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"code": 429, "message": "slow"}, headers={"Retry-After": "3600"})

    async with api_client(handler, tmp_path) as client:
        with pytest.raises(wavenb.RateLimitError) as caught:
            await client.submit("https://img.example/cat.jpg", "zoom in")
    assert caught.value.retry_after == 3600
    assert [(r.status, r.cost) for r in wavenb.history()] == [("refused", 0.0)]
