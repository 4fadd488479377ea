"""Contact sheets and animated previews: decoded back and checked, frame by frame."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from wavenb.ab.sheets import animated_preview, contact_sheet
from wavenb.core.types import AspectRatio
from wavenb.sandbox._motion import parse_motion
from wavenb.sandbox._render import render_video

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "notebooks" / "assets" / "animal-chelsea.jpg"
LABEL, PAD, FRAME_GAP, VIDEO_GAP = 220, 10, 2, 14  # the sheet's layout, in pixels


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Half-second sandbox clips of a photo (12 frames), and one full 5 s clip."""
    folder = tmp_path_factory.mktemp("clips")
    with Image.open(PHOTO) as opened:
        photo = opened.copy()
    made = {}
    for name, prompt, ratio, seconds in [
        ("pan", "fast pan right", "16:9", 0.5),
        ("zoom", "zoom in", "16:9", 0.5),
        ("still", "static shot", "16:9", 0.5),
        ("portrait", "tilt up", "9:16", 0.5),
        ("long", "pan left", "16:9", 5.0),
    ]:
        ratio_: AspectRatio = ratio  # type: ignore[assignment]
        path = folder / f"{name}.mp4"
        render_video(photo, parse_motion(prompt), path, aspect_ratio=ratio_, duration=seconds)
        made[name] = path
    return made


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def thumbs(
    sheet: Image.Image, row: int, count: int, height: int, width: int
) -> Iterator[np.ndarray]:
    """The thumbnails of the first video of ``row``, as arrays."""
    top = row * (height + 2 * PAD) + PAD
    for k in range(count):
        left = LABEL + k * (width + FRAME_GAP)
        yield np.asarray(sheet.crop((left, top, left + width, top + height)), dtype=np.float32)


def frame_at(path: Path, index: int, size: tuple[int, int]) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                image = Image.fromarray(frame.to_ndarray(format="rgb24"))
                return np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    raise IndexError(index)


# --- contact sheet --------------------------------------------------------------------------


def test_one_row_per_prompt_and_frames_spread_over_each_video(clips: dict[str, Path]) -> None:
    sheet = png(
        contact_sheet([("pan", [clips["pan"], clips["zoom"]]), ("still", [clips["still"]])])
    )
    row_width = LABEL + 2 * (4 * 213 + 3 * FRAME_GAP + VIDEO_GAP) + PAD
    assert sheet.size == (row_width, 2 * (120 + 2 * PAD))
    pan = list(thumbs(sheet, 0, 4, 120, 213))
    assert np.abs(pan[0] - frame_at(clips["pan"], 0, (213, 120))).mean() < 4  # the first frame
    assert np.abs(pan[3] - frame_at(clips["pan"], 11, (213, 120))).mean() < 4  # the last frame
    assert all(np.abs(a - b).mean() > 4 for a, b in itertools.pairwise(pan))  # it moves
    still = list(thumbs(sheet, 1, 4, 120, 213))
    assert all(np.abs(a - still[0]).mean() < 1.5 for a in still)  # it does not


def test_the_label_is_drawn_in_its_column(clips: dict[str, Path]) -> None:
    sheet = np.asarray(png(contact_sheet([("A prompt label", [clips["still"]])])))
    label_column = sheet[:, :LABEL]
    assert (label_column.min(axis=2) < 100).sum() > 50  # dark text on white
    blank = np.asarray(png(contact_sheet([("", [clips["still"]])])))[:, :LABEL]
    assert (blank.min(axis=2) < 100).sum() == 0


