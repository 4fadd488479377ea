"""The key stays home: it goes only to the server it belongs to, and no echo of it is ever shown.

Every test here runs against ``tests/hostile.py``'s server (real sockets, not the sandbox), which
records every request and echoes the Authorization header back wherever a server could.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

import wavenb
from tests.conftest import CANARY_KEY, MP4, png_bytes
from tests.hostile import Hostile, Reply, Seen, envelope, prediction_data
from wavenb.cli.main import main
from wavenb.core.models import Prediction, Status
from wavenb.journal.store import Journal

PID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
OTHER_KEY = "wsk-other-server-key-5555555555"


def row_on(journal: Journal, server: str, pid: str, *, backend: str = "api") -> str:
    """A journal row of a task accepted by ``server`` and still running."""
    key = journal.begin(
        request_hash=f"h-{server}-{pid}", model="runwayml/gen4-turbo", prompt="zoom in",
        aspect_ratio=None, image_sha256=None, image_source="https://img.example/a.jpg",
        backend=backend, base_url=server, cost=0.5,
    )  # fmt: skip
    journal.accepted(key, Prediction(pid, "runwayml/gen4-turbo", Status.PROCESSING))
    return key


def finishing(seen: Seen) -> Reply:
    """A server that says every task it is asked about is done, with a whole MP4."""
    if seen.path.endswith("/result"):
        pid = seen.path.split("/")[-2]
        return Reply.json(envelope(prediction_data(
            pid, "completed", outputs=[f"http://127.0.0.1:{seen.headers['host'].split(':')[1]}/o/{pid}.mp4"]
        )))  # fmt: skip
    if seen.path.startswith("/o/"):
        return Reply(200, MP4, {"content-type": "video/mp4"})
    return Reply.json(envelope(None, 404, "no"), status=404)


def api_keys(server: Hostile) -> set[str | None]:
    """The Authorization headers the server's API routes received."""
    return {r.authorization for r in server.requests if r.path.startswith("/api/")}


@pytest.fixture
def journal() -> Iterator[Journal]:
    with Journal() as opened:  # WAVENB_HOME is the test's own folder (autouse isolation)
        yield opened


