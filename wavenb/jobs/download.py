"""Saving an output: the whole MP4 or nothing, checked before it counts.

A body is accepted only if it is what was promised:

- no more than ``Content-Length`` says, no less either (a close-delimited body cut after 1 MB
  is not a video), and never more than the size cap (default 1 GB; an endless chunked answer
  stops there);
- an ISO-BMFF file from ``ftyp`` to its last byte, with a ``moov`` (``wavenb.core.mp4``): a 200
  "Access denied" HTML page fails here.

The bytes go to a temporary file with a unique name beside the target (two processes never
write one ``.part``), are hashed on the way, and the file is renamed into place only after the
checks: the target appears whole or not at all. A failure raises ``DownloadError`` (or
``NotFoundError`` when the output is gone) and records nothing; resume tries again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import httpx

from wavenb.api.http import Http, read_capped, read_retryable
from wavenb.core import protocol
from wavenb.core.errors import DownloadError, NotFoundError
from wavenb.core.mp4 import NotMp4, check_mp4

__all__ = ["MAX_DOWNLOAD", "Saved", "fetch"]

MAX_DOWNLOAD: Final = 1 << 30
"""The default size cap of one output (1 GiB): a 5-10 s 720p video is a few MB."""
_GONE: Final = frozenset({403, 404, 410})
ERROR_PAGE_CAP: Final = 1 << 16
"""The most of an output host's error page that is read (decoded): enough for its message."""
"""What a CDN answers for an output that has expired or was deleted (S3 says 403)."""
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Saved:
    """A verified output on disk."""

    path: Path
    sha256: str
    size: int


class _Cut(DownloadError):
    """Cut short, mangled, or an error page: worth another try."""


async def fetch(http: Http, url: str, target: Path, *, max_bytes: int = MAX_DOWNLOAD) -> Saved:
    """Download ``url`` to ``target`` (atomic), verified; retried on transient failures.

    Raises:
        NotFoundError: the output is gone (403/404/410 from the CDN).
        DownloadError: not an MP4, or larger than ``max_bytes``, or cut on every try.
        TransportError: the connection kept failing.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    async for attempt in http.retrying(
        _retryable, attempts=5, timeout=300.0, wait_initial=0.5, wait_max=20.0
    ):
        with attempt:
            saved = await _fetch_once(http, url, target, max_bytes)
    return saved


def _retryable(error: Exception) -> bool | float:
    if isinstance(error, _Cut):
        return True
    if isinstance(error, DownloadError | NotFoundError):
        return False
    return read_retryable(error)


async def _fetch_once(http: Http, url: str, target: Path, max_bytes: int) -> Saved:
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        async with http.stream(url) as response:
            if response.status_code in _GONE:
                raise NotFoundError(
                    f"the output is gone (HTTP {response.status_code}): outputs are kept for 7 "
                    "days, and their URLs expire",
                    status=response.status_code,
                )
            if response.status_code >= 400:  # noqa: PLR2004
                # An error page is read with a cap: a hostile CDN can send one without end.
                body = await read_capped(response, ERROR_PAGE_CAP)
                protocol.parse_envelope(response.status_code, body, response.headers)
            promised = _content_length(response.headers.get("content-length"))
            if promised is not None and promised > max_bytes:
                raise DownloadError(_too_big(promised, max_bytes))
            file = await asyncio.to_thread(partial.open, "wb")
            try:
                async for chunk in _body(response):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(_too_big(size, max_bytes))
                    digest.update(chunk)
                    await asyncio.to_thread(_write, file, chunk)
                await asyncio.to_thread(_close, file, sync=True)
            finally:
                await asyncio.to_thread(_close, file, sync=False)
        if promised is not None and size != promised:
            raise _Cut(f"the download was cut: {size} of {promised} bytes arrived")
        try:
            await asyncio.to_thread(check_mp4, partial)
        except NotMp4 as error:
            # Cut, empty, or a CDN's error page sent with 200: all worth another try (a WAF
            # block or a cut passes); after the last try it stays resumable.
            what = "a whole MP4" if _looks_cut(str(error)) else "an MP4 video"
            raise _Cut(f"the output is not {what}: {error}") from None
        await asyncio.to_thread(os.replace, partial, target)
    finally:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
    return Saved(target, digest.hexdigest(), size)


async def _body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive (or as a test transport built them in memory)."""
    if response.is_stream_consumed:
        yield response.content
        return
    async for chunk in response.aiter_raw(_CHUNK):
        yield chunk


def _write(file: BinaryIO, chunk: bytes) -> None:
    file.write(chunk)


def _close(file: BinaryIO, *, sync: bool) -> None:
    if file.closed:
        return
    if sync:
        file.flush()
        os.fsync(file.fileno())
    file.close()


def _looks_cut(reason: str) -> bool:
    return any(word in reason for word in ("cut", "incomplete", "empty"))


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _too_big(size: int, limit: int) -> str:
    return (
        f"the output is larger than the download limit ({size:,} > {limit:,} bytes); raise "
        "max_download if this is expected"
    )
