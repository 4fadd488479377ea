"""The Studio widget, headless: its controls are driven as a user would, its tasks awaited."""

from __future__ import annotations

import ast
import asyncio
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import wavenb
from tests.conftest import API, CANARY_KEY, MP4, PID, png_bytes, prediction, widget_states
from tests.frontend import Page, recorded_comms
from wavenb import AsyncClient, InputError, Phase, Status, SubmissionUncertain
from wavenb.core.models import Prediction, Video
from wavenb.studio.image import UPLOAD_LIMIT, check_image_url, closest_ratio
from wavenb.studio.widget import Studio
from wavenb.studio.words import generate_code, video_caption, word_diff

pytestmark = pytest.mark.usefixtures("recorded_comms")
__all__ = ["recorded_comms"]

CDN = "https://cdn.example.net"
X = "\u00d7"
"""The multiplication sign in sizes such as 1280x720."""
LIMIT = 30.0
"""Seconds any test waits for the Studio's tasks; they take about one."""


# -- helpers --------------------------------------------------------------------------------


def upload(studio: Studio, data: bytes, name: str = "cat.png") -> None:
    """Do what the page does when a file is dropped, pasted or picked."""
    Page(studio).click("image", [data], name=name, size=len(data))


async def ready(studio: Studio, prompt: str = "Camera slowly zooms in") -> Studio:
    """An image and a prompt in place, image checked."""
    upload(studio, png_bytes((320, 180)))
    Page(studio).type(prompt_text=prompt)
    await studio.wait_idle(LIMIT)
    return studio


def shown(studio: Studio) -> dict[str, Any]:
    """The run state the result area draws."""
    return next(run for run in studio.runs if run["n"] == studio.shown)


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
    assert not studio.generate_ready
    assert studio.generate_hint == "add an image"
    upload(studio, png_bytes((320, 180)))
    await studio.wait_idle(LIMIT)
    assert not studio.generate_ready
    assert studio.generate_hint == "write a prompt"
    Page(studio).type(prompt_text="x" * 1001)
    assert not studio.generate_ready
    assert "at most 1000" in studio.generate_hint
    Page(studio).type(prompt_text="Camera slowly zooms in")
    assert studio.generate_ready
    assert studio.generate_hint == ""


async def test_a_dropped_image_shows_a_preview_with_size_and_closest_ratio(studio: Studio) -> None:
    upload(studio, png_bytes((1200, 800)))
    await studio.wait_idle(LIMIT)
    assert studio.preview[:2] == b"\xff\xd8"  # a JPEG thumbnail
    assert studio.image_info["label"] == "cat.png"
    assert studio.image_info["summary"] == f"1200{X}800 px · 3:2 · closest ratio 4:3 (1104{X}832)"
    assert studio.image_message == {}


async def test_a_file_that_is_not_an_image_is_refused_under_the_picker(studio: Studio) -> None:
    upload(studio, b"%PDF-1.7 not an image", name="notes.pdf")
    await studio.wait_idle(LIMIT)
    assert "not an image" in studio.image_message["text"]
    assert studio.image_message["level"] == "error"
    assert studio.image is None
    assert not studio.generate_ready


async def test_a_file_over_the_transport_limit_is_refused_with_the_way_out(studio: Studio) -> None:
    upload(studio, bytes(UPLOAD_LIMIT + 1), name="huge.jpg")
    await studio.wait_idle(LIMIT)
    message = studio.image_message["text"]
    assert "huge.jpg is 10.0 MB; the picker takes files up to 10 MB" in message
    assert "Studio(image='path/to/huge.jpg')" in message


async def test_big_images_are_downscaled_and_the_note_is_shown(studio: Studio) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 2500), "teal").save(buffer, format="JPEG", quality=30)
    upload(studio, buffer.getvalue(), name="wide.jpg")
    await studio.wait_idle(LIMIT)
    assert "downscaled 5000x2500 to 4096x2048 before upload" in studio.image_info["summary"]
    assert studio.image is not None
    assert (studio.image.width, studio.image.height) == (4096, 2048)


@pytest.mark.parametrize("kind", ["path", "bytes", "pil"])
async def test_image_argument_prefills_the_studio(
    kind: str, portrait: Path, sandbox_client: AsyncClient
) -> None:
    image: Any = {
        "path": str(portrait),
        "bytes": portrait.read_bytes(),
        "pil": Image.open(portrait),
    }[kind]
    studio = Studio(image=image, client=sandbox_client)
    await studio.wait_idle(LIMIT)
    assert studio.image is not None
    assert studio.preview
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
    Page(studio).click("url", url=url)
    await studio.wait_idle(LIMIT)
    assert reason in studio.image_message.get("text", "") + studio.error.get("sentence", "")
    assert studio.image is None


