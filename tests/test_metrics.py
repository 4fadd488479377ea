"""Video metrics are measured from the pixels: the sandbox's camera moves come back as themselves.

Ground truth is the sandbox's renderer: it films a picture with a known camera move, so every
move it can play is rendered (short clips, real H.264) and measured back. Clips that the
renderer cannot make (a burned-in label, flicker, blur, a camera roll) are built here frame by
frame and encoded with PyAV.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from wavenb.ab.intent import CAMERA_MOVES, requested_moves
from wavenb.ab.metrics import VideoMetrics, measure, measure_async, measure_cached
from wavenb.core.types import AspectRatio
from wavenb.sandbox._motion import CameraMotion, parse_motion
from wavenb.sandbox._render import render_video

pytestmark = (
    pytest.mark.slow
)  # renders some 70 clips: the full run; test_compare_metrics covers the path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "notebooks" / "assets"
SHORT = 0.5  # seconds: 12 frames, enough for every move, quick to render
Rgb = np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]
Clip = Callable[..., Path]


def texture(size: tuple[int, int], seed: int = 7) -> Image.Image:
    """Noise at three scales, in colour: every shift and scale is unambiguous."""
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


def frames_of(path: Path) -> list[Rgb]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def encode(frames: Iterable[Rgb], path: Path, *, fps: int = 24, container: str = "mp4") -> Path:
    """Write RGB frames as H.264 yuv420p (what x264 makes of them: limited range, untagged)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "18"})
        stream.pix_fmt = "yuv420p"
        for index, rgb in enumerate(frames):
            if index == 0:
                stream.height, stream.width = rgb.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def with_label(
    frames: Iterable[Rgb], corner: str = "bottom-right", share: float = 0.14
) -> list[Rgb]:
    """Burn a static "SANDBOX" badge (black box, white text) into a corner of every frame.

    Bolder than the sandbox's own mark (white letters, top right, 3 % of the short side),
    which every rendered clip here carries already.
    """
    labelled = []
    for rgb in frames:
        image = Image.fromarray(rgb)
        width, height = image.size
        box_w, box_h = int(width * share), int(height * share / 2.5)
        x = width - box_w - 8 if corner.endswith("right") else 8
        y = height - box_h - 8 if corner.startswith("bottom") else 8
        draw = ImageDraw.Draw(image)
        draw.rectangle((x, y, x + box_w, y + box_h), fill=(0, 0, 0))
        draw.text((x + 6, y + 4), "SANDBOX", fill=(255, 255, 255), font_size=box_h * 0.6)
        labelled.append(np.asarray(image))
    return labelled


