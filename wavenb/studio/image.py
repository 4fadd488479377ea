"""The Studio's source image: from an upload, a URL or a Python value, checked and previewed.

Local images (uploads, paths, bytes, PIL images) go through ``prepare_image`` exactly as the
client would treat them: the Studio sends the prepared bytes, so what the preview shows is
what gets uploaded. URLs are sent as they are; the Studio only fetches them once, with a short
timeout, to check that they answer with an image and to draw the preview. That fetch refuses
anything but ``http(s)`` and any host that resolves to a private, loopback or otherwise
non-public address: pasting a URL must not make the kernel probe its own network.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx

from wavenb.core.errors import InputError
from wavenb.core.images import ImageInput, prepare_image
from wavenb.core.types import AspectRatio, closest_ratio

__all__ = [
    "CHECK_TIMEOUT",
    "UPLOAD_LIMIT",
    "URL_LIMIT",
    "SourceImage",
    "check_image_url",
    "closest_ratio",
    "from_upload",
    "load_image",
    "thumbnail",
]

UPLOAD_LIMIT: Final = 10 * 1024 * 1024
"""Largest file the picker takes. Widget messages carry the file whole; front ends and proxies
start failing (some silently) around this size, so larger files are refused with a message and
should be passed as a path instead: ``Studio(image="big.jpg")``."""
URL_LIMIT: Final = 16 * 1024 * 1024
"""Runway's limit for an image given by URL."""
CHECK_TIMEOUT: Final = 5.0
"""Seconds the URL check waits for an answer."""
MAX_REDIRECTS: Final = 3
PREVIEW_SIDE: Final = 320
"""Longest side of the preview thumbnail, in pixels."""


@dataclass(frozen=True, slots=True)
class SourceImage:
    """An image ready to generate from: what is sent, and what the preview shows."""

    send: bytes | str = field(repr=False)
    """What goes to the client: the prepared bytes of a local image, or the URL as given."""
    label: str
    """A file name or the URL, for people."""
    width: int
    height: int
    preview: bytes = field(repr=False)
    """A small JPEG of the image, at most ``PREVIEW_SIDE`` pixels a side."""
    note: str | None = None
    """What was changed before upload (downscaled, re-encoded), from ``prepare_image``."""

    @property
    def closest_ratio(self) -> AspectRatio:
        """The output ratio nearest to the image's own shape."""
        return closest_ratio(self.width, self.height)


def from_upload(value: Sequence[Mapping[str, Any]]) -> tuple[bytes, str]:
    """The bytes and name of the first file in a ``FileUpload.value``.

    Raises:
        InputError: no file, or a file over ``UPLOAD_LIMIT``.
    """
    if not value:
        raise InputError("no file was received: pick an image file")
    entry = value[0]
    name = str(entry.get("name") or "upload")
    size = int(entry.get("size") or len(entry.get("content") or b""))
    if size > UPLOAD_LIMIT:
        raise InputError(
            f"{name} is {size / 2**20:.1f} MB; the picker takes files up to "
            f"{UPLOAD_LIMIT // 2**20} MB. Pass a path instead: Studio(image='path/to/{name}')"
        )
    return bytes(entry.get("content") or b""), name


def load_image(image: ImageInput, label: str) -> SourceImage:
    """Check a local image as the client would and make its preview. Blocking: run in a thread.

    Raises:
        InputError: the image is not usable (see ``prepare_image``).
    """
    prepared = prepare_image(image)
    if prepared.url is not None:
        raise InputError("a URL needs check_image_url, not load_image")
    assert prepared.data is not None  # noqa: S101  (prepare_image sets url or data)
    assert prepared.width is not None  # noqa: S101
    assert prepared.height is not None  # noqa: S101
    return SourceImage(
        send=prepared.data,
        label=label,
        width=prepared.width,
        height=prepared.height,
        preview=thumbnail(prepared.data),
        note=prepared.note,
    )


def thumbnail(data: bytes, side: int = PREVIEW_SIDE) -> bytes:
    """A JPEG of the image at most ``side`` pixels a side."""
    from PIL import Image  # noqa: PLC0415  (Pillow loads lazily)

    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (side, side))  # JPEG decodes straight at a smaller scale
        small = opened.convert("RGB")
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()


async def check_image_url(
    url: str,
    *,
    timeout: float = CHECK_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SourceImage:
    """Fetch an image URL once, check it is a public image the model takes, and preview it.

    Redirects are followed (at most three), each hop checked like the first. The fetch is
    bounded by ``timeout`` seconds a step and ``URL_LIMIT`` bytes.

    Raises:
        InputError: saying why the URL is refused: not http(s), a private or loopback host,
            unreachable, an HTTP error, not an image, too large, or an image the model refuses.
    """
    current = url.strip()
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
        for _ in range(MAX_REDIRECTS + 1):
            await _check_public(current)
            try:
                async with http.stream("GET", current) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    data = await _read_image(response)
            except httpx.TimeoutException:
                raise InputError(f"no answer within {timeout:g} s") from None
            except httpx.HTTPError as error:
                raise InputError(f"cannot reach the URL ({type(error).__name__})") from None
            break
        else:
            raise InputError(f"more than {MAX_REDIRECTS} redirects")
    source = await asyncio.to_thread(load_image, data, url)
    # The URL itself is sent: the model fetches it, nothing is uploaded.
    return SourceImage(url, url, source.width, source.height, source.preview)


async def _check_public(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(f"only http(s) URLs can be used, not {parts.scheme or 'this'}:")
    host = parts.hostname
    if not host:
        raise InputError("the URL has no host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # noqa: PLW2901  (judge the IPv4 address inside)
        if not address.is_global or address.is_multicast:
            raise InputError(
                f"{host} is a private or local address ({address}); the preview only fetches "
                "public URLs (and the model could not reach it either)"
            )


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InputError(f"cannot resolve the host {host}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def _read_image(response: httpx.Response) -> bytes:
    if response.status_code >= 400:  # noqa: PLR2004
        raise InputError(f"the URL answers HTTP {response.status_code}")
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise InputError(f"the URL is {kind}, not an image")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > URL_LIMIT:
        raise InputError(f"the image is over {URL_LIMIT // 2**20} MB, the limit for URLs")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > URL_LIMIT:
            raise InputError(f"the image is over {URL_LIMIT // 2**20} MB, the limit for URLs")
        chunks.append(chunk)
    return b"".join(chunks)
