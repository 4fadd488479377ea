"""The work of one sandbox render: fetch the source image, check it as Runway would, render.

``run`` is what a render worker executes, in a thread or in a worker process of
``wavenb.sandbox._pool``. It takes a picklable ``RenderTask`` and never raises: an
expected failure (an unreachable URL, a file that is not an image, an absurd aspect ratio)
becomes the error text of the prediction, worded like the real service's.

The renderer (PyAV, numpy) is imported inside ``run``, so importing the sandbox stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
from PIL import Image

from wavenb.core.types import AspectRatio
from wavenb.sandbox._storage import IMAGE_FORMATS, Storage

__all__ = ["JobFailure", "RenderTask", "decode_image", "fetch_image", "run"]

MAX_IMAGE_SIDE: Final = 7999
"""Runway's limit on either side of the source image, in pixels."""
MIN_ASPECT, MAX_ASPECT = 0.5, 2.0
MAX_URL_IMAGE_BYTES: Final = 16 * 1024 * 1024
"""Runway's limit on an image given by URL."""
DOWNLOAD_TIMEOUT: Final = 5.0

logger = logging.getLogger("wavenb.sandbox")


@dataclass(frozen=True, slots=True)
class RenderTask:
    """Everything a worker needs to render one video: plain values, so it pickles."""

    prompt: str
    image: str
    """The submission's ``image``: a data URI, a URL of one of our uploads, or any URL."""
    aspect_ratio: AspectRatio | None
    duration: float
    path: Path
    """Where the MP4 goes."""
    media_dir: Path
    """The app's folder of uploads, to read its own uploads without HTTP."""
    url_path: str
    """The URL path that will serve the video: the outcome's output."""


class JobFailure(Exception):
    """An expected failure of a job's work; its message becomes the prediction's ``error``."""


def run(task: RenderTask) -> tuple[str | None, str | None]:
    """Render ``task``; return ``(output URL path, None)`` or ``(None, error text)``."""
    from wavenb.sandbox._motion import parse_motion  # noqa: PLC0415  (heavy: numpy, PyAV)
    from wavenb.sandbox._render import render_video  # noqa: PLC0415

    try:
        image = decode_image(fetch_image(task.image, task.media_dir))
        motion = parse_motion(task.prompt)
        task.path.parent.mkdir(parents=True, exist_ok=True)
        render_video(
            image, motion, task.path, aspect_ratio=task.aspect_ratio, duration=task.duration
        )
    except JobFailure as exc:
        return None, str(exc)
    except Exception as exc:  # a renderer bug must fail one job, not hang it forever
        logger.exception("sandbox render failed")
        return None, f"Sandbox render error: {type(exc).__name__}"
    if not task.path.is_file():
        return None, "Sandbox render error: no video was written"
    return task.url_path, None


def fetch_image(source: str, media_dir: Path) -> bytes:
    """Get the bytes behind the ``image`` field: a data URI, one of our uploads, or a URL."""
    if source.startswith("data:"):
        return _data_uri_bytes(source)
    path = urlsplit(source).path
    if path.startswith(Storage.MEDIA_ROUTE):
        # Our own upload, whatever host the client used to reach us.
        name = path.removeprefix(Storage.MEDIA_ROUTE)
        stored = media_dir / name
        if not Storage.valid_media_name(name) or not stored.is_file():
            raise JobFailure(f"Failed to download image from URL: {_short(source)} (HTTP 404)")
        return stored.read_bytes()
    return _download(source)


def _data_uri_bytes(uri: str) -> bytes:
    _, _, payload = uri.partition(",")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise JobFailure("Invalid image: the data URI's base64 payload is malformed.") from None


def _download(url: str) -> bytes:
    """Fetch an image URL with a short timeout and Runway's 16 MB cap."""
    failure = f"Failed to download image from URL: {_short(url)}"
    try:
        with httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as resp:
            if resp.status_code != httpx.codes.OK:
                raise JobFailure(f"{failure} (HTTP {resp.status_code})")
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_URL_IMAGE_BYTES:
                    raise JobFailure(f"{failure} (larger than 16 MB)")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise JobFailure(f"{failure} ({type(exc).__name__})") from None
    return b"".join(chunks)


def _short(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."


def decode_image(data: bytes) -> Image.Image:
    """Decode and check an image as Runway would; raise ``JobFailure`` saying what is wrong.

    Sizes are checked from the header, before any pixel is decoded, so a decompression bomb is
    refused without ever being expanded (Pillow's own ``MAX_IMAGE_PIXELS`` guard stays on too).
    """
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in IMAGE_FORMATS:
            raise JobFailure(_NOT_AN_IMAGE)
        _check_size(*image.size)
        image.load()  # decode now, so a truncated file fails here with a clear error
    except Image.DecompressionBombError:
        raise JobFailure("Invalid image: too many pixels to decode safely.") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        # Pillow reports unreadable or truncated files through all of these.
        raise JobFailure(_NOT_AN_IMAGE) from None
    # Orientation, alpha and bit depth are the renderer's job (it composites alpha on white).
    return image


_NOT_AN_IMAGE: Final = (
    "Invalid image: the input could not be decoded as an image "
    "(supported: JPEG, PNG, WebP, GIF, BMP, TIFF)."
)


def _check_size(width: int, height: int) -> None:
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise JobFailure(
            f"Invalid image: {width}x{height} px; each side must be at most {MAX_IMAGE_SIDE} px."
        )
    ratio = width / height if height else 0.0
    if not MIN_ASPECT <= ratio <= MAX_ASPECT:
        raise JobFailure(
            f"Invalid image: {width}x{height} px has aspect ratio {ratio:.2f}; "
            f"it must be between {MIN_ASPECT} and {MAX_ASPECT}."
        )
