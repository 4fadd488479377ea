"""The Studio widget, headless: its controls are driven as a user would, its tasks awaited."""

from __future__ import annotations

import asyncio
import html
import io
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import wavenb
from tests.conftest import API, CANARY_KEY, MP4, PID, png_bytes, prediction, widget_states
from wavenb import AsyncClient, InputError, Status, SubmissionUncertain
from wavenb.core.models import Prediction, Video
from wavenb.studio.html import video_caption, word_diff
from wavenb.studio.image import UPLOAD_LIMIT, check_image_url, closest_ratio
from wavenb.studio.runs import CANCELLED, HistoryRow
from wavenb.studio.widget import Studio

CDN = "https://cdn.example.net"
X = "\u00d7"
"""The multiplication sign in sizes such as 1280x720."""
LIMIT = 30.0
"""Seconds any test waits for the Studio's tasks; they take about one."""


# -- helpers --------------------------------------------------------------------------------


def upload(studio: Studio, data: bytes, name: str = "cat.png", kind: str = "image/png") -> None:
    """Do what the browser does when a file is picked."""
    studio.ui.upload.value = (
        {
            "name": name,
            "type": kind,
            "size": len(data),
            "content": memoryview(data),
            "last_modified": datetime.now(UTC),
        },
    )


async def ready(studio: Studio, prompt: str = "Camera slowly zooms in") -> Studio:
    """An image and a prompt in place, image checked."""
    upload(studio, png_bytes((320, 180)))
    studio.ui.prompt.value = prompt
    await studio.wait_idle(LIMIT)
    return studio


