"""Still and moving summaries of videos: a contact sheet (PNG) and an animated preview.

``contact_sheet`` lays out one row per prompt: its label, then a few frames of each of its
videos, spread from the first frame to the last, so a report shows at a glance how each
prompt's videos move. ``animated_preview`` turns one clip into a small looping WebP that
browsers play as an image, without a video element. Both decode with PyAV
and draw with Pillow; they need the ``sandbox`` extra.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageDraw, ImageFont

try:
    import av
    import numpy as np
except ImportError as error:  # pragma: no cover - same message as wavenb.ab.metrics
    raise ImportError(
        "wavenb.ab.sheets needs PyAV and numpy: pip install 'wavenb[sandbox]'"
    ) from error

__all__ = ["animated_preview", "contact_sheet"]

VideoPath = str | os.PathLike[str]

_LABEL_WIDTH: Final = 220
_PAD: Final = 10
"""Space around rows and between the label and the frames."""
_FRAME_GAP: Final = 2
_VIDEO_GAP: Final = 14
_MIN_THUMB: Final = 24
"""Thumbnails shorter than this show nothing; a sheet that would need them is refused."""
_FONT_SIZE: Final = 15
_BACKGROUND: Final = (255, 255, 255)
_INK: Final = (34, 34, 34)
_RULE: Final = (224, 224, 224)
_MISSING: Final = (236, 236, 236)
_MISSING_RATIO: Final = 16 / 9
"""Shape of the grey box that stands in for a video that failed or is not there."""


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[VideoPath | None]]],
    frames_per_video: int = 4,
    *,
    thumb_height: int = 120,
    max_width: int = 2400,
    max_height: int = 2400,
) -> bytes:
    """Draw a PNG: one row per ``(label, videos)``, ``frames_per_video`` frames of each video.

    Frames are spread evenly from each video's first frame to its last. A ``None`` video (a
    failed cell) is a grey box marked "no video". Thumbnails are ``thumb_height`` pixels high,
    or smaller so that the sheet fits ``max_width`` x ``max_height``.

    Raises:
        ValueError: if ``frames_per_video`` is under 1, there are no rows, or the sheet cannot
            fit with thumbnails at least 24 pixels high.
        FileNotFoundError: if a video path does not exist.
        av.error.FFmpegError: if a video cannot be decoded.

    Examples:
        >>> rows = [("zoom", ["a.mp4", "b.mp4"]), ("walk", ["c.mp4", None])]
        >>> Path("sheet.png").write_bytes(contact_sheet(rows))  # doctest: +SKIP

    """
    if frames_per_video < 1:
        raise ValueError(f"frames_per_video must be at least 1, got {frames_per_video}")
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    strips = [
        [_strip(video, frames_per_video, thumb_height) for video in videos] for _, videos in rows
    ]
    height = _fitting_height(strips, frames_per_video, thumb_height, max_width, max_height)
    row_height = height + 2 * _PAD
    widths = [_row_width(row, frames_per_video, height) for row in strips]
    canvas = _Canvas.blank(max(widths), row_height * len(rows))
    for index, ((label, _videos), row) in enumerate(zip(rows, strips, strict=True)):
        top = index * row_height
        if index:
            canvas.draw.line((0, top, canvas.image.width, top), fill=_RULE)
        canvas.label(label, top, row_height)
        left = _LABEL_WIDTH
        for frames in row:
            left = canvas.strip(
                frames, count=frames_per_video, at=(left, top + _PAD), height=height
            )
            left += _VIDEO_GAP - _FRAME_GAP
    buffer = io.BytesIO()
    canvas.image.save(buffer, format="PNG")
    return buffer.getvalue()


def animated_preview(
    path: VideoPath,
    *,
    width: int = 320,
    fps: float = 8.0,
    seconds: float = 5.0,
) -> bytes:
    """Encode the first ``seconds`` of ``path`` as a looping animated WebP ``width`` pixels wide.

    ``fps`` frames a second are taken (the frame on screen at each moment), scaled with the
    video's aspect ratio. A 5 s 720p clip at the defaults is about 150-300 KB. WebP, not GIF:
    a GIF of the same frames is 5 to 8 times larger (about 1 MB) and has 256 colours.

    Raises:
        ValueError: for a width under 16, a non-positive ``fps`` or ``seconds``, or a file
            without video frames.
        FileNotFoundError: if ``path`` does not exist.
        av.error.FFmpegError: if it cannot be decoded.

    """
    if width < 16 or fps <= 0 or seconds <= 0:  # noqa: PLR2004 - smaller shows nothing
        raise ValueError(f"need width >= 16, fps > 0, seconds > 0; got {width}, {fps}, {seconds}")
    pictures = _timed_frames(path, width, fps, seconds)
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, format="WEBP", save_all=True, append_images=pictures[1:],
        duration=round(1000 / fps), loop=0, quality=60, method=4,
    )  # fmt: skip
    return buffer.getvalue()


# --- frames -------------------------------------------------------------------------------


def _open_video(path: VideoPath) -> av.container.InputContainer:
    if not os.path.exists(path):  # noqa: PTH110 - path may be str or PathLike
        raise FileNotFoundError(path)
    container = av.open(os.fspath(path))
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} has no video stream")
    container.streams.video[0].thread_type = "AUTO"
    return container


def _strip(path: VideoPath | None, count: int, height: int) -> list[Image.Image] | None:
    """``count`` frames of the video spread first to last, or None for no video.

    Frames are kept at most ``height`` pixels high, so a sheet of many videos stays small.
    """
    if path is None:
        return None
    with _open_video(path) as container:
        stream = container.streams.video[0]
        size = _fit_height((stream.width, stream.height), height)
        # Unknown length (no count in the header): keep every frame, choose afterwards.
        wanted = _spread(stream.frames, count) if stream.frames else None
        kept: dict[int, Image.Image] = {}
        for index, frame in enumerate(container.decode(stream)):
            if wanted is None or index in wanted:
                kept[index] = _picture(frame.reformat(width=size[0], height=size[1]))
    if not kept:
        raise ValueError(f"{path} has no frame")
    # A file shorter than its header says: the last frame decoded stands in for the rest.
    return [kept[max(k for k in kept if k <= i)] for i in (wanted or _spread(len(kept), count))]


def _spread(total: int, count: int) -> list[int]:
    """``count`` frame indices from the first to the last of ``total`` (repeats if few)."""
    return [int(i) for i in np.linspace(0, total - 1, count).round()]


def _timed_frames(path: VideoPath, width: int, fps: float, seconds: float) -> list[Image.Image]:
    """The frame on screen at each 1 / fps step of the first ``seconds``, ``width`` wide."""
    pictures: list[Image.Image] = []
    with _open_video(path) as container:
        stream = container.streams.video[0]
        height = max(2, round(width * stream.height / stream.width / 2) * 2)  # even, for x264
        rate = float(stream.average_rate or 24)
        steps = math.ceil(seconds * fps - 1e-9)
        shown: Image.Image | None = None  # the frame on screen before the current one starts
        start = 0.0
        for index, frame in enumerate(container.decode(stream)):
            start = float(frame.time) if frame.time is not None else index / rate
            while (
                shown is not None and len(pictures) < steps and len(pictures) / fps < start - 1e-6
            ):
                pictures.append(shown)
            if len(pictures) >= steps:
                break
            shown = _picture(frame.reformat(width=width, height=height))
        # The last frame stays on screen for one frame's time.
        while (
            shown is not None
            and len(pictures) < steps
            and len(pictures) / fps < start + 1 / rate - 1e-6
        ):
            pictures.append(shown)
    if not pictures:
        raise ValueError(f"{path} has no frame")
    return pictures


def _picture(frame: av.VideoFrame) -> Image.Image:
    return Image.fromarray(frame.to_ndarray(format="rgb24"))


def _fit_height(size: tuple[int, int], height: int) -> tuple[int, int]:
    """``size`` scaled down (never up) to at most ``height`` pixels high."""
    width, tall = size
    if tall <= height:
        return size
    return max(1, round(width * height / tall)), height


# --- drawing ------------------------------------------------------------------------------


def _aspect(frames: list[Image.Image] | None) -> float:
    return _MISSING_RATIO if not frames else frames[0].width / frames[0].height


def _row_width(row: list[list[Image.Image] | None], count: int, height: int) -> int:
    thumbs = sum(count * round(height * _aspect(frames)) for frames in row)
    gaps = sum((count - 1) * _FRAME_GAP + _VIDEO_GAP for _ in row)
    return _LABEL_WIDTH + thumbs + gaps + _PAD


def _fitting_height(
    strips: list[list[list[Image.Image] | None]],
    count: int,
    wanted: int,
    max_width: int,
    max_height: int,
) -> int:
    """The tallest thumbnail height, up to ``wanted``, at which the sheet fits the bounds."""
    by_width = min(
        (max_width - _row_width(row, count, 0)) / sum(count * _aspect(f) for f in row)
        if row
        else wanted
        for row in strips
    )
    by_height = max_height / len(strips) - 2 * _PAD
    height = int(min(wanted, by_width, by_height))
    if height < _MIN_THUMB:
        raise ValueError(
            f"{len(strips)} rows of up to {max(map(len, strips))} videos do not fit "
            f"{max_width}x{max_height} with readable thumbnails: raise the bounds or split it"
        )
    return height


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The labels' font: DejaVu Sans where the system has it, else Pillow's own.

    Pillow's font draws basic Latin only (a dash or an accent becomes a box); DejaVu covers
    most scripts people write prompts in.
    """
    try:
        return ImageFont.truetype("DejaVuSans.ttf", _FONT_SIZE)
    except OSError:
        return ImageFont.load_default(size=_FONT_SIZE)


