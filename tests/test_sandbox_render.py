"""The sandbox renders real MP4s: the right format, and the camera really moves as asked.

Motion is measured on the decoded video, never taken on trust: phase correlation (numpy FFT)
gives how far the content moved between two frames, and a search over magnifications gives
how much it grew. The source is a deterministic multi-scale noise texture, so both estimates
are sharp.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from wavenb.core.types import ASPECT_RATIOS, OUTPUT_SIZES, AspectRatio
from wavenb.sandbox._motion import DEFAULT_MOTION, CameraMotion, parse_motion
from wavenb.sandbox._render import (
    RenderInfo,
    _CameraPath,
    closest_ratio,
    probe_video,
    render_video,
)

Grey = np.ndarray[tuple[int, int], np.dtype[np.float32]]
Clip = Callable[[str | CameraMotion], Path]
STILL = CameraMotion(still=True)
ONE_FRAME = 1 / 24

# --- helpers: pictures, decoding, measuring --------------------------------------------------


def texture(size: tuple[int, int], seed: int = 7) -> Image.Image:
    """Noise at three scales (blobs to fine grain): every shift and scale is unambiguous."""
    rng = np.random.default_rng(seed)
    width, height = size
    total = np.zeros((height, width), dtype=np.float32)
    for cells, weight in ((12, 1.0), (48, 0.6), (240, 0.4)):
        noise = rng.random((max(2, cells * height // width), cells), dtype=np.float32)
        layer = Image.fromarray(noise, mode="F").resize(size, Image.Resampling.BICUBIC)
        total += weight * np.asarray(layer)
    total = (total - total.min()) / (total.max() - total.min()) * 235 + 10
    grey = total.astype(np.uint8)
    return Image.fromarray(np.dstack([grey, grey[:, ::-1], grey[::-1]]), mode="RGB")


def lumas(path: Path, *, binning: int = 2) -> list[Grey]:
    """Every frame's Y plane, averaged over square blocks (quicker FFTs, less noise)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray()[: frame.height].astype(np.float32)
            h, w = luma.shape[0] // binning, luma.shape[1] // binning
            blocks = luma[: h * binning, : w * binning].reshape(h, binning, w, binning)
            frames.append(blocks.mean(axis=(1, 3), dtype=np.float32))
    return frames


def x264_settings(path: Path) -> dict[str, str]:
    """The settings x264 wrote into the stream (its SEI message), e.g. ``{"threads": "1"}``."""
    raw = path.read_bytes()
    start = raw.index(b"options: ") + len(b"options: ")
    text = raw[start : raw.index(b"\x00", start)].decode("ascii")
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def first_rgb(path: Path) -> np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")  # type: ignore[return-value]


def translation(a: Grey, b: Grey) -> tuple[float, float, float]:
    """How far content moved from ``a`` to ``b`` (x right, y down, sub-pixel), and the match.

    Phase correlation: the normalised cross-power spectrum of two shifted pictures is a pure
    phase ramp whose inverse transform peaks at the shift. The peak's height (0..1) says how
    well the pictures match at that shift.
    """
    h, w = a.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    fa = np.fft.fft2((a - a.mean()) * window)
    fb = np.fft.fft2((b - b.mean()) * window)
    cross = fb * np.conj(fa)
    surface = np.fft.ifft2(cross / (np.abs(cross) + 1e-12)).real
    py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)

    def vertex(before: float, at: float, after: float) -> float:
        bend = before - 2 * at + after
        return 0.5 * (before - after) / bend if bend else 0.0

    dy = py + vertex(surface[(py - 1) % h, px], surface[py, px], surface[(py + 1) % h, px])
    dx = px + vertex(surface[py, (px - 1) % w], surface[py, px], surface[py, (px + 1) % w])
    dy = dy - h if dy > h / 2 else dy
    dx = dx - w if dx > w / 2 else dx
    return float(dx), float(dy), float(surface[py, px])


def magnify(picture: Grey, scale: float) -> Grey:
    """``picture`` enlarged ``scale`` times (>= 1) about its centre, same size."""
    h, w = picture.shape
    box = ((w - w / scale) / 2, (h - h / scale) / 2, (w + w / scale) / 2, (h + h / scale) / 2)
    image = Image.fromarray(picture, mode="F")
    return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR, box=box))