def span(metrics: VideoMetrics) -> float:
    """Seconds from the first frame to the last: what the sandbox's move is spread over."""
    return (metrics.frames - 1) / metrics.fps


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """Render (once per module) a short sandbox clip of a picture for a prompt."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[tuple[str, str, str, float], Path] = {}
    pictures: dict[str, Image.Image] = {"texture": texture((2400, 1500))}

    def render(
        prompt: str, ratio: AspectRatio = "16:9", picture: str = "texture", duration: float = SHORT
    ) -> Path:
        key = (prompt, ratio, picture, duration)
        if key not in made:
            if picture not in pictures:
                with Image.open(ASSETS / picture) as opened:
                    pictures[picture] = opened.copy()
            path = folder / f"clip-{len(made)}.mp4"
            render_video(
                pictures[picture], parse_motion(prompt), path, aspect_ratio=ratio, duration=duration
            )
            made[key] = path
        return made[key]

    return render


# --- every move the sandbox renders comes back as itself -----------------------------------

MOVES = [
    ("pan left", "pan_left"),
    ("pan right", "pan_right"),
    ("tilt up", "tilt_up"),
    ("tilt down", "tilt_down"),
    ("zoom in", "zoom_in"),
    ("zoom out", "zoom_out"),
    ("orbit left", "orbit"),
    ("orbit right", "orbit"),
]


@pytest.mark.parametrize("speed", ["slow", "", "fast"])
@pytest.mark.parametrize(("prompt", "move"), MOVES)
def test_each_move_at_each_speed_is_measured_as_itself(
    clip: Clip, prompt: str, move: str, speed: str
) -> None:
    metrics = measure(clip(f"{speed} {prompt}".strip()), prompt=f"{speed} {prompt}")
    assert metrics.camera_move == move
    assert metrics.motion_match is True


@pytest.mark.parametrize(
    ("ratio", "picture"), [("9:16", "portrait-astronaut.jpg"), ("4:3", "product-coffee.jpg")]
)
@pytest.mark.parametrize(("prompt", "move"), [*MOVES, ("static shot", "static")])
def test_each_move_is_measured_as_itself_on_photos_and_other_ratios(
    clip: Clip, prompt: str, move: str, ratio: AspectRatio, picture: str
) -> None:
    metrics = measure(clip(prompt, ratio, picture), prompt=prompt)
    assert metrics.camera_move == move
    assert metrics.motion_match is True


@pytest.mark.parametrize(
    ("prompt", "move"),
    [
        ("truck left", "pan_left"),
        ("gentle camera pan to the right, revealing more of the scene", "pan_right"),
        ("crane up", "tilt_up"),
        ("the camera descends slowly", "tilt_down"),
        ("slow push-in on the eyes", "zoom_in"),
        ("pull back to reveal the room", "zoom_out"),
        ("dolly out", "zoom_out"),
        ("arc right around the subject", "orbit"),
        ("locked-off shot", "static"),
        ("tripod, no camera movement", "static"),
        ("pan right 50%", "pan_right"),
        ("zoom in 100%", "zoom_in"),
        ("zoom out 50%", "zoom_out"),
        ("tilt down 5%", "tilt_down"),
        ("Drone shot, the camera rises above the forest", "tilt_up"),
        ("Camera slowly zooms in", "zoom_in"),
    ],
)
def test_the_vocabulary_and_extreme_amounts_are_measured_as_asked(
    clip: Clip, prompt: str, move: str
) -> None:
    metrics = measure(clip(prompt), prompt=prompt)
    assert (metrics.camera_move, metrics.motion_match) == (move, True)


def test_a_prompt_without_camera_words_gets_the_sandbox_push_in_and_no_verdict(clip: Clip) -> None:
    """The sandbox's default is a gentle push-in; the prompt asked for nothing, so no match."""
    metrics = measure(clip("A cat on a sofa"), prompt="A cat on a sofa")
    assert metrics.camera_move == "zoom_in"
    assert (metrics.requested, metrics.motion_match) == ((), None)


def test_a_move_other_than_the_one_asked_for_is_a_mismatch(clip: Clip) -> None:
    metrics = measure(clip("pan right"), prompt="slow zoom in on the face")
    assert (metrics.camera_move, metrics.requested, metrics.motion_match) == (
        "pan_right",
        ("zoom_in",),
        False,
    )


@pytest.mark.parametrize(("zoom", "move"), [(0.03, "pan_right"), (0.05, "orbit")])
def test_a_pan_that_pushes_in_slightly_answers_a_prompt_asking_for_the_pan(
    tmp_path: Path, zoom: float, move: str
) -> None:
    """A 3 % push is a pan; a 5 % push is what the sandbox's orbit is, but still a pan too."""
    path = tmp_path / "pan.mp4"
    render_video(texture((2400, 1500)), CameraMotion(pan=0.2, zoom=zoom), path, duration=SHORT)
    metrics = measure(path, prompt="pan right")
    assert (metrics.camera_move, metrics.motion_match) == (move, True)
    assert measure(path, prompt="orbit around the statue").motion_match is True
    assert measure(path, prompt="pan left").motion_match is False


def test_a_prompt_asking_to_pan_and_push_in_a_little_is_answered(clip: Clip) -> None:
    prompt = "The camera pans right and slowly pushes in 5%"
    metrics = measure(clip(prompt), prompt=prompt)
    assert metrics.requested == ("pan_right", "zoom_in")
    assert metrics.motion_match is True


def test_a_pan_pushing_in_clearly_answers_neither_orbit_nor_another_pan(tmp_path: Path) -> None:
    path = tmp_path / "push.mp4"
    render_video(texture((2400, 1500)), CameraMotion(pan=0.2, zoom=0.12), path, duration=SHORT)
    metrics = measure(path, prompt="orbit around the statue")
    assert (metrics.camera_move, metrics.motion_match) == ("pan_right", False)


def test_a_full_five_second_clip_is_sampled_and_measured(clip: Clip) -> None:
    metrics = measure(clip("slow pan left", duration=5.0), prompt="slow pan left")
    assert (metrics.frames, metrics.fps, metrics.duration) == (120, 24.0, 5.0)
    assert (metrics.width, metrics.height) == (1280, 720)
    assert metrics.camera_move == "pan_left"
    assert -metrics.motion_dx * span(metrics) == pytest.approx(0.12, abs=0.006)


