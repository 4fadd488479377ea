"""Journal faults are errors, not tracebacks, and never cost money; an accepted task is never lost.

A damaged, read-only or full journal raises ``JournalError`` naming the file, before anything
is sent (the provider sees no request that costs money). A task accepted while its row cannot
be written is kept in the rescue file, said on stderr, and given back to its row on the next
open. Read-only and full disks are real: a tmpfs mounted for the test (skipped where mounting is
not allowed).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import wavenb
from tests.conftest import CANARY_KEY, MP4, png_bytes
from tests.hostile import Provider, Reply, Seen
from wavenb.cli.main import main
from wavenb.journal import rescue
from wavenb.journal.store import Journal

PROMPT = "Camera slowly zooms in"


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small real file system at ``where`` (skips the test where mounting is not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def generate_with(open_journal: type[Journal], path: Path, url: str, tmp_path: Path) -> None:
    async with wavenb.AsyncClient(CANARY_KEY, url, journal=open_journal(path),
                                  output_dir=tmp_path / "out") as client:  # fmt: skip
        await client.generate(png_bytes(), PROMPT)


def no_payment(provider: Provider) -> None:
    assert provider.submits() == [] and provider.server.seen("POST", "/upload/binary") == []


async def test_a_damaged_journal_is_a_journal_error_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVENB_HOME", str(tmp_path))
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database, it was damaged" * 100)
    with Provider() as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            with pytest.raises(wavenb.JournalError) as caught:
                await client.generate(png_bytes(), PROMPT)
        no_payment(provider)
    assert str(path) in str(caught.value) and "damaged" in str(caught.value)
    assert caught.value.path == str(path)


def test_the_cli_says_journal_problem_and_exits_8(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVENB_HOME", str(tmp_path))
    (tmp_path / "journal.sqlite3").write_bytes(b"garbage" * 1000)
    image = tmp_path / "cat.png"
    image.write_bytes(png_bytes())
    with Provider() as provider:
        code = main(["generate", str(image), PROMPT, "--base-url", provider.url])
        no_payment(provider)
    err = capsys.readouterr().err
    assert code == 8 and "journal problem" in err and "Traceback" not in err
    assert str(tmp_path / "journal.sqlite3") in err


async def test_a_read_only_journal_is_a_journal_error_before_anything_is_sent(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as folder:
        Journal(folder / "journal.sqlite3").close()
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        with Provider() as provider:
            with pytest.raises(wavenb.JournalError, match=r"cannot be written|read-only") as caught:
                await generate_with(Journal, folder / "journal.sqlite3", provider.url, tmp_path)
            no_payment(provider)
        assert str(folder) in str(caught.value)


async def test_a_full_disk_is_a_journal_error_before_anything_is_sent(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "96k") as folder:
        journal = Journal(folder / "journal.sqlite3")
        filler = folder / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as file:
            while True:
                file.write(b"\0" * 4096)
                file.flush()
        with Provider() as provider:
            async with wavenb.AsyncClient(CANARY_KEY, provider.url, journal=journal,
                                          output_dir=tmp_path / "out") as client:  # fmt: skip
                async def fill() -> None:
                    for index in range(200):  # until the file needs a page the disk cannot give
                        await client.submit(f"https://img.example/{index}.png", f"{PROMPT} {index} " * 20)

                with pytest.raises(wavenb.JournalError) as caught:
                    await fill()
            accepted = provider.submits()
        rows = journal.rows()
        journal.close()
    assert "full" in str(caught.value) or "cannot be written" in str(caught.value)
    # Every submit the provider took is in the journal: the failing one was never sent.
    assert len(accepted) == len(rows)


async def test_an_accepted_task_whose_row_cannot_be_written_is_rescued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the journal's write lock while the provider answers the submit."""
    path = tmp_path / "journal.sqlite3"
    blocker = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
    held: dict[str, bool] = {"on": False}

    def lock_then_answer(seen: Seen) -> Reply | None:
        if seen.path.endswith("/gen4-turbo") and not held["on"]:
            blocker.execute("BEGIN EXCLUSIVE")  # the client's next write waits, then fails
            held["on"] = True
        if seen.path.endswith("/result") and held["on"]:
            blocker.execute("ROLLBACK")
            held["on"] = False
        return None

    journal = Journal(path, busy_timeout_ms=200)  # the journal exists before the lock is taken
    with Provider() as provider:
        provider.override = lock_then_answer
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, journal=journal,
                                      output_dir=tmp_path / "out") as client:  # fmt: skip
            video = await client.generate(png_bytes(), PROMPT)
        [pid] = provider.ids
    assert video.id == pid and video.path.read_bytes() == MP4
    said = [r.getMessage() for r in caplog.records if "could not record" in r.getMessage()]
    assert said and pid in said[0] and "rescue" in said[0]
    lines = rescue.pending(path)
    assert [line["prediction_id"] for line in lines] == [pid]
    journal.close()
    with Journal(path) as reopened:  # the next open gives the row its id back
        [row] = reopened.rows()
        assert row.prediction_id == pid
    assert rescue.pending(path) == []
    blocker.close()
    logging.getLogger("wavenb").info("done")


EMBEDDED_ROW = """
import sys
from wavenb.core.config import SANDBOX_BASE_URL
from wavenb.core.models import Prediction, Status
from wavenb.journal.store import Journal
with Journal(sys.argv[1]) as journal:
    key = journal.begin(request_hash="h", model="runwayml/gen4-turbo", prompt="zoom in",
                        aspect_ratio=None, image_sha256=None, image_source="x", backend="sandbox",
                        base_url=SANDBOX_BASE_URL, cost=0.0)
    journal.accepted(key, Prediction("a" * 32, "runwayml/gen4-turbo", Status.PROCESSING, sandbox=True))
"""


def test_history_shows_an_embedded_sandbox_task_of_an_ended_kernel_as_lost(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not "processing" forever: ``history`` (function and CLI) says it was lost, for free."""
    import sys

    from wavenb.cli.main import main

    home = tmp_path / "home"
    monkeypatch.setenv("WAVENB_HOME", str(home))
    subprocess.run([sys.executable, "-c", EMBEDDED_ROW, str(home / "journal.sqlite3")], check=True)
    [row] = wavenb.history()
    assert (row.phase.value, row.cost) == ("gone", 0.0) and "lost with the kernel" in (row.error or "")
    assert [r.prediction_id for r in wavenb.history(status="gone")] == ["a" * 32]
    assert main(["history"]) == 0
    assert "processing" not in capsys.readouterr().out


def test_rows_of_an_embedded_sandbox_that_ended_with_its_kernel_are_not_offered(tmp_path: Path) -> None:
    """A kernel ran a task on its in-process sandbox, then ended: that task is gone, for free."""
    import sys

    path = tmp_path / "journal.sqlite3"
    subprocess.run([sys.executable, "-c", EMBEDDED_ROW, str(path)], check=True)
    with Journal(path) as journal:
        assert journal.resumable() == []
        [row] = journal.rows()
    assert row.status == "deleted" and row.phase.value == "gone" and row.cost == 0.0
    assert row.error == "lost with the kernel (sandbox, nothing charged)"
