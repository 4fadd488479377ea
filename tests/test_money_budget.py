"""The budget is never passed, and no request is paid twice: races of coroutines, kernels, a kill.

Against ``tests.hostile.Provider`` (real sockets, not the sandbox): every submit it receives is a
payment, so "paid twice" is counted where it happens.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wavenb
from tests.conftest import CANARY_KEY, ROOT, png_bytes
from tests.hostile import Provider, Reply, Seen
from wavenb.journal.store import Journal


def images(n: int) -> list[bytes]:
    """``n`` different local images (different bytes: different requests)."""
    return [png_bytes((64 + i, 48)) for i in range(n)]


async def test_concurrent_submits_never_pass_the_budget(tmp_path: Path) -> None:
    """Six submits at once, $0.50 each, max_spend=$1.00: exactly two are paid."""
    with Provider() as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, max_spend=1.0,
                                      output_dir=tmp_path) as client:  # fmt: skip
            results = await asyncio.gather(
                *(client.submit(image, "Camera slowly zooms in") for image in images(6)),
                return_exceptions=True,
            )
        paid = [r for r in results if isinstance(r, wavenb.Prediction)]
        refused = [r for r in results if isinstance(r, wavenb.BudgetExceeded)]
        assert (len(paid), len(refused)) == (2, 4), results
        assert len(provider.submits()) == 2
        # Refused before anything was sent, the upload included (the budget is reserved first).
        assert len(provider.server.seen("POST", "/upload/binary")) == 2
    assert wavenb.spent() == pytest.approx(1.0)


CHILD = """
import asyncio, sys, time, pathlib, wavenb
go = pathlib.Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
async def main():
    async with wavenb.AsyncClient(base_url=sys.argv[1]) as client:
        try:
            await client.submit(sys.argv[3], sys.argv[4])
        except wavenb.BudgetExceeded:
            sys.exit(7)
asyncio.run(main())
"""


def children(url: str, tmp_path: Path, runs: list[tuple[str, str]], env: dict[str, str]) -> list[int]:
    """Start one process per (image, prompt), release them together, return their exit codes."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, url, str(go), image, prompt], cwd=ROOT, env=env)
        for image, prompt in runs
    ]
    time.sleep(1.0)  # both are waiting at the line
    go.touch()
    return [proc.wait(60) for proc in procs]


def test_two_processes_never_pass_the_budget_together(tmp_path: Path) -> None:
    """Two kernels with WAVENB_MAX_SPEND=0.50, released at the same instant: one pays."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for path, data in zip((a, b), images(2), strict=True):
        path.write_bytes(data)
    env = {**os.environ, "WAVENB_MAX_SPEND": "0.50", "WAVESPEED_API_KEY": CANARY_KEY}
    with Provider() as provider:
        codes = children(provider.url, tmp_path, [(str(a), "zoom in"), (str(b), "zoom in")], env)
        assert sorted(codes) == [0, 7]
        assert len(provider.submits()) == 1


def test_two_processes_sending_the_same_request_pay_once(tmp_path: Path) -> None:
    """The same image and prompt from two kernels at once: the second joins the first."""
    image = tmp_path / "a.png"
    image.write_bytes(images(1)[0])
    env = {**os.environ, "WAVESPEED_API_KEY": CANARY_KEY}
    with Provider() as provider:
        codes = children(provider.url, tmp_path, [(str(image), "pan left")] * 2, env)
        assert codes == [0, 0]
        assert len(provider.submits()) == 1
    with Journal() as journal:
        assert len(journal.rows()) == 1


async def test_a_double_click_in_one_client_is_one_payment(tmp_path: Path) -> None:
    """Two identical generations started together (a double click): one submit, one video."""
    with Provider() as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            image = images(1)[0]
            first, second = await asyncio.gather(
                client.generate(image, "Camera slowly zooms in"),
                client.generate(image, "Camera slowly zooms in"),
            )
        assert first.id == second.id and first.path == second.path
        assert len(provider.submits()) == 1


async def test_fresh_pays_again_on_purpose(tmp_path: Path) -> None:
    with Provider() as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            image = images(1)[0]
            first = await client.generate(image, "Camera slowly zooms in")
            again = await client.generate(image, "Camera slowly zooms in")
            fresh = await client.generate(image, "Camera slowly zooms in", fresh=True)
        assert again.reused and again.id == first.id
        assert fresh.id != first.id and not fresh.reused
        assert len(provider.submits()) == 2


GENERATE = """
import sys, wavenb
video = wavenb.generate(sys.argv[2], "Camera slowly zooms in")
print(video.path)
"""


@pytest.mark.slow
def test_a_killed_process_does_not_make_the_same_request_pay_again(tmp_path: Path) -> None:
    """SIGKILL while the task runs; running the same generate again joins the paid task."""
    image = tmp_path / "a.png"
    image.write_bytes(images(1)[0])
    env = {**os.environ, "WAVESPEED_API_KEY": CANARY_KEY}
    with Provider(instant=False) as provider:
        env["WAVENB_BASE_URL"] = provider.url
        child = subprocess.Popen([sys.executable, "-c", GENERATE, provider.url, str(image)],
                                 cwd=ROOT, env=env)  # fmt: skip
        deadline = time.monotonic() + 60
        while not provider.server.seen("GET", "/result") and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert len(provider.submits()) == 1
        provider.finish()
        again = subprocess.run([sys.executable, "-c", GENERATE, provider.url, str(image)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                               check=False)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        assert Path(again.stdout.strip()).exists()
        assert len(provider.submits()) == 1, "the same request was paid again"


async def test_a_budget_reservation_is_released_when_the_submit_is_refused(tmp_path: Path) -> None:
    """A refused submit costs nothing and frees its reservation for the next one."""
    refuse = {"left": 1}

    def override(seen: Seen) -> Reply | None:
        if seen.path.endswith("/gen4-turbo") and refuse["left"]:
            refuse["left"] -= 1
            return Reply.json({"code": 400, "message": "bad image"}, status=400)
        return None

    with Provider() as provider:
        provider.override = override
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, max_spend=0.5,
                                      output_dir=tmp_path) as client:  # fmt: skip
            first, second = images(2)
            with pytest.raises(wavenb.InvalidRequestError):
                await client.submit(first, "zoom in")
            assert client.spent() == 0.0
            await client.submit(second, "zoom in")  # the budget is free again
        assert len(provider.submits()) == 2


async def test_without_a_journal_a_refused_submit_gives_its_budget_back(tmp_path: Path) -> None:
    """``journal=False`` holds the budget in memory: a 422 (nothing charged) releases it."""
    with Provider() as provider:
        refuse = {"left": 1}

        def once(seen: Seen) -> Reply | None:
            if seen.path.endswith("/gen4-turbo") and refuse["left"]:
                refuse["left"] -= 1
                return Reply.json({"code": 422, "message": "bad prompt"}, status=422)
            return None

        provider.override = once
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path,
                                      journal=False, max_spend=0.5) as client:  # fmt: skip
            with pytest.raises(wavenb.InvalidRequestError):
                await client.submit("https://img.example/cat.png", "Camera slowly zooms in")
            assert client.spent() == 0.0
            await client.submit("https://img.example/cat.png", "Camera slowly zooms in")
            assert client.spent() == 0.5
            with pytest.raises(wavenb.BudgetExceeded):
                await client.submit("https://img.example/dog.png", "Camera slowly zooms in")
        assert len(provider.submits()) == 2
