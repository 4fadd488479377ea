"""Render the sandbox's video: the source image filmed by a virtual camera.

``render_video`` writes a real H.264 MP4 shaped like Gen4 Turbo's output (the size of the
chosen aspect ratio, 24 fps, 5 s by default) whose frames are moving crops of the source image,
following a ``wavenb.sandbox._motion.CameraMotion``.

How a frame is made:

1. Once per clip, the source is made upright (EXIF orientation) and plain 8-bit RGB (alpha
   composited on white, 16-bit and float greys scaled down, not clipped), shrunk so that the
   most zoomed-in crop still has about 1.25 source pixels per output pixel, and converted to
   BT.709 limited-range Y'CbCr planes, chroma at half resolution.
2. The camera path gives a float crop box per frame: the largest centred crop of the output's
   ratio ("cover"), scaled by the zoom and moved by the pan and tilt, eased by smoothstep.
   When the move needs room (a pan, a zoom out), the base crop starts zoomed in just enough
   that every box of the clip stays inside the image: no borders, no jumps at the edges.
3. Each frame is one bilinear ``Image.resize(size, box=...)`` of that float box per plane,
   straight to the 4:2:0 sizes, so motion is sub-pixel smooth. The SANDBOX mark is blended
   into the planes (``wavenb.sandbox._label``). The stream is tagged BT.709.

Frames are made in one worker thread a few frames ahead of the encoder (Pillow releases the
GIL while resizing), so memory stays bounded whatever the length; x264 encodes on one thread.
Those two threads are the whole render: a 5 s 1280x720 clip takes about 1.05 s and 1.47
CPU-seconds on two cores, so one render alone keeps about 1.4 of them busy, and renders in
worker processes side by side (``wavenb.sandbox._pool``) fill the cores without
oversubscribing them. The file is written beside the target and renamed into place, so a
reader never sees a half-written video.
"""

from __future__ import annotations

import collections
import math
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
from PIL import Image, ImageOps

from wavenb.core.types import OUTPUT_SIZES, AspectRatio, closest_ratio
from wavenb.sandbox._label import Label
from wavenb.sandbox._motion import CameraMotion, Easing

__all__ = ["RenderInfo", "VideoProbe", "closest_ratio", "probe_video", "render_video"]

_Box = tuple[float, float, float, float]

_OVERSAMPLE: Final = 1.25
"""Source pixels per output pixel at the most zoomed-in frame after the one-time shrink.

Above 1 keeps detail at the tightest crop; much above it only makes every resize slower.
"""
_AHEAD: Final = 6
"""Frames made ahead of the encoder: enough to keep it fed, few enough to bound memory."""
_WHITE_8: Final = 255.0
_WHITE_16: Final = 65535.0
_BACKGROUND: Final = (255, 255, 255)
"""What transparent pixels become: video has no alpha, and cut-outs usually sit on white."""

_ENCODER_OPTIONS: Final = {
    # Frames, not x264, set the pace (x264 runs on the other core), so a slower preset is
    # almost free: on 2 cores veryfast took ~0.1 s longer than superfast for a 5 s 720p clip
    # and wrote a file 2.5x smaller (3.4x smaller than superfast + tune=zerolatency).
    "preset": "veryfast",
    "crf": "23",
    # One x264 thread beside the frame thread. PyAV's default, slice threads (one per CPU),
    # made a render alone no quicker (1.03 s against 1.05 s) for 6 % more CPU (1.57 CPU-s
    # against 1.47), and 8 renders at once on 2 cores took 6.55 s against 6.3 s
    # (bench/sandbox_throughput.py). One thread also writes a 4 % smaller file.
    "threads": "1",
}

# libavutil's colour enums (AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic,
# AVColorRange): tag the stream BT.709 limited range, matching the conversion below, so
# browsers and PyAV decode the colours we encoded.
_BT709: Final = 1
_LIMITED_RANGE: Final = 1

