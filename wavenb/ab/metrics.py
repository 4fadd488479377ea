"""Measure a generated video from its pixels: camera move, fidelity, flicker, sharpness.

``measure`` decodes an MP4 once (PyAV, threaded; numpy) into ``VideoMetrics``. The
camera move comes from the frames; the prompt only says what was asked for. Needs the
``sandbox`` extra.

How the camera move is measured: up to 12 frames spread over the clip are shrunk to about
320 pixels (luma). Between neighbouring samples, phase correlation of the whole pictures gives
a first shift; then, four rounds: the later picture is warped back by the motion fitted so far,
a grid of 32-pixel blocks (6 % in from the border) is matched by phase correlation, and a
similarity transform (shift, scale, roll) is fitted to the block motions by least squares,
without blocks that match badly or sit over 3 robust standard deviations off the fit (a
burned-in label, a walking subject). The steps add up to the clip's travel, log zoom and roll.
Each part's *edge travel* (how far a point at the frame's edge moves: the travel, half the log
zoom, half the roll) names the move: all under 2 % of the frame is ``static``; roll is
``orbit``; zoom is ``zoom_*``; lateral travel is ``pan_*`` / ``tilt_*``, but a horizontal
travel that pushes in by about 5 % (log zoom 0.035 to 0.065 over the clip) is ``orbit``, as the
sandbox renders orbits. That is also a pan creeping closer, so a pan pushing in slightly (log
zoom 0.02 to 0.08) matches a prompt asking for either (``wavenb.ab.intent.readings``). A real
orbit's parallax fits no single transform; the fit follows the larger part of the frame
(usually the background) and may call it a pan.

Signs: the camera's motion, not the content's. ``motion_dx > 0`` is the camera panning right
(content slides left), ``motion_dy > 0`` tilting up (content slides down), ``motion_zoom > 0``
zooming in (content grows), ``motion_rotation > 0`` rolling counter-clockwise (content turns
clockwise on screen).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from PIL import Image, ImageOps

from wavenb.ab.intent import CAMERA_MOVES, CameraMove, name_move, readings, requested_moves

try:
    import av
    import numpy as np
    import numpy.typing as npt
except ImportError as error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "wavenb.ab.metrics needs PyAV and numpy: pip install 'wavenb[sandbox]'"
    ) from error

__all__ = ["SourceImage", "VideoMetrics", "measure", "measure_async", "measure_cached"]

SourceImage = bytes | str | os.PathLike[str] | Image.Image
"""A source image: encoded bytes, a file path, or a Pillow image."""

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]

_WORK_SIDE: Final = 320  # long side of the frames motion is measured on
_MOTION_SAMPLES: Final = 12
_SHARPNESS_SAMPLES: Final = 6
_BLOCK, _BLOCK_STEP, _MARGIN = 32, 24, 0.06  # block size and spacing, border share left out
_MIN_PEAK: Final = 0.1  # a lower correlation peak: too little texture to follow
_MIN_BLOCKS: Final = 6
_FIT_ROUNDS: Final = 4
_FLICKER_WINDOW_S: Final = 0.3
_SSIM_WINDOW: Final = 7
_SSIM_C1, _SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_FULL_RANGE: Final = 2  # libavutil's AVCOL_RANGE_JPEG: luma spans 0..255
_BT601: Final = frozenset({5, 6})  # libavutil colour spaces BT470BG, SMPTE170M
_YUV_FORMATS: Final = ("yuv", "nv", "gray")  # pixel formats whose first plane is luma
_BILINEAR: Final = Image.Resampling.BILINEAR
_CACHE_FORMAT, _CACHE_VERSION = "wavenb.metrics", 2  # 2: a pan pushing in 2-3 % is no orbit
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
# Fields that depend on more than the video; the cache keeps the others.
_NOT_PIXELS: Final = frozenset({"motion_match", "requested", "first_frame_ssim"})


@dataclass(frozen=True, slots=True)
class VideoMetrics:
    """What ``measure`` read from one video's pixels."""

    camera_move: CameraMove
    """The dominant global camera move (see the module docstring for how it is decided)."""
    motion_dx: float
    """Camera pan per second, in frame widths; positive is to the right."""
    motion_dy: float
    """Camera tilt per second, in frame heights; positive is up."""
    motion_zoom: float
    """Log scale change per second; positive zooms in (``exp(zoom * seconds)`` times larger)."""
    motion_rotation: float
    """Camera roll in radians per second; positive is counter-clockwise."""
    motion_magnitude: float
    """How fast a point at the frame's edge moves, in frames per second:
    ``hypot(dx, dy, zoom / 2, rotation / 2)``."""
    motion_match: bool | None
    """Whether ``camera_move`` is one the prompt asked for; ``None`` when it asked for none. A
    horizontal travel with a slight push-in matches a pan or an orbit (module docstring)."""
    requested: tuple[CameraMove, ...]
    """The moves the prompt asked for (``wavenb.ab.intent.requested_moves``)."""
    first_frame_ssim: float | None
    """SSIM (0..1) of the first frame to the source image cover-cropped to the video's size:
    luma, both downsampled by ``round(min(w, h) / 256)`` (as Wang et al. advise), 7x7 box
    window, mean over the frame; ``None`` without a source."""
    flicker: float
    """RMS of the per-frame mean luma (0..255) around its 0.3 s moving average: 0 is steady,
    about 1 is visible, 3 and more is obvious."""
    sharpness: float
    """Variance of the 4-neighbour Laplacian of luma (0..255) at full size, mean over six
    frames; compare clips of one size only."""
    width: int
    height: int
    fps: float
    duration: float
    """Seconds."""
    frames: int
    """Frames decoded."""

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``requested`` as a list)."""
        data = dataclasses.asdict(self)
        data["requested"] = list(self.requested)
        return data

    def badge(self) -> str:
        """A short line for a grid cell: ``"pan right ✓ · SSIM 0.93 · flicker 0.2"``."""
        mark = {True: " ✓", False: " ✗", None: ""}[self.motion_match]
        parts = [self.camera_move.replace("_", " ") + mark]
        if self.first_frame_ssim is not None:
            parts.append(f"SSIM {self.first_frame_ssim:.2f}")
        parts.append(f"flicker {self.flicker:.1f}")
        return " · ".join(parts)


_PIXEL_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(VideoMetrics)) - _NOT_PIXELS


def measure(
    path: str | os.PathLike[str],
    *,
    source: SourceImage | None = None,
    prompt: str | None = None,
) -> VideoMetrics:
    """Measure the video at ``path``; ``source`` adds first-frame SSIM, ``prompt`` the match.

    About 0.35 s of CPU for a 5 s 1280x720 clip (``bench/metrics_bench.py``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file has no video stream or no frame.
        av.error.FFmpegError: if FFmpeg cannot read it.
        PIL.UnidentifiedImageError: if ``source`` is not an image Pillow reads.

    Examples:
        >>> m = measure("out/demo.mp4", prompt="pan right")  # doctest: +SKIP
        >>> m.camera_move, m.motion_match  # doctest: +SKIP
        ('pan_right', True)

    """
    pixels, first = _scan(Path(path))
    ssim = None if source is None else _first_frame_ssim(first, source)
    return _assemble(pixels, ssim, prompt)


def measure_cached(
    path: str | os.PathLike[str],
    sha256: str,
    cache_dir: str | os.PathLike[str],
    *,
    source: SourceImage | None = None,
    prompt: str | None = None,
) -> VideoMetrics:
    """``measure``, remembered in ``cache_dir/<sha256>.json`` (e.g. ``<data dir>/metrics``).

    ``sha256`` is the video's digest as the journal has it (trusted, not recomputed). The file
    keeps the pixel measures and one SSIM per source image digest; the prompt's match is
    recomputed every time (it costs nothing). An unreadable or older cache file is measured
    again and replaced; writes are atomic renames, so two kernels may share the folder.

    Raises:
        ValueError: if ``sha256`` is not 64 lowercase hex digits; otherwise as ``measure``.
        OSError: if the cache folder cannot be created or written.

    """
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
    file = Path(cache_dir) / f"{sha256}.json"
    pixels, ssims = _read_cache(file)
    digest = None if source is None else _source_digest(source)
    if pixels is None or (digest is not None and digest not in ssims):
        pixels, first = _scan(Path(path))  # a new source for a known video is rare: decode again
        if source is not None and digest is not None:
            ssims[digest] = _first_frame_ssim(first, source)
        _write_cache(file, pixels, ssims)
    return _assemble(pixels, None if digest is None else ssims[digest], prompt)


async def measure_async(
    path: str | os.PathLike[str],
    *,
    source: SourceImage | None = None,
    prompt: str | None = None,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> VideoMetrics:
    """Measure on a worker thread, so the event loop (a kernel's) stays free.

    Runs ``measure``, or ``measure_cached`` given ``sha256`` and ``cache_dir``.

    Raises:
        ValueError: if only one of ``sha256`` and ``cache_dir`` is given; else as they do.
    """
    if (sha256 is None) != (cache_dir is None):
        raise ValueError("give both sha256 and cache_dir, or neither")
    if sha256 is not None and cache_dir is not None:
        return await asyncio.to_thread(
            measure_cached, path, sha256, cache_dir, source=source, prompt=prompt
        )
    return await asyncio.to_thread(measure, path, source=source, prompt=prompt)


def _assemble(pixels: VideoMetrics, ssim: float | None, prompt: str | None) -> VideoMetrics:
    asked = requested_moves(prompt) if prompt is not None else frozenset[CameraMove]()
    return dataclasses.replace(
        pixels,
        motion_match=bool(_answers_to(pixels) & asked) if asked else None,
        requested=tuple(move for move in CAMERA_MOVES if move in asked),
        first_frame_ssim=ssim,
    )


def _answers_to(pixels: VideoMetrics) -> frozenset[CameraMove]:
    """``camera_move`` and the other labels it answers to (``intent.readings``)."""
    span = (pixels.frames - 1) / pixels.fps if pixels.fps else 0.0  # first frame to last
    rates = (pixels.motion_dx, pixels.motion_dy, pixels.motion_zoom, pixels.motion_rotation)
    # Only the static threshold depends on the span's length: never let a rounding add "static".
    return frozenset({pixels.camera_move}) | (
        readings(*(rate * span for rate in rates)) - {"static"}
    )


# --- decoding -----------------------------------------------------------------------------


def _scan(path: Path) -> tuple[VideoMetrics, _First]:
    """Decode ``path`` once: the measures of its pixels alone, and its first frame."""
    if not path.exists():
        raise FileNotFoundError(path)
    means: list[float] = []
    samples: list[_F32] = []
    times: list[float] = []
    sharpness: list[float] = []
    first: _First | None = None
    with av.open(os.fspath(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: about 2x on two cores
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        expected = stream.frames or round((container.duration or 0) / av.time_base * fps)
        # Without a frame count in the header, the first frames stand in for a spread.
        motion_at = _spread(expected, _MOTION_SAMPLES) or frozenset(range(_MOTION_SAMPLES))
        sharp_at = _spread(expected, _SHARPNESS_SAMPLES) or frozenset({0})
        for index, frame in enumerate(container.decode(stream)):
            luma = _luma_plane(frame)
            means.append(float(luma[::4, ::4].mean()))
            if first is None:
                first = _first_of(frame, luma)
            if index in motion_at:
                samples.append(_shrink(luma))
                times.append(float(frame.time) if frame.time is not None else index / fps)
            if index in sharp_at:
                sharpness.append(_laplacian_variance(luma))
    if first is None:
        raise ValueError(f"{path} has no frame")
    dx, dy, zoom, roll = _camera_rates(samples, times)
    span = times[-1] - times[0]
    return (
        VideoMetrics(
            camera_move=name_move(dx * span, dy * span, zoom * span, roll * span),
            motion_dx=dx,
            motion_dy=dy,
            motion_zoom=zoom,
            motion_rotation=roll,
            motion_magnitude=math.hypot(dx, dy, zoom / 2, roll / 2),
            motion_match=None,
            requested=(),
            first_frame_ssim=None,
            flicker=_flicker(np.asarray(means) * first.step, fps),
            sharpness=float(np.mean(sharpness)) * first.step**2,
            width=first.luma.shape[1],
            height=first.luma.shape[0],
            fps=fps,
            duration=len(means) / fps if fps else 0.0,
            frames=len(means),
        ),
        first,
    )


class _First(NamedTuple):
    """A video's first frame as SSIM needs it."""

    luma: _F32  # full range, 0..255
    weights: tuple[float, float, float]  # R, G, B weights of its luma
    step: float  # full-range steps per stream luma step


def _first_of(frame: av.VideoFrame, luma: npt.NDArray[np.uint8]) -> _First:
    """Read a frame's luma as tagged: limited range unless full, BT.709 unless BT.601."""
    values, step = luma.astype(np.float32), 1.0
    if frame.color_range != _FULL_RANGE:
        step = 255.0 / 219.0
        values = np.clip((values - 16.0) * np.float32(step), 0.0, 255.0, dtype=np.float32)
    bt601 = frame.colorspace in _BT601
    return _First(values, (0.299, 0.587, 0.114) if bt601 else (0.2126, 0.7152, 0.0722), step)


def _spread(count: int, samples: int) -> frozenset[int]:
    """``samples`` frame indices spread evenly from the first frame to the last."""
    if count <= 0:
        return frozenset()
    return frozenset(np.linspace(0, count - 1, min(count, samples)).round().astype(int).tolist())


def _luma_plane(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame's Y plane as a (height, width) view, without copying."""
    if not frame.format.name.startswith(_YUV_FORMATS):
        frame = frame.reformat(format="gray")
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height, : frame.width]


def _shrink(luma: npt.NDArray[np.uint8]) -> _F32:
    """Luma box-averaged down to about ``_WORK_SIDE`` on the long side, sides even."""
    small = np.asarray(Image.fromarray(luma).reduce(max(1, max(luma.shape) // _WORK_SIDE)))
    return small[: small.shape[0] // 2 * 2, : small.shape[1] // 2 * 2].astype(np.float32)


# --- camera motion ------------------------------------------------------------------------


def _camera_rates(samples: list[_F32], times: list[float]) -> tuple[float, float, float, float]:
    """Camera pan, tilt (frames per second), zoom (log per second), roll (rad per second)."""
    span, travel = (times[-1] - times[0] if times else 0.0), np.zeros(4)
    for before, after in itertools.pairwise(samples):
        shift_x, shift_y, log_scale, roll = _similarity(before, after)
        # Content sliding left is the camera going right; sliding down, the camera going up.
        travel += (-shift_x / before.shape[1], shift_y / before.shape[0], log_scale, roll)
    dx, dy, zoom, rotation = (float(value) / span if span > 0 else 0.0 for value in travel)
    return dx, dy, zoom, rotation


def _similarity(before: _F32, after: _F32) -> tuple[float, float, float, float]:
    """How content moved from ``before`` to ``after``, fitted to block motions.

    Returns shift x, y (pixels, right and down), log scale and clockwise turn (radians).
    Falls back to the global shift alone when too few blocks have texture to follow.
    """
    height, width = before.shape
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    spectra = _spectra(np.stack([before, after]), window)
    global_x, global_y, _ = _peaks(_correlation(spectra[:1], spectra[1:]))
    params = np.array([0.0, 0.0, global_x[0], global_y[0]])  # a, b, tx, ty (see _predict)
    margin_x, margin_y = int(width * _MARGIN), int(height * _MARGIN)
    xs = np.arange(margin_x, width - margin_x - _BLOCK + 1, _BLOCK_STEP)
    ys = np.arange(margin_y, height - margin_y - _BLOCK + 1, _BLOCK_STEP)
    left, top = (grid.ravel() for grid in np.meshgrid(xs, ys))
    if left.size < _MIN_BLOCKS:  # a picture too small for blocks: the global shift alone
        return float(params[2]), float(params[3]), 0.0, 0.0
    # Block centres relative to the frame's centre: the fit's scale and turn are about it.
    cx, cy = left + (_BLOCK - width) / 2, top + (_BLOCK - height) / 2
    block_window = np.outer(np.hanning(_BLOCK), np.hanning(_BLOCK)).astype(np.float32)
    blocks = _spectra(_cut(before, left, top), block_window)
    for _ in range(_FIT_ROUNDS):
        # Undo the motion fitted so far, then see what is left at each block.
        u0, v0 = _predict(params, cx, cy)
        du, dv, peak = _peaks(
            _correlation(blocks, _spectra(_cut(_warp(after, params), left, top), block_window))
        )
        inside = (left + u0 >= 0) & (left + u0 + _BLOCK <= width)
        inside &= (top + v0 >= 0) & (top + v0 + _BLOCK <= height)
        fitted = _robust_fit(cx, cy, u0 + du, v0 + dv, inside & (peak > _MIN_PEAK))
        if fitted is None:
            break
        params = fitted
    a, b, tx, ty = params
    return float(tx), float(ty), math.log(math.hypot(1 + a, b)), math.atan2(b, 1 + a)


def _predict(params: _F64, x: _F64, y: _F64) -> tuple[_F64, _F64]:
    """Displacement at (x, y) of ``params``: u = a x - b y + tx, v = b x + a y + ty."""
    a, b, tx, ty = params
    return a * x - b * y + tx, b * x + a * y + ty


def _robust_fit(x: _F64, y: _F64, u: _F64, v: _F64, usable: npt.NDArray[np.bool_]) -> _F64 | None:
    """Least-squares similarity of the usable block motions, refitted without outliers.

    An outlier is more than 3 robust standard deviations (1.4826 MAD), and more than a
    quarter pixel, off the fit. ``None`` when too few blocks remain.
    """
    keep = usable
    params: _F64 | None = None
    for _ in range(3):
        if int(keep.sum()) < _MIN_BLOCKS:
            return params
        xk, yk, ones, zeros = x[keep], y[keep], np.ones(int(keep.sum())), np.zeros(int(keep.sum()))
        design = np.concatenate(
            [np.stack([xk, -yk, ones, zeros], 1), np.stack([yk, xk, zeros, ones], 1)]
        )
        params = np.linalg.lstsq(design, np.concatenate([u[keep], v[keep]]), rcond=None)[0]
        pu, pv = _predict(params, x, y)
        residual = np.hypot(u - pu, v - pv)
        limit = max(3 * 1.4826 * float(np.median(residual[keep])), 0.25)
        keep = usable & (residual <= limit)
    return params


def _spectra(pictures: _F32, window: _F32) -> npt.NDArray[np.complex64]:
    """Spectra of stacked pictures, their means removed and ``window`` applied."""
    centred = pictures - pictures.mean(axis=(-2, -1), keepdims=True)
    return np.asarray(np.fft.rfft2(centred * window), dtype=np.complex64)


def _correlation(fa: npt.NDArray[np.complex64], fb: npt.NDArray[np.complex64]) -> _F32:
    """Phase correlation surfaces of two stacks of spectra: a peak where b is a shifted."""
    cross = fb * np.conj(fa)
    size = (fa.shape[-2], 2 * (fa.shape[-1] - 1))
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=size)
    return np.asarray(surface, dtype=np.float32)


def _peaks(surface: _F32) -> tuple[_F64, _F64, _F64]:
    """Sub-pixel peak (x, y shift, parabola through the neighbours) and height per surface."""
    count, height, width = surface.shape
    flat = surface.reshape(count, -1).argmax(axis=1)
    py, px = np.divmod(flat, width)
    rows = np.arange(count)
    top = surface[rows, py, px].astype(np.float64)

    def vertex(before: _F64, after: _F64) -> _F64:
        bend = before - 2 * top + after
        flat = bend == 0
        offset = 0.5 * (before - after) / np.where(flat, 1.0, bend)
        return np.asarray(np.where(flat, 0.0, np.clip(offset, -0.5, 0.5)), dtype=np.float64)

    def near(dy: int, dx: int) -> _F64:
        return np.asarray(surface[rows, (py + dy) % height, (px + dx) % width], np.float64)

    y = py + vertex(near(-1, 0), near(1, 0))
    x = px + vertex(near(0, -1), near(0, 1))
    # The surface wraps round: a peak past the middle is a negative shift.
    return np.where(x > width / 2, x - width, x), np.where(y > height / 2, y - height, y), top


def _cut(image: _F32, left: npt.NDArray[np.intp], top: npt.NDArray[np.intp]) -> _F32:
    """The blocks of ``image`` with these top-left corners, stacked."""
    return np.stack([image[y : y + _BLOCK, x : x + _BLOCK] for x, y in zip(left, top, strict=True)])


def _warp(image: _F32, params: _F64) -> _F32:
    """``image`` sampled at x + displacement(x) (bilinear): the motion ``params`` undone."""
    a, b, tx, ty = params
    height, width = image.shape
    cx, cy = width / 2, height / 2
    affine = (1 + a, -b, tx - a * cx + b * cy, b, 1 + a, ty - b * cx - a * cy)
    picture = Image.fromarray(image, mode="F")
    warped = picture.transform((width, height), Image.Transform.AFFINE, affine, _BILINEAR)
    return np.asarray(warped, dtype=np.float32)


# --- steadiness, detail, first-frame fidelity ----------------------------------------------


def _flicker(means: _F64, fps: float) -> float:
    """RMS of the mean luma around its centred moving average (about 0.3 s, odd, >= 3 frames).

    The ends are padded by point reflection, so a steady fade is all trend and no flicker.
    """
    if len(means) < 3:  # noqa: PLR2004 - a trend needs three frames
        return 0.0
    span = max(3, round(_FLICKER_WINDOW_S * fps) | 1)
    span = min(span, len(means) - (1 - len(means) % 2))
    padded = np.pad(means, span // 2, mode="reflect", reflect_type="odd")  # keeps a ramp
    trend = np.convolve(padded, np.full(span, 1 / span), mode="valid")
    return float(np.sqrt(np.mean((means - trend) ** 2)))


def _laplacian_variance(luma: npt.NDArray[np.uint8]) -> float:
    """Variance of the 4-neighbour Laplacian over the frame's interior (stream luma steps)."""
    y = luma.astype(np.float32)
    laplacian = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    return float(laplacian.var())


def _first_frame_ssim(first: _First, source: SourceImage) -> float:
    """SSIM of the first frame to ``source``, cover-cropped to the frame (see VideoMetrics)."""
    height, width = first.luma.shape
    factor = max(1, round(min(width, height) / 256))
    frame = np.asarray(Image.fromarray(first.luma, mode="F").reduce(factor), dtype=np.float32)
    picture = ImageOps.fit(_source_rgb(source), frame.shape[::-1], Image.Resampling.LANCZOS)
    red, green, blue = (np.asarray(band, dtype=np.float32) for band in picture.split())
    kr, kg, kb = first.weights
    return _ssim(frame, kr * red + kg * green + kb * blue)


def _source_rgb(source: SourceImage) -> Image.Image:
    """``source`` upright, in RGB, transparent parts on white (as the video shows them)."""
    if isinstance(source, Image.Image):
        image = source
    else:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    image = ImageOps.exif_transpose(image)
    if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(image.convert("RGBA"))
        image = white
    return image.convert("RGB")


def _ssim(a: _F32, b: _F32) -> float:
    """Mean SSIM of two same-size greys (0..255) over 7x7 windows, clipped to 0..1."""
    mu_a, mu_b = _box(a), _box(b)
    var_a, var_b = _box(a * a) - mu_a**2, _box(b * b) - mu_b**2
    covariance = _box(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + _SSIM_C1) * (2 * covariance + _SSIM_C2)
    denominator = (mu_a**2 + mu_b**2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    return min(1.0, max(0.0, float(np.mean(numerator / denominator))))


def _box(image: _F32) -> _F64:
    """Mean over every 7x7 window that fits (summed-area table, float64 for exact sums)."""
    n = _SSIM_WINDOW
    table = np.pad(image.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = table[n:, n:] - table[:-n, n:] - table[n:, :-n] + table[:-n, :-n]
    return np.asarray(sums / (n * n), dtype=np.float64)


# --- the cache ----------------------------------------------------------------------------


def _source_digest(source: SourceImage) -> str:
    """SHA-256 naming a source image: of its bytes, or of a Pillow image's mode, size, pixels."""
    digest = hashlib.sha256()
    if isinstance(source, Image.Image):
        digest.update(f"{source.mode} {source.size}".encode())
        digest.update(source.tobytes())
    elif isinstance(source, bytes):
        digest.update(source)
    else:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


def _read_cache(file: Path) -> tuple[VideoMetrics | None, dict[str, float]]:
    """The pixel measures and SSIMs kept in ``file``; none if unreadable or of another version."""
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        if record["version"] != _CACHE_VERSION or set(record["pixels"]) != _PIXEL_FIELDS:
            return None, {}
        pixels = VideoMetrics(
            **record["pixels"], motion_match=None, requested=(), first_frame_ssim=None
        )
        ssims = {str(key): float(value) for key, value in record["ssim"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None, {}
    return (pixels, ssims) if pixels.camera_move in CAMERA_MOVES else (None, {})


def _write_cache(file: Path, pixels: VideoMetrics, ssims: dict[str, float]) -> None:
    """Replace ``file`` atomically (a temporary file beside it, then a rename)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    pixel_data = {name: getattr(pixels, name) for name in sorted(_PIXEL_FIELDS)}
    record = {"format": _CACHE_FORMAT, "version": _CACHE_VERSION, "pixels": pixel_data}
    fd, temp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({**record, "ssim": ssims}, out, indent=1)
        Path(temp).replace(file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