def growth(a: Grey, b: Grey) -> tuple[float, float, float]:
    """How many times larger content is in ``b`` than in ``a``, and the shift left over.

    The scale is the best match of a search over magnifications; the shift (x, y) is what
    remains between the pictures once the growth is undone, in ``b``'s pixels.
    """

    def match(scale: float) -> float:
        if scale >= 1:
            return translation(magnify(a, scale), b)[2]
        return translation(a, magnify(b, 1 / scale))[2]

    coarse = np.geomspace(1 / 1.5, 1.5, 33)
    best = max(coarse, key=match)
    step = coarse[1] / coarse[0]
    scale = float(max(np.geomspace(best / step, best * step, 13), key=match))
    if scale >= 1:
        dx, dy, _ = translation(magnify(a, scale), b)
        return scale, dx, dy
    dx, dy, _ = translation(a, magnify(b, 1 / scale))
    return scale, -dx * scale, -dy * scale


def smoothstep(t: float) -> float:
    return t * t * (3 - 2 * t)


@pytest.fixture(scope="module")
def landscape_texture() -> Image.Image:
    """Larger than 1280x720 so that the one-time shrink runs too."""
    return texture((2400, 1350))


@pytest.fixture(scope="module")
def clip(landscape_texture: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """One-second 16:9 clip of the texture for a prompt (or motion), rendered once per module."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[str | CameraMotion, Path] = {}

    def render(prompt: str | CameraMotion) -> Path:
        if prompt not in made:
            motion = parse_motion(prompt) if isinstance(prompt, str) else prompt
            path = folder / f"clip-{len(made)}.mp4"
            made[prompt] = render_video(landscape_texture, motion, path, duration=1.0).path
        return made[prompt]

    return render


# --- the file --------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_each_ratio_renders_h264_yuv420p_at_its_output_size(
    ratio: AspectRatio, tmp_path: Path
) -> None:
    info = render_video(
        texture((640, 640)), STILL, tmp_path / "v.mp4", aspect_ratio=ratio, duration=0.5
    )
    probe = probe_video(info.path)
    assert (probe.codec, probe.pix_fmt) == ("h264", "yuv420p")
    assert (probe.width, probe.height) == OUTPUT_SIZES[ratio] == (info.width, info.height)
    assert (probe.fps, probe.frames) == (24, 12)


def test_the_default_clip_is_five_seconds_at_24_fps(tmp_path: Path) -> None:
    info = render_video(texture((1600, 900)), DEFAULT_MOTION, tmp_path / "v.mp4")
    probe = probe_video(info.path)
    assert (info.fps, info.frames, info.duration) == (24, 120, 5.0)
    assert (probe.fps, probe.frames) == (24, 120)
    assert probe.duration == pytest.approx(5.0, abs=0.05)
    assert len(lumas(info.path, binning=8)) == 120


def test_frame_count_is_fps_times_duration(tmp_path: Path) -> None:
    info = render_video(texture((320, 180)), STILL, tmp_path / "v.mp4", fps=12, duration=0.75)
    probe = probe_video(info.path)
    assert (info.frames, probe.frames, probe.fps) == (9, 9, 12)
    assert probe.duration == pytest.approx(0.75, abs=0.01)


def test_render_info_says_what_was_written(tmp_path: Path) -> None:
    motion = parse_motion("pan left")
    info = render_video(texture((400, 300)), motion, tmp_path / "v.mp4", duration=ONE_FRAME)
    assert info == RenderInfo(
        path=tmp_path / "v.mp4",
        width=1104,
        height=832,
        fps=24,
        frames=1,
        duration=ONE_FRAME,
        seconds=info.seconds,
        motion=motion,
        aspect_ratio="4:3",
    )
    assert info.seconds > 0


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1600, 900), "16:9"),
        ((900, 1600), "9:16"),
        ((1000, 1000), "1:1"),
        ((1200, 900), "4:3"),
        ((900, 1200), "3:4"),
        ((3000, 1000), "16:9"),
        ((500, 2000), "9:16"),
    ],
)
def test_without_a_ratio_the_closest_to_the_source_is_used(
    size: tuple[int, int], ratio: AspectRatio, tmp_path: Path
) -> None:
    info = render_video(Image.new("RGB", size), STILL, tmp_path / "v.mp4", duration=ONE_FRAME)
    assert info.aspect_ratio == ratio
    assert (probe_video(info.path).width, probe_video(info.path).height) == OUTPUT_SIZES[ratio]


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1280, 720), "16:9"),
        ((1920, 1200), "16:9"),
        ((1500, 1000), "4:3"),
        ((1, 1), "1:1"),
        ((1, 2), "9:16"),
        ((5, 4), "4:3"),
    ],
)
def test_closest_ratio(size: tuple[int, int], ratio: AspectRatio) -> None:
    assert closest_ratio(*size) == ratio


def test_closest_ratio_rejects_an_empty_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        closest_ratio(0, 10)


def test_the_index_is_at_the_front_for_streaming(tmp_path: Path) -> None:
    """``+faststart``: the ``moov`` box comes before the media data."""
    data = render_video(texture((320, 180)), STILL, tmp_path / "v.mp4", duration=0.25).path
    boxes, raw, at = [], data.read_bytes(), 0
    while at + 8 <= len(raw):
        size = int.from_bytes(raw[at : at + 4], "big")
        boxes.append(raw[at + 4 : at + 8].decode("latin-1"))
        at += size if size > 1 else len(raw)
    assert boxes.index("moov") < boxes.index("mdat")


def test_the_target_is_replaced_whole_and_no_temp_file_remains(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(b"an older video")
    render_video(texture((320, 180)), STILL, target, duration=ONE_FRAME)
    assert probe_video(target).codec == "h264"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


@pytest.mark.parametrize(
    "options",
    [
        {"fps": 0},
        {"duration": 0.0},
        {"duration": 0.01},
        {"duration": math.nan},
        {"duration": -1.0},
        {"aspect_ratio": "2:1"},
    ],
)
def test_impossible_options_are_refused_before_writing(
    options: dict[str, object], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"fps|duration|ratio"):
        render_video(texture((64, 64)), STILL, tmp_path / "v.mp4", **options)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        render_video(texture((64, 64)), STILL, tmp_path / "nope" / "v.mp4", duration=ONE_FRAME)


def test_probe_rejects_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError, match=r"."):
        probe_video(text)


# --- the picture -----------------------------------------------------------------------------


def test_a_still_camera_shows_the_cover_crop_of_the_source(tmp_path: Path) -> None:
    """The frame is the source's centred 16:9 crop, the right way up and unmirrored.

    Compared in luma: a 3-pixel offset already doubles the error (mirrored: about 12).
    """
    source = texture((2000, 1000))
    info = render_video(source, STILL, tmp_path / "v.mp4", duration=ONE_FRAME)
    crop_width = 1000 * 16 / 9
    box = ((2000 - crop_width) / 2, 0.0, (2000 + crop_width) / 2, 1000.0)
    expected = source.resize((1280, 720), Image.Resampling.BILINEAR, box=box).convert("L")
    frame = Image.fromarray(first_rgb(info.path)).convert("L")
    error = np.abs(np.asarray(frame, np.float32) - np.asarray(expected, np.float32)).mean()
    assert error < 2.5


@pytest.mark.parametrize(
    ("make", "rgb"),
    [
        (lambda: Image.new("RGB", (320, 240), (200, 60, 40)), (200, 60, 40)),
        (lambda: Image.new("RGB", (320, 240), (30, 120, 220)), (30, 120, 220)),
        (lambda: Image.new("RGBA", (320, 240), (0, 0, 0, 0)), (255, 255, 255)),
        (lambda: Image.new("RGBA", (320, 240), (30, 120, 220, 255)), (30, 120, 220)),
        (lambda: Image.new("LA", (320, 240), (100, 255)), (100, 100, 100)),
        (lambda: Image.new("RGB", (320, 240), (200, 60, 40)).convert("P"), (200, 60, 40)),
        (lambda: Image.new("L", (320, 240), 100), (100, 100, 100)),
        (lambda: Image.new("1", (320, 240), 1), (255, 255, 255)),
        (lambda: Image.new("RGB", (320, 240), (200, 60, 40)).convert("CMYK"), (200, 60, 40)),
        (lambda: Image.new("RGB", (320, 240), (200, 60, 40)).convert("YCbCr"), (200, 60, 40)),
        (lambda: Image.new("RGB", (320, 240), (200, 60, 40)).convert("HSV"), (200, 60, 40)),
        (lambda: Image.fromarray(np.full((240, 320), 32768, np.uint16)), (128, 128, 128)),
        (lambda: Image.new("I;16B", (320, 240), 32768), (128, 128, 128)),
        (lambda: Image.new("I", (320, 240), 32768), (128, 128, 128)),
        (lambda: Image.new("F", (320, 240), 0.5), (128, 128, 128)),
    ],
    ids=[
        "RGB-red", "RGB-blue", "RGBA-clear", "RGBA-opaque", "LA", "P", "L", "1", "CMYK",
        "YCbCr", "HSV", "I;16", "I;16B", "I", "F",
    ],
)  # fmt: skip
def test_any_image_mode_renders_with_its_colours(
    make: Callable[[], Image.Image], rgb: tuple[int, int, int], tmp_path: Path
) -> None:
    """Transparency becomes white; 16-bit and float greys are scaled, not clipped to white."""
    info = render_video(make(), STILL, tmp_path / "v.mp4", duration=ONE_FRAME)
    centre = first_rgb(info.path)[416, 552].astype(int)
    assert np.abs(centre - rgb).max() <= 6, centre


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A landscape JPEG tagged "rotate 90° clockwise" is filmed as the portrait it shows."""
    stored = Image.new("RGB", (640, 320), "black")
    stored.paste("white", (320, 0, 640, 320))  # the stored right half is the shown bottom
    exif = stored.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif.tobytes())
    info = render_video(Image.open(buffer), STILL, tmp_path / "v.mp4", duration=ONE_FRAME)
    assert (info.width, info.height) == (720, 1280)
    frame = first_rgb(info.path)
    assert frame[:500].mean() < 20
    assert frame[-500:].mean() > 235