_KR: Final = 0.2126
_KB: Final = 0.0722
_KG: Final = 1.0 - _KR - _KB
_Y_SCALE: Final = 219.0 / 255.0
_CB_SCALE: Final = (224.0 / 255.0) / (2.0 * (1.0 - _KB))
_CR_SCALE: Final = (224.0 / 255.0) / (2.0 * (1.0 - _KR))
_TO_BT709: Final = (
    *(_KR * _Y_SCALE, _KG * _Y_SCALE, _KB * _Y_SCALE, 16.0),
    *(-_KR * _CB_SCALE, -_KG * _CB_SCALE, (1.0 - _KB) * _CB_SCALE, 128.0),
    *((1.0 - _KR) * _CR_SCALE, -_KG * _CR_SCALE, -_KB * _CR_SCALE, 128.0),
)
"""R'G'B' (0..255) to BT.709 limited-range Y'CbCr, as Pillow's 12-number convert matrix."""
_BILINEAR: Final = Image.Resampling.BILINEAR


@dataclass(frozen=True, slots=True)
class RenderInfo:
    """What ``render_video`` wrote."""

    path: Path
    """The MP4 file."""
    width: int
    height: int
    fps: int
    frames: int
    duration: float
    """Seconds of video: ``frames / fps``."""
    seconds: float
    """Wall-clock seconds the render took."""
    motion: CameraMotion
    """The camera move that was played."""
    aspect_ratio: AspectRatio
    """The ratio rendered: the one asked for, or the closest to the source."""


@dataclass(frozen=True, slots=True)
class VideoProbe:
    """A video file's main facts, read from its headers without decoding."""

    codec: str
    """Codec name as FFmpeg says it, e.g. ``"h264"``."""
    width: int
    height: int
    fps: float
    duration: float
    """Seconds."""
    frames: int
    pix_fmt: str
    """Pixel format, e.g. ``"yuv420p"``."""


def render_video(
    image: Image.Image,
    motion: CameraMotion,
    path: Path | str,
    *,
    aspect_ratio: AspectRatio | None = None,
    fps: int = 24,
    duration: float = 5.0,
) -> RenderInfo:
    """Film ``image`` with the camera ``motion`` and write an H.264 MP4 to ``path``.

    The video has ``round(fps * duration)`` frames at the size of ``aspect_ratio`` (by
    default the ratio closest to the image's), is yuv420p with the index at the front
    (``+faststart``, so it streams), and replaces ``path`` atomically. The same inputs give
    the same frames; the bytes may differ between x264 builds or settings (compare pixels,
    never hashes). Every frame carries the SANDBOX mark in its top-right corner
    (``wavenb.sandbox._label``).

    Raises:
        ValueError: for an unknown ratio, a non-positive ``fps``, a duration under one frame,
            or an empty image.
        OSError: if ``path``'s folder does not exist or is not writable.

    Examples:
        >>> info = render_video(Image.open("cat.jpg"), parse_motion("slow pan left"),
        ...                     Path("cat.mp4"))  # doctest: +SKIP
        >>> info.width, info.height, info.frames  # doctest: +SKIP
        (1280, 720, 120)

    """
    started = time.perf_counter()
    if aspect_ratio is not None and aspect_ratio not in OUTPUT_SIZES:
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = round(fps * duration) if math.isfinite(duration) else 0
    if frames < 1:
        raise ValueError(f"duration {duration} s is less than one frame at {fps} fps")

    source = _plain_rgb(image)
    ratio = aspect_ratio or closest_ratio(*source.size)
    size = OUTPUT_SIZES[ratio]
    source = _preshrink(source, size, motion)
    camera = _CameraPath.plan(source.size, size, motion)
    planes = _Planes.of(source)

    path = Path(path)
    # Beside the target, so the final rename stays on one file system (atomic); a real
    # file, because +faststart rewrites it in place.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".mp4")
    os.close(fd)
    temp = Path(temp_name)
    try:
        _encode(planes, camera, size=size, fps=fps, frames=frames, filename=temp_name)
        temp.chmod(0o644)  # mkstemp's 0600 would hide the video from a web server
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return RenderInfo(
        path=path,
        width=size[0],
        height=size[1],
        fps=fps,
        frames=frames,
        duration=frames / fps,
        seconds=time.perf_counter() - started,
        motion=motion,
        aspect_ratio=ratio,
    )


