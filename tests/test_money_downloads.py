"""A video counts as downloaded only when it is whole; server data is never trusted blindly.

Against ``tests.hostile`` (raw sockets): bodies cut short, close-delimited bodies cut, HTML
"Access denied" pages with 200, endless outputs, gzip bombs, unusable output URLs, ids handed
out twice, answers about another task, and two resumes racing for one file.
"""

from __future__ import annotations

import asyncio
import resource
import threading
from pathlib import Path

import pytest

import wavenb
from tests.conftest import CANARY_KEY, MP4, png_bytes
from tests.hostile import Provider, Reply, Seen, envelope, gzip_bomb, prediction_data
from wavenb.core.models import Prediction, Status
from wavenb.journal.store import Journal

PROMPT = "Camera slowly zooms in"


def serving_output(reply: Reply):  # type: ignore[no-untyped-def]
    """An override that answers every output download with ``reply``, once; then the truth."""
    state = {"left": 1}

    def override(seen: Seen) -> Reply | None:
        if seen.path.startswith("/out/") and state["left"]:
            state["left"] -= 1
            return reply
        return None

    return override


BAD_OUTPUTS = {
    "cut, with a length": Reply(200, MP4[: len(MP4) // 2], claim=len(MP4)),
    "cut, close-delimited": Reply(200, MP4[:2000], mode="close"),
    "an HTML page": Reply(200, b"<html><body>Access denied</body></html>", {"content-type": "text/html"}),
    "empty": Reply(200, b""),
}


@pytest.mark.parametrize("reply", BAD_OUTPUTS.values(), ids=BAD_OUTPUTS.keys())
async def test_a_bad_body_is_never_recorded_as_the_video(reply: Reply, tmp_path: Path) -> None:
    """Refused, not journaled as downloaded, retried, and then the whole file is saved."""
    with Provider() as provider:
        provider.override = serving_output(reply)
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            video = await client.generate(png_bytes(), PROMPT)
        assert len(provider.server.seen("GET", ".mp4")) >= 2  # the bad one, then a good one
    assert video.path is not None and video.path.read_bytes() == MP4
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))


async def test_a_body_that_is_always_bad_leaves_the_task_resumable(tmp_path: Path) -> None:
    html = Reply(200, b"<html>Access denied</html>", {"content-type": "text/html"})
    with Provider() as provider:
        provider.override = lambda seen: html if seen.path.startswith("/out/") else None
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            with pytest.raises(wavenb.DownloadError, match="not an MP4"):
                await client.generate(png_bytes(), PROMPT)
            [row] = client.journal.rows()
            assert row.status == "completed" and row.path is None and row.resumable
            provider.override = None  # the CDN recovers
            [resumed] = await client.resume()
        assert resumed.video is not None and resumed.video.path.read_bytes() == MP4
        assert len(provider.submits()) == 1


async def test_an_endless_output_stops_at_the_size_cap(tmp_path: Path) -> None:
    with Provider() as provider:
        provider.override = lambda s: Reply(200, mode="endless") if s.path.startswith("/out/") else None
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path,
                                      max_download=4 << 20) as client:  # fmt: skip
            with pytest.raises(wavenb.DownloadError, match="larger than the download limit"):
                await client.generate(png_bytes(), PROMPT)
    written = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert written < 1 << 20  # nothing kept (the journal lives elsewhere)


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_an_endless_error_page_from_the_output_host_is_read_with_a_cap(
    encoding: str, tmp_path: Path
) -> None:
    """A 500 whose body never ends (or a gzip bomb) is an error, read only up to its cap."""
    if encoding == "gzip":
        reply = Reply(500, gzip_bomb(1 << 30), {"content-encoding": "gzip"})
    else:
        reply = Reply(500, mode="endless")
    with Provider() as provider:
        provider.override = lambda s: reply if s.path.startswith("/out/") else None
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            with pytest.raises(wavenb.WavenbError):
                await asyncio.wait_for(client.generate(png_bytes(), PROMPT), 60)
            [row] = client.journal.rows()
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024, f"peak RSS grew by {grown_kib} KiB"
    assert row.resumable and row.path is None  # nothing recorded as the video; kept to resume