def test_a_tiny_source_is_upscaled(tmp_path: Path) -> None:
    info = render_video(texture((64, 64)), parse_motion("zoom in"), tmp_path / "v.mp4")
    probe = probe_video(info.path)
    assert (probe.width, probe.height, probe.frames) == (960, 960, 120)


def test_the_callers_image_is_not_changed(tmp_path: Path) -> None:
    image = Image.new("RGBA", (320, 240), (10, 20, 30, 0))
    render_video(image, STILL, tmp_path / "v.mp4", duration=ONE_FRAME)
    assert (image.mode, image.getpixel((5, 5))) == ("RGBA", (10, 20, 30, 0))


def test_two_renders_can_run_at_once(landscape_texture: Image.Image, tmp_path: Path) -> None:
    """The sandbox renders jobs on several threads; nothing is shared between renders."""
    prompts = ["pan left", "zoom in"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(
                render_video,
                landscape_texture,
                parse_motion(p),
                tmp_path / f"{i}.mp4",
                duration=0.5,
            )
            for i, p in enumerate(prompts)
        ]
        infos = [job.result() for job in jobs]
    pan, zoom = (lumas(info.path, binning=4) for info in infos)
    assert len(pan) == len(zoom) == 12
    assert 4 * translation(pan[0], pan[-1])[0] == pytest.approx(256, abs=4)
    assert growth(zoom[0], zoom[-1]) == pytest.approx((1.2, 0, 0), rel=0.02, abs=1)


