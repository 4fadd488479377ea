"""Fuzzing through the client: whatever the server answers or the user passes, wavenb either
succeeds or raises a ``WavenbError``; never another exception, never a hang.

``tests/test_protocol.py`` and ``tests/test_images.py`` fuzz the pure layers. Here every fuzzed
thing goes through ``AsyncClient`` end to end (upload, submit, result, download) over
``httpx.MockTransport``: bodies, statuses and headers of answers; prompts, images and URLs of
requests. Each example is bounded by ``asyncio.wait_for``.

The bugs this suite found (deep JSON nesting, bodies that fail to decompress, redirect loops,
lone surrogates in prompts, NUL bytes and unknown users in paths, malformed URL hosts) are fixed
and each pinned by its own test at the end.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import API, CANARY_KEY, MP4, png_bytes
from wavenb import (
    AsyncClient,
    InputError,
    RateLimitError,
    Video,
    WavenbError,
)
from wavenb.core.protocol import MAX_RETRY_AFTER, parse_envelope, parse_retry_after
from wavenb.journal.store import Journal

pytestmark = pytest.mark.slow  # hundreds of examples per test: the full run, not the inner loop

HANG = 10.0
"""Seconds one example may take before it counts as a hang."""
PID = "0123456789abcdef0123456789abcdef"
CDN = "https://cdn.example.net"
IMAGE = png_bytes((64, 48))
FUZZ = settings(
    max_examples=int(os.environ.get("WAVENB_FUZZ_EXAMPLES", "150")),
    deadline=None,
    # Explore new examples on every developer run; in CI, the same ones every time (no flakes).
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROUTES = ("upload", "submit", "result", "download")


# -- a server that answers well, except where the fuzzer says ----------------------------------


def envelope(data: object) -> dict[str, object]:
    return {"code": 200, "message": "success", "data": data}


def prediction(status: str, **extra: object) -> dict[str, object]:
    return {"id": PID, "model": "runwayml/gen4-turbo", "status": status, "outputs": [], **extra}


GOOD: dict[str, httpx.Response] = {
    "upload": httpx.Response(200, json=envelope({"download_url": f"{CDN}/media/i.png"})),
    "submit": httpx.Response(200, json=envelope(prediction("created"))),
    "result": httpx.Response(
        200,
        json=envelope(prediction("completed", outputs=[f"{CDN}/predictions/{PID}/1.mp4"])),
    ),
    "download": httpx.Response(200, content=MP4),
    "price": httpx.Response(200, json=envelope({"model_id": "runwayml/gen4-turbo", "price": 0.5})),
}


def route(request: httpx.Request) -> str:
    path = request.url.path
    if path.endswith("/upload/binary"):
        return "upload"
    if path.endswith("/gen4-turbo"):
        return "submit"
    if "/model/" in path:
        return "price"
    return "download" if path.endswith(".mp4") else "result"


class Server:
    """Answers each route from its queue of fuzzed answers, then well; records every request."""

    def __init__(self, answers: dict[str, list[httpx.Response]] | None = None) -> None:
        self.answers = answers or {}
        self.requests: list[httpx.Request] = []
        self.given: list[tuple[str, httpx.Response]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.answers.get(route(request), [])
        answer = queue.pop(0) if queue else GOOD[route(request)]
        self.given.append((route(request), answer))
        # A fresh response each time: httpx responses are consumed once. Sent as a stream so
        # the client, not this fake, decodes it (a bad gzip body must fail in the client).
        raw = answer.content if hasattr(answer, "_content") else b"".join(answer.stream)  # type: ignore[arg-type]
        return httpx.Response(answer.status_code, headers=answer.headers, stream=httpx.ByteStream(raw))

    def assert_submits_resent_only_after_a_refusal(self) -> None:
        """The paid submit goes again only when the answer before was a certain "no" (429)."""
        answered = [answer for where, answer in self.given if where == "submit"]
        for answer in answered[:-1]:
            with pytest.raises(RateLimitError):
                parse_envelope(answer.status_code, answer.content, answer.headers)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, HANG))


async def outcome(
    server: Server, act: Callable[[AsyncClient], Coroutine[Any, Any, Any]], *, journal: bool = False
) -> object:
    """What ``act`` did: its result, or the ``WavenbError`` it raised (anything else escapes)."""
    with tempfile.TemporaryDirectory() as folder:
        store: Journal | bool = Journal(Path(folder) / "journal.sqlite3") if journal else False
        async with AsyncClient(
            CANARY_KEY,
            API,
            transport=httpx.MockTransport(server),
            output_dir=folder,
            journal=store,
        ) as client:
            try:
                return await act(client)
            except WavenbError as error:
                return error
            finally:
                if isinstance(store, Journal):
                    assert all(row.status != "submitting" for row in store.rows())
                    store.close()


# -- strategies: what a broken server can say -----------------------------------------------------

printable = st.characters(min_codepoint=32, max_codepoint=126)
header_text = st.text(printable, max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,  # shallow on purpose: deep nesting is bug A, pinned below
)
huge_text = st.sampled_from([1, 100, 100_000, 2_000_000]).map(lambda n: "x" * n)
fields = {
    "id": st.sampled_from([PID, "", "pred_abc123", "../../etc/passwd", "a/b", " "]) | huge_text,
    "status": st.sampled_from(["created", "processing", "completed", "failed", "timeout",
                               "cancelled", "deleted", "pending", "COMPLETED", "weird"]) | json_values,
    "outputs": st.lists(st.sampled_from([f"{CDN}/predictions/{PID}/1.mp4", "", "not a url",
                                         "ftp://x/y", "/relative/1.mp4"]) | json_values, max_size=3)
               | json_values,
    "has_nsfw_contents": json_values,
    "error": json_values | huge_text,
    "timings": json_values,
    "executionTime": json_values,
    "created_at": st.sampled_from(["2025-09-29T23:09:43.027Z", "yesterday", ""]) | json_values,
    "urls": json_values,
    "download_url": st.sampled_from([f"{CDN}/m.png", "", "x"]) | json_values,
    "model": json_values,
}  # fmt: skip
prediction_like = st.fixed_dictionaries({}, optional=fields)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from([200, 400, 401, 404, 429, 500, 5004]) | json_values,
        "message": json_values | huge_text,
        "error": json_values,
        "data": prediction_like | json_values,
        "error_code": json_values,
    },
)


def as_json(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(as_json),
    envelopes.map(as_json),
    st.tuples(envelopes.map(as_json), st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])]),
    st.just(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    st.just(b""),
)
statuses = st.sampled_from(
    [200, 200, 200, 201, 204, 304, 400, 401, 403, 404, 410, 418, 422, 429, 500, 502, 503, 504]
) | st.integers(100, 599)
retry_afters = st.one_of(
    st.none(),
    header_text,
    st.integers(-(10**6), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
    ).map(lambda moment: format_datetime(moment, usegmt=True)),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "retry-after": retry_afters,
        "content-type": st.sampled_from(["application/json", "text/html", "video/mp4"])
        | header_text,
        "x-request-id": header_text,
    },
).map(lambda values: {k: v for k, v in values.items() if v is not None})


@st.composite
def answers(draw: st.DrawFn) -> httpx.Response:
    """One answer a broken server might give; content-encoding and Location stay out (bug E)."""
    return httpx.Response(draw(statuses), headers=draw(headers), content=draw(bodies))


def generate(client: AsyncClient) -> Coroutine[Any, Any, Video]:
    return client.generate(IMAGE, "Camera slowly zooms in", timeout=5.0)


# -- answers, fuzzed, through the whole client ---------------------------------------------------


@FUZZ
@given(where=st.sampled_from(ROUTES), bad=st.lists(answers(), min_size=1, max_size=3))
def test_any_answer_on_any_route_ends_in_a_video_or_a_wavenb_error(
    where: str, bad: list[httpx.Response]
) -> None:
    server = Server({where: bad})
    result = run(outcome(server, generate))
    assert isinstance(result, Video | WavenbError), result
    server.assert_submits_resent_only_after_a_refusal()


@FUZZ
@given(answers=st.fixed_dictionaries({r: st.lists(answers(), max_size=4) for r in ROUTES}))
def test_answers_fuzzed_everywhere_at_once_never_escape_and_the_journal_settles(
    answers: dict[str, list[httpx.Response]],
) -> None:
    server = Server(answers)
    result = run(outcome(server, generate, journal=True))
    assert isinstance(result, Video | WavenbError), result
    server.assert_submits_resent_only_after_a_refusal()


@FUZZ
@given(answer=answers())
def test_a_fuzzed_upload_answer_never_escapes(answer: httpx.Response) -> None:
    result = run(outcome(Server({"upload": [answer] * 6}), lambda c: c.upload(IMAGE)))
    assert isinstance(result, str | WavenbError), result


def partials(folder: Path) -> list[Path]:
    return list(folder.glob("*.part"))


@FUZZ
@given(answer=answers())
def test_a_fuzzed_download_never_leaves_a_partial_file(answer: httpx.Response) -> None:
    server = Server({"download": [answer] * 6})

    async def download(client: AsyncClient) -> object:
        with tempfile.TemporaryDirectory() as folder:
            try:
                return await client.download(f"{CDN}/predictions/{PID}/1.mp4", Path(folder))
            finally:
                assert not partials(Path(folder))

    result = run(outcome(server, download))
    assert isinstance(result, Path | WavenbError), result


@FUZZ
@given(value=retry_afters)
def test_retry_after_from_a_429_is_none_or_a_sane_wait(value: str | None) -> None:
    limited = httpx.Response(429, headers={} if value is None else {"retry-after": value})
    result = run(outcome(Server({"result": [limited] * 10}), lambda c: c.get(PID)))
    assert isinstance(result, RateLimitError), result
    wait = result.retry_after
    assert wait is None or (math.isfinite(wait) and 0.0 <= wait <= MAX_RETRY_AFTER)


@given(
    offset=st.integers(-(10**7), 10**7),
    form=st.sampled_from(["date", "seconds"]),
)
def test_retry_after_reads_both_forms_to_the_second(offset: int, form: str) -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    text = (
        format_datetime(now + timedelta(seconds=offset), usegmt=True)
        if form == "date"
        else str(offset)
    )
    expected = min(max(float(offset), 0.0), MAX_RETRY_AFTER)
    assert parse_retry_after(text, now) == pytest.approx(expected, abs=1.0)


# -- inputs, fuzzed: refused before any request, or sent ------------------------------------------


def sent_or_refused(server: Server, result: object) -> None:
    if isinstance(result, InputError):
        assert server.requests == [], "bad input reached the server"
    else:
        assert isinstance(result, Video | WavenbError), result


@FUZZ
@given(
    prompt=st.one_of(
        st.text(max_size=1200),  # any unicode but lone surrogates (bug B, pinned below)
        st.text(st.characters(categories=("Cc", "Cf", "Zl", "Zp", "Zs")), max_size=50),
        st.integers(0, 100_000).map(lambda n: "zoom " * (n // 5)),
        st.sampled_from(["\x00zoom", "zoom\x1b[31m", "\u202ezoom", "zoom\r\n\tin", "\ufeff"]),
    )
)
def test_any_prompt_is_sent_or_refused_before_any_request(prompt: str) -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate("https://img.example/a.jpg", prompt)))
    sent_or_refused(server, result)
    if isinstance(result, Video):
        assert len(prompt.strip()) <= 1000


def png_header(width: int, height: int, mode: tuple[int, int] = (8, 2)) -> bytes:
    """A PNG that claims any size in its header and holds no pixels: a bomb without the bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    head = struct.pack(">IIBBBBB", width, height, *mode, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    size = (54 + 3 * abs(width * height)) % 2**32  # the header's own claim; may be absurd
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 54) + info


