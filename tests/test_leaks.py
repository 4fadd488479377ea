"""The API key leaks nowhere, down every failure path: 0 hits for the canary key.

Every failure wavenb knows is driven with ``CANARY_KEY`` (401, 5xx, resets, drops, failed
tasks, timeouts, expired outputs, bad input) through the client, the command line (in-process
and as a ``python -m wavenb`` process against a served sandbox) and the Studio widget. Then
everything they left is searched for the key, raw and in base64 or hex, whole or its first ten
characters: stdout and stderr, every log record at every level (the sandbox's uvicorn at TRACE,
httpx and httpcore at DEBUG), exception messages, reprs, printed tracebacks and their whole
chains, the journal and its WAL, the outputs, every widget's state, the sandbox's own state and
storage, and every file under ``cassettes/`` (``tests/test_secrets.py`` parses the YAML ones).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API, CANARY_KEY, CASSETTES, ROOT, png_bytes, widget_states
from tests.frontend import recorded_comms
from wavenb import (
    AsyncClient,
    AuthenticationError,
    InputError,
    NotFoundError,
    PredictionFailed,
    PredictionTimeout,
    ServerError,
    SubmissionUncertain,
    WavenbError,
)
from wavenb.cli.main import main
from wavenb.sandbox import SandboxConfig, create_app
from wavenb.sandbox._faults import FaultPlan

IMAGE = png_bytes((64, 48))
PROMPT = "Camera slowly zooms in"
LIMIT = 30.0


def needles(key: str) -> dict[str, bytes]:
    """The key as it could show up: raw, its first ten characters, hex, base64 at any offset."""
    raw = key.encode()
    found = {"key": raw, "first ten characters": raw[:10], "hex": raw.hex().encode()}
    for pad in range(3):
        # The middle of the encoding, past the groups the neighbouring bytes change.
        found[f"base64+{pad}"] = base64.b64encode(b"\0" * pad + raw)[4:-4]
    return found


class Hunt:
    """Everything the scenarios left behind, searched for the key at the end."""

    def __init__(self, key: str = CANARY_KEY) -> None:
        self.needles = needles(key)
        self.places: list[tuple[str, bytes]] = []
        self.errors: list[BaseException] = []
        self.wire_logged_here = True
        """Whether this process's httpcore must have logged (False when a child did the work)."""

    def add(self, where: str, value: object) -> None:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
        self.places.append((where, data))

    def add_error(self, where: str, error: BaseException) -> None:
        """The error as people and tools see it: message, repr, traceback, the whole chain."""
        self.errors.append(error)
        self.add(f"{where}: traceback", "".join(traceback.format_exception(error)))
        seen: set[int] = set()
        todo: list[BaseException | None] = [error]
        while todo:
            item = todo.pop()
            if item is None or id(item) in seen:
                continue
            seen.add(id(item))
            self.add(f"{where}: {type(item).__name__}", f"{item}\n{item!r}\n{vars(item)!r}")
            todo += [item.__cause__, item.__context__]  # suppressed contexts too

    def add_files(self, where: str, root: Path) -> int:
        files = [path for path in root.rglob("*") if path.is_file()]
        for path in files:
            self.add(f"{where}: {path.relative_to(root)}", path.read_bytes())
        return len(files)

    def add_logs(self, records: list[logging.LogRecord]) -> None:
        for record in records:
            text = f"{record.name} {record.levelname} {record.getMessage()}"
            if record.exc_info:
                text += "".join(traceback.format_exception(*record.exc_info))
            self.add(f"log {record.name}", text)

    def hits(self) -> list[str]:
        return [
            f"{where} holds the key ({form})"
            for where, data in self.places
            for form, needle in self.needles.items()
            if needle in data
        ]

    def assert_clean(self) -> None:
        assert self.places, "nothing was collected: the search would prove nothing"
        assert self.hits() == []


@pytest.fixture
def hunt(caplog: pytest.LogCaptureFixture) -> Iterator[Hunt]:
    """A hunt with every logger recording at every level, uvicorn's TRACE included."""
    caplog.set_level(1)
    found = Hunt()
    yield found
    records = caplog.get_records("setup") + caplog.get_records("call")
    found.add_logs(records)
    if found.wire_logged_here:
        assert any(r.name.startswith("httpcore") for r in records), "httpcore was not heard"
    found.assert_clean()


