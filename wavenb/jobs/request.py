"""A generation request, checked and identified before anything is reserved or sent.

``prepare`` validates the prompt and ratio and reads the image (off the event loop), then
computes the request hash the journal uses to recognise the same request again (reuse, join).
Bad input raises ``InputError`` here, before any money is involved.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from wavenb.core import protocol
from wavenb.core.images import ImageInput, PreparedImage, prepare_image
from wavenb.core.types import MODEL_ID, AspectRatio
from wavenb.journal.rows import request_hash

__all__ = ["Request", "describe_source", "prepare"]


@dataclass(frozen=True, slots=True)
class Request:
    """A checked request, ready to reserve and send."""

    prompt: str
    aspect_ratio: AspectRatio | None
    image: PreparedImage
    source: str
    """How the journal names the image: a path or URL, ``"bytes"``, ``"PIL image"``."""
    image_sha256: str | None
    """SHA-256 of the image bytes for local images; ``None`` for URLs."""
    hash: str
    """The journal's request hash: equal for requests that would make the same video."""
    variant: str | None = None
    model: str = MODEL_ID


async def prepare(
    image: ImageInput,
    prompt: str,
    aspect_ratio: AspectRatio | str | None,
    *,
    base_url: str,
    variant: str | None = None,
) -> Request:
    """Check the inputs and identify the request.

    Raises:
        InputError: a bad prompt, ratio or image (nothing is reserved or sent).
    """
    text = protocol.validate_prompt(prompt)
    ratio = protocol.validate_aspect_ratio(aspect_ratio)
    prepared = await asyncio.to_thread(prepare_image, image)
    return identify(prepared, text, ratio, source=describe_source(image), base_url=base_url,
                    variant=variant)  # fmt: skip


def identify(
    prepared: PreparedImage,
    prompt: str,
    aspect_ratio: AspectRatio | None,
    *,
    source: str,
    base_url: str,
    variant: str | None = None,
    image_sha256: str | None = None,
) -> Request:
    """A ``Request`` for an image already prepared (a comparison prepares each image once).

    ``image_sha256`` names the image by the bytes it was uploaded from when ``prepared`` is the
    uploaded URL: the request is then the same one as when the bytes are sent.
    """
    digest = image_sha256
    if digest is None and prepared.data is not None:
        digest = hashlib.sha256(prepared.data).hexdigest()
    key = request_hash(
        model=MODEL_ID, image_sha256=digest, image_source=source, prompt=prompt,
        aspect_ratio=aspect_ratio, base_url=base_url, variant=variant,
    )  # fmt: skip
    return Request(prompt, aspect_ratio, prepared, source, digest, key, variant)


def describe_source(image: ImageInput) -> str:
    """How the journal names an image: its path or URL, never its bytes."""
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return image
    if isinstance(image, str) and image.startswith("data:"):
        return "data URI"
    if isinstance(image, str | os.PathLike):
        return str(Path(image).expanduser().resolve())
    if isinstance(image, bytes | bytearray | memoryview):
        return "bytes"
    return "PIL image"
