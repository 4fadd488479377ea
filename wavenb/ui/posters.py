"""Poster frames: a small JPEG of a video's first frame, for galleries and grids.

A gallery or a 100-cell grid shows posters first and loads a video only when it is looked at,
so posters must be small and quick: the first frame is decoded with PyAV (the ``sandbox``
extra; its wheel bundles FFmpeg), scaled to ``height`` pixels and encoded as JPEG, about
5 to 15 ms and a few kB each. Without PyAV, or for a file PyAV cannot decode, ``poster`` returns
``None`` and the views show the input image instead, with a note saying why.
"""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path
from typing import Final

from PIL import Image

__all__ = ["POSTER_HEIGHT", "poster", "poster_missing_reason"]

logger = logging.getLogger("wavenb")

POSTER_HEIGHT: Final = 180
"""Pixels; the grid's and gallery's thumbnails are at most this tall on screen."""
QUALITY: Final = 78


def poster_missing_reason() -> str | None:
    """Why posters are input thumbnails here (``None`` when PyAV can make real ones)."""
    try:
        import av  # noqa: F401, PLC0415  (optional: the sandbox extra)
    except ImportError:
        return "poster: the input image (pip install 'wavenb[sandbox]' for video frames)"
    return None


def poster(path: Path, height: int = POSTER_HEIGHT) -> bytes | None:
    """The first frame of the MP4 at ``path`` as a JPEG ``height`` pixels tall, or ``None``.

    ``None`` when PyAV is missing or cannot decode the file (never raises for that). Results
    are cached by path, size and modification time.
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    return _poster(str(path), stat.st_size, stat.st_mtime_ns, height)


@functools.lru_cache(maxsize=256)
def _poster(path: str, _size: int, _mtime: int, height: int) -> bytes | None:
    try:
        import av  # noqa: PLC0415  (optional: the sandbox extra)
    except ImportError:
        return None
    try:
        with av.open(path) as container:
            frame = next(container.decode(video=0))
            image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    except Exception as error:  # noqa: BLE001  (any undecodable file: fall back, never fail)
        logger.debug("wavenb: no poster for %s (%s)", path, type(error).__name__)
        return None
    return jpeg(image, height)


def jpeg(image: Image.Image, height: int) -> bytes:
    """``image`` scaled to ``height`` pixels tall (never up), as JPEG bytes."""
    if image.height > height:
        width = max(1, round(image.width * height / image.height))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=QUALITY)
    return buffer.getvalue()