def text(html_value: str) -> str:
    """What a person reads in an HTML widget."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html_value))).strip()


def flat(value: Any) -> Iterator[bytes]:
    if isinstance(value, dict):
        for item in value.values():
            yield from flat(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from flat(item)
    elif isinstance(value, bytes | bytearray | memoryview):
        yield bytes(value)
    else:
        yield str(value).encode()


class FakeAPI:
    """The real API's shape, scripted: each task stays ``processing`` until ``finish()``.

    The first submit is task ``PID``; later ones get ids of their own (a real server never
    gives two submissions one id, and wavenb refuses to trust one that does).
    """

    def __init__(self) -> None:
        self.polled = asyncio.Event()
        self.done = False
        self.submits = 0

    def finish(self) -> None:
        self.done = True

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/media/upload/binary"):
            return httpx.Response(
                200,
                json={"code": 200, "message": "success", "data": {"download_url": f"{CDN}/i.png"}},
            )
        if path.endswith("/runwayml/gen4-turbo"):
            self.submits += 1
            pid = PID if self.submits == 1 else f"{self.submits:032x}"
            return httpx.Response(200, json=prediction("created", id=pid))
        if path.endswith("/result"):
            pid = path.split("/")[-2]
            self.polled.set()
            if not self.done:
                await asyncio.sleep(0)  # let the test run between checks
                return httpx.Response(200, json=prediction("processing", id=pid))
            return httpx.Response(
                200,
                json=prediction("completed", id=pid, outputs=[f"{CDN}/predictions/{pid}/1.mp4"]),
            )
        if path.endswith("/1.mp4"):
            return httpx.Response(200, content=MP4)
        return httpx.Response(404, json={"code": 404, "message": "no route", "data": None})


def api_client(handler: Any, tmp_path: Path) -> AsyncClient:
    return AsyncClient(
        CANARY_KEY, API, transport=httpx.MockTransport(handler), output_dir=tmp_path / "out"
    )


def refuse_key(request: httpx.Request) -> httpx.Response:
    return httpx.Response(401, json={"code": 401, "message": "Invalid API key", "data": None})


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def studio(sandbox_client: AsyncClient, tmp_path: Path) -> Studio:
    return Studio(client=sandbox_client, save_dir=tmp_path / "saved")


# -- image ----------------------------------------------------------------------------------


async def test_generate_is_disabled_until_image_and_prompt_are_valid(studio: Studio) -> None:
    assert studio.ui.generate.disabled
    assert text(studio.ui.generate_hint.value) == "add an image"
    upload(studio, png_bytes((320, 180)))
    await studio.wait_idle(LIMIT)
    assert studio.ui.generate.disabled
    assert text(studio.ui.generate_hint.value) == "write a prompt"
    studio.ui.prompt.value = "x" * 1001
    assert studio.ui.generate.disabled
    assert "at most 1000" in studio.ui.generate_hint.value
    studio.ui.prompt.value = "Camera slowly zooms in"
    assert not studio.ui.generate.disabled


async def test_upload_shows_a_preview_with_size_and_closest_ratio(studio: Studio) -> None:
    upload(studio, png_bytes((1200, 800)))
    await studio.wait_idle(LIMIT)
    assert studio.ui.preview.value[:2] == b"\xff\xd8"  # a JPEG thumbnail
    assert studio.ui.preview.layout.display is None
    info = text(studio.ui.image_info.value)
    assert "cat.png" in info
    assert f"1200{X}800 px · 3:2 · closest ratio 4:3 (1104{X}832)" in info


async def test_a_file_that_is_not_an_image_is_refused_under_the_picker(studio: Studio) -> None:
    upload(studio, b"%PDF-1.7 not an image", name="notes.pdf", kind="application/pdf")
    await studio.wait_idle(LIMIT)
    assert "not an image" in text(studio.ui.image_message.value)
    assert studio.image is None
    assert studio.ui.generate.disabled


async def test_a_file_over_the_transport_limit_is_refused_with_the_way_out(studio: Studio) -> None:
    upload(studio, bytes(UPLOAD_LIMIT + 1), name="huge.jpg")
    await studio.wait_idle(LIMIT)
    message = text(studio.ui.image_message.value)
    assert "huge.jpg is 10.0 MB; the picker takes files up to 10 MB" in message
    assert "Studio(image='path/to/huge.jpg')" in message


async def test_big_images_are_downscaled_and_the_note_is_shown(studio: Studio) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 2500), "teal").save(buffer, format="JPEG", quality=30)
    upload(studio, buffer.getvalue(), name="wide.jpg", kind="image/jpeg")
    await studio.wait_idle(LIMIT)
    assert "downscaled 5000x2500 to 4096x2048 before upload" in text(studio.ui.image_info.value)
    assert studio.image is not None
    assert (studio.image.width, studio.image.height) == (4096, 2048)


@pytest.mark.parametrize("kind", ["path", "bytes", "pil"])
async def test_image_argument_prefills_the_studio(
    kind: str, portrait: Path, sandbox_client: AsyncClient
) -> None:
    image: Any = {
        "path": str(portrait),
        "bytes": portrait.read_bytes(),  # noqa: ASYNC240  (a small file, before any task)
        "pil": Image.open(portrait),
    }[kind]
    studio = Studio(image=image, client=sandbox_client)
    await studio.wait_idle(LIMIT)
    assert studio.image is not None
    assert studio.ui.preview.value
    with Image.open(portrait) as original:
        assert (studio.image.width, studio.image.height) == original.size


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8888/cat.png", "private or local address"),
        ("http://localhost/cat.png", "private or local address"),
        ("http://192.168.1.20/cat.png", "private or local address"),
        ("http://[::1]/cat.png", "private or local address"),
        ("file:///etc/passwd", "only http(s) URLs"),
    ],
)
async def test_url_field_refuses_local_addresses(url: str, reason: str, studio: Studio) -> None:
    studio.ui.url.value = url
    await studio.wait_idle(LIMIT)
    assert reason in text(studio.ui.image_message.value)
    assert studio.image is None


async def test_a_url_argument_fills_the_url_field_and_is_checked(
    sandbox_client: AsyncClient,
) -> None:
    studio = Studio(image="http://127.0.0.1/cat.png", client=sandbox_client)
    await studio.wait_idle(LIMIT)
    assert studio.ui.url.value == "http://127.0.0.1/cat.png"
    assert "private or local address" in text(studio.ui.image_message.value)


def test_without_a_running_loop_the_studio_says_so_instead_of_raising(
    portrait: Path, tmp_path: Path
) -> None:
    studio = Studio(image=portrait, client=api_client(refuse_key, tmp_path))
    assert "needs a running event loop" in text(studio.ui.image_message.value)


async def test_url_check_accepts_a_public_image() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=png_bytes((640, 360)), headers={"content-type": "image/png"}
        )

    url = "https://93.184.215.14/cat.png"  # a public address: no DNS needed
    source = await check_image_url(url, transport=httpx.MockTransport(serve))
    assert source.send == url  # the URL itself is sent; nothing is uploaded
    assert (source.width, source.height, source.closest_ratio) == (640, 360, "16:9")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(404), "the URL answers HTTP 404"),
        (
            httpx.Response(200, text="<html>", headers={"content-type": "text/html"}),
            "text/html, not an image",
        ),
        (httpx.Response(302, headers={"location": "http://10.0.0.5/x.png"}), "private or local"),
        (
            httpx.Response(200, content=b"garbage", headers={"content-type": "image/png"}),
            "not an image",
        ),
    ],
)
async def test_url_check_says_why_a_url_is_refused(answer: httpx.Response, reason: str) -> None:
    transport = httpx.MockTransport(lambda request: answer)
    with pytest.raises(InputError, match=re.escape(reason)):
        await check_image_url("https://93.184.215.14/cat.png", transport=transport)


def test_closest_ratio_picks_the_nearest_shape() -> None:
    assert closest_ratio(1920, 1080) == "16:9"
    assert closest_ratio(1080, 1920) == "9:16"
    assert closest_ratio(1000, 1040) == "1:1"
    assert closest_ratio(800, 1000) == "3:4"


# -- prompt and ratio -----------------------------------------------------------------------


async def test_prompt_has_a_live_character_count(studio: Studio) -> None:
    studio.ui.prompt.value = "Static shot"
    assert text(studio.ui.char_count.value) == "11 / 1000"


async def test_examples_fill_the_prompt(studio: Studio) -> None:
    labels = [label for label, _ in studio.ui.examples.options][1:]
    assert labels == [
        "The model walks forward slowly, camera follows",
        "Gentle camera pan to the right, revealing more of the scene",
        "Camera slowly zooms in on the subject",
        "Slow orbit around the product, soft studio light",
        "Static shot, the cat blinks and looks around",
    ]
    studio.ui.examples.value = labels[2]
    assert studio.prompt == "Camera slowly zooms in on the subject"
    assert studio.ui.examples.value == ""  # ready to pick again


async def test_enhance_replaces_the_prompt_shows_the_diff_and_undo_restores(
    studio: Studio,
) -> None:
    studio.ui.prompt.value = "the cat blinks"
    studio.ui.enhance.click()
    await studio.wait_idle(LIMIT)
    assert studio.prompt.startswith("the cat blinks. Camera:")
    assert "<ins>" in studio.ui.diff.value
    assert studio.ui.undo.layout.display is None
    studio.ui.undo.click()
    assert studio.prompt == "the cat blinks"
    assert studio.ui.diff.value == ""
    assert studio.ui.undo.layout.display == "none"


def test_word_diff_highlights_insertions_and_strikes_deletions() -> None:
    assert word_diff("a red cat", "a small blue cat") == (
        "<small>a <del>red</del> <ins>small blue</ins> cat</small>"
    )
    assert "&lt;b&gt;" in word_diff("x", "<b>")


async def test_ratio_dropdown_matches_source_by_default_and_names_each_use(
    studio: Studio,
) -> None:
    assert studio.aspect_ratio is None
    assert [label for label, _ in studio.ui.ratio.options] == [
        "match source",
        f"16:9 YouTube · 1280{X}720",
        f"9:16 Reels/TikTok/Shorts · 720{X}1280",
        f"1:1 Instagram feed · 960{X}960",
        f"4:3 classic · 1104{X}832",
        f"3:4 portrait feed · 832{X}1104",
    ]
    studio.ui.ratio.value = "9:16"
    assert studio.aspect_ratio == "9:16"


# -- generating -----------------------------------------------------------------------------


async def test_generate_plays_the_video_inline(studio: Studio) -> None:
    await ready(studio)
    studio.ui.ratio.value = "16:9"
    studio.ui.generate.click()
    assert studio.running == 1
    await studio.wait_idle(LIMIT)
    assert studio.running == 0
    assert text(studio.ui.status.value).startswith("completed")
    player = studio.ui.player
    assert player.value[4:8] == b"ftyp"  # the MP4's bytes, not a URL
    assert (player.format, player.loop, player.autoplay, player.controls) == (
        "mp4",
        True,
        True,
        True,
    )
    assert player.layout.display is None
    video = studio.last
    assert video is not None
    assert studio.results == [video]
    assert video.id in studio.ui.caption.value
    assert "inference" in text(studio.ui.caption.value)
    assert studio.ui.error.value == ""


async def test_history_lists_the_run_with_its_details(studio: Studio) -> None:
    await ready(studio, "Gentle camera pan to the right")
    studio.ui.ratio.value = "1:1"
    await studio.generate()
    [run] = studio.history
    assert (run.status, run.aspect_ratio, run.prompt) == (
        "completed",
        "1:1",
        "Gentle camera pan to the right",
    )
    [row] = studio.ui.history.children
    line = text(row.summary.value)
    assert "completed" in line
    assert "1:1" in line
    assert run.prediction_id in line
    assert "Gentle camera pan to the right" in line
    assert row.thumbnail.value[:2] == b"\xff\xd8"


async def test_download_saves_the_mp4_where_the_widget_says(studio: Studio, tmp_path: Path) -> None:
    await ready(studio)
    video = await studio.generate()
    assert video is not None
    studio.ui.download.click()
    saved = tmp_path / "saved" / f"{video.id}.mp4"
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert str(saved) in text(studio.ui.saved.value)


async def test_a_failed_prediction_reads_as_one_sentence_with_raw_details(studio: Studio) -> None:
    await ready(studio, "a gore scene")
    assert await studio.generate() is None
    box = studio.ui.error.value
    assert text(box).startswith(
        "⚠ The content filter refused this prompt: Content policy violation"
    )
    assert "<details><summary>details</summary>" in box
    assert '"status": "failed"' in text(box)
    assert studio.history[0].status == "failed"
    assert isinstance(studio.history[0].error, wavenb.PredictionFailed)
    assert studio.ui.player.layout.display == "none"


async def test_a_401_reads_as_one_sentence_with_the_raw_json(tmp_path: Path) -> None:
    studio = await ready(Studio(client=api_client(refuse_key, tmp_path)))
    await studio.generate()
    box = studio.ui.error.value
    assert text(box).startswith("⚠ Authentication failed (HTTP 401): Invalid API key.")
    assert '"message": "Invalid API key"' in text(box)
    assert "Traceback" not in box
    assert studio.history[0].status == "failed"


async def test_errors_in_callbacks_show_in_the_widget(studio: Studio, tmp_path: Path) -> None:
    await ready(studio)
    await studio.generate()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    studio.save_dir = str(blocker)
    studio.ui.download.click()  # saving into a file cannot work
    box = studio.ui.error.value
    assert text(box).startswith("⚠ Unexpected error")
    assert "<details>" in box  # the traceback is tucked away, not spilled


async def test_sandbox_badge_and_hint_show_on_the_sandbox_only(tmp_path: Path) -> None:
    sandbox = Studio(client=AsyncClient())
    assert "SANDBOX" in sandbox.ui.header.value
    assert "Set WAVESPEED_API_KEY to use the real API ($0.50 per video)." in sandbox.ui.header.value
    api = Studio(client=api_client(refuse_key, tmp_path))
    assert "SANDBOX" not in api.ui.header.value


async def test_the_badge_appears_once_a_server_says_it_is_the_sandbox(studio: Studio) -> None:
    assert "SANDBOX" not in studio.ui.header.value  # the real API's URL: not known yet
    await ready(studio)
    await studio.generate()
    assert "SANDBOX" in studio.ui.header.value
    assert "SANDBOX" in studio.ui.caption.value


async def test_generate_shows_the_price(tmp_path: Path) -> None:
    assert (
        Studio(client=api_client(refuse_key, tmp_path)).ui.generate.description
        == "Generate · $0.50"
    )
    assert Studio(client=AsyncClient()).ui.generate.description == "Generate · free"


async def test_cancel_keeps_the_id_in_history_and_fetch_again_finishes(tmp_path: Path) -> None:
    api = FakeAPI()
    studio = await ready(Studio(client=api_client(api, tmp_path)))
    task = studio.generate()
    await asyncio.wait_for(api.polled.wait(), LIMIT)
    assert len(studio.ui.running.children) == 1  # a live progress row
    studio.ui.running.children[0].cancel_button.click()
    await studio.wait_idle(LIMIT)
    assert task.cancelled()
    [run] = studio.history
    assert (run.status, run.prediction_id) == (CANCELLED, PID)
    assert CANCELLED in studio.ui.history.children[0].summary.value
    assert studio.ui.running.children == ()

    api.finish()  # the provider went on and finished it
    assert (await studio.client.wait(PID)).status is Status.COMPLETED
    fetch = studio.ui.history.children[0].fetch_button
    assert fetch.layout.display is None
    fetch.click()
    await studio.wait_idle(LIMIT)
    assert run.status == "completed", repr(run.error)
    assert studio.ui.player.value == MP4


async def test_cancel_before_sending_records_that_nothing_was_sent(studio: Studio) -> None:
    await ready(studio)
    task = studio.generate()
    studio.cancel()
    await studio.wait_idle(LIMIT)
    assert task.cancelled()
    [run] = studio.history
    assert (run.status, run.prediction_id) == ("cancelled (before the provider answered)", None)
    assert not studio.ui.generate.disabled  # the same inputs may go again


async def test_two_generations_run_at_once(studio: Studio) -> None:
    await ready(studio, "Camera slowly zooms in")
    first = studio.generate()
    studio.ui.prompt.value = "Gentle camera pan to the right"
    assert not studio.ui.generate.disabled  # another prompt can go at once
    studio.ui.generate.click()
    assert studio.running == 2
    await studio.wait_idle(LIMIT)
    assert {run.status for run in studio.history} == {"completed"}
    assert len(studio.results) == 2
    assert len({video.id for video in studio.results}) == 2
    assert first.result() is studio.results[0] or first.result() is studio.results[1]


async def test_the_same_inputs_again_reuse_the_finished_video_for_free(
    studio: Studio, sandbox_app: Any
) -> None:
    await ready(studio)
    studio.ui.generate.click()
    await studio.wait_idle(LIMIT)
    studio.ui.generate.click()
    await studio.wait_idle(LIMIT)
    first, second = studio.results
    assert sandbox_app.state.sandbox.accepted == 1
    assert second.reused and second.id == first.id
    assert "reused from history · free" in text(studio.ui.caption.value)


async def test_the_same_inputs_are_not_sent_twice_by_a_double_click(studio: Studio) -> None:
    await ready(studio)
    studio.ui.generate.click()
    assert studio.ui.generate.disabled
    assert text(studio.ui.generate_hint.value) == "sending…"
    await studio.wait_idle(LIMIT)
    assert not studio.ui.generate.disabled


async def test_show_plays_an_earlier_run_again(studio: Studio) -> None:
    await ready(studio, "Camera slowly zooms in")
    first = await studio.generate()
    studio.ui.prompt.value = "Static shot"
    second = await studio.generate()
    assert first is not None
    assert second is not None
    assert studio.ui.player.value == second.read_bytes()
    older = studio.ui.history.children[-1]  # newest first
    older.show_button.click()
    assert studio.ui.player.value == first.read_bytes()
    assert "Camera slowly zooms in" in studio.ui.status.value


async def test_the_api_key_never_reaches_widget_state(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    studio.ui.prompt.value = "a gore scene"
    await studio.generate()
    canary = CANARY_KEY.encode()
    states = list(widget_states(studio))
    assert len(states) > 40  # every child, layout and style was visited
    for state in states:
        assert not any(canary in chunk for chunk in flat(state))


async def test_repr_is_short(studio: Studio) -> None:
    assert repr(studio) == "<Studio backend='api' runs=0 running=0>"


def test_studio_is_exported_lazily() -> None:
    assert wavenb.Studio is Studio


# -- journal: resume, unresolved, reuse, spending ---------------------------------------------


async def test_resume_finishes_earlier_runs_without_submitting_again(
    sandbox_client: AsyncClient, sandbox_app: Any, tmp_path: Path
) -> None:
    earlier = await sandbox_client.submit(png_bytes((320, 180)), "Slow orbit", "16:9")
    accepted = sandbox_app.state.sandbox.accepted
    studio = Studio(client=sandbox_client, save_dir=tmp_path / "saved")
    assert text(studio.ui.resume_line.value) == (
        "1 unfinished run from earlier (kernel restart, cancelled wait) \u2014"
    )
    assert studio.ui.resume.layout.display is None
    assert studio.ui.unresolved.value == ""

    studio.ui.resume.click()
    await studio.wait_idle(LIMIT)
    [run] = studio.history
    assert (run.status, run.prediction_id, run.prompt, run.aspect_ratio) == (
        "completed",
        earlier.id,
        "Slow orbit",
        "16:9",
    )
    assert run.video is not None
    assert studio.results == [run.video]
    assert studio.ui.player.value[4:8] == b"ftyp"
    assert sandbox_app.state.sandbox.accepted == accepted  # nothing was submitted again
    assert studio.spent == 0
    assert studio.ui.resume.layout.display == "none"  # nothing left to resume
    assert studio.ui.resume_line.layout.display == "none"


async def test_a_fresh_journal_offers_nothing(studio: Studio) -> None:
    assert studio.ui.resume.layout.display == "none"
    assert studio.ui.unresolved.value == ""


async def test_submissions_without_an_answer_are_named_never_resent(tmp_path: Path) -> None:
    def no_answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/runwayml/gen4-turbo"):
            raise httpx.ReadTimeout("no answer", request=request)
        data = {"download_url": f"{CDN}/i.png"}  # the image upload
        return httpx.Response(200, json={"code": 200, "message": "success", "data": data})

    client = api_client(no_answer, tmp_path)
    with pytest.raises(SubmissionUncertain):
        await client.submit(png_bytes(), "Camera slowly zooms in")
    studio = Studio(client=client)
    warning = studio.ui.unresolved.value
    assert text(warning).startswith(
        "⚠ 1 submission got no answer and may have been charged; it is never resent"
    )
    assert "<code>wavenb.unresolved()</code>" in warning
    assert studio.ui.resume.layout.display == "none"  # not resumable: there is no task id


def test_a_reused_video_says_so_in_its_caption() -> None:
    done = Prediction(PID, "runwayml/gen4-turbo", Status.COMPLETED)
    assert "reused from history · free" in text(video_caption(Video("", None, done, reused=True)))
    assert "reused" not in video_caption(Video("", None, done))


async def test_the_session_total_counts_submitted_runs_at_their_price(tmp_path: Path) -> None:
    api = FakeAPI()
    api.finish()
    studio = await ready(Studio(client=api_client(api, tmp_path)))
    assert text(studio.ui.spent.value) == "spent this session: $0.00"
    await studio.generate()
    studio.prompt = "Another prompt"
    await studio.generate()
    assert studio.spent == pytest.approx(1.0)
    assert text(studio.ui.spent.value) == "spent this session: $1.00"


async def test_the_session_total_is_free_on_the_sandbox(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    assert text(studio.ui.spent.value) == "spent this session: free (sandbox)"


async def test_a_finished_run_draws_its_timeline_only_when_opened(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    [row] = studio.ui.history.children
    assert isinstance(row, HistoryRow)
    toggle = row.timeline
    assert toggle.layout.display is None
    assert toggle.image.value == b""  # lazy: nothing drawn yet
    toggle.button.value = True
    assert toggle.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert toggle.image.layout.display is None
    toggle.button.value = False
    assert toggle.image.layout.display == "none"

    result = studio.ui.timeline
    assert result.image.value == b""
    result.button.value = True
    assert result.image.value[:4] == b"\x89PNG"


async def test_the_timeline_says_how_to_get_matplotlib_when_it_is_missing(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ready(studio)
    await studio.generate()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    studio.ui.timeline.button.value = True
    assert "pip install 'wavenb[plot]'" in text(studio.ui.timeline.note.value)
    assert studio.ui.timeline.image.layout.display == "none"


async def test_runs_without_a_video_have_no_timeline_toggle(studio: Studio) -> None:
    await ready(studio, "a gore scene")
    await studio.generate()
    assert studio.ui.history.children[0].timeline.layout.display == "none"
    assert studio.ui.timeline.layout.display == "none"
