"""The sandbox served by uvicorn (``build_server``): its defences, and the official SDK.

Real sockets on 127.0.0.1 throughout: half-sent requests, forged Host headers, and the
unmodified ``wavespeed`` SDK (2.0.5) running its upload, ``run`` and sync-mode ``run``.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.test_sandbox_api import AUTH, body
from wavenb.sandbox import SandboxConfig
from wavenb.sandbox._server import build_server

START = 10.0
"""Seconds uvicorn may take to start or stop."""
HEADER_TIMEOUT = 1.0
SOCKETS = 400


@pytest.fixture
def allowed_hosts() -> list[str]:
    return ["127.0.0.1"]


@contextmanager
def served(config: SandboxConfig | None = None, **options: Any) -> Iterator[tuple[str, Any]]:
    """``build_server`` on a free loopback port in a thread; yields (url, the sandbox app)."""
    config = config or SandboxConfig(speed="instant", duration=1.0)
    server = build_server("127.0.0.1", 0, config, log_level="warning", **options)
    thread = threading.Thread(target=server.run, name="sandbox-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START
    while not server.started:  # uvicorn has no "started" event: poll, bounded
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server.config.app.app
    finally:
        server.should_exit = True
        thread.join(START)


@pytest.fixture
def url() -> Iterator[str]:
    with served(header_timeout=HEADER_TIMEOUT) as (address, _):
        yield address


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def exchange(url: str, request: bytes, timeout: float = 10.0) -> bytes:
    """Send exact bytes, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_for_host(url: str, host: str) -> int:
    request = (
        f"GET /api/v3/balance HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}"
        "\r\nConnection: close\r\n\r\n"
    ).encode()
    return int(exchange(url, request).split(b" ", 2)[1])


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF or reset) before the socket's timeout."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# -- the header deadline ---------------------------------------------------------------------


def test_half_sent_requests_are_dropped_after_the_header_timeout(url: str) -> None:
    """400 connections each send half a request line; the server must not keep them."""
    sockets = []
    started = time.monotonic()
    try:
        for _ in range(SOCKETS):
            sock = socket.create_connection(("127.0.0.1", port_of(url)), timeout=10)
            sock.sendall(b"GET /api/v3/bal")
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(HEADER_TIMEOUT + 10.0)
        closed = [closed_by_peer(sock) for sock in sockets]
        elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert all(closed), f"{closed.count(False)} of {SOCKETS} connections were kept"
    print(f"{SOCKETS} half-sent requests closed after {elapsed:.2f} s (timeout {HEADER_TIMEOUT} s)")
    assert elapsed < HEADER_TIMEOUT + 5.0  # the deadline holds, not merely "eventually"
    assert status_for_host(url, f"127.0.0.1:{port_of(url)}") == 200  # and it still serves


def test_a_silent_connection_is_dropped_too(url: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=HEADER_TIMEOUT + 10) as sock:
        assert closed_by_peer(sock)


def test_a_head_trickled_byte_by_byte_is_dropped_at_the_deadline(url: str) -> None:
    """The deadline runs from the start of the head, not from the last byte received."""
    head = f"GET /api/v3/balance HTTP/1.1\r\nHost: 127.0.0.1:{port_of(url)}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
        sock.settimeout(HEADER_TIMEOUT / 4)
        for byte in head:  # one byte per quarter timeout: never idle as long as the timeout
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # closed under us: what we want
            if closed_by_peer(sock):
                break
        else:
            pytest.fail("the server waited for the whole trickled head")


def test_a_slow_body_is_not_cut_by_the_header_deadline(url: str) -> None:
    """Uploads may be slow: only the head has a deadline."""
    payload = b"{}"
    head = (
        f"POST /api/v3/predictions HTTP/1.1\r\nHost: 127.0.0.1:{port_of(url)}\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(HEADER_TIMEOUT * 1.5)
        assert not closed_by_peer(sock)  # past the header deadline, still open
        sock.settimeout(10)
        sock.sendall(payload)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


# -- the Host check --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", "sandbox.wavenb.invalid"])
def test_local_names_with_the_port_are_answered(url: str, name: str) -> None:
    assert status_for_host(url, f"{name}:{port_of(url)}") == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "localhost:1",
     "127.0.0.2:{port}", "localhost", "[::1]:{port}0", "0.0.0.0:{port}"],
)  # fmt: skip
def test_other_hosts_are_refused_with_421(url: str, host: str) -> None:
    """A rebound DNS name reaches us with its own Host header: refused before the app."""
    answer = exchange(
        url,
        (
            f"GET /api/v3/balance HTTP/1.1\r\nHost: {host.format(port=port_of(url))}\r\n"
            f"Authorization: {AUTH['Authorization']}\r\nConnection: close\r\n\r\n"
        ).encode(),
    )
    assert answer.startswith(b"HTTP/1.1 421")
    assert b"x-wavenb-sandbox: 1" in answer.lower()
    assert b'"code":421' in answer


