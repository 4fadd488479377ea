"""The served sandbox defends itself: loopback by default, keys, no traversal, bounded memory.

Everything here goes over real sockets to uvicorn on 127.0.0.1 (``tests/test_sandbox_api.py``
checks the same rules in-process): raw request lines where httpx would tidy a path up, uploads
streamed so that neither side holds a whole file, and measurements of what the process holds.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import CANARY_KEY, serve_sandbox
from wavenb.cli.main import _parser
from wavenb.sandbox import SandboxConfig, serve
from wavenb.sandbox._app import MAX_UPLOAD_BYTES
from wavenb.sandbox._server import build_server, warn_if_exposed

AUTH = {"Authorization": f"Bearer {CANARY_KEY}"}
SUBMIT = "/api/v3/runwayml/gen4-turbo"
UPLOAD = "/api/v3/media/upload/binary"
SECRET = b"TOPSECRET-wavenb-hardening"
RENDER = 60.0


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A served sandbox whose storage sits beside a secret file it must never serve."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    store = tmp_path / "store"
    store.mkdir()
    (store / "secret.txt").write_bytes(SECRET)
    config = SandboxConfig(
        speed="instant", duration=0.2, storage_dir=store, api_keys=frozenset({CANARY_KEY})
    )
    with serve_sandbox(config) as served:
        yield served


def raw(url: str, request: bytes) -> bytes:
    """Send exact bytes (no client normalising the path) and read the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def get_raw(url: str, target: bytes) -> tuple[int, bytes]:
    host = url.removeprefix("http://").encode()  # a loopback sandbox answers its own Host only
    answer = raw(url, b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    return int(answer.split(b" ", 2)[1]), answer


def image(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "orange").save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(content: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(content).decode()}"


# -- where it listens ------------------------------------------------------------------------


def test_every_way_to_start_it_binds_loopback_unless_told() -> None:
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(build_server).parameters["host"].default == "127.0.0.1"
    assert _parser().parse_args(["sandbox"]).host == "127.0.0.1"
    server = build_server(port=0, log_level="warning")
    assert server.config.host == "127.0.0.1"


def test_the_served_socket_is_on_loopback(sandbox: tuple[str, Any]) -> None:
    url, _ = sandbox
    host = url.removeprefix("http://").split(":")[0]
    assert host == "127.0.0.1"


@pytest.mark.parametrize("host", ["", "0", "[::]", "0x0", "10.0.0.1", "host.docker.internal"])
def test_unusual_spellings_of_everywhere_warn_too(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty host or ``0`` binds every interface: they must warn like ``0.0.0.0`` does."""
    with pytest.warns(UserWarning, match="not loopback"):
        warn_if_exposed(host)
    assert "WARNING" in capsys.readouterr().err


def test_building_an_exposed_server_warns_before_it_binds() -> None:
    with pytest.warns(UserWarning, match="anyone who can reach this address|not loopback"):
        server = build_server("0.0.0.0", 0, log_level="warning")  # noqa: S104
    assert not server.started


# -- keys ------------------------------------------------------------------------------------


API_ROUTES = [
    ("POST", SUBMIT), ("GET", f"/api/v3/predictions/{'a' * 32}/result"),
    ("GET", f"/api/v3/predictions/{'a' * 32}"), ("POST", UPLOAD), ("GET", "/api/v3/balance"),
    ("POST", "/api/v3/wavespeed-ai/prompt-optimizer"), ("GET", "/api/v3/no/such/route"),
]  # fmt: skip


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong-key", f"Bearer {CANARY_KEY}x", f"Bearer {CANARY_KEY.upper()}",
     f"Basic {CANARY_KEY}", CANARY_KEY, f"Token {CANARY_KEY}"],
    ids=["none", "empty", "wrong", "longer", "upper", "basic", "bare", "token"],
)  # fmt: skip
def test_every_api_route_needs_the_right_bearer_key(
    sandbox: tuple[str, Any], authorization: str | None
) -> None:
    url, app = sandbox
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=url) as http:
        for method, path in API_ROUTES:
            response = http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            envelope = response.json()
            assert (envelope["code"], envelope["data"]) == (401, None)
            assert response.headers["x-wavenb-sandbox"] == "1"
    assert app.state.sandbox.accepted == 0


def test_outputs_and_uploads_are_public_like_cdn_urls(sandbox: tuple[str, Any]) -> None:
    """By design: the real API's output URLs need no key, so the sandbox's need none either."""
    url, app = sandbox
    with httpx.Client(base_url=url) as http:
        uploaded = http.post(UPLOAD, files={"file": ("a.png", image((64, 48)))}, headers=AUTH)
        media = uploaded.json()["data"]["download_url"]
        task = http.post(SUBMIT, json={"prompt": "zoom", "image": media}, headers=AUTH).json()
        app.state.sandbox.wait_for_render(task["data"]["id"], RENDER)
        video = http.get(task["data"]["urls"]["get"], headers=AUTH).json()["data"]["outputs"][0]
        assert http.get(media).status_code == 200
        assert http.get(video).status_code == 200


# -- file serving ----------------------------------------------------------------------------

TRAVERSALS = [
    b"../secret.txt", b"../../secret.txt", b"..%2fsecret.txt", b"..%2f..%2fsecret.txt",
    b"%2e%2e/secret.txt", b"%2e%2e%2fsecret.txt", b"%2E%2E%2F%2E%2E%2Fsecret.txt",
    b"%252e%252e%252fsecret.txt", b"..\\secret.txt", b"..\\..\\secret.txt", b"..%5csecret.txt",
    b"..%5c..%5csecret.txt", b"....//secret.txt", b"%c0%ae%c0%ae%c0%afsecret.txt",
    b"secret.txt", b"%2Fetc%2Fpasswd", b"/etc/passwd", b"%00", b"secret.txt%00.png",
    b".%2e/secret.txt", b"..;/secret.txt",
]  # fmt: skip
PREFIXES = [b"/sandbox-media/", b"/sandbox-cdn/predictions/", b"/api/v3/predictions/"]


@pytest.mark.parametrize("prefix", PREFIXES, ids=lambda p: p.decode().strip("/"))
def test_no_spelling_of_a_path_escapes_the_storage(sandbox: tuple[str, Any], prefix: bytes) -> None:
    url, _ = sandbox
    targets = [prefix + t for t in TRAVERSALS] + [prefix + t + b"/1.mp4" for t in TRAVERSALS]
    targets += [b"//secret.txt", b"/" + str(Path.cwd()).encode() + b"/secret.txt",
                b"http://x/sandbox-media/../secret.txt"]  # fmt: skip
    for target in targets:
        status, answer = get_raw(url, target)
        assert status in (400, 401, 404), (target, answer[:200])
        assert SECRET not in answer, target


# -- uploads ---------------------------------------------------------------------------------

BOUNDARY = "wavenbhardening"


def bmp_header(width: int, height: int) -> bytes:
    row = width * 3  # a multiple of 4 for the widths used here: no row padding
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, row * height, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + row * height, 0, 0, 54) + info


class StreamedUpload:
    """A multipart upload of a ``width`` x ``height`` BMP, made in 1 MB chunks as it is sent."""

    def __init__(self, width: int, height: int) -> None:
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bmp"\r\n'
            "Content-Type: image/bmp\r\n\r\n"
        ).encode() + bmp_header(width, height)
        self.pixels = width * 3 * height
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    @property
    def length(self) -> int:
        return len(self.head) + self.pixels + len(self.tail)

    async def chunks(self) -> AsyncIterator[bytes]:
        block = bytes(1 << 20)
        yield self.head
        left = self.pixels
        while left:
            yield block[: min(left, len(block))]
            left -= min(left, len(block))
        yield self.tail

    def headers(self, *, declare_length: bool) -> dict[str, str]:
        headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        if declare_length:
            headers["Content-Length"] = str(self.length)
        return headers


def leftovers(app: Any) -> list[Path]:
    return [p for p in (app.state.sandbox.storage.root / "media").iterdir() if p.suffix == ".part"]


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_upload_is_refused_with_413_and_leaves_nothing(
    sandbox: tuple[str, Any], declare_length: bool
) -> None:
    url, app = sandbox
    upload = StreamedUpload(3200, 4000)  # 38 MB of valid BMP: only its size is wrong
    assert upload.length > MAX_UPLOAD_BYTES
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post(
            UPLOAD, content=upload.chunks(), headers=upload.headers(declare_length=declare_length)
        )
    assert response.status_code == 413
    assert response.json()["code"] == 413 and "32 MB" in response.json()["message"]
    assert not list((app.state.sandbox.storage.root / "media").iterdir())


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("a.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>x()</script></svg>", "not an image"),
        ("a.png", b"<html><script>alert(1)</script></html>", "not an image"),
        ("a.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n", "not an image"),
        ("a.zip", b"PK\x03\x04" + bytes(100), "not an image"),
        ("a.png", b"", "not an image"),
        ("a.png", image((64, 48))[:40], "not an image"),
        ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "not an image"),
        ("bomb.png", None, "too many pixels"),
    ],
    ids=["svg", "html-as-png", "pdf", "zip", "empty", "truncated-png", "png-magic-only", "bomb"],
)  # fmt: skip
def test_uploads_that_are_not_images_are_refused_with_the_envelope(
    sandbox: tuple[str, Any], name: str, content: bytes | None, words: str
) -> None:
    url, app = sandbox
    if content is None:  # a real PNG of 20000 x 20000 one-bit pixels: 400 Mpx in ~1 MB
        buffer = io.BytesIO()
        Image.new("1", (20000, 20000)).save(buffer, format="PNG")
        content = buffer.getvalue()
    with httpx.Client(base_url=url) as http:
        response = http.post(UPLOAD, files={"file": (name, content)}, headers=AUTH)
    assert response.status_code == 400, response.text
    envelope = response.json()
    assert envelope["code"] == 400 and envelope["data"] is None and words in envelope["message"]
    assert not list((app.state.sandbox.storage.root / "media").iterdir())


@pytest.mark.parametrize("size", [(2000, 100), (100, 2000), (16, 1000), (1999, 999)])
def test_absurd_aspect_ratios_fail_the_task_with_the_reason(
    sandbox: tuple[str, Any], size: tuple[int, int]
) -> None:
    """As Runway does: the upload is taken, the task fails saying the allowed range."""
    url, app = sandbox
    with httpx.Client(base_url=url) as http:
        uploaded = http.post(UPLOAD, files={"file": ("a.png", image(size))}, headers=AUTH)
        assert uploaded.status_code == 200
        sources = [uploaded.json()["data"]["download_url"], data_uri(image(size))]
        for source in sources:
            task = http.post(SUBMIT, json={"prompt": "zoom", "image": source}, headers=AUTH)
            data = task.json()["data"]
            app.state.sandbox.wait_for_render(data["id"], RENDER)
            done = http.get(data["urls"]["get"], headers=AUTH).json()["data"]
            assert done["status"] == "failed" and done["outputs"] == []
            assert "between 0.5 and 2.0" in done["error"], done


@pytest.mark.parametrize("ratio", ["21:9", "2:1", "0:1", "-1:1", "16:9 ", "1:1;rm -rf", "9" * 1000])
def test_unknown_aspect_ratio_fields_are_a_400_envelope(
    sandbox: tuple[str, Any], ratio: str
) -> None:
    url, app = sandbox
    body = {"prompt": "zoom", "image": data_uri(image((64, 48))), "aspect_ratio": ratio}
    with httpx.Client(base_url=url) as http:
        response = http.post(SUBMIT, json=body, headers=AUTH)
    assert response.status_code == 400
    assert "16:9, 4:3, 1:1, 3:4, 9:16" in response.json()["message"]
    assert app.state.sandbox.accepted == 0


@pytest.mark.parametrize(
    "source", ["file:///etc/passwd", "ftp://x/a.png", "gopher://x/", "//x/a.png", "/etc/passwd"]
)
def test_images_by_local_file_or_odd_scheme_are_refused(
    sandbox: tuple[str, Any], source: str
) -> None:
    url, app = sandbox
    with httpx.Client(base_url=url) as http:
        response = http.post(SUBMIT, json={"prompt": "zoom", "image": source}, headers=AUTH)
    assert response.status_code == 400 and "http(s) URL" in response.json()["message"]
    assert app.state.sandbox.accepted == 0


# -- memory ----------------------------------------------------------------------------------

UPLOADS = 20
AT_ONCE = 4
UPLOAD_SIDE = (3200, 3200)  # a 30.7 MB BMP
TRACED_BOUND = 24 * 1024 * 1024
"""Python allocations may peak at this while 4 x 30 MB uploads stream: less than one upload."""
RSS_BOUND = 96 * 1024 * 1024
"""Growth of the process's peak RSS: less than the 4 uploads in flight (123 MB) held whole."""


def peak_rss() -> int | None:
    """``VmHWM`` from /proc (Linux), in bytes; ``None`` where there is no such file."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def reset_peak_rss() -> bool:
    """Restart ``VmHWM`` from the current RSS (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def send_uploads(url: str, upload: StreamedUpload) -> list[int]:
    gate = asyncio.Semaphore(AT_ONCE)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def one() -> int:
            async with gate:
                response = await http.post(
                    UPLOAD, content=upload.chunks(), headers=upload.headers(declare_length=True)
                )
                return response.status_code

        return list(await asyncio.gather(*(one() for _ in range(UPLOADS))))


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
async def test_memory_stays_bounded_while_large_uploads_stream(
    sandbox: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """20 uploads of 30 MB, 4 at a time, through the served sandbox (same process, so measured
    together with the client): the bytes go to disk, they are never held whole."""
    url, app = sandbox
    upload = StreamedUpload(*UPLOAD_SIDE)
    rss_before = peak_rss() if reset_peak_rss() else None
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        statuses = await asyncio.wait_for(send_uploads(url, upload), 120)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = peak_rss()
    rss_growth = None if rss_before is None or rss_after is None else rss_after - rss_before
    with capsys.disabled():  # the figures, into the CI log
        print(
            f"\n{UPLOADS} x {upload.length / 2**20:.1f} MB uploads, {AT_ONCE} at once: "
            f"traced peak {traced_peak / 2**20:.1f} MB, peak RSS growth "
            f"{'n/a' if rss_growth is None else f'{rss_growth / 2**20:.1f} MB'}"
        )
    assert statuses == [200] * UPLOADS
    assert traced_peak < TRACED_BOUND
    if rss_growth is not None:
        assert rss_growth < RSS_BOUND
    stored = list((app.state.sandbox.storage.root / "media").iterdir())
    assert [p.stat().st_size for p in stored] == [
        upload.length - len(upload.head) - len(upload.tail) + 54
    ]
    assert not leftovers(app)


async def test_the_memory_measure_would_see_an_upload_held_whole(sandbox: tuple[str, Any]) -> None:
    """The control: the same measure, with the client holding one upload in memory, goes over
    the bound. So the bound above is not met by a blind instrument."""
    url, _ = sandbox
    upload = StreamedUpload(*UPLOAD_SIDE)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        whole = b"".join([chunk async for chunk in upload.chunks()])
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            response = await http.post(
                UPLOAD, content=whole, headers=upload.headers(declare_length=True)
            )
        del whole
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    assert traced_peak > TRACED_BOUND


def test_answers_never_echo_a_traversal_into_a_served_file(sandbox: tuple[str, Any]) -> None:
    """404 messages name the path asked for, as JSON text: never the content of a file."""
    url, _ = sandbox
    status, answer = get_raw(url, b"/sandbox-media/..%2f..%2fsecret.txt")
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert status == 404 and body["data"] is None and SECRET.decode() not in body["message"]
