"""Turning what the user passes as ``image`` into something the API takes.

Accepted: an ``http(s)`` URL (sent as is), a ``data:`` URI, a local path, raw bytes, or a
``PIL.Image``. Local images are checked before anything is sent: readable, really an image,
a format the model takes, an aspect the model takes (0.5 to 2.0). Very large images are
downscaled rather than refused, and the choice is reported on ``PreparedImage.note``.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias
from urllib.parse import urlsplit

from wavenb.core.errors import InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["ImageInput", "PreparedImage", "prepare_image"]

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | PILImage.Image"
"""What ``image=`` accepts: URL, data URI, path, bytes or a PIL image."""

KEEP_FORMATS: Final = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Formats sent as they are; others (GIF, BMP, TIFF) are re-encoded as JPEG (PNG if transparent)."""
OPEN_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_SIDE: Final = 4096
"""Longer sides are downscaled to this: the output is 1280 px at most, and uploads stay small."""
MAX_BYTES: Final = 10 * 1024 * 1024
MAX_PIXELS: Final = 100_000_000
"""Refuse to decode more pixels than this (decompression bombs)."""
MIN_ASPECT: Final = 0.5
MAX_ASPECT: Final = 2.0
MIN_SIDE: Final = 16


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image ready for the API: either a URL to pass through, or bytes to upload."""

    url: str | None = None
    """Set when the input was a URL: sent as is."""
    data: bytes | None = None
    """Set for local images: the bytes to upload."""
    filename: str = "image.png"
    content_type: str = "image/png"
    width: int | None = None
    height: int | None = None
    note: str | None = None
    """What wavenb changed (downscaled, re-encoded), for the user to see; ``None`` if nothing."""

    @property
    def aspect(self) -> float | None:
        """Width over height, when known."""
        return self.width / self.height if self.width and self.height else None


def prepare_image(image: ImageInput) -> PreparedImage:
    """Check a local image and make it uploadable; pass URLs through.

    Raises:
        InputError: the file is missing or unreadable, is not an image, is in a format the
            model does not take, has an aspect outside 0.5-2.0, or is absurdly large.
    """
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return PreparedImage(url=_check_url(image))
    if isinstance(image, str) and image.startswith("data:"):
        return _from_bytes(_decode_data_uri(image), "image")
    if isinstance(image, str | os.PathLike):
        return _from_path(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return _from_bytes(bytes(image), "image")
    if _is_pil(image):
        return _from_pil(image, "image", source_format=None)
    raise InputError(
        f"image must be a path, URL, data URI, bytes or PIL image; got {type(image).__name__}"
    )


def _from_path(image: str | os.PathLike[str]) -> PreparedImage:
    unusable = InputError(f"not a usable image path: {str(image)[:200]!r}")
    try:
        path = Path(image).expanduser()
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"image file not found: {image}") from None
    except OSError as error:
        raise InputError(f"cannot read image file {image}: {error.strerror}") from None
    except (RuntimeError, ValueError):  # ~nosuchuser, a NUL byte, an unencodable name
        raise unusable from None
    return _from_bytes(data, path.stem or "image")


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InputError(f"image URL is malformed: {url[:200]!r}") from None
    if not parts.netloc or not host:
        raise InputError(f"image URL has no host: {url[:200]!r}")
    return url


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or ";base64" not in header:
        raise InputError("image data URI must be base64: data:image/<type>;base64,<data>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("image data URI is not valid base64") from None


def _is_pil(image: object) -> bool:
    module = type(image).__module__
    return module.startswith("PIL.") and hasattr(image, "save") and hasattr(image, "size")


def _from_bytes(data: bytes, stem: str) -> PreparedImage:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415  (Pillow loads lazily)

    if not data:
        raise InputError("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
            width, height = opened.size
            _check_geometry(width, height)
            fmt = opened.format or ""
            opened.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("image has too many pixels to decode safely") from None
    except UnidentifiedImageError:
        raise InputError(
            "not an image the model takes (use JPEG, PNG, WebP, GIF, BMP or TIFF)"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(f"image is damaged or truncated: {error}") from None
    if fmt in KEEP_FORMATS and max(width, height) <= MAX_SIDE and len(data) <= MAX_BYTES:
        ext = "jpg" if fmt == "JPEG" else fmt.lower()
        return PreparedImage(
            data=data,
            filename=f"{_safe(stem)}.{ext}",
            content_type=KEEP_FORMATS[fmt],
            width=width,
            height=height,
        )
    return _from_pil(opened, stem, source_format=fmt)


def _from_pil(image: PILImage.Image, stem: str, source_format: str | None) -> PreparedImage:
    """Encode a decoded image for upload, downscaling it if it is very large."""
    from PIL import Image  # noqa: PLC0415

    width, height = image.size
    _check_geometry(width, height)
    notes = []
    if max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
        notes.append(f"downscaled {width}x{height} to {size[0]}x{size[1]}")
        width, height = size
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    buffer = io.BytesIO()
    if has_alpha:
        image.save(buffer, format="PNG", optimize=False)
        fmt, ext = "PNG", "png"
    else:
        image.save(buffer, format="JPEG", quality=92)
        fmt, ext = "JPEG", "jpg"
    if source_format and source_format not in KEEP_FORMATS:
        notes.insert(0, f"re-encoded {source_format} as {fmt}")
    return PreparedImage(
        data=buffer.getvalue(),
        filename=f"{_safe(stem)}.{ext}",
        content_type=KEEP_FORMATS[fmt],
        width=width,
        height=height,
        note="; ".join(notes) or None,
    )


def _check_geometry(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InputError(f"image is {width}x{height}: too many pixels to decode safely")
    if min(width, height) < MIN_SIDE:
        raise InputError(f"image is {width}x{height}: too small (at least {MIN_SIDE} px a side)")
    aspect = width / height
    if not MIN_ASPECT <= aspect <= MAX_ASPECT:
        raise InputError(
            f"image is {width}x{height} (aspect {aspect:.2f}); the model takes aspects from "
            f"{MIN_ASPECT} to {MAX_ASPECT}: crop it first"
        )


def _safe(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:64]
    return cleaned or "image"
