"""Every sandbox video carries a small, legible SANDBOX mark in its top-right corner."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from wavenb.core.types import ASPECT_RATIOS, OUTPUT_SIZES, AspectRatio
from wavenb.sandbox._label import Label
from wavenb.sandbox._motion import CameraMotion
from wavenb.sandbox._render import render_video

STILL = CameraMotion(still=True)


def planes(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first frame's Y, Cb and Cr planes."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes)
        return y[:, : frame.width], u[:, : frame.width // 2], v[:, : frame.width // 2]


def render(tmp_path: Path, color: str, ratio: AspectRatio = "16:9") -> Path:
    image = Image.new("RGB", (640, 640), color)
    return render_video(image, STILL, tmp_path / "v.mp4", aspect_ratio=ratio, duration=1 / 24).path


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_the_mark_is_small_and_in_the_top_right_corner(ratio: AspectRatio) -> None:
    width, height = OUTPUT_SIZES[ratio]
    label = Label.for_size((width, height))
    mark_height, mark_width = label.alpha.shape
    assert 14 <= mark_height <= 0.06 * min(width, height)  # legible, yet small
    assert mark_width * mark_height < 0.01 * width * height
    assert label.left + mark_width > 0.9 * width and label.top < 0.05 * height


def test_the_mark_shows_white_letters_outlined_in_black(tmp_path: Path) -> None:
    y, _, _ = planes(render(tmp_path, "rgb(128,128,128)"))
    label = Label.for_size(OUTPUT_SIZES["16:9"])
    h, w = label.alpha.shape
    mark = y[label.top : label.top + h, label.left : label.left + w]
    assert mark.max() > 200 and mark.min() < 50  # white letters, dark outline
    rest = y.copy()
    pad = 16  # the encoder's blocks around the letters may ring a little
    rest[max(0, label.top - pad) : label.top + h + pad, label.left - pad : label.left + w + pad] = (
        126
    )
    assert int(rest.max()) - int(rest.min()) <= 6  # the picture elsewhere is untouched


def test_the_letters_stay_white_on_a_coloured_picture(tmp_path: Path) -> None:
    """Chroma is made neutral under the mark: the letters are not tinted red."""
    _, u, v = planes(render(tmp_path, "red"))
    label = Label.for_size(OUTPUT_SIZES["16:9"])
    core = label.chroma_alpha > 0.8
    top, left = label.top // 2, label.left // 2
    under_u = u[top : top + core.shape[0], left : left + core.shape[1]][core]
    under_v = v[top : top + core.shape[0], left : left + core.shape[1]][core]
    assert abs(float(under_v.mean()) - 128) < 25 < float(v[-10:, :10].mean()) - 128
    assert abs(float(under_u.mean()) - 128) < 25


def test_the_mark_does_not_move_with_the_camera(tmp_path: Path) -> None:
    image = Image.effect_noise((1600, 900), 60).convert("RGB")
    path = render_video(image, CameraMotion(pan=0.3), tmp_path / "pan.mp4", duration=0.5).path
    label = Label.for_size(OUTPUT_SIZES["16:9"])
    h, w = label.alpha.shape
    strong = label.alpha > 0.8
    with av.open(str(path)) as container:
        frames = [f.to_ndarray()[: f.height] for f in container.decode(video=0)]
    marks = [f[label.top : label.top + h, label.left : label.left + w][strong] for f in frames]
    elsewhere = [f[300 : 300 + h, 300 : 300 + w][strong] for f in frames]  # same shape, mid-picture

    def change(patches: list[np.ndarray]) -> float:
        return max(float(np.abs(p.astype(int) - patches[0].astype(int)).mean()) for p in patches)

    # The letters hold still (what changes is the 15 % of noise showing through, and x264)
    # while the picture slides under them.
    assert change(marks) < 0.3 * change(elsewhere)