# --- the numbers behind the move --------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "field", "total"),
    [
        ("pan right", "motion_dx", 0.20),  # the camera goes right: positive
        ("pan left", "motion_dx", -0.20),
        ("tilt up", "motion_dy", 0.20),  # the camera goes up: positive
        ("fast tilt down", "motion_dy", -0.35),
        ("zoom in", "motion_zoom", math.log(1.20)),  # content grows: positive
        ("zoom out", "motion_zoom", math.log(0.80)),
        ("orbit left", "motion_zoom", math.log(1.05)),  # the orbit's slight push-in
        ("orbit left", "motion_dx", -0.20),
    ],
)
def test_the_rates_add_up_to_the_rendered_move(
    clip: Clip, prompt: str, field: str, total: float
) -> None:
    """Rates times the clip's span give the sandbox's travel (fractions of the frame, log zoom)."""
    metrics = measure(clip(prompt))
    assert getattr(metrics, field) * span(metrics) == pytest.approx(total, rel=0.04, abs=0.002)


def test_the_other_axes_stay_still_during_a_pan(clip: Clip) -> None:
    metrics = measure(clip("fast pan right"))
    assert abs(metrics.motion_dy * span(metrics)) < 0.003
    assert abs(metrics.motion_zoom * span(metrics)) < 0.005
    assert abs(metrics.motion_rotation * span(metrics)) < 0.005


def test_magnitude_is_the_edge_speed_of_all_parts_together(clip: Clip) -> None:
    """A pan moves the frame's edge by its travel; a zoom by half its log scale."""
    both = measure(clip("pan right and zoom in"))
    expected = math.hypot(both.motion_dx, both.motion_dy, both.motion_zoom / 2)
    assert both.motion_magnitude == pytest.approx(expected, rel=0.01)
    pan, zoom = measure(clip("pan right")), measure(clip("zoom in"))
    assert pan.motion_magnitude * span(pan) == pytest.approx(0.20, rel=0.04)
    assert zoom.motion_magnitude * span(zoom) == pytest.approx(math.log(1.2) / 2, rel=0.04)


def test_a_still_camera_measures_no_motion_at_all(clip: Clip) -> None:
    metrics = measure(clip("static shot"), prompt="static shot")
    assert metrics.camera_move == "static"
    assert metrics.motion_magnitude < 1e-3
    assert metrics.motion_match is True


def test_a_camera_roll_is_measured_with_its_sign(tmp_path: Path) -> None:
    """Content turning counter-clockwise on screen is the camera rolling clockwise: negative."""
    big = texture((960, 960))
    turn = 0.006  # radians per frame, 0.07 over the clip
    frames = [
        np.asarray(
            big.rotate(math.degrees(turn * i), Image.Resampling.BICUBIC).crop((160, 300, 800, 660))
        )
        for i in range(12)
    ]
    metrics = measure(encode(frames, tmp_path / "roll.mp4"))
    assert metrics.camera_move == "orbit"
    assert metrics.motion_rotation * span(metrics) == pytest.approx(-turn * 11, rel=0.05)


# --- robustness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "move", "corner"),
    [
        (prompt, move, ("top-right", "top-left", "bottom-right")[i % 3])
        for i, (prompt, move) in enumerate([*MOVES, ("static shot", "static")])
    ],
)
def test_a_burned_in_label_does_not_change_the_measured_move(
    clip: Clip, prompt: str, move: str, corner: str, tmp_path: Path
) -> None:
    labelled = encode(with_label(frames_of(clip(prompt)), corner), tmp_path / "label.mp4")
    assert measure(labelled).camera_move == move


def test_a_large_label_inside_the_frame_is_ignored_too(clip: Clip, tmp_path: Path) -> None:
    frames = with_label(frames_of(clip("slow zoom in")), "top-left", share=0.3)
    metrics = measure(encode(frames, tmp_path / "label.mp4"))
    assert metrics.camera_move == "zoom_in"
    assert metrics.motion_zoom * span(metrics) == pytest.approx(math.log(1.12), rel=0.08)