def test_the_same_input_gives_the_same_frames(
    landscape_texture: Image.Image, tmp_path: Path
) -> None:
    motion = parse_motion("pan right and zoom in")
    first = render_video(landscape_texture, motion, tmp_path / "a.mp4", duration=0.5)
    second = render_video(landscape_texture, motion, tmp_path / "b.mp4", duration=0.5)
    frames_a, frames_b = lumas(first.path, binning=1), lumas(second.path, binning=1)
    assert len(frames_a) == len(frames_b) == 12
    assert max(float(np.abs(a - b).max()) for a, b in zip(frames_a, frames_b, strict=True)) <= 2


def test_x264_encodes_on_one_thread(tmp_path: Path) -> None:
    """One encoder thread beside the frame thread: renders side by side fill the cores."""
    path = tmp_path / "v.mp4"
    render_video(texture((320, 180)), STILL, path, duration=0.25)
    settings = x264_settings(path)
    assert (settings["threads"], settings["lookahead_threads"]) == ("1", "1")


# --- the camera moves as the prompt says -----------------------------------------------------
# Measured at half resolution: shifts are doubled back to output pixels.


@pytest.mark.parametrize(
    ("prompt", "shift"),
    [
        ("pan right", (-256, 0)),  # the view moves right: content slides left by 20% of 1280
        ("pan left", (256, 0)),
        ("tilt up", (0, 144)),  # the view moves up: content slides down by 20% of 720
        ("crane down", (0, -144)),
        ("fast pan right", (-448, 0)),
    ],
)
def test_pans_and_tilts_slide_the_content_the_opposite_way(
    prompt: str, shift: tuple[float, float], clip: Clip
) -> None:
    frames = lumas(clip(prompt))
    dx, dy, _ = translation(frames[0], frames[-1])
    assert (2 * dx, 2 * dy) == pytest.approx(shift, abs=3)