async def test_a_url_argument_is_checked(sandbox_client: AsyncClient) -> None:
    studio = Studio(image="http://127.0.0.1/cat.png", client=sandbox_client)
    await studio.wait_idle(LIMIT)
    assert "private or local address" in studio.image_message["text"]


def test_without_a_running_loop_the_studio_says_so_instead_of_raising(
    portrait: Path, tmp_path: Path
) -> None:
    studio = Studio(image=portrait, client=api_client(refuse_key, tmp_path))
    assert "needs a running event loop" in studio.image_message["text"]


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
    Page(studio).type(prompt_text="Static shot")
    assert studio.char_count == "11 / 1000"


async def test_examples_and_ratios_are_offered(studio: Studio) -> None:
    assert studio.examples[2] == "Camera slowly zooms in on the subject"
    assert [label for label, _ in studio.ratio_choices] == [
        "match source",
        f"16:9 YouTube · 1280{X}720",
        f"9:16 Reels/TikTok/Shorts · 720{X}1280",
        f"1:1 Instagram feed · 960{X}960",
        f"4:3 classic · 1104{X}832",
        f"3:4 portrait feed · 832{X}1104",
    ]
    assert studio.aspect_ratio is None
    Page(studio).type(ratio="9:16")
    assert studio.aspect_ratio == "9:16"


async def test_enhance_replaces_the_prompt_shows_the_diff_and_undo_restores(
    studio: Studio,
) -> None:
    page = Page(studio)
    page.type(prompt_text="the cat blinks")
    page.click("enhance")
    await studio.wait_idle(LIMIT)
    assert studio.prompt.startswith("the cat blinks. Camera:")
    assert ["ins", "Camera:"] in [list(part) for part in studio.diff] or any(
        kind == "ins" for kind, _ in studio.diff
    )
    assert studio.can_undo
    page.click("undo")
    assert studio.prompt == "the cat blinks"
    assert studio.diff == []
    assert not studio.can_undo


def test_word_diff_marks_insertions_and_deletions() -> None:
    assert word_diff("a red cat", "a small blue cat") == [
        ("same", "a"), ("del", "red"), ("ins", "small blue"), ("same", "cat"),
    ]  # fmt: skip


async def test_an_enhance_error_is_shown_and_cleared_when_the_prompt_is_fixed(
    tmp_path: Path,
) -> None:
    studio = Studio(client=api_client(refuse_key, tmp_path))
    page = Page(studio)
    page.type(prompt_text="the cat blinks")
    page.click("enhance")
    await studio.wait_idle(LIMIT)
    assert studio.error["sentence"].startswith("Authentication failed (HTTP 401)")
    page.type(prompt_text="the cat blinks slowly")
    assert studio.error == {}


# -- generating -----------------------------------------------------------------------------


async def test_generate_shows_the_video_and_sends_its_bytes_on_request(studio: Studio) -> None:
    await ready(studio)
    page = Page(studio)
    page.type(ratio="16:9")
    page.click("generate")
    assert studio.running == 1
    await studio.wait_idle(LIMIT)
    assert studio.running == 0
    run = shown(studio)
    assert (run["phase"], run["video"], run["ratio"]) == ("downloaded", True, "16:9")
    video = studio.last
    assert video is not None
    assert studio.results == [video]
    assert run["caption"].startswith(f"id {video.id} · inference")
    assert studio.error == {}
    assert page.replies("video") == []  # bytes go only when the page asks
    page.click("video", n=run["n"])
    [(reply, [data])] = page.replies("video")
    assert reply["n"] == run["n"]
    assert data == video.read_bytes()
    assert data[4:8] == b"ftyp"


async def test_the_gallery_lists_runs_with_short_ids_and_poster_frames(studio: Studio) -> None:
    await ready(studio, "Gentle camera pan to the right")
    studio.aspect_ratio = "1:1"
    await studio.generate()
    [run] = studio.history
    [card] = studio.runs
    assert (card["phase"], card["ratio"], card["prompt"]) == (
        "downloaded", "1:1", "Gentle camera pan to the right",
    )  # fmt: skip
    assert card["short"] == run.prediction_id[:8] and card["id"] == run.prediction_id
    page = Page(studio)
    page.click("poster", n=1)
    await studio.wait_idle(LIMIT)
    [(reply, [jpeg])] = page.replies("poster")
    assert jpeg[:2] == b"\xff\xd8"
    assert reply["frame"] is True  # the video's first frame (PyAV), not the input image
    assert jpeg != studio.history[0].image.preview