def probe_video(path: Path | str) -> VideoProbe:
    """Read a video file's codec, size, frame rate, duration and frame count.

    Reads headers only (a few milliseconds). Uses the first video stream.

    Raises:
        ValueError: if the file has no video stream.
        av.error.FFmpegError: if FFmpeg cannot read the file (e.g. ``InvalidDataError``).
        OSError: if the file cannot be opened.

    """
    with av.open(os.fspath(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        rate = stream.average_rate or stream.guessed_rate
        return VideoProbe(
            codec=context.name,
            width=context.width,
            height=context.height,
            fps=float(rate) if rate else 0.0,
            duration=duration,
            frames=stream.frames,
            pix_fmt=context.pix_fmt or "",
        )


# --- the source picture --------------------------------------------------------------------


def _plain_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` upright, in 8-bit RGB, without touching the caller's image.

    Raises:
        ValueError: if the image is empty.

    """
    if image.width <= 0 or image.height <= 0:
        raise ValueError(f"image is empty ({image.width}x{image.height})")
    picture = ImageOps.exif_transpose(image)  # always a new image; the caller's is untouched
    if picture.mode in {"I", "F"} or picture.mode.startswith("I;16"):
        picture = _deep_to_grey(picture)
    if picture.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return picture if picture.mode == "RGB" else picture.convert("RGB")


def _deep_to_grey(picture: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float greyscale picture to 8-bit ``L``.

    Pillow's own conversion clips these to 0..255, turning most 16-bit pictures white.
    Integers above 255 are taken as 16-bit; floats up to 1.0 as 0..1.
    """
    values = np.asarray(picture).astype(np.float64)
    peak = float(values.max()) if values.size else 0.0
    if picture.mode == "F":
        scale = _WHITE_8 if peak <= 1.0 else 1.0
    else:
        scale = _WHITE_8 / _WHITE_16 if peak > _WHITE_8 else 1.0
    grey = np.clip(np.rint(values * scale), 0, _WHITE_8).astype(np.uint8)
    return Image.fromarray(grey, mode="L")


def _preshrink(source: Image.Image, size: tuple[int, int], motion: CameraMotion) -> Image.Image:
    """Shrink ``source`` once so the tightest crop of the clip is about 1.25 times the output.

    Every frame then resizes from a picture barely larger than itself, which keeps the
    per-frame cost low; a source that is already small is kept as it is (frames upscale).
    """
    tightest = _CameraPath.plan(source.size, size, motion).tightest_width
    scale = _OVERSAMPLE * size[0] / tightest
    if scale >= 1.0:
        return source
    shrunk = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
    # reducing_gap: a fast integer box reduction first, then Lanczos for the last step.
    return source.resize(shrunk, Image.Resampling.LANCZOS, reducing_gap=3.0)


# --- the camera path -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CameraPath:
    """Where the camera looks at each moment, as a float crop box on the source.

    At progress ``e`` (eased, 0 → 1) the magnification is ``(1 + zoom) ** e`` (a constant
    rate of zoom looks even to the eye), and the centre has moved ``e - 1/2`` of the
    travel from the image centre, so the path is centred on the picture.
    """

    image: tuple[int, int]
    base: tuple[float, float]
    """Crop size at magnification 1 (the first frame's view, unless zooming out)."""
    end_zoom: float
    """Magnification at the end relative to the start: ``1 + motion.zoom``."""
    travel: tuple[float, float]
    """Source pixels the centre moves over the clip (x right, y down)."""
    easing: Easing

    @classmethod
    def plan(
        cls, image: tuple[int, int], size: tuple[int, int], motion: CameraMotion
    ) -> _CameraPath:
        """Fit the largest path for ``motion`` inside an ``image`` filmed at ``size``."""
        width, height = image
        ratio = size[0] / size[1]
        # The cover crop: the largest box of the output ratio that fits the image.
        cover = (width, width / ratio) if width / height < ratio else (height * ratio, height)
        if motion.is_static:
            return cls(image, cover, 1.0, (0.0, 0.0), motion.easing)
        end_zoom = 1.0 + motion.zoom
        widest = max(1.0, 1.0 / end_zoom)  # crop size at the widest moment, per base size
        # The widest crop sits at one end of the travel, so half of it plus half the travel
        # must fit in half the image, on each axis. Shrink the base crop until it does.
        fit = min(
            1.0,
            width / (cover[0] * (widest + abs(motion.pan))),
            height / (cover[1] * (widest + abs(motion.tilt))),
        )
        base = (cover[0] * fit, cover[1] * fit)
        travel = (motion.pan * base[0], -motion.tilt * base[1])
        return cls(image, base, end_zoom, travel, motion.easing)

    @property
    def tightest_width(self) -> float:
        """Width of the smallest crop of the clip, in source pixels."""
        return self.base[0] / max(1.0, self.end_zoom)

    def box(self, t: float) -> _Box:
        """The crop box at time ``t`` of the clip (0 = first frame, 1 = last)."""
        e = t if self.easing == "linear" else t * t * (3.0 - 2.0 * t)  # smoothstep
        magnification = self.end_zoom**e
        width = min(self.base[0] / magnification, float(self.image[0]))
        height = min(self.base[1] / magnification, float(self.image[1]))
        centre_x = self.image[0] / 2 + self.travel[0] * (e - 0.5)
        centre_y = self.image[1] / 2 + self.travel[1] * (e - 0.5)
        # Clamping only absorbs float rounding: plan() already made the path fit.
        left = min(max(centre_x - width / 2, 0.0), self.image[0] - width)
        top = min(max(centre_y - height / 2, 0.0), self.image[1] - height)
        return (left, top, left + width, top + height)


# --- colour and frames ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Planes:
    """The source as BT.709 limited-range Y'CbCr planes, chroma at half resolution.

    Resizing Y, Cb and Cr separately (chroma straight to its 4:2:0 size) is about twice as
    fast as resizing RGB and converting every frame, and gives the same picture: the
    conversion is linear, so it commutes with the bilinear filter.
    """

    luma: Image.Image
    blue: Image.Image
    red: Image.Image

    @classmethod
    def of(cls, rgb: Image.Image) -> _Planes:
        """Convert an RGB picture once, before the first frame."""
        # Pillow applies the matrix in C, rounding and clipping each band to 0..255.
        luma, blue, red = rgb.convert("RGB", matrix=_TO_BT709).split()
        half = (max(1, rgb.width // 2), max(1, rgb.height // 2))
        return cls(
            luma=luma,
            blue=blue.resize(half, Image.Resampling.BOX),
            red=red.resize(half, Image.Resampling.BOX),
        )

    def frame(self, size: tuple[int, int], box: _Box, label: Label | None = None) -> av.VideoFrame:
        """Cut ``box`` (luma coordinates) out of the planes at ``size`` as a yuv420p frame.

        ``label``, when given, is blended in (the SANDBOX mark).
        """
        width, height = size
        scale_x = self.blue.width / self.luma.width
        scale_y = self.blue.height / self.luma.height
        chroma_box = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
        chroma_size = (width // 2, height // 2)
        # PyAV's yuv420p array: the Y rows, then U and V each folded into rows of full width.
        quarter = height // 4
        buffer = np.empty((height + 2 * quarter, width), dtype=np.uint8)
        buffer[:height] = np.asarray(self.luma.resize(size, _BILINEAR, box=box))
        if label is not None:
            label.blend_luma(buffer[:height])
        for offset, plane in ((height, self.blue), (height + quarter, self.red)):
            chroma = plane.resize(chroma_size, _BILINEAR, box=chroma_box)
            # The folded rows are contiguous: viewed at the chroma plane's shape, they are it.
            folded = buffer[offset : offset + quarter].reshape(chroma_size[1], chroma_size[0])
            folded[...] = np.asarray(chroma)
            if label is not None:
                label.blend_chroma(folded)
        frame = av.VideoFrame.from_ndarray(buffer, format="yuv420p")
        frame.colorspace = frame.color_primaries = frame.color_trc = _BT709
        frame.color_range = _LIMITED_RANGE
        return frame


# --- encoding ------------------------------------------------------------------------------


def _encode(
    planes: _Planes,
    camera: _CameraPath,
    *,
    size: tuple[int, int],
    fps: int,
    frames: int,
    filename: str,
) -> None:
    """Encode the clip to ``filename``, making frames on a worker thread meanwhile."""
    label = Label.for_size(size)

    def make(index: int) -> av.VideoFrame:
        t = index / (frames - 1) if frames > 1 else 0.0
        frame = planes.frame(size, camera.box(t), label)
        frame.pts = index
        return frame

    with av.open(filename, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options=dict(_ENCODER_OPTIONS))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = _BT709
        context.color_range = _LIMITED_RANGE

        # A sliding window of futures: the worker stays _AHEAD frames in front of the
        # encoder and no further, and its errors surface here, in order, from result().
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wavenb-render")
        try:
            ahead: collections.deque[Future[av.VideoFrame]] = collections.deque(
                pool.submit(make, index) for index in range(min(_AHEAD, frames))
            )
            for index in range(frames):
                frame = ahead.popleft().result()
                if index + _AHEAD < frames:
                    ahead.append(pool.submit(make, index + _AHEAD))
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