@pytest.mark.parametrize(("prompt", "scale"), [("zoom in", 1.2), ("pull back", 0.8)])
def test_zooms_grow_or_shrink_the_content(prompt: str, scale: float, clip: Clip) -> None:
    frames = lumas(clip(prompt), binning=4)
    grown, dx, dy = growth(frames[0], frames[-1])
    assert grown == pytest.approx(scale, rel=0.02)
    assert (dx, dy) == pytest.approx((0, 0), abs=1)  # about the centre


def test_pan_and_zoom_combine(clip: Clip) -> None:
    frames = lumas(clip("pan right and zoom in"), binning=4)
    scale, dx, dy = growth(frames[0], frames[-1])
    assert scale == pytest.approx(1.2, rel=0.02)
    assert 4 * dx < -100  # content slides left while it grows
    assert abs(dy) < 1


def test_a_static_camera_does_not_move(clip: Clip) -> None:
    frames = lumas(clip("static shot"))
    dx, dy, _ = translation(frames[0], frames[-1])
    assert (dx, dy) == pytest.approx((0, 0), abs=0.1)
    assert float(np.abs(frames[0] - frames[-1]).mean()) < 1


def test_a_pan_eases_in_and_out_without_jitter(clip: Clip) -> None:
    """Content positions follow smoothstep; no frame ever steps back."""
    frames = lumas(clip("pan right"))
    positions = [2 * translation(frames[0], frame)[0] for frame in frames]
    expected = [-256 * smoothstep(i / (len(frames) - 1)) for i in range(len(frames))]
    assert positions == pytest.approx(expected, abs=1.5)
    steps = np.diff(positions)
    assert steps.max() < 0.25
    assert abs(steps[0]) < 2 > abs(steps[-1])  # starts and ends at rest


def test_a_linear_pan_moves_the_same_distance_every_frame(clip: Clip) -> None:
    frames = lumas(clip(CameraMotion(pan=0.2, easing="linear")))
    steps = [2 * translation(a, b)[0] for a, b in itertools.pairwise(frames)]
    assert steps == pytest.approx([-256 / 23] * 23, abs=0.6)


# --- the camera path (pure geometry) ---------------------------------------------------------


@given(
    image=st.tuples(st.integers(1, 6000), st.integers(1, 6000)),
    ratio=st.sampled_from(ASPECT_RATIOS),
    motion=st.builds(
        CameraMotion,
        zoom=st.floats(-0.5, 1.0),
        pan=st.floats(-0.5, 0.5),
        tilt=st.floats(-0.5, 0.5),
        easing=st.sampled_from(["ease-in-out", "linear"]),
    ),
)
def test_the_whole_camera_path_fits_inside_the_picture(
    image: tuple[int, int], ratio: AspectRatio, motion: CameraMotion
) -> None:
    """Every box is inside the image with the output's ratio, and the whole move is played:
    nothing is lost to clamping at the edges."""
    size = OUTPUT_SIZES[ratio]
    path = _CameraPath.plan(image, size, motion)
    boxes = [path.box(t) for t in np.linspace(0, 1, 9)]
    for left, top, right, bottom in boxes:
        assert left >= -1e-6 and top >= -1e-6
        assert right <= image[0] + 1e-6 and bottom <= image[1] + 1e-6
        assert (right - left) / (bottom - top) == pytest.approx(size[0] / size[1], rel=1e-6)
    first, last = boxes[0], boxes[-1]
    assert (first[2] - first[0]) / (last[2] - last[0]) == pytest.approx(1 + motion.zoom, rel=1e-6)
    width = path.base[0]
    travel_x = (last[0] + last[2] - first[0] - first[2]) / 2
    travel_y = (last[1] + last[3] - first[1] - first[3]) / 2
    assert travel_x == pytest.approx(motion.pan * width, abs=1e-6 * image[0])
    assert travel_y == pytest.approx(-motion.tilt * path.base[1], abs=1e-6 * image[1])