def test_a_flat_picture_with_nothing_to_follow_is_static(tmp_path: Path) -> None:
    grey = np.full((360, 640, 3), 120, np.uint8)
    metrics = measure(encode([grey] * 12, tmp_path / "flat.mp4"))
    assert metrics.camera_move == "static"
    assert metrics.motion_magnitude == 0.0


def test_a_single_frame_is_a_still_camera(tmp_path: Path) -> None:
    metrics = measure(encode([np.asarray(texture((320, 180)))], tmp_path / "one.mp4"))
    assert (metrics.camera_move, metrics.frames, metrics.motion_magnitude) == ("static", 1, 0.0)
    assert metrics.flicker == 0.0


def test_a_picture_too_small_for_blocks_still_gets_its_shift(tmp_path: Path) -> None:
    """16x16 pixels, the view one pixel further right each frame: 24/16 frames a second."""
    source = texture((64, 64))
    frames = [np.asarray(source.crop((i, 0, i + 16, 16))) for i in range(10)]
    metrics = measure(encode(frames, tmp_path / "tiny.mp4"))
    assert metrics.camera_move == "pan_right"
    assert metrics.motion_dx == pytest.approx(24 / 16, rel=0.1)


def test_a_matroska_file_without_a_frame_count_is_measured_too(clip: Clip, tmp_path: Path) -> None:
    video = encode(frames_of(clip("pan left")), tmp_path / "clip.mkv", container="matroska")
    metrics = measure(video)
    assert (metrics.camera_move, metrics.frames) == ("pan_left", 12)


# --- first frame, flicker, sharpness --------------------------------------------------------


def test_the_first_frame_of_a_still_clip_is_its_source(tmp_path: Path) -> None:
    """A 2:1 source is cover-cropped to 16:9 before comparing, as the renderer did."""
    source = texture((2000, 1000), seed=3)
    video = render_video(source, parse_motion("static"), tmp_path / "v.mp4", duration=SHORT).path
    assert measure(video, source=source).first_frame_ssim == pytest.approx(1.0, abs=0.06)


def test_a_photo_still_clip_matches_its_source(clip: Clip) -> None:
    metrics = measure(
        clip("static shot", picture="animal-chelsea.jpg"), source=ASSETS / "animal-chelsea.jpg"
    )
    assert metrics.first_frame_ssim is not None
    assert metrics.first_frame_ssim > 0.9


def test_an_unrelated_source_scores_low(clip: Clip) -> None:
    metrics = measure(clip("static shot"), source=texture((800, 450), seed=99))
    assert metrics.first_frame_ssim is not None
    assert metrics.first_frame_ssim < 0.3


def test_a_pan_starts_off_centre_so_its_first_frame_scores_lower(clip: Clip) -> None:
    source = texture((2400, 1500))
    still = measure(clip("static shot"), source=source).first_frame_ssim
    pan = measure(clip("fast pan right"), source=source).first_frame_ssim
    assert still is not None and pan is not None
    assert pan < still - 0.3


def test_the_source_may_be_bytes_a_path_or_an_image(clip: Clip, tmp_path: Path) -> None:
    image = texture((1600, 900))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    (tmp_path / "s.png").write_bytes(buffer.getvalue())
    video = clip("static shot")
    scores = {
        measure(video, source=source).first_frame_ssim
        for source in (image, buffer.getvalue(), tmp_path / "s.png", str(tmp_path / "s.png"))
    }
    assert len(scores) == 1


def test_without_a_source_there_is_no_ssim(clip: Clip) -> None:
    assert measure(clip("static shot")).first_frame_ssim is None


def test_a_source_that_is_not_an_image_is_refused(clip: Clip) -> None:
    with pytest.raises(OSError, match="identify"):
        measure(clip("static shot"), source=b"not an image")


def test_flicker_is_near_zero_for_a_steady_clip_and_ignores_a_slow_fade(
    clip: Clip, tmp_path: Path
) -> None:
    frames = frames_of(clip("static shot"))
    fade = [np.clip(f.astype(int) + 4 * i, 0, 255).astype(np.uint8) for i, f in enumerate(frames)]
    assert measure(clip("static shot")).flicker < 0.05
    assert measure(encode(fade, tmp_path / "fade.mp4")).flicker < 0.5  # rounding: steps of 3 or 4


