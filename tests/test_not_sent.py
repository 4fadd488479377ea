"""A submit that never left the machine is "not sent": retried or refused, never "maybe charged".

Before, under load, 876 of 1,000 submits ended as ``SubmissionUncertain`` although only 124 were
sent: they timed out waiting for a pooled connection. Now requests are admitted to the pool at the
pool's size (no queue forms), and the errors raised before a byte leaves (pool timeout, refused
connection, a name that does not resolve) release the reservation instead.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

import wavenb
from tests.conftest import CANARY_KEY, MP4
from tests.hostile import Provider

PROMPT = "Camera slowly zooms in"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "base_url",
    [f"http://127.0.0.1:{free_port()}", "http://no-such-host.invalid"],
    ids=["connection refused", "name does not resolve"],
)
async def test_a_submit_that_cannot_connect_is_not_sent_and_costs_nothing(
    base_url: str, tmp_path: Path
) -> None:
    async with wavenb.AsyncClient(base_url=base_url, output_dir=tmp_path, timeout=2.0) as client:
        with pytest.raises(wavenb.TransportError) as caught:
            await client.submit("https://img.example/cat.png", PROMPT)
        [row] = client.journal.rows()
    assert caught.value.request_sent is False
    assert not isinstance(caught.value, wavenb.SubmissionUncertain)
    assert (row.status, row.cost, row.sent_at is not None) == ("refused", 0.0, True)
    assert client.journal.unresolved() == []


async def test_a_pool_timeout_is_not_sent(tmp_path: Path) -> None:
    """httpx gives up waiting for a pooled connection: nothing went out (the transport seam)."""
    submits = {"n": 0}

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gen4-turbo"):
            submits["n"] += 1
            raise httpx.PoolTimeout("no connection free", request=request)
        return httpx.Response(404, json={"code": 404, "message": "no"})

    async with wavenb.AsyncClient(CANARY_KEY, "https://api.wavespeed.ai", output_dir=tmp_path,
                                  transport=httpx.MockTransport(transport)) as client:  # fmt: skip
        with pytest.raises(wavenb.TransportError, match="not sent") as caught:
            await client.submit("https://img.example/cat.png", PROMPT)
        [row] = client.journal.rows()
    assert caught.value.request_sent is False and submits["n"] == 4  # tried again, then refused
    assert (row.status, row.cost) == ("refused", 0.0) and "not sent" in (row.error or "")


async def test_hundreds_of_submits_through_a_small_pool_are_never_uncertain(tmp_path: Path) -> None:
    """200 generations at once through 4 connections: all complete, none "maybe charged"."""
    with Provider() as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path,
                                      timeout=5.0, max_connections=4) as client:  # fmt: skip
            videos = await asyncio.gather(*(
                client.generate(f"https://img.example/{i}.png", PROMPT) for i in range(200)
            ))  # fmt: skip
            rows = client.journal.rows()
        assert len({v.id for v in videos}) == 200 and all(v.path.read_bytes() == MP4 for v in videos)
        assert len(provider.submits()) == 200
        assert {row.status for row in rows} == {"completed"}