@pytest.mark.parametrize(
    "label",
    ["a very long prompt about a cat looking at the camera " * 10, "W" * 80, "zoom — été, 静かに"],
)
def test_a_long_label_stays_inside_its_column_and_row(clips: dict[str, Path], label: str) -> None:
    sheet = np.asarray(png(contact_sheet([(label, [clips["still"]])], thumb_height=60)))
    assert sheet.shape[0] == 60 + 2 * PAD
    ink = sheet[:, :LABEL].min(axis=2) < 100
    assert ink.sum() > 50
    assert not ink[:, LABEL - PAD // 2 :].any()  # nothing runs into the thumbnails
    assert not ink[-2:].any()  # nor past the row


def test_a_missing_video_is_a_grey_box(clips: dict[str, Path]) -> None:
    sheet = png(contact_sheet([("failed", [None, clips["still"]])], frames_per_video=2))
    grey = np.asarray(sheet.crop((LABEL + 300, PAD + 5, LABEL + 420, PAD + 30)))
    assert (grey == 236).all()
    assert sheet.width == LABEL + 2 * (2 * 213 + FRAME_GAP + VIDEO_GAP) + PAD


def test_portrait_videos_get_narrow_thumbnails(clips: dict[str, Path]) -> None:
    sheet = png(contact_sheet([("tall", [clips["portrait"]])], frames_per_video=3))
    assert sheet.size == (LABEL + 3 * 68 + 2 * FRAME_GAP + VIDEO_GAP + PAD, 120 + 2 * PAD)


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_many_videos_shrink_to_fit_the_bounds(clips: dict[str, Path]) -> None:
    rows = [(f"prompt {i}", [clips["pan"], clips["zoom"], clips["still"]]) for i in range(8)]
    sheet = png(contact_sheet(rows, max_width=1600, max_height=900))
    assert 1500 < sheet.width <= 1600  # the width binds: thumbnails as large as it allows
    assert sheet.height <= 900
    tall = png(contact_sheet(rows, max_width=4000, max_height=900))
    assert 850 < tall.height <= 900  # now the height binds


def test_a_sheet_that_cannot_fit_readably_is_refused(clips: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        contact_sheet([("x", [clips["still"]] * 20)], max_width=800)


def test_more_frames_than_the_video_has_repeat_frames(clips: dict[str, Path]) -> None:
    sheet = png(contact_sheet([("pan", [clips["pan"]])], frames_per_video=20, thumb_height=30))
    assert sheet.height == 30 + 2 * PAD


def test_a_five_second_clip_shows_its_whole_length(clips: dict[str, Path]) -> None:
    sheet = png(contact_sheet([("long", [clips["long"]])], frames_per_video=2))
    first, last = thumbs(sheet, 0, 2, 120, 213)
    assert np.abs(last - frame_at(clips["long"], 119, (213, 120))).mean() < 4
    assert np.abs(first - last).mean() > 4


@pytest.mark.parametrize(
    ("rows", "frames", "message"),
    [([], 4, "at least one row"), ([("x", [])], 0, "frames_per_video")],
)
def test_impossible_sheets_are_refused(
    rows: list[tuple[str, list[Path]]], frames: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        contact_sheet(rows, frames)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        contact_sheet([("x", [tmp_path / "gone.mp4"])])


# --- animated preview -----------------------------------------------------------------------


def webp(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    return image


def test_a_five_second_clip_becomes_a_small_looping_webp(clips: dict[str, Path]) -> None:
    data = animated_preview(clips["long"])
    image = webp(data)
    assert (image.size, image.n_frames, image.info["loop"]) == ((320, 180), 40, 0)
    assert len(data) < 500_000
    image.seek(0)
    first = np.asarray(image.convert("RGB"), dtype=np.float32)
    image.seek(39)
    last = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert np.abs(first - last).mean() > 5  # the camera moved


def test_each_preview_frame_is_the_frame_on_screen_at_its_time(tmp_path: Path) -> None:
    """A clip whose frame i is grey level 20 + 8 i: at 8 fps, preview frame k is frame 3k."""
    path = tmp_path / "ramp.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for i in range(24):
            grey = np.full((180, 320, 3), 20 + 8 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(grey, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    image = webp(animated_preview(path, width=64, fps=8, seconds=5))
    assert image.n_frames == 8  # the clip is one second long
    levels = []
    for k in range(image.n_frames):
        image.seek(k)
        levels.append(float(np.asarray(image.convert("L")).mean()))
    assert levels == pytest.approx([20 + 8 * 3 * k for k in range(8)], abs=3)


def test_width_fps_and_seconds_shape_the_preview(clips: dict[str, Path]) -> None:
    image = webp(animated_preview(clips["long"], width=160, fps=4, seconds=2))
    assert (image.size, image.n_frames) == ((160, 90), 8)
    image.seek(1)
    image.load()
    assert (image.info["timestamp"], image.info["duration"]) == (250, 250)  # milliseconds
    tall = webp(animated_preview(clips["portrait"], width=180))
    assert (tall.size, tall.n_frames) == ((180, 320), 4)  # half a second at 8 fps


@pytest.mark.parametrize("options", [{"width": 8}, {"fps": 0}, {"seconds": -1.0}])
def test_impossible_previews_are_refused(clips: dict[str, Path], options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="width"):
        animated_preview(clips["still"], **options)  # type: ignore[arg-type]


def test_a_preview_of_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        animated_preview(tmp_path / "gone.mp4")