def real_bomb() -> bytes:
    """A real PNG of 12000 x 12000 one-bit pixels: 144 Mpx from a few hundred kilobytes."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, format="PNG")
    return buffer.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "purple").save(buffer, format=fmt)
    return buffer.getvalue()


SAMPLES = {fmt: encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")}
sides = st.sampled_from([0, 1, 15, 16, 48, 64, 4096, 7999, 8000, 30_000, 65_535, 2**31 - 1])
images = st.one_of(
    st.binary(max_size=300),
    st.just(b""),
    st.tuples(st.sampled_from(sorted(SAMPLES)), st.floats(0, 1)).map(
        lambda t: SAMPLES[t[0]][: int(len(SAMPLES[t[0]]) * t[1])]  # truncated anywhere
    ),
    st.tuples(st.sampled_from(sorted(SAMPLES)), st.binary(min_size=1, max_size=50)).map(
        lambda t: SAMPLES[t[0]][:40] + t[1]  # a real header, then garbage
    ),
    st.builds(png_header, sides, sides),
    st.builds(gif_header, st.integers(0, 65_535), st.integers(0, 65_535)),
    st.builds(bmp_header, st.integers(-(2**20), 2**20), st.integers(-(2**20), 2**20)),
    st.sampled_from([b"%PDF-1.4\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"PK\x03\x04",
                     b"<html></html>", b"\x00" * 64]),
)  # fmt: skip


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow's own notes on corrupt TIFFs
@FUZZ
@given(image=images)
def test_any_image_bytes_are_sent_or_refused_before_any_request(image: bytes) -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate(image, "Camera slowly zooms in")))
    sent_or_refused(server, result)


@pytest.mark.parametrize(
    "image",
    [
        real_bomb(),
        png_header(100_000, 100_000),
        gif_header(65_535, 65_535),
        bmp_header(30_000, 30_000),
    ],
    ids=["real-png-bomb", "png-header", "gif-header", "bmp-header"],
)
def test_decompression_bombs_are_refused_fast_without_a_request(image: bytes) -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate(image, "Camera slowly zooms in")))
    assert isinstance(result, InputError) and server.requests == []


@FUZZ
@given(
    url=st.one_of(
        st.tuples(
            st.sampled_from(["http://", "https://", "HTTP://", "file://", "ftp://", "javascript:",
                             "data:", "data:image/png;base64,", "//", ""]),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
        ).map("".join),
        st.sampled_from([
            "http://127.0.0.1/x.jpg", "http://localhost:8765/x.png", "http://10.0.0.8/a.jpg",
            "http://169.254.169.254/latest/meta-data/", "http://[::1]/x.jpg", "http://0/x.jpg",
            "file:///etc/passwd", "https://user:pass@example.com/x.jpg", "http://", "https://:80/",
            "data:image/png;base64,!!!", f"data:image/png;base64,{base64.b64encode(IMAGE).decode()}",
        ]),
    )
)  # fmt: skip
def test_any_url_is_sent_or_refused_before_any_request(url: str) -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate(url, "Camera slowly zooms in")))
    sent_or_refused(server, result)


@FUZZ
@given(
    path=st.text(min_size=1, max_size=300)
)
def test_any_path_is_read_or_refused_before_any_request(path: str) -> None:
    assume(not path.startswith(("http://", "https://", "data:")))
    server = Server()
    result = run(outcome(server, lambda c: c.generate(path, "Camera slowly zooms in")))
    sent_or_refused(server, result)


# -- bugs this suite found, each pinned by its own test ------------------------------------------


def test_deeply_nested_json_is_a_server_error() -> None:
    deep = b'{"code": 200, "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    server = Server({"result": [httpx.Response(200, content=deep)] * 6})
    assert isinstance(run(outcome(server, lambda c: c.get(PID))), WavenbError)


@pytest.mark.parametrize("where", ["result", "submit", "download"])
def test_a_body_that_fails_to_decompress_is_a_wavenb_error(where: str) -> None:
    # A stream, not content=: httpx decodes content= eagerly, in the test instead of the client.
    broken = [
        httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip"))
        for _ in range(6)
    ]
    server = Server({where: broken})
    assert isinstance(run(outcome(server, generate)), WavenbError)


@pytest.mark.parametrize("where", ["result", "download"])
def test_a_redirect_loop_is_a_wavenb_error(where: str) -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        if route(request) == where:
            return httpx.Response(302, headers={"location": str(request.url)})
        return Server()(request)

    assert isinstance(run(outcome(loop, generate)), WavenbError)  # type: ignore[arg-type]


def test_a_prompt_with_a_lone_surrogate_is_refused_as_input() -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate("https://img.example/a.jpg", "zoom \ud800")))
    assert isinstance(result, InputError) and server.requests == []


@pytest.mark.parametrize("path", ["cat\x00.jpg", "\ud800.jpg", "~no-such-user-wavenb/cat.jpg"])
def test_a_path_that_cannot_be_opened_is_refused_as_input(path: str) -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate(path, "zoom in")))
    assert isinstance(result, InputError) and server.requests == []


@pytest.mark.parametrize(
    "url", ["http://[::1/x.jpg", "http://[oops]/x.jpg", "https://]/x", "http://ex\uff03ample.com/x"]
)
def test_a_malformed_url_is_refused_as_input(url: str) -> None:
    server = Server()
    result = run(outcome(server, lambda c: c.generate(url, "zoom in")))
    assert isinstance(result, InputError) and server.requests == []