async def test_download_sends_the_mp4_to_the_browser_and_save_writes_on_the_kernel(
    studio: Studio, tmp_path: Path
) -> None:
    await ready(studio)
    video = await studio.generate()
    assert video is not None
    page = Page(studio)
    page.click("download", n=1)
    [(reply, [data])] = page.replies("download")
    assert reply["name"] == f"{video.id}.mp4"
    assert data == video.read_bytes()
    page.click("save", n=1)
    saved = tmp_path / "saved" / f"{video.id}.mp4"
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert str(saved) in studio.saved_text


async def test_copy_as_code_is_the_exact_generate_call(studio: Studio, portrait: Path) -> None:
    studio.set_image(str(portrait))
    studio.prompt = "Camera slowly zooms in"
    studio.aspect_ratio = "9:16"
    await studio.wait_idle(LIMIT)
    await studio.generate()
    code = studio.runs[0]["code"]
    assert code == generate_code(str(portrait), "Camera slowly zooms in", "9:16")
    call = ast.parse(code).body[1].value  # video = wavenb.generate(...)
    assert [ast.literal_eval(arg) for arg in call.args] == [str(portrait), "Camera slowly zooms in"]
    assert ast.literal_eval(call.keywords[0].value) == "9:16"


async def test_a_failed_prediction_reads_as_one_sentence_with_raw_details(studio: Studio) -> None:
    await ready(studio, "a gore scene")
    assert await studio.generate() is None
    assert studio.error["sentence"].startswith(
        "The content filter refused this prompt: Content policy violation"
    )
    assert '"status": "failed"' in studio.error["details"]
    assert studio.history[0].phase is Phase.FAILED
    assert isinstance(studio.history[0].error, wavenb.PredictionFailed)
    assert shown(studio)["video"] is False


async def test_a_401_reads_as_one_sentence_with_the_raw_json(tmp_path: Path) -> None:
    studio = await ready(Studio(client=api_client(refuse_key, tmp_path)))
    await studio.generate()
    assert studio.error["sentence"].startswith("Authentication failed (HTTP 401): Invalid API key.")
    assert '"message": "Invalid API key"' in studio.error["details"]
    assert "Traceback" not in studio.error["details"]
    assert studio.history[0].phase is Phase.REFUSED


async def test_a_run_error_is_cleared_when_a_good_run_is_shown(studio: Studio) -> None:
    await ready(studio, "a gore scene")
    await studio.generate()
    assert studio.error
    Page(studio).type(prompt_text="Camera slowly zooms in")
    assert studio.error == {}  # its cause (the prompt) changed


async def test_errors_in_actions_show_in_the_widget(studio: Studio, tmp_path: Path) -> None:
    await ready(studio)
    await studio.generate()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    page = Page(studio)
    page.type(save_dir=str(blocker))
    page.click("save", n=1)  # saving into a file cannot work
    assert studio.error["sentence"].startswith("Unexpected error")
    assert "Traceback" in studio.error["details"]  # tucked away in the disclosure
    page.click("no-such-action")
    assert "unknown action 'no-such-action'" in studio.error["sentence"]
    page.click("dismiss")
    assert studio.error == {}


async def test_sandbox_badge_and_hint_show_on_the_sandbox_only(tmp_path: Path) -> None:
    sandbox = Studio(client=AsyncClient())
    assert sandbox.sandbox
    assert sandbox.sandbox_hint == "Set WAVESPEED_API_KEY to use the real API ($0.50 per video)."
    api = Studio(client=api_client(refuse_key, tmp_path))
    assert not api.sandbox


async def test_a_served_sandbox_is_recognised_before_the_first_run(
    wavenb_sandbox_url: str, tmp_path: Path
) -> None:
    studio = Studio(client=AsyncClient("any-key", wavenb_sandbox_url, output_dir=tmp_path))
    # Not known yet at construction: no price is claimed, and Generate waits for the answer.
    assert studio.generate_label == "Generate · checking price…"
    assert "$" not in studio.generate_label and not studio.sandbox
    await ready(studio)  # the Studio asked the server what it is
    assert studio.sandbox
    assert studio.generate_label == "Generate · free"
    assert studio.generate_ready
    await studio.client.aclose()


async def test_generate_shows_the_price(tmp_path: Path) -> None:
    api = Studio(client=api_client(refuse_key, tmp_path))
    await api.wait_idle(LIMIT)  # the price is asked for first (the list price when refused)
    assert api.generate_label == "Generate · $0.50"
    assert Studio(client=AsyncClient()).generate_label == "Generate · free"