def test_flicker_sees_brightness_jumping_from_frame_to_frame(clip: Clip, tmp_path: Path) -> None:
    frames = frames_of(clip("static shot"))
    jumpy = [
        np.clip(f.astype(int) + (3 if i % 2 else -3), 0, 255).astype(np.uint8)
        for i, f in enumerate(frames)
    ]
    assert measure(encode(jumpy, tmp_path / "jumpy.mp4")).flicker > 2.0


def test_a_blurred_clip_is_less_sharp(clip: Clip, tmp_path: Path) -> None:
    frames = frames_of(clip("static shot"))
    blurred = [np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(2))) for f in frames]
    sharp = measure(encode(frames, tmp_path / "sharp.mp4")).sharpness
    soft = measure(encode(blurred, tmp_path / "soft.mp4")).sharpness
    assert soft < sharp / 4


# --- the result -----------------------------------------------------------------------------


def test_the_result_is_json_ready_and_has_a_badge(clip: Clip) -> None:
    metrics = measure(clip("pan right"), source=texture((2400, 1500)), prompt="slow pan right")
    data = json.loads(json.dumps(metrics.as_dict()))
    assert data["camera_move"] == "pan_right"
    assert data["requested"] == ["pan_right"]
    assert metrics.badge().startswith("pan right ✓ · SSIM ")
    assert "flicker" in metrics.badge()


def test_the_badge_marks_a_miss_and_says_nothing_without_a_request(clip: Clip) -> None:
    assert measure(clip("pan right"), prompt="zoom in").badge().startswith("pan right ✗")
    assert (
        measure(clip("pan right")).badge()
        == f"pan right · flicker {measure(clip('pan right')).flicker:.1f}"
    )


# --- errors -------------------------------------------------------------------------------


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        measure(tmp_path / "nope.mp4")


def test_a_file_that_is_not_a_video_is_an_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(av.error.FFmpegError):
        measure(text)


@pytest.mark.parametrize("module", ["metrics", "intent", "ranking", "sheets"])
def test_the_measuring_modules_never_import_the_sandbox(module: str) -> None:
    """They read pixels and prompts only, never how the sandbox happens to render."""
    tree = ast.parse((ROOT / "wavenb" / "ab" / f"{module}.py").read_text(encoding="utf-8"))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {name for name in imported if name.startswith("wavenb.sandbox")}