async def test_a_promised_length_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    with Provider() as provider:
        provider.override = lambda s: Reply(200, MP4, claim=10 << 30) if s.path.startswith("/out/") else None
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            with pytest.raises(wavenb.DownloadError, match="download limit"):
                await client.generate(png_bytes(), PROMPT)


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_a_gzip_bomb_in_an_answer_is_stopped_at_the_answer_cap(tmp_path: Path) -> None:
    """A 1 MB-ish gzip body that inflates to 1 GB: refused at 1 MB decoded; memory stays flat."""
    bomb = gzip_bomb(1 << 30)
    with Provider() as provider:
        provider.override = lambda s: (
            Reply(200, bomb, {"content-type": "application/json", "content-encoding": "gzip"})
            if s.path.endswith("/result") else None
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        async def check() -> BaseException:
            async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
                with pytest.raises(wavenb.ServerError, match="larger than") as caught:
                    await client.get("0" * 32)
            return caught.value

        asyncio.run(check())
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024, f"peak RSS grew by {grown_kib} KiB"


@pytest.mark.parametrize("url", ["http://[::1/x.mp4", "file:///etc/passwd", "ftp://cdn/x.mp4", ""])
async def test_one_unusable_output_url_fails_its_row_and_resume_goes_on(url: str, tmp_path: Path) -> None:
    with Provider(instant=False) as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            bad = await client.submit(png_bytes((64, 48)), "bad one")
            good = await client.submit(png_bytes((66, 48)), "good one")

            def override(seen: Seen) -> Reply | None:
                if seen.path.endswith(f"{bad.id}/result"):
                    data = prediction_data(bad.id, "completed", outputs=[url])
                    return Reply.json(envelope(data))
                return None

            provider.override = override
            provider.finish()
            results = {item.row.prediction_id: item for item in await client.resume()}
        assert isinstance(results[bad.id].error, wavenb.WavenbError)
        assert results[good.id].video is not None
        assert results[good.id].video.path.read_bytes() == MP4


async def test_an_answer_about_another_task_changes_nothing(tmp_path: Path) -> None:
    with Provider(instant=False) as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            first = await client.submit(png_bytes((64, 48)), "first")
            second = await client.submit(png_bytes((66, 48)), "second")

            def override(seen: Seen) -> Reply | None:  # asked about `second`, answers about `first`
                if seen.path.endswith(f"{second.id}/result"):
                    return Reply.json(envelope(prediction_data(first.id, "failed", error="boom")))
                return None

            provider.override = override
            with pytest.raises(wavenb.ServerError, match="answer is about task"):
                await client.get(second.id)
            assert client.journal.get(first.id).status == "created"


async def test_a_task_id_given_twice_is_not_trusted(tmp_path: Path) -> None:
    """A server that answers two different submits with one id never overwrites the first."""
    with Provider() as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            first = await client.generate(png_bytes((64, 48)), "first")
            provider.override = lambda s: (
                Reply.json(envelope(prediction_data(first.id))) if s.path.endswith("/gen4-turbo") else None
            )
            with pytest.raises(wavenb.ServerError, match="untrusted"):
                await client.generate(png_bytes((66, 48)), "second")
            rows = {row.prompt: row for row in client.journal.rows()}
        assert rows["first"].status == "completed" and rows["first"].path == str(first.path)
        assert rows["second"].status == "unknown" and rows["second"].prediction_id is None
        assert first.path.read_bytes() == MP4


def test_two_resumes_at_once_download_each_video_once(tmp_path: Path) -> None:
    """Two threads (two kernels' worth) resume one journal: one downloader per task."""
    with Provider(instant=False) as provider, Journal() as journal:
        for index in range(3):
            key = journal.begin(
                request_hash=f"h{index}", model="runwayml/gen4-turbo", prompt=f"p{index}",
                aspect_ratio=None, image_sha256=None, image_source="x", backend="api",
                base_url=provider.url, cost=0.5,
            )  # fmt: skip
            pid = f"{index + 1:032x}"
            provider.tasks[pid] = {"input": {}, "created_at": "2026-11-25T10:00:00Z"}
            journal.accepted(key, Prediction(pid, "runwayml/gen4-turbo", Status.PROCESSING))
        provider.finish()
        results: list[list[wavenb.Resumed]] = []

        def resume() -> None:
            results.append(wavenb.resume(CANARY_KEY, provider.url))

        threads = [threading.Thread(target=resume) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        downloads = provider.server.seen("GET", ".mp4")
        assert len(downloads) == 3, [d.path for d in downloads]
        paths = {item.video.path for batch in results for item in batch if item.video}
        assert len(paths) == 3 and all(p.read_bytes() == MP4 for p in paths)
        assert all(not row.needs_download for row in journal.rows())


async def test_completed_without_outputs_is_an_end_not_a_resume_loop(tmp_path: Path) -> None:
    with Provider() as provider:
        provider.override = lambda s: (
            Reply.json(envelope(prediction_data(s.path.split("/")[-2], "completed", outputs=[])))
            if s.path.endswith("/result") else None
        )
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            with pytest.raises(wavenb.PredictionFailed, match="without an output"):
                await client.generate(png_bytes(), PROMPT)
            [row] = client.journal.rows()
            assert row.status == "failed" and not row.resumable
            assert await client.resume() == []


async def test_a_task_the_provider_forgot_while_waited_for_is_recorded_gone(tmp_path: Path) -> None:
    """A 404 while waiting: the journal and every view say ``gone`` (not ``processing``)."""
    seen: list[str] = []
    with Provider(instant=False) as provider:
        async with wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path) as client:
            prediction = await client.submit(png_bytes(), PROMPT)
            provider.tasks.pop(prediction.id)  # expired, or deleted from the web console
            with pytest.raises(wavenb.NotFoundError):
                await client.wait(prediction, on_update=lambda u: seen.append(u.phase.value))
            [row] = client.journal.rows()
            assert client.journal.resumable() == []
    assert (row.phase.value, row.status) == ("gone", "deleted") and seen[-1] == "gone"
