"""Routes about files: the two uploads, and the public URLs of uploads and videos.

- ``POST /api/v3/media/upload/binary`` (documented): multipart field ``file``, an image of at
  most 32 MB; answers ``data = {type, download_url, filename, size}``.
- ``POST /api/v3/media/uploads`` (the official SDK 2.x): JSON ``{filename, size,
  content_type?}`` announces an image; answers ``data = {type, filename, size, content_type,
  download_url, expires_at, upload: {method: "PUT", url, headers}}``. Then ``PUT`` the bytes to
  ``upload.url`` with exactly ``upload.headers`` and **no** ``Authorization`` (the URL carries a
  one-time token, ``wavenb.sandbox._uploads``); it answers ``data = {download_url,
  filename, size}``, and ``download_url`` serves the image from then on.
- ``GET /sandbox-media/{name}`` and ``GET /sandbox-cdn/predictions/{id}/1.mp4``: public, like
  the real service's CDN URLs.
"""

from __future__ import annotations

import mimetypes
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from wavenb.sandbox._envelope import ApiError, envelope
from wavenb.sandbox._parsing import base_of, field, json_object, limited, reject_unknown, state_of
from wavenb.sandbox._storage import (
    IMAGE_EXTENSIONS,
    MAX_UPLOAD_BYTES,
    MULTIPART_OVERHEAD,
    Storage,
    basename,
)
from wavenb.sandbox._uploads import UPLOAD_TTL

__all__ = ["create_upload", "put_upload", "serve_media", "serve_video", "upload_binary"]

_SPOOL: Final = 1024 * 1024
"""Bytes of a ``PUT`` body kept in memory before it spills to a temporary file."""
_MAX_FILENAME: Final = 255


async def upload_binary(request: Request) -> Response:
    """``POST /api/v3/media/upload/binary``: multipart field ``file``, an image of ≤ 32 MB."""
    body = limited(request, MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD)
    async with body.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "Invalid parameters: multipart field 'file' is required.")
        if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
            raise ApiError(413, "File too large: the limit is 32 MB.")
        stored = await run_in_threadpool(
            state_of(request).store_upload, upload.file, upload.filename
        )
    name = stored.pop("name")
    return envelope({**stored, "download_url": f"{base_of(request)}{Storage.MEDIA_ROUTE}{name}"})


async def create_upload(request: Request) -> Response:
    """``POST /api/v3/media/uploads``: announce an image, get where and how to ``PUT`` it."""
    body = await json_object(request)
    reject_unknown(body, ("filename", "size", "content_type"), "the upload route")
    filename = basename(field(body, "filename", str)).strip()
    if not filename or len(filename) > _MAX_FILENAME:
        raise ApiError(400, "Invalid parameters: 'filename' must be a file name (1-255 chars).")
    size: int = field(body, "size", int)
    if size < 1:
        raise ApiError(400, "Invalid parameters: 'size' must be a positive number of bytes.")
    if size > MAX_UPLOAD_BYTES:
        raise ApiError(413, "File too large: the limit is 32 MB.")
    if body.get("content_type") is None:
        body.pop("content_type", None)  # null: not given, as the SDK omits it when unknown
    content_type = field(body, "content_type", str, default="") or _guess_type(filename)
    extension = _extension(content_type, filename)
    name = f"{secrets.token_hex(16)}.{extension}"
    token, ticket = state_of(request).tickets.issue(name, filename, size, content_type)
    base = base_of(request)
    expires = datetime.now(UTC) + timedelta(seconds=UPLOAD_TTL)
    data: dict[str, Any] = {
        "type": "image",
        "filename": ticket.filename,
        "size": ticket.size,
        "content_type": ticket.content_type,
        "download_url": f"{base}{Storage.MEDIA_ROUTE}{name}",
        "expires_at": expires.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "upload": {
            "method": "PUT",
            "url": f"{base}{Storage.UPLOAD_ROUTE}{name}?token={token}",
            "headers": {"Content-Type": ticket.content_type},
        },
    }
    return envelope(data)


async def put_upload(request: Request) -> Response:
    """``PUT /sandbox-upload/{name}?token=...``: the bytes announced to ``create_upload``.

    No ``Authorization``: sending one is refused (400), as a storage service refuses two
    credentials at once, so a client cannot leak its API key to the storage host unnoticed.
    """
    if "authorization" in request.headers:
        raise ApiError(
            400,
            "Invalid request: the upload URL carries its own token; send only the headers "
            "given with it, never Authorization.",
        )
    state = state_of(request)
    ticket = state.tickets.claim(
        request.path_params["name"],
        request.query_params.get("token", ""),
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
    )
    with tempfile.SpooledTemporaryFile(_SPOOL, dir=str(state.storage.root / "media")) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > ticket.size:
                raise ApiError(400, f"Invalid upload: more bytes than announced ({ticket.size}).")
            await run_in_threadpool(spool.write, chunk)
        if received != ticket.size:
            raise ApiError(400, f"Invalid upload: {received} bytes; {ticket.size} announced.")
        stored = await run_in_threadpool(
            state.storage.store_image, spool, ticket.filename, ticket.name
        )
    url = f"{base_of(request)}{Storage.MEDIA_ROUTE}{ticket.name}"
    return envelope({"download_url": url, "filename": stored["filename"], "size": stored["size"]})


async def serve_video(request: Request) -> Response:
    """Serve the rendered MP4 of a completed job; 404 until then. No auth, like a CDN URL."""
    state = state_of(request)
    job = state.jobs.get(request.path_params["id"])
    if job is None or job.status != "completed" or not job.output_is_path:
        raise ApiError(404, "Not found: no finished video at this URL.")
    return FileResponse(state.storage.video_path(job.id), media_type="video/mp4")


async def serve_media(request: Request) -> Response:
    """Serve an uploaded image by its server-generated name; anything else is 404."""
    path = state_of(request).storage.media_path(request.path_params["name"])
    if path is None:
        raise ApiError(404, "Not found: no uploaded file by this name.")
    return FileResponse(path)


def _guess_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or ""


def _extension(content_type: str, filename: str) -> str:
    """The stored name's extension, from the content type, else the file name; or a 400."""
    subtype = content_type.partition("/")[2].lower() if content_type.startswith("image/") else ""
    by_type = IMAGE_EXTENSIONS.get(subtype.removeprefix("x-"))
    by_name = IMAGE_EXTENSIONS.get(filename.rpartition(".")[2].lower())
    extension = by_type if content_type else by_name
    if extension is None:
        raise ApiError(
            400,
            "Invalid parameters: the sandbox takes images only (JPG, PNG, WebP, GIF, BMP, "
            f"TIFF); got content_type {content_type!r} for {filename!r}.",
        )
    return extension