def test_refused_hosts_never_reach_the_app() -> None:
    with served() as (url, app):
        status_for_host(url, "evil.example")
        assert sum(app.state.sandbox.requests.values()) == 0
        status_for_host(url, f"localhost:{port_of(url)}")
        assert app.state.sandbox.requests["GET /api/v3/balance"] == 1


def test_httpx_with_the_served_url_just_works(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        response = client.post("/api/v3/runwayml/gen4-turbo", json=body(), headers=AUTH)
    assert response.status_code == 200
    assert response.json()["data"]["urls"]["get"].startswith(url)


# -- the official SDK, unmodified ----------------------------------------------------------------


@pytest.fixture
def sdk_sandbox() -> Iterator[tuple[str, Any]]:
    with served(SandboxConfig(speed="instant", duration=1.0)) as pair:
        yield pair


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "lighthouse.png"
    Image.new("RGB", (320, 180), "steelblue").save(path)
    return path


@pytest.fixture
def sdk(sdk_sandbox: tuple[str, Any]) -> Any:
    wavespeed = pytest.importorskip("wavespeed")
    url, _ = sdk_sandbox
    return wavespeed.Client(api_key="wsk-sdk-test-key", base_url=url, max_connection_retries=0)


def test_the_sdk_uploads_with_its_two_step_upload(sdk: Any, sdk_sandbox, image_file: Path) -> None:
    url, app = sdk_sandbox
    download_url = sdk.upload(str(image_file))
    assert download_url.startswith(f"{url}/sandbox-media/")
    assert httpx.get(download_url).content == image_file.read_bytes()
    assert app.state.sandbox.requests["POST /api/v3/media/uploads"] == 1
    assert app.state.sandbox.requests["PUT /sandbox-upload/{name}"] == 1


def test_the_sdk_uploads_a_file_object_too(sdk: Any, image_file: Path) -> None:
    stream = io.BytesIO(image_file.read_bytes())
    stream.name = "from-memory.png"
    download_url = sdk.upload(stream)
    assert httpx.get(download_url).content == image_file.read_bytes()


def test_the_sdk_runs_a_video_and_gets_the_sandbox_output(
    sdk: Any, sdk_sandbox, image_file: Path
) -> None:
    url, app = sdk_sandbox
    image = sdk.upload(str(image_file))
    result = sdk.run("runwayml/gen4-turbo", {"image": image, "prompt": "Slow push in"}, timeout=60)
    (output,) = result["outputs"]
    assert output.startswith(f"{url}/sandbox-cdn/predictions/")
    video = httpx.get(output)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert app.state.sandbox.accepted == 1


def test_the_sdk_runs_in_sync_mode(sdk: Any, sdk_sandbox, image_file: Path) -> None:
    url, app = sdk_sandbox
    image = sdk.upload(str(image_file))
    result = sdk.run(
        "runwayml/gen4-turbo",
        {"image": image, "prompt": "Pan left"},
        enable_sync_mode=True,
        timeout=60,
    )
    (output,) = result["outputs"]
    assert output.startswith(f"{url}/sandbox-cdn/predictions/")
    assert app.state.sandbox.requests["GET /api/v3/predictions/{id}/result"] == 0  # no polling


def test_the_sdk_reports_a_sync_timeout_with_the_task_id(image_file: Path) -> None:
    wavespeed = pytest.importorskip("wavespeed")
    config = SandboxConfig(speed="fast", duration=1.0, sync_wait=0.0)
    with served(config) as (url, app):
        client = wavespeed.Client(api_key="wsk-sdk-test-key", base_url=url)
        image = client.upload(str(image_file))
        outcome = client.run_no_throw(
            "runwayml/gen4-turbo", {"image": image, "prompt": "Pan left"}, enable_sync_mode=True
        )
        ((job_id, _),) = app.state.sandbox.submissions
    assert (outcome["status"], outcome["task_id"]) == ("processing", job_id)
    assert "Sync mode timed out" in outcome["error"]


def test_the_sdk_sees_a_failed_task_as_an_error(sdk: Any, image_file: Path) -> None:
    image = sdk.upload(str(image_file))
    with pytest.raises(RuntimeError, match="Content policy"):
        sdk.run(
            "runwayml/gen4-turbo", {"image": image, "prompt": "zoom in on the gore"}, timeout=60
        )
