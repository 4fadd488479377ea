"""The official SDK's two-step upload: announce a file, PUT it to a one-time URL, use it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.test_sandbox_api import (
    AUTH,
    FakeClock,
    assert_error,
    png,
    sandbox,
    settle,
    submit,
)
from wavenb.sandbox import SandboxConfig
from wavenb.sandbox._uploads import UPLOAD_TTL

TICKETS = "/api/v3/media/uploads"
IMAGE = png((160, 90), "orange")


@pytest.fixture
async def instant() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app whose jobs complete as soon as their 1-second clip is rendered."""
    async with sandbox(SandboxConfig(speed="instant", duration=1.0)) as pair:
        yield pair


async def ticket(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    announced = {
        "filename": "cat.png",
        "size": len(IMAGE),
        "content_type": "image/png",
        **overrides,
    }
    response = await client.post(TICKETS, json=announced, headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def put(
    client: httpx.AsyncClient, data: dict[str, Any], content: bytes = IMAGE, **headers: str
) -> httpx.Response:
    """PUT as the SDK does: the given headers only (no Authorization), the bytes as the body."""
    upload = data["upload"]
    return await client.request(
        upload["method"], upload["url"], content=content, headers={**upload["headers"], **headers}
    )


@pytest.fixture
async def timed_upload() -> AsyncIterator[tuple[Any, httpx.AsyncClient, FakeClock]]:
    clock = FakeClock()
    async with sandbox(SandboxConfig(speed="instant", duration=1.0, clock=clock)) as (app, client):
        yield app, client, clock


async def test_a_ticket_says_where_and_how_to_put_the_file(instant) -> None:
    _, client = instant
    data = await ticket(client)
    assert (data["filename"], data["size"], data["content_type"]) == (
        "cat.png",
        len(IMAGE),
        "image/png",
    )
    assert data["upload"]["method"] == "PUT"
    assert data["upload"]["headers"] == {"Content-Type": "image/png"}
    assert "token=" in data["upload"]["url"]
    assert "authorization" not in {name.lower() for name in data["upload"]["headers"]}
    assert data["download_url"].startswith("https://api.wavespeed.ai/sandbox-media/")
    assert data["download_url"].endswith(".png")


async def test_the_put_needs_no_key_and_the_download_url_then_serves_the_file(instant) -> None:
    _, client = instant
    data = await ticket(client)
    assert (await client.get(data["download_url"])).status_code == 404  # not uploaded yet
    response = await put(client, data)
    assert response.status_code == 200, response.text
    assert response.headers["x-wavenb-sandbox"] == "1"
    assert response.json()["data"] == {
        "download_url": data["download_url"], "filename": "cat.png", "size": len(IMAGE),
    }  # fmt: skip
    served = await client.get(data["download_url"])
    assert (served.status_code, served.content) == (200, IMAGE)


async def test_an_uploaded_image_can_be_animated(instant) -> None:
    app, client = instant
    data = await ticket(client)
    await put(client, data)
    prediction = await submit(client, image=data["download_url"])
    done = await settle(app, client, prediction["id"])
    assert done["status"] == "completed", done["error"]


async def test_a_ticket_works_once(instant) -> None:
    _, client = instant
    data = await ticket(client)
    assert (await put(client, data)).status_code == 200
    assert_error(await put(client, data), 403, "not valid")


async def test_a_ticket_expires(timed_upload) -> None:
    _, client, clock = timed_upload
    data = await ticket(client)
    clock.advance(UPLOAD_TTL + 1)
    assert_error(await put(client, data), 403, "expired")


async def test_a_ticket_is_good_until_it_expires(timed_upload) -> None:
    _, client, clock = timed_upload
    data = await ticket(client)
    clock.advance(UPLOAD_TTL - 1)
    assert (await put(client, data)).status_code == 200


async def test_a_guessed_token_is_refused(instant) -> None:
    _, client = instant
    data = await ticket(client)
    forged = {**data, "upload": {**data["upload"], "url": data["upload"]["url"][:-4] + "AAAA"}}
    assert_error(await put(client, forged), 403)
    assert (await put(client, data)).status_code == 200  # the real one still works


async def test_a_token_works_only_for_its_own_file(instant) -> None:
    _, client = instant
    first, second = await ticket(client), await ticket(client)
    token = first["upload"]["url"].partition("?")[2]
    crossed = {
        **second,
        "upload": {
            **second["upload"],
            "url": second["upload"]["url"].partition("?")[0] + "?" + token,
        },
    }
    assert_error(await put(client, crossed), 403)


async def test_sending_the_api_key_to_the_upload_url_is_refused(instant) -> None:
    """A client that leaks its key to the storage host must find out at once."""
    _, client = instant
    data = await ticket(client)
    assert_error(await put(client, data, **AUTH), 400, "Authorization")
    assert (await put(client, data)).status_code == 200  # and the ticket is still good


@pytest.mark.parametrize("content", [IMAGE[:-10], IMAGE + b"0123456789"])
async def test_the_size_must_be_the_announced_one(instant, content: bytes) -> None:
    _, client = instant
    data = await ticket(client)
    assert_error(await put(client, data, content), 400, str(len(IMAGE)))
    assert (await client.get(data["download_url"])).status_code == 404


async def test_a_body_longer_than_its_content_length_is_cut_off(instant) -> None:
    """Content-Length says the announced size, the stream says more: refused, not stored."""
    _, client = instant
    data = await ticket(client)

    async def stream() -> AsyncIterator[bytes]:
        yield IMAGE
        yield b"more"

    upload = data["upload"]
    headers = {**upload["headers"], "Content-Length": str(len(IMAGE))}
    response = await client.put(upload["url"], content=stream(), headers=headers)
    assert_error(response, 400, "more bytes")
    assert (await client.get(data["download_url"])).status_code == 404


async def test_the_content_type_must_be_the_announced_one(instant) -> None:
    _, client = instant
    data = await ticket(client)
    assert_error(await put(client, data, **{"Content-Type": "image/jpeg"}), 403, "image/png")


async def test_a_file_that_is_not_an_image_is_refused_and_not_served(instant) -> None:
    _, client = instant
    junk = b"%PDF-1.7 not an image at all".ljust(len(IMAGE), b" ")
    data = await ticket(client)
    assert_error(await put(client, data, junk), 400, "not an image")
    assert (await client.get(data["download_url"])).status_code == 404


async def test_the_type_is_guessed_from_the_name_when_not_given(instant) -> None:
    _, client = instant
    data = await ticket(client, filename="photo.JPG", content_type=None)
    assert data["content_type"] == "image/jpeg"
    assert data["download_url"].endswith(".jpg")


@pytest.mark.parametrize(
    ("announced", "status", "words"),
    [
        ({"filename": "notes.txt", "size": 10}, 400, ("images",)),
        ({"filename": "x.png", "size": 10, "content_type": "text/plain"}, 400, ("images",)),
        ({"filename": "x.png", "size": 0}, 400, ("size",)),
        ({"filename": "x.png", "size": 33 * 1024 * 1024}, 413, ("32 MB",)),
        ({"filename": "x.png", "size": "10"}, 400, ("size", "number")),
        ({"filename": "", "size": 10}, 400, ("filename",)),
        ({"size": 10}, 400, ("filename",)),
        ({"filename": "x.png", "size": 10, "bucket": "b"}, 400, ("bucket",)),
    ],
)
async def test_bad_announcements_are_refused(
    instant, announced: dict[str, Any], status: int, words: tuple[str, ...]
) -> None:
    _, client = instant
    response = await client.post(TICKETS, json=announced, headers=AUTH)
    assert_error(response, status, *words)


async def test_the_announcement_needs_a_key(instant) -> None:
    _, client = instant
    response = await client.post(TICKETS, json={"filename": "x.png", "size": 10})
    assert_error(response, 401)


async def test_two_uploads_of_one_file_get_two_urls(instant) -> None:
    _, client = instant
    first, second = await asyncio.gather(ticket(client), ticket(client))
    assert first["download_url"] != second["download_url"]
    for data in (first, second):
        assert (await put(client, data)).status_code == 200