async def test_cancel_keeps_the_id_and_fetch_again_finishes(tmp_path: Path) -> None:
    api = FakeAPI()
    studio = await ready(Studio(client=api_client(api, tmp_path)))
    page = Page(studio)
    page.click("generate")
    task = studio.history[0].task
    await asyncio.wait_for(api.polled.wait(), LIMIT)
    assert studio.runs[0]["live"]
    page.click("cancel", n=1)
    assert studio.runs[0]["detail"] == "stopping…"  # feedback where it was clicked
    await studio.wait_idle(LIMIT)
    assert task is not None and task.cancelled()
    [run] = studio.history
    assert (run.phase, run.prediction_id) == (Phase.STOPPED, PID)
    assert "Fetch again" in studio.runs[0]["detail"]
    assert studio.runs[0]["fetchable"]

    api.finish()  # the provider went on and finished it
    assert (await studio.client.wait(PID)).status is Status.COMPLETED
    page.click("fetch", n=1)
    await studio.wait_idle(LIMIT)
    assert run.phase is Phase.DOWNLOADED, repr(run.error)
    page.click("video", n=1)
    assert page.replies("video")[-1][1] == [MP4]


async def test_cancel_before_sending_records_that_nothing_was_sent(studio: Studio) -> None:
    await ready(studio)
    task = studio.generate()
    studio.cancel()
    await studio.wait_idle(LIMIT)
    assert task.cancelled()
    [run] = studio.history
    assert (run.phase, run.prediction_id) == (Phase.REFUSED, None)
    assert run.detail == "cancelled before it was sent: nothing charged"
    assert studio.generate_ready  # the same inputs may go again


async def test_two_generations_run_at_once(studio: Studio) -> None:
    await ready(studio, "Camera slowly zooms in")
    first = studio.generate()
    Page(studio).type(prompt_text="Gentle camera pan to the right")
    assert studio.generate_ready  # another prompt can go at once
    Page(studio).click("generate")
    assert studio.running == 2
    await studio.wait_idle(LIMIT)
    assert {run.phase for run in studio.history} == {Phase.DOWNLOADED}
    assert len({video.id for video in studio.results}) == 2
    assert first.result() in studio.results


async def test_the_same_inputs_again_reuse_the_finished_video_for_free(
    studio: Studio, sandbox_app: Any
) -> None:
    await ready(studio)
    Page(studio).click("generate")
    await studio.wait_idle(LIMIT)
    Page(studio).click("generate")
    await studio.wait_idle(LIMIT)
    first, second = studio.results
    assert sandbox_app.state.sandbox.accepted == 1
    assert second.reused and second.id == first.id
    assert "reused from history · free" in shown(studio)["caption"]


async def test_a_double_click_sends_the_same_inputs_once(studio: Studio, sandbox_app: Any) -> None:
    await ready(studio)
    page = Page(studio)
    page.click("generate")
    assert not studio.generate_ready
    assert studio.generate_hint == "sending…"
    page.click("generate")  # the second click of a double click
    assert "add an image" not in studio.error.get("sentence", "")
    await studio.wait_idle(LIMIT)
    assert sandbox_app.state.sandbox.accepted == 1
    assert studio.generate_ready


async def test_show_puts_an_earlier_run_in_the_result_area(studio: Studio) -> None:
    await ready(studio, "Camera slowly zooms in")
    await studio.generate()
    studio.prompt = "Static shot"
    await studio.generate()
    assert studio.shown == 2
    Page(studio).click("show", n=1)
    assert studio.shown == 1
    assert shown(studio)["prompt"] == "Camera slowly zooms in"


