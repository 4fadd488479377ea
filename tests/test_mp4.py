"""The whole-MP4 check that decides whether a download is the video (``wavenb.core.mp4``)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.conftest import MP4
from wavenb.core.mp4 import NotMp4, check_mp4


def written(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    return path


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_a_whole_mp4_is_accepted_with_its_boxes(tmp_path: Path) -> None:
    boxes = check_mp4(written(tmp_path, MP4))
    assert boxes.types == ("ftyp", "moov", "mdat") and boxes.size == len(MP4)


def test_a_real_render_is_accepted(tmp_path: Path) -> None:
    """An MP4 FFmpeg wrote (the sandbox's renderer, ``+faststart``), not only the hand-made one."""
    pytest.importorskip("av")
    from PIL import Image

    from wavenb.sandbox._motion import parse_motion
    from wavenb.sandbox._render import render_video

    image = Image.new("RGB", (320, 180), (40, 120, 200))
    info = render_video(image, parse_motion("Camera slowly zooms in"), tmp_path / "clip.mp4",
                        duration=0.5)  # fmt: skip
    assert {"ftyp", "moov", "mdat"} <= set(check_mp4(info.path).types)


@pytest.mark.parametrize("cut", [1, 7, 8, 24, 30, 40, len(MP4) - 1])
def test_a_file_cut_anywhere_is_refused(cut: int, tmp_path: Path) -> None:
    with pytest.raises(NotMp4):
        check_mp4(written(tmp_path, MP4[:cut]))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"<html><body>Access denied</body></html>", "ftyp"),
        (MP4 + b"\x00\x00", "cut"),  # trailing bytes: a box header cut short
        (box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"mdat", b"\x07" * 100), "moov"),
        (MP4[:40] + struct.pack(">I4s", 0, b"mdat") + b"\x07" * 100, "no size"),
        (box(b"ftyp", b"isom") + box(b"junk", b"") + MP4[24:], "unexpected box"),
    ],
    ids=["empty", "an HTML page", "trailing bytes", "no moov", "a last box sized 0", "junk"],
)
def test_what_is_not_a_whole_mp4_says_why(data: bytes, why: str, tmp_path: Path) -> None:
    with pytest.raises(NotMp4, match=why):
        check_mp4(written(tmp_path, data))


def test_a_64_bit_box_size_is_read(tmp_path: Path) -> None:
    payload = b"\x07" * 64
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    data = MP4[:40] + large
    assert check_mp4(written(tmp_path, data)).types == ("ftyp", "moov", "mdat")