@contextlib.contextmanager
def traced(config: SandboxConfig) -> Iterator[tuple[str, Any]]:
    """Serve a sandbox on 127.0.0.1 with uvicorn logging every ASGI message (TRACE), into the
    root logger (no handlers of its own), so the hunt hears what the server side says."""
    import uvicorn

    app = create_app(config)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    levels = {name: logging.getLogger(name).level for name in names}
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="trace", log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the sandbox server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(10)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def faulty(**options: Any) -> SandboxConfig:
    """An instant sandbox that takes only the canary key, with the admin routes on."""
    options.setdefault("api_keys", frozenset({CANARY_KEY}))
    return SandboxConfig(speed="instant", duration=0.2, faults=FaultPlan(), **options)


def script(app: Any, spec: str) -> None:
    app.state.sandbox.faults.set_plan(FaultPlan.parse(spec))


def sandbox_leftovers(hunt: Hunt, app: Any) -> None:
    state = app.state.sandbox
    hunt.add("sandbox state", repr(vars(state)))
    hunt.add("sandbox counters", repr(state.requests) + repr(state.faults.stats.as_dict()))
    hunt.add_files("sandbox storage", state.storage.root)


def home() -> Path:
    return Path(os.environ["WAVENB_HOME"])


# -- the client ----------------------------------------------------------------------------------


