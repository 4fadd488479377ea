"""The journal's writer thread and the client's admission to the connection pool.

Both are what let 1,000 videos run on one event loop (``bench/scale.py`` measures them); these
tests pin what they promise: writes in order, grouped into few commits, a failing call undoing
only itself, durable before answered; and never more requests in httpx's hands than the pool
has connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import wavenb
from tests.conftest import API, CANARY_KEY, prediction
from wavenb.journal.store import Journal
from wavenb.journal.writer import JournalWriter


def fields(prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_hash": prompt, "model": "runwayml/gen4-turbo", "prompt": prompt,
        "aspect_ratio": None, "image_sha256": None, "image_source": "x", "backend": "api",
        "base_url": API, "cost": 0.5, **extra,
    }  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


async def test_calls_queued_together_commit_together_and_each_failure_undoes_only_itself(
    journal: Journal,
) -> None:
    writer = JournalWriter(journal)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5)

    try:
        # Hold the thread so the next calls queue up behind it, as a busy batch's do.
        blocker = asyncio.ensure_future(writer.call(hold))
        assert await asyncio.to_thread(started.wait, 5)  # the thread has taken the blocker
        calls = [
            writer.call(journal.begin, **fields("first")),
            writer.call(journal.reserve, **fields("over budget", max_spend=0.4)),
            writer.call(journal.begin, **fields("third")),
        ]
        gathered = asyncio.gather(*calls, return_exceptions=True)
        await asyncio.sleep(0)  # each call's first step runs: all three are queued
        release.set()
        first, refused, third = await gathered
        await blocker
    finally:
        writer.close()
    assert isinstance(refused, wavenb.BudgetExceeded)
    assert isinstance(first, str) and isinstance(third, str)
    assert writer.commits == 2  # the blocker's group, then the three in one transaction
    assert sorted(row.prompt for row in journal.rows()) == ["first", "third"]


async def test_a_call_is_answered_only_once_its_write_is_on_disk(journal: Journal) -> None:
    writer = JournalWriter(journal)
    try:
        keys = await asyncio.gather(*(writer.call(journal.begin, **fields(f"p{i}")) for i in range(50)))
        # Another connection (another process would see the same): every row is there.
        with sqlite3.connect(journal.path) as other:
            stored = {key for (key,) in other.execute("SELECT request_key FROM jobs")}
    finally:
        writer.close()
    assert stored == set(keys)
    assert writer.commits < 50  # grouped: far fewer fsyncs than calls


async def test_calls_run_in_the_order_they_were_made(journal: Journal) -> None:
    """A row's later write never overtakes its earlier one (the thread takes them in order)."""
    seen: list[int] = []
    writer = JournalWriter(journal)
    try:
        await asyncio.gather(*(writer.call(seen.append, i) for i in range(300)))
    finally:
        writer.close()
    assert seen == list(range(300))


async def test_no_more_requests_reach_httpx_than_the_pool_has_connections(tmp_path: Path) -> None:
    """40 result checks at once through 3 connections: at most 3 in the transport at a time,
    the rest wait their turn before httpx sees them (no pool queue, no pool timeout)."""
    now = {"in": 0, "most": 0}

    async def transport(request: httpx.Request) -> httpx.Response:
        now["in"] += 1
        now["most"] = max(now["most"], now["in"])
        await asyncio.sleep(0.01)
        now["in"] -= 1
        return httpx.Response(200, json=prediction("processing"))

    async with wavenb.AsyncClient(CANARY_KEY, API, output_dir=tmp_path, max_connections=3,
                                  transport=httpx.MockTransport(transport)) as client:  # fmt: skip
        states = await asyncio.gather(*(client.get("0123456789abcdef0123456789abcdef")
                                        for _ in range(40)))  # fmt: skip
    assert len(states) == 40 and now["most"] == 3