@dataclass(frozen=True, slots=True)
class _Canvas:
    """The sheet being drawn, with its pen and font."""

    image: Image.Image
    draw: ImageDraw.ImageDraw
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont

    @classmethod
    def blank(cls, width: int, height: int) -> _Canvas:
        image = Image.new("RGB", (width, height), _BACKGROUND)
        return cls(image, ImageDraw.Draw(image), _font())

    def label(self, text: str, top: int, row_height: int) -> None:
        """Draw ``text`` wrapped to the label column, as many lines as the row holds.

        Lines break between words, measured in pixels; a word wider than the column is cut,
        and text past the last line that fits ends in "…".
        """
        width, line_height = _LABEL_WIDTH - 2 * _PAD, _FONT_SIZE + 4
        fits = max(1, (row_height - 2 * _PAD) // line_height)
        lines: list[str] = []
        for word in text.split():
            joined = f"{lines[-1]} {word}" if lines else word
            if lines and self.font.getlength(joined) <= width:
                lines[-1] = joined
            else:
                lines.append(word)
        for number, line in enumerate(lines[:fits]):
            last = number == fits - 1 and len(lines) > fits
            self.draw.text(
                (_PAD, top + _PAD + number * line_height),
                self._cut(line + "…" if last else line, width),
                fill=_INK,
                font=self.font,
            )

    def _cut(self, line: str, width: int) -> str:
        """``line``, shortened to ``width`` pixels with a closing "…" if it is wider."""
        if self.font.getlength(line) <= width:
            return line
        while line and self.font.getlength(line + "…") > width:
            line = line[:-1]
        return line + "…"

    def strip(
        self, frames: list[Image.Image] | None, *, count: int, at: tuple[int, int], height: int
    ) -> int:
        """Paste one video's frames at ``at``; return the x just past the last one."""
        left, top = at
        width = round(height * _aspect(frames))
        if frames is None:
            span = count * width + (count - 1) * _FRAME_GAP
            self.draw.rectangle((left, top, left + span - 1, top + height - 1), fill=_MISSING)
            middle = (left + _PAD, top + height // 2 - _FONT_SIZE // 2)
            self.draw.text(middle, "no video", fill=_INK, font=self.font)
            return left + span + _FRAME_GAP
        for frame in frames:
            thumb = frame.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=2.0)
            self.image.paste(thumb, (left, top))
            left += width + _FRAME_GAP
        return left