async def test_every_client_failure_leaves_no_trace_of_the_key(hunt: Hunt, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cases = [
        ("submit.500=1", SubmissionUncertain),
        ("submit.502=1", SubmissionUncertain),
        ("submit.reset=1", SubmissionUncertain),
        ("submit.timeout=1,slow=5", SubmissionUncertain),
        ("submit.fail=1", PredictionFailed),
        ("submit.expire=1,seed=1", NotFoundError),  # a CDN 403: the output is gone
        ("submit.expire=1,seed=0", NotFoundError),
        ("result.503=6", ServerError),
        ("result.reset=6", WavenbError),
        ("upload.429=6", WavenbError),
    ]
    with traced(faulty()) as (url, app):
        async with AsyncClient(CANARY_KEY, url, timeout=1.0, output_dir=out) as client:
            hunt.add("client repr", f"{client!r} {vars(client)!r}")
            hunt.add("video repr", repr(await client.generate(IMAGE, PROMPT)))
            # An accepted submit whose answer is lost is found in the account's history (the
            # reconciliation path), so it ends in a video, not an error; hunt its traces too.
            for lost in ("submit.drop=1", "submit.truncate=1"):
                script(app, lost)
                settled = await client.generate(IMAGE, f"{PROMPT} {lost}")
                hunt.add(f"settled video {lost}", repr(settled))
            for index, (spec, kind) in enumerate(cases):
                script(app, spec)
                with pytest.raises(kind) as caught:
                    await asyncio.wait_for(client.generate(IMAGE, f"{PROMPT} {index}"), LIMIT)
                hunt.add_error(spec, caught.value)
            script(app, "")
            for image, prompt, ratio in [(b"junk", PROMPT, None), (IMAGE, "", None),
                                         (IMAGE, PROMPT, "2:1"), ("/no/such.png", PROMPT, None)]:  # fmt: skip
                with pytest.raises(InputError) as caught:
                    await client.generate(image, prompt, ratio)  # type: ignore[arg-type]
                hunt.add_error("bad input", caught.value)
            for item in await client.resume():
                hunt.add("resumed", repr(item))
            hunt.add("history", [row.as_dict() for row in client.journal.rows()])  # type: ignore[union-attr]
        sandbox_leftovers(hunt, app)
    with traced(faulty(api_keys=frozenset({"someone-else"}))) as (url, app):
        async with AsyncClient(CANARY_KEY, url, output_dir=out) as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.generate(IMAGE, PROMPT)
            hunt.add_error("401", caught.value)
        sandbox_leftovers(hunt, app)
    timed = create_app(SandboxConfig(speed="fast", clock=lambda: 0.0, duration=0.2))
    async with AsyncClient(
        CANARY_KEY, API, transport=httpx.ASGITransport(app=timed), output_dir=out
    ) as client:
        with pytest.raises(PredictionTimeout) as caught:
            await client.generate(IMAGE, PROMPT, timeout=0.05)
        hunt.add_error("deadline", caught.value)
    assert hunt.add_files("journal", home()) >= 1
    assert hunt.add_files("outputs", out) >= 1
    kinds = {type(e).__name__ for e in hunt.errors}
    assert kinds >= {"SubmissionUncertain", "PredictionFailed", "AuthenticationError",
                     "NotFoundError", "ServerError", "InputError", "PredictionTimeout"}  # fmt: skip


async def test_a_redirect_to_another_host_never_carries_the_key(hunt: Hunt, tmp_path: Path) -> None:
    """A server (or a proxy) that redirects a request elsewhere: the key stays behind."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.wavespeed.ai":
            return httpx.Response(307, headers={"location": "https://elsewhere.example/steal"})
        return httpx.Response(404, json={"code": 404, "message": "no"})

    transport = httpx.MockTransport(handler)
    async with AsyncClient(CANARY_KEY, API, transport=transport, output_dir=tmp_path) as client:
        for call in (client.balance(), client.get("0123456789abcdef0123456789abcdef")):
            with pytest.raises(WavenbError) as caught:
                await call
            hunt.add_error("redirected", caught.value)
    elsewhere = [r for r in seen if r.url.host == "elsewhere.example"]
    assert elsewhere and all("authorization" not in r.headers for r in elsewhere)
    for request in seen:
        hunt.add("request url", str(request.url))
    logging.getLogger("httpcore.test").debug("mocked: no wire")  # the fixture wants httpcore


@pytest.mark.parametrize("tail", ["\n", "\r\nX-Injected: 1"], ids=["newline", "header-injection"])
async def test_a_key_with_a_line_break_is_refused_up_front_without_quoting_it(
    tmp_path: Path, tail: str
) -> None:
    """A key pasted with its line ending may be trimmed and used; any other break is refused
    before a request is made, by an error that does not quote the key."""
    with traced(faulty(api_keys=frozenset({CANARY_KEY}))) as (url, app):
        hunt = Hunt()
        outcome: object
        try:  # refused when the client is made, or when it is used: either way before sending
            async with AsyncClient(CANARY_KEY + tail, url, output_dir=tmp_path) as client:
                outcome = await client.balance()
        except WavenbError as error:
            outcome = error
            hunt.add_error("bad key", error)
        if isinstance(outcome, WavenbError):
            assert isinstance(outcome, InputError | AuthenticationError), outcome
            assert app.state.sandbox.faults.stats.requests == {}, "it was sent anyway"
        else:
            assert tail == "\n" and isinstance(outcome, float)  # trimmed: the pasted line ending
        hunt.add("nothing", "")
    hunt.assert_clean()


# -- the command line ----------------------------------------------------------------------------


def cli_cases(url: str, image: Path, out: Path) -> list[tuple[str, list[str], int]]:
    def generate(prompt: str, name: str) -> list[str]:
        # A prompt of its own each time: the same request would be reused from the journal.
        return ["generate", str(image), prompt, "--base-url", url, "--api-key", CANARY_KEY,
                "-o", str(out / name)]  # fmt: skip

    return [
        ("", generate(PROMPT, "ok.mp4"), 0),
        ("submit.502=1", generate(f"{PROMPT} a", "a.mp4"), 6),
        ("submit.drop=1", generate(f"{PROMPT} b", "b.mp4"), 0),  # settled from the history
        ("submit.fail=1", generate(f"{PROMPT} c", "c.mp4"), 4),
        ("submit.expire=1,seed=1", generate(f"{PROMPT} d", "d.mp4"), 1),  # the output is gone
        ("result.500=6", generate(f"{PROMPT} e", "e.mp4"), 1),
        ("", generate("", "f.mp4"), 2),
        ("", ["generate", "/no/such.png", PROMPT, "--base-url", url, "--api-key", CANARY_KEY], 2),
    ]


def test_the_command_line_in_process_leaves_no_trace_of_the_key(
    hunt: Hunt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(IMAGE)
    out = tmp_path / "out"
    with traced(faulty()) as (url, app):
        for spec, argv, code in cli_cases(url, image, out):
            script(app, spec)
            assert main(argv) == code, (spec, capsys.readouterr().err)
            captured = capsys.readouterr()
            hunt.add(f"cli {spec or argv[1]!r}", captured.out + captured.err)
        script(app, "")
        for argv in (["history"], ["history", "--json"],
                     ["resume", "--base-url", url, "--api-key", CANARY_KEY]):  # fmt: skip
            main(argv)
            captured = capsys.readouterr()
            hunt.add(f"cli {argv[0]}", captured.out + captured.err)
        sandbox_leftovers(hunt, app)
    with traced(faulty(api_keys=frozenset({"someone-else"}))) as (url, _):
        argv = ["generate", str(image), PROMPT, "--base-url", url, "--api-key", CANARY_KEY]
        assert main(argv) == 3
        captured = capsys.readouterr()
        hunt.add("cli 401", captured.out + captured.err)
        assert "authentication failed" in captured.err
    hunt.add_files("journal", home())
    hunt.add_files("outputs", out)


DEBUG_CLI = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
    "from wavenb.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.slow
def test_the_command_line_as_a_process_leaves_no_trace_of_the_key(
    hunt: Hunt, tmp_path: Path
) -> None:
    """``python -m wavenb`` against a served sandbox; one run logs everything at DEBUG."""
    hunt.wire_logged_here = False  # the children talk; the DEBUG child's stderr is searched
    image = tmp_path / "cat.png"
    image.write_bytes(IMAGE)
    env = {k: v for k, v in os.environ.items() if k != "WAVESPEED_API_KEY"}
    runs: list[tuple[str, list[str], dict[str, str], int]] = []
    with traced(faulty()) as (url, app):

        def base(letter: str) -> list[str]:
            out = str(tmp_path / f"{letter}.mp4")
            return ["generate", str(image), f"{PROMPT} {letter}", "--base-url", url, "-o", out]

        runs = [
            ("submit.drop=1", ["-m", "wavenb", *base("a"), "--api-key", CANARY_KEY], env, 0),
            ("submit.reset=1", ["-m", "wavenb", *base("b")], {**env, "WAVESPEED_API_KEY": CANARY_KEY}, 6),
            ("submit.502=1,result.reset=2,download.truncate=1",
             ["-c", DEBUG_CLI, *base("c"), "--api-key", CANARY_KEY], env, 6),
            # (No run waits for a video: a served sandbox is polled at the real API's pace.)
            # The truncated answer is settled from the account's history: a video after all.
            ("upload.503=1,upload.reset=1,submit.truncate=1",
             ["-c", DEBUG_CLI, *base("d"), "--api-key", CANARY_KEY], env, 0),
            ("", ["-m", "wavenb", "resume", "--base-url", url, "--api-key", CANARY_KEY], env, 0),
        ]  # fmt: skip
        for spec, args, environment, code in runs:
            script(app, spec)
            result = subprocess.run(
                [sys.executable, *args], cwd=ROOT, env=environment, capture_output=True,
                text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == code, (spec, result.stderr[-2000:])
            hunt.add(f"process {spec!r} stdout", result.stdout)
            hunt.add(f"process {spec!r} stderr", result.stderr)
            if "DEBUG" in " ".join(args):
                assert "httpcore" in result.stderr  # the debug run really logged the wire
        sandbox_leftovers(hunt, app)
    hunt.add_files("journal", home())


# -- the widget ----------------------------------------------------------------------------------


def as_bytes(value: Any) -> bytes:
    """Everything in a widget state, flattened: bytes stay bytes (images, videos)."""
    if isinstance(value, dict):
        return b"\n".join(as_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return b"\n".join(as_bytes(v) for v in value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "replace")


class ShortWaitClient(AsyncClient):
    """Gives every wait a tenth of a second: the Studio has no deadline of its own."""

    async def wait(
        self, prediction: Any, *, timeout: float | None = 0.1, on_update: Any = None
    ) -> Any:
        return await super().wait(prediction, timeout=timeout, on_update=on_update)


async def studio_with(client: AsyncClient, tmp_path: Path) -> Any:
    from wavenb.studio.widget import Studio

    studio = Studio(client=client, save_dir=tmp_path / "saved")
    studio.set_image(IMAGE)
    studio.prompt = PROMPT
    await studio.wait_idle(LIMIT)
    return studio


@pytest.mark.usefixtures(recorded_comms.__name__)
@pytest.mark.slow
async def test_every_widget_state_after_every_failure_is_free_of_the_key(
    hunt: Hunt, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    studios = []
    with traced(faulty()) as (url, app):
        studio = await studio_with(
            AsyncClient(CANARY_KEY, url, timeout=1.0, output_dir=tmp_path), tmp_path
        )
        studios.append(studio)
        for index, spec in enumerate(["submit.502=1", "submit.drop=1", "submit.fail=1",
                                      "submit.expire=1,seed=1", "result.503=6", ""]):  # fmt: skip
            script(app, spec)
            studio.prompt = f"{PROMPT} {index}"
            await asyncio.wait_for(studio.generate(), LIMIT)
            hunt.add(f"studio error box {spec!r}", str(studio.error))
            for action in ("video", "poster", "download", "timeline"):  # what the page asks for
                studio.receive({"do": action, "n": len(studio.history)})
        studio.receive({"do": "image", "name": "x.png", "size": 4}, [b"junk"])  # a dropped file
        studio.prompt = "zoom\x1b"
        await studio.wait_idle(LIMIT)
        assert {run.status for run in studio.history} >= {"failed", "downloaded"}
        sandbox_leftovers(hunt, app)
    with traced(faulty(api_keys=frozenset({"someone-else"}))) as (url, _):
        refused = await studio_with(AsyncClient(CANARY_KEY, url, output_dir=tmp_path), tmp_path)
        studios.append(refused)
        await asyncio.wait_for(refused.generate(), LIMIT)
        assert "Authentication failed" in refused.error["sentence"]
    timed = create_app(SandboxConfig(speed="fast", clock=lambda: 0.0, duration=0.2))
    late = await studio_with(
        ShortWaitClient(
            CANARY_KEY, API, transport=httpx.ASGITransport(app=timed), output_dir=tmp_path
        ),
        tmp_path,
    )
    studios.append(late)
    await asyncio.wait_for(late.generate(), LIMIT)
    assert isinstance(late.history[0].error, PredictionTimeout)
    states = 0
    for index, each in enumerate(studios):
        hunt.add(f"studio {index} repr", repr(each))
        for run in each.history:
            if run.error is not None:
                hunt.add_error(f"studio {index} run", run.error)
        for state in widget_states(each):
            states += len(state)
            hunt.add(f"studio {index} widget state", as_bytes(state))
        # Everything sent to the page besides the state: videos, posters, timelines, errors.
        for data, buffers in getattr(each.comm, "published", []):
            hunt.add(f"studio {index} message", as_bytes([data, buffers]))
        await each.client.aclose()
    assert states > 90  # every synced trait of three studios was read
    assert len(hunt.errors) >= 6  # a dropped submit is now found in the account's history


# -- recordings ----------------------------------------------------------------------------------


def test_no_file_under_cassettes_holds_the_key_in_any_form() -> None:
    hunt = Hunt()
    assert hunt.add_files("cassettes", CASSETTES) >= 6
    hunt.assert_clean()


def test_the_search_finds_the_key_in_every_form_it_looks_for() -> None:
    """The control: each form the hunt looks for is found when it is there."""
    key = CANARY_KEY.encode()
    planted = {
        "raw": b"Authorization: Bearer " + key,
        "redacted badly": key[:10] + b"...",
        "hex": key.hex().encode(),
        **{f"base64 at offset {n}": base64.b64encode(b"x" * n + key + b"tail") for n in range(3)},
    }
    for where, data in planted.items():
        hunt = Hunt()
        hunt.add(where, data)
        assert hunt.hits(), where
    clean = Hunt()
    clean.add("other key", b"Bearer wsk-other-0123456789abcdef " + base64.b64encode(b"wsk-other"))
    assert clean.hits() == []