async def test_the_api_key_never_reaches_widget_state_or_messages(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    studio.prompt = "a gore scene"
    await studio.generate()
    page = Page(studio)
    for action in ("video", "poster", "download", "timeline"):
        page.click(action, n=1)
    await studio.wait_idle(LIMIT)
    canary = CANARY_KEY.encode()
    states = list(widget_states(studio))
    assert len(states[0]) > 30  # the anywidget (and its layout): every trait was read
    for state in states:
        assert not any(canary in chunk for chunk in flat(state))
    assert len(studio.comm.published) > 10
    for data, buffers in studio.comm.published:
        assert not any(canary in chunk for chunk in flat([data, buffers]))


async def test_the_widget_state_is_small_and_holds_no_video(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    state = studio.get_state()
    assert not any(b"ftyp" in chunk for chunk in flat(state))
    assert (
        len(b"".join(flat({k: v for k, v in state.items() if k not in ("_esm", "_css")}))) < 60_000
    )


async def test_repr_is_short(tmp_path: Path) -> None:
    studio = Studio(client=api_client(refuse_key, tmp_path))
    assert repr(studio) == "<Studio backend='api' runs=0 running=0>"


def test_studio_is_exported_lazily() -> None:
    assert wavenb.Studio is Studio


def test_the_front_end_files_are_package_data() -> None:
    assert str(Studio._esm).startswith("//") and "export default" in str(Studio._esm)
    assert ".wnb-studio" in str(Studio._css)


# -- journal: resume, unresolved, reuse, spending ---------------------------------------------


async def test_resume_finishes_earlier_runs_without_submitting_again(
    sandbox_client: AsyncClient, sandbox_app: Any, tmp_path: Path
) -> None:
    earlier = await sandbox_client.submit(png_bytes((320, 180)), "Slow orbit", "16:9")
    accepted = sandbox_app.state.sandbox.accepted
    studio = Studio(client=sandbox_client, save_dir=tmp_path / "saved")
    assert studio.resume_text == "1 unfinished run from earlier (kernel restart, cancelled wait)"
    assert studio.warning == ""

    Page(studio).click("resume")
    await studio.wait_idle(LIMIT)
    [run] = studio.history
    assert (run.phase, run.prediction_id, run.prompt, run.aspect_ratio) == (
        Phase.DOWNLOADED, earlier.id, "Slow orbit", "16:9",
    )  # fmt: skip
    assert run.video is not None
    assert studio.results == [run.video]
    assert sandbox_app.state.sandbox.accepted == accepted  # nothing was submitted again
    assert studio.spent == 0
    assert studio.resume_text == ""  # nothing left to resume


async def test_a_fresh_journal_offers_nothing(studio: Studio) -> None:
    assert studio.resume_text == ""
    assert studio.warning == ""


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
    assert studio.warning.startswith(
        "1 submission got no answer and may have been charged; it is never resent"
    )
    assert "wavenb.unresolved()" in studio.warning
    assert studio.resume_text == ""  # not resumable: there is no task id


def test_a_reused_video_says_so_in_its_caption() -> None:
    done = Prediction(PID, "runwayml/gen4-turbo", Status.COMPLETED)
    assert "reused from history · free" in video_caption(Video("", None, done, reused=True))
    assert "reused" not in video_caption(Video("", None, done))


async def test_the_session_total_counts_submitted_runs_at_their_price(tmp_path: Path) -> None:
    api = FakeAPI()
    api.finish()
    studio = await ready(Studio(client=api_client(api, tmp_path)))
    assert studio.spent_text == "Spent this session: $0.00"
    await studio.generate()
    studio.prompt = "Another prompt"
    await studio.generate()
    assert studio.spent == pytest.approx(1.0)
    assert studio.spent_text == "Spent this session: $1.00"


async def test_the_session_total_is_free_on_the_sandbox(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    assert studio.spent_text == "Spent this session: free (sandbox)"


async def test_a_finished_run_draws_its_timeline_only_when_asked(studio: Studio) -> None:
    await ready(studio)
    await studio.generate()
    page = Page(studio)
    assert page.replies("timeline") == []
    page.click("timeline", n=1)
    [(reply, [png])] = page.replies("timeline")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert reply["note"] == ""


async def test_the_timeline_says_how_to_get_matplotlib_when_it_is_missing(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ready(studio)
    await studio.generate()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    Page(studio).click("timeline", n=1)
    [(reply, buffers)] = Page(studio).replies("timeline")
    assert "pip install 'wavenb[plot]'" in reply["note"]
    assert buffers == []


async def test_runs_without_a_video_have_no_timeline(studio: Studio) -> None:
    await ready(studio, "a gore scene")
    await studio.generate()
    Page(studio).click("timeline", n=1)
    [(reply, buffers)] = Page(studio).replies("timeline")
    assert buffers == [] and reply["note"] == "no video, so no timeline"


# -- an inline video ------------------------------------------------------------------------


async def test_a_video_displays_as_a_bounded_player_with_its_bytes_sent_on_request(
    studio: Studio,
) -> None:
    await ready(studio)
    video = await studio.generate()
    assert video is not None
    bundle = video._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("<Video SANDBOX render")


async def test_without_anywidget_a_video_is_inline_html_bounded_to_60vh(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ready(studio)
    video = await studio.generate()
    assert video is not None
    monkeypatch.setitem(sys.modules, "wavenb.ui.player", None)
    page = video._repr_mimebundle_()["text/html"]
    assert 'src="data:video/mp4;base64,' in page
    assert "max-height:60vh" in page
    assert "SANDBOX" in page