def test_without_the_sandbox_extra_the_import_error_names_it() -> None:
    code = (
        "import sys; sys.modules['av'] = None\n"
        "try:\n    import wavenb.ab.metrics\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'wavenb[sandbox]'" in result.stdout


# --- the cache and the async helper ---------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_cache_remembers_a_video_by_its_digest(clip: Clip, tmp_path: Path) -> None:
    """Measured once; the second answer comes from the JSON file, not from the (now gone) video."""
    video = tmp_path / "v.mp4"
    video.write_bytes(clip("pan left").read_bytes())
    sha = digest(video)
    first = measure_cached(video, sha, tmp_path / "metrics", prompt="pan left")
    assert (tmp_path / "metrics" / f"{sha}.json").is_file()
    video.unlink()
    again = measure_cached(video, sha, tmp_path / "metrics", prompt="pan left")
    assert again == first == measure(clip("pan left"), prompt="pan left")


def test_the_prompt_is_judged_afresh_on_every_call(clip: Clip, tmp_path: Path) -> None:
    video = clip("pan left")
    sha = digest(video)
    measure_cached(video, sha, tmp_path, prompt="pan left")
    changed = measure_cached(video, sha, tmp_path, prompt="zoom in")
    assert (changed.motion_match, changed.requested) == (False, ("zoom_in",))
    assert measure_cached(video, sha, tmp_path).motion_match is None


def test_the_cache_keeps_one_ssim_per_source(clip: Clip, tmp_path: Path) -> None:
    video = clip("static shot")
    sha = digest(video)
    right, wrong = texture((2400, 1500)), texture((800, 450), seed=99)
    measure_cached(video, sha, tmp_path)
    first = measure_cached(video, sha, tmp_path, source=right)
    second = measure_cached(video, sha, tmp_path, source=wrong)
    record = json.loads((tmp_path / f"{sha}.json").read_text())
    assert len(record["ssim"]) == 2
    assert first.first_frame_ssim == measure(video, source=right).first_frame_ssim
    assert second.first_frame_ssim == measure(video, source=wrong).first_frame_ssim
    assert measure_cached(video, sha, tmp_path).first_frame_ssim is None


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"version": 1}', '{"version": 0, "pixels": {}, "ssim": {}}', ""],
)
def test_a_broken_or_older_cache_file_is_measured_again_and_replaced(
    clip: Clip, tmp_path: Path, content: str
) -> None:
    video = clip("tilt up")
    sha = digest(video)
    (tmp_path / f"{sha}.json").write_text(content)
    assert measure_cached(video, sha, tmp_path).camera_move == "tilt_up"
    assert json.loads((tmp_path / f"{sha}.json").read_text())["version"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [f"{sha}.json"]  # no temporary file left


def test_a_cache_file_from_before_the_orbit_rule_changed_is_measured_again(
    clip: Clip, tmp_path: Path
) -> None:
    """Version 1 called a pan pushing in by 2-3 % an orbit: its labels are not reused."""
    video = clip("pan right")
    sha = digest(video)
    measure_cached(video, sha, tmp_path)
    file = tmp_path / f"{sha}.json"
    record = json.loads(file.read_text())
    record["version"], record["pixels"]["camera_move"] = 1, "orbit"
    file.write_text(json.dumps(record))
    assert measure_cached(video, sha, tmp_path).camera_move == "pan_right"
    assert json.loads(file.read_text())["version"] == 2


@pytest.mark.parametrize("sha", ["../escape", "ABC", "0" * 63, "g" * 64, "0" * 64 + "/"])
def test_a_malformed_digest_is_refused(tmp_path: Path, sha: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        measure_cached(tmp_path / "v.mp4", sha, tmp_path)


async def test_measure_async_gives_the_same_answer_off_the_loop(clip: Clip, tmp_path: Path) -> None:
    video = clip("zoom out")
    plain, cached = await asyncio.gather(
        measure_async(video, prompt="zoom out"),
        measure_async(video, prompt="zoom out", sha256=digest(video), cache_dir=tmp_path),
    )
    assert plain == cached == measure(video, prompt="zoom out")
    assert (tmp_path / f"{digest(video)}.json").is_file()


async def test_measure_async_wants_both_cache_arguments_or_neither(clip: Clip) -> None:
    with pytest.raises(ValueError, match="both"):
        await measure_async(clip("zoom out"), sha256="0" * 64)


# --- what a prompt asks for ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "moves"),
    [
        ("Gentle camera pan to the right, revealing more of the scene", {"pan_right"}),
        ("The camera slowly zooms in on the face", {"zoom_in"}),
        ("A woman on a beach at sunset, slow pan left", {"pan_left"}),
        ("Drone shot, the camera rises above the forest", {"tilt_up"}),
        ("Static shot of a lighthouse, waves crashing", {"static"}),
        ("truck right along the shelves", {"pan_right"}),
        ("crane down to the street", {"tilt_down"}),
        ("pan up to the sky", {"tilt_up"}),
        ("slow push-in", {"zoom_in"}),
        ("pull back to reveal the city", {"zoom_out"}),
        ("zoom out", {"zoom_out"}),
        ("dolly left", {"pan_left"}),
        ("orbit around the statue", {"orbit"}),
        ("arc left", {"orbit"}),
        ("the camera circles the car", {"orbit"}),
        ("locked-off shot of the street", {"static"}),
        ("tripod", {"static"}),
        ("the camera stays completely still", {"static"}),
        ("no camera movement, the leaves sway", {"static"}),
        ("pan from left to right", {"pan_right"}),
        ("pan left to right", {"pan_right"}),
        ("pan right and zoom in", {"pan_right", "zoom_in"}),
        ("slow pan across the valley", {"pan_left", "pan_right"}),
        ("a crane shot", {"tilt_up", "tilt_down"}),
        ("static shot, then the camera pans left", {"pan_left"}),
    ],
)
def test_requested_moves(prompt: str, moves: set[str]) -> None:
    assert requested_moves(prompt) == moves
    assert moves <= set(CAMERA_MOVES)


@pytest.mark.parametrize(
    "prompt",
    [
        "The model walks forward slowly", "She tilts her head up and smiles",
        "She walks to the left", "A frying pan on the stove", "a crane lifts a steel beam",
        "Circling seagulls above an approaching storm", "The sun rises over the sea",
        "A shot of a still lake", "a still life with apples", "no zoom, no pan",
        "without zooming in", "",
    ],
)  # fmt: skip
def test_a_prompt_about_the_subject_asks_for_no_camera_move(prompt: str) -> None:
    assert requested_moves(prompt) == frozenset()