def test_resume_never_sends_the_configured_key_to_another_server(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows on a stub, a LAN host and a typo host: none of them gets WAVESPEED_API_KEY."""
    monkeypatch.setenv("WAVESPEED_API_KEY", CANARY_KEY)
    with Hostile(finishing) as stub:
        row_on(journal, stub.url, PID)
        row_on(journal, "http://192.0.2.10:8765", "b" * 32)  # TEST-NET: never reachable
        row_on(journal, "https://api.wavespeed.ai.typo.example", "c" * 32)
        results = wavenb.resume()
        assert stub.requests == []  # not even asked without its own key
    assert len(results) == 3
    for item in results:
        assert item.video is None
        assert isinstance(item.error, wavenb.AuthenticationError)
        assert "--api-key-file" in str(item.error) and CANARY_KEY not in str(item.error)


def test_a_key_given_with_a_base_url_goes_to_that_server_only(journal: Journal) -> None:
    with Hostile(finishing) as stub, Hostile(finishing) as elsewhere:
        row_on(journal, stub.url, PID)
        row_on(journal, elsewhere.url, "d" * 32)
        results = wavenb.resume(OTHER_KEY, stub.url)
        assert [r.video is not None for r in results] == [True]
        assert api_keys(stub) == {f"Bearer {OTHER_KEY}"}
        assert {r.authorization for r in stub.seen(path_end=".mp4")} == {None}  # a CDN: no key
        assert elsewhere.requests == []


def test_the_cli_reads_the_key_from_a_file_or_stdin_and_warns_about_argv(
    journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(OTHER_KEY + "\n")
    with Hostile(finishing) as stub:
        row_on(journal, stub.url, PID)
        assert main(["resume", "--base-url", stub.url, "--api-key-file", str(key_file)]) == 0
        captured = capsys.readouterr()
        assert "warning" not in captured.err and OTHER_KEY not in captured.out + captured.err
        assert api_keys(stub) == {f"Bearer {OTHER_KEY}"}
        row_on(journal, stub.url, "e" * 32)
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO(OTHER_KEY + "\n"))
        assert main(["resume", "--base-url", stub.url, "--api-key-file", "-"]) == 0
        row_on(journal, stub.url, "f" * 32)
        assert main(["resume", "--base-url", stub.url, "--api-key", OTHER_KEY]) == 0
        captured = capsys.readouterr()
        assert "--api-key is visible to other users" in captured.err
        assert OTHER_KEY not in captured.out + captured.err
    assert api_keys(stub) == {f"Bearer {OTHER_KEY}"}


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5:8765", "http://[fe80::1]"])
def test_no_key_over_plain_http_except_to_this_machine(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(wavenb.InputError, match="plain HTTP") as caught:
        wavenb.AsyncClient(CANARY_KEY, url)
    assert CANARY_KEY not in str(caught.value)
    monkeypatch.setenv("WAVESPEED_API_KEY", CANARY_KEY)
    with pytest.raises(wavenb.InputError, match="plain HTTP"):
        wavenb.AsyncClient(base_url=url)
    monkeypatch.delenv("WAVESPEED_API_KEY")
    assert wavenb.AsyncClient(base_url=url).base_url == url  # no key: the placeholder, no secret
    assert wavenb.AsyncClient(CANARY_KEY, "http://127.0.0.1:9").base_url == "http://127.0.0.1:9"


# -- echoes ------------------------------------------------------------------------------------


def echoing(where: str) -> callable:  # type: ignore[valid-type]
    """A server that puts the Authorization header it received into its answer at ``where``."""

    def handler(seen: Seen) -> Reply:
        said = f"bad request from {seen.authorization} (Authorization: {seen.authorization})"
        if "/model/" in seen.path:
            return Reply.json(envelope(None, 404, said), status=404)
        if seen.path.endswith("/upload/binary"):
            if where == "upload":  # the bare key in the uploaded image's URL
                key = seen.authorization.removeprefix("Bearer ")
                return Reply.json(envelope({"download_url": f"https://img.example/{key}/u.png"}))
            return Reply.json(envelope({"download_url": "https://img.example/u.png"}))
        if seen.path.endswith("/gen4-turbo"):
            if where in ("422", "500"):
                return Reply.json(envelope(None, int(where), said), status=int(where))
            return Reply.json(envelope(prediction_data(PID)))
        if seen.path.endswith("/result"):
            if where in ("task", "upload"):
                return Reply.json(envelope(prediction_data(PID, "failed", error=said)))
            url = f"http://127.0.0.1:1/{seen.authorization}/1.mp4"  # an output URL with the key
            return Reply.json(envelope(prediction_data(PID, "completed", outputs=[url])))
        if seen.path.startswith("/api/v3/predictions"):
            return Reply.json(envelope({"items": [], "total": 0}))
        return Reply.json(envelope(None, 404, said), status=404)

    return handler


def every_text(error: BaseException) -> str:
    """Everything a traceback or a logger could print about ``error``: the whole chain."""
    parts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        stack += [current.__cause__, current.__context__]
    return "\n".join(parts)


@pytest.mark.parametrize("where", ["422", "500", "task", "output", "upload"])
async def test_a_server_echoing_the_key_never_gets_it_shown(
    where: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    with Hostile(echoing(where)) as server:
        async with wavenb.AsyncClient(CANARY_KEY, server.url, output_dir=tmp_path) as client:
            with pytest.raises(wavenb.WavenbError) as caught:
                await client.generate(png_bytes(), f"Camera slowly zooms in {where}")
        assert any(r.authorization == f"Bearer {CANARY_KEY}" for r in server.requests)
    text = every_text(caught.value) + caplog.text
    assert "REDACTED" in text or where == "output"  # the echo was there, and was scrubbed
    assert CANARY_KEY not in text
    journal_bytes = b"".join(p.read_bytes() for p in Path(client.journal.path).parent.glob("journal*"))
    assert CANARY_KEY.encode() not in journal_bytes
    rows = wavenb.history()
    assert CANARY_KEY not in json.dumps([r.as_dict() for r in rows])


@pytest.mark.parametrize("where", ["422", "500", "task", "upload"])
async def test_the_studio_never_shows_an_echoed_key(where: str, tmp_path: Path) -> None:
    """The Studio's error box and its "details" (the server's whole answer) reach widget state."""
    pytest.importorskip("ipywidgets")
    from wavenb.studio.widget import Studio

    with Hostile(echoing(where)) as server:
        client = wavenb.AsyncClient(CANARY_KEY, server.url, output_dir=tmp_path)
        studio = Studio(client=client, save_dir=tmp_path / "saved")
        await studio.set_image(png_bytes())
        studio.prompt = f"Camera slowly zooms in {where}"
        await asyncio.wait_for(studio.generate(), 30)
        await client.aclose()
    state = json.dumps(studio.get_state(), default=repr)
    assert studio.error  # an error is shown; where it quotes the server, the echo is scrubbed
    assert where == "500" or "REDACTED" in json.dumps(studio.error, default=repr)
    assert CANARY_KEY not in state + repr(studio.history)


def test_the_cli_never_prints_an_echoed_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(png_bytes())
    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY)
    for where in ("422", "500", "task"):
        with Hostile(echoing(where)) as server:
            code = main(["generate", str(image), f"zoom {where}", "--base-url", server.url,
                         "--api-key-file", str(key_file)])  # fmt: skip
            assert code != 0
    assert main(["history", "--json"]) == 0
    captured = capsys.readouterr()
    assert "REDACTED" in captured.err
    assert CANARY_KEY not in captured.out + captured.err


def test_the_journal_error_column_is_redacted_even_for_unknown_keys(journal: Journal) -> None:
    """A bearer token the process never saw (another server's) is scrubbed by its shape."""
    key = journal.begin(
        request_hash="h", model="m", prompt="p", aspect_ratio=None, image_sha256=None,
        image_source="x", backend="api", base_url="https://api.wavespeed.ai", cost=0.5,
    )  # fmt: skip
    journal.refused(key, "401: Authorization: Bearer sk-live-not-ours-987654321 rejected")
    raw = sqlite3.connect(journal.path).execute("SELECT error FROM jobs").fetchone()[0]
    assert "sk-live-not-ours" not in raw and "REDACTED" in raw
