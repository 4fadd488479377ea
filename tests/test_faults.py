"""Fault injection: the sandbox fails on purpose, on a seed, and the client copes (or says why).

Each fault is checked twice: in-process (``httpx.ASGITransport``, where the injector raises what
httpx raises for a real socket) and served by uvicorn on loopback (real resets, real waits).
Then the client goes through them, and last the deadline of ``wait``: a task that never ends
and a poll that never answers must both end at the deadline with the id, in the widget too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import wavenb
from tests.conftest import API, CANARY_KEY, ROOT, png_bytes, serve_sandbox
from wavenb import (
    AsyncClient,
    NotFoundError,
    PollPolicy,
    PredictionFailed,
    PredictionTimeout,
    RateLimitError,
    ServerError,
    Status,
    SubmissionUncertain,
)
from wavenb.cli.main import main
from wavenb.core import protocol
from wavenb.sandbox import SandboxConfig, create_app
from wavenb.sandbox._faults import FAILURE_MESSAGE, FaultPlan, Scripted, route_of

KEY = "wsk-faults-test-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
SUBMIT = "/api/v3/runwayml/gen4-turbo"
IMAGE = png_bytes((64, 48))
LIMIT = 30.0
"""Seconds any single step may take before the test calls it a hang."""
FAST_POLL = PollPolicy(min_interval=0.02, first_delay=0.02, growth=0.1, max_interval=0.05)


def body(prompt: str = "Slow push in on the lighthouse") -> dict[str, Any]:
    return {"prompt": prompt, "image": f"data:image/png;base64,{base64.b64encode(IMAGE).decode()}"}


def config(plan: FaultPlan | None, **options: Any) -> SandboxConfig:
    return SandboxConfig(speed="instant", duration=0.2, faults=plan, **options)


@asynccontextmanager
async def in_process(
    plan: FaultPlan | None, **options: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app with ``plan`` and a raw httpx client to it; queued renders stopped after."""
    app = create_app(config(plan, **options))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=API) as http:
            yield app, http
    finally:
        await asyncio.to_thread(app.state.sandbox.close)


@contextmanager
def served(plan: FaultPlan | None, **options: Any) -> Iterator[tuple[str, Any]]:
    with serve_sandbox(config(plan, **options)) as pair:
        yield pair


async def rendered(app: Any, prediction_id: str) -> None:
    await asyncio.to_thread(app.state.sandbox.wait_for_render, prediction_id, LIMIT)


def client_for(app: Any, tmp_path: Path, **options: Any) -> AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return AsyncClient(KEY, API, transport=transport, output_dir=tmp_path / "out", **options)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def real_waits() -> Iterator[None]:
    """Tests about time itself: polls and retries wait for real (conftest zeroes them)."""
    wavenb.set_testing(False)
    yield
    wavenb.set_testing(True)


# -- the plan ----------------------------------------------------------------------------------


def test_the_compact_spec_reads_rates_seed_and_scripts() -> None:
    plan = FaultPlan.parse(
        "429=0.1,5xx=0.05,reset=0.02,timeout=0.02,fail=0.05,seed=1,submit.429=2,"
        "routes=submit+result,slow=2.5,retry_after_form=date"
    )
    assert (plan.rate_limit, plan.server_error, plan.reset, plan.timeout, plan.fail) == (
        0.1, 0.05, 0.02, 0.02, 0.05,
    )  # fmt: skip
    assert plan.seed == 1 and plan.slow == 2.5 and plan.retry_after_form == "date"
    assert plan.routes == {"submit", "result"}
    assert plan.script == (Scripted("submit", "429", 2),)
    assert plan.describe().startswith("429=0.1,5xx=0.05,reset=0.02,timeout=0.02,fail=0.05")


def test_a_plan_round_trips_through_json_inline_and_in_a_file(tmp_path: Path) -> None:
    plan = FaultPlan.parse("429=0.1,drop=0.01,expire=0.3,seed=9,result.reset=3,submit.fail=1")
    text = json.dumps(plan.as_dict())
    assert FaultPlan.parse(text) == plan
    (tmp_path / "plan.json").write_text(text)
    assert FaultPlan.parse(str(tmp_path / "plan.json")) == plan
    assert FaultPlan.parse("") == FaultPlan() and FaultPlan().empty


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("429=2", "probability"),
        ("429=0.6,5xx=0.6", "add up to"),
        ("fail=0.7,nsfw=0.7", "add up to"),
        ("bogus=1", "unknown fault plan key 'bogus'"),
        ("result.fail=1", "fate of a task"),
        ("submit.boom=1", "unknown fault 'boom'"),
        ("nowhere.429=1", "unknown route 'nowhere'"),
        ("submit.429=0", "times >= 1"),
        ("seed=x", "seed must be a number"),
        ("seed=1.5", "whole number"),
        ("routes=submit+nowhere", "unknown routes"),
        ("slow=0", "slow must be"),
        ("retry_after_form=never", "retry_after_form"),
        ("429", "no/such/plan"),
        ('{"429": [1]}', "must be a number"),
        ("[1, 2]", "cannot read"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(spec: str, words: str) -> None:
    if words == "no/such/plan":
        spec, words = "no/such/plan.json", "cannot read the fault plan file"
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("+", r"\+")):
        FaultPlan.parse(spec)


def test_the_cli_refuses_a_bad_fault_spec_before_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sandbox", "--faults", "429=2"]) == 2
    assert "bad --faults: 429 must be a probability" in capsys.readouterr().err


def test_every_path_has_a_route_name() -> None:
    assert route_of(SUBMIT) == "submit"
    assert route_of(f"/api/v3/predictions/{'a' * 32}/result") == "result"
    assert route_of(f"/api/v3/predictions/{'a' * 32}") == "result"
    assert route_of("/api/v3/media/upload/binary") == "upload"
    assert route_of(f"/sandbox-cdn/predictions/{'a' * 32}/1.mp4") == "download"
    assert route_of("/sandbox-media/x.png") == "media"
    assert route_of("/api/v3/balance") == "balance"
    assert route_of("/elsewhere") == "other"


# -- determinism -------------------------------------------------------------------------------


async def outcomes(plan: FaultPlan, count: int) -> list[str]:
    """What ``count`` balance checks in a row got: a status code or an exception's name."""
    seen = []
    async with in_process(plan) as (_, http):
        for _ in range(count):
            try:
                seen.append(str((await http.get("/api/v3/balance", headers=AUTH)).status_code))
            except httpx.TransportError as error:
                seen.append(type(error).__name__)
    return seen


async def test_the_same_seed_gives_the_same_faults() -> None:
    plan = FaultPlan.parse("429=0.3,5xx=0.2,reset=0.1,timeout=0.1,truncate=0.1,seed=7")
    first, again = await outcomes(plan, 60), await outcomes(plan, 60)
    other = await outcomes(FaultPlan.parse("429=0.3,5xx=0.2,reset=0.1,timeout=0.1,seed=8"), 60)
    assert first == again
    assert first != other
    assert {"200", "429", "ReadError", "ReadTimeout"} <= set(first)
    assert {"500", "502", "503"} & set(first)


# -- each fault, in-process --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "raised", "accepted"),
    [
        ("reset", httpx.ReadError, 0),
        ("timeout", httpx.ReadTimeout, 0),
        ("drop", httpx.ReadError, 1),
    ],
)
async def test_in_process_cuts_raise_what_httpx_raises_for_a_socket(
    fault: str, raised: type[Exception], accepted: int
) -> None:
    async with in_process(FaultPlan.parse(f"submit.{fault}=1")) as (app, http):
        with pytest.raises(raised, match="sandbox injected fault"):
            await http.post(SUBMIT, json=body(), headers=AUTH)
        assert app.state.sandbox.accepted == accepted
        assert (await http.post(SUBMIT, json=body(), headers=AUTH)).status_code == 200
        assert app.state.sandbox.faults.stats.fired == {f"submit {fault}": 1}


@pytest.mark.parametrize("form", ["seconds", "date", "none"])
async def test_a_429_says_when_to_come_back_in_each_form(form: str) -> None:
    plan = FaultPlan.parse(f"submit.429=1,retry_after=3,retry_after_form={form}")
    async with in_process(plan) as (app, http):
        response = await http.post(SUBMIT, json=body(), headers=AUTH)
    assert response.status_code == 429 and response.json()["code"] == 429
    assert response.headers["x-wavenb-sandbox"] == "1"
    wait = protocol.parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    if form == "none":
        assert wait is None
    else:
        assert wait is not None and 2.0 <= wait <= 5.0
    assert app.state.sandbox.accepted == 0
    assert app.state.sandbox.faults.stats.retry_after_forms == {form: 1}


@pytest.mark.parametrize(
    ("status", "kind"), [(500, "application/json"), (502, "text/html"), (503, "text/html")]
)
async def test_5xx_come_as_the_api_envelope_or_a_proxy_page(status: int, kind: str) -> None:
    async with in_process(FaultPlan.parse(f"submit.{status}=1")) as (app, http):
        response = await http.post(SUBMIT, json=body(), headers=AUTH)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(kind)
    with pytest.raises(ServerError, match=f"HTTP {status}"):
        protocol.parse_envelope(response.status_code, response.content, response.headers)
    assert app.state.sandbox.accepted == 0


async def test_a_truncated_answer_is_cut_json_after_the_work_was_done() -> None:
    async with in_process(FaultPlan.parse("submit.truncate=1")) as (app, http):
        response = await http.post(SUBMIT, json=body(), headers=AUTH)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(ValueError, match=r"Unterminated|Expecting|Invalid"):
        json.loads(response.content)
    assert app.state.sandbox.accepted == 1


async def test_a_task_fated_to_fail_fails_with_a_message_once_rendered() -> None:
    async with in_process(FaultPlan.parse("submit.fail=1")) as (app, http):
        first = (await http.post(SUBMIT, json=body(), headers=AUTH)).json()["data"]
        second = (await http.post(SUBMIT, json=body("pan left"), headers=AUTH)).json()["data"]
        for task in (first, second):
            await rendered(app, task["id"])
        failed = (await http.get(first["urls"]["get"], headers=AUTH)).json()["data"]
        fine = (await http.get(second["urls"]["get"], headers=AUTH)).json()["data"]
    assert (failed["status"], failed["outputs"], failed["error"]) == ("failed", [], FAILURE_MESSAGE)
    assert fine["status"] == "completed" and fine["outputs"]
    assert app.state.sandbox.faults.stats.fates == {first["id"]: "fail"}


async def test_an_nsfw_task_completes_flagged_and_its_video_is_served() -> None:
    async with in_process(FaultPlan.parse("submit.nsfw=1")) as (app, http):
        task = (await http.post(SUBMIT, json=body(), headers=AUTH)).json()["data"]
        await rendered(app, task["id"])
        done = (await http.get(task["urls"]["get"], headers=AUTH)).json()["data"]
        video = await http.get(done["outputs"][0])
    assert done["status"] == "completed" and done["has_nsfw_contents"] == [True]
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"


async def test_an_expired_output_answers_like_s3_for_a_deleted_object() -> None:
    async with in_process(FaultPlan.parse("submit.expire=4,seed=3")) as (app, http):
        codes = set()
        for index in range(4):
            task = (await http.post(SUBMIT, json=body(f"zoom {index}"), headers=AUTH)).json()
            await rendered(app, task["data"]["id"])
            done = (await http.get(task["data"]["urls"]["get"], headers=AUTH)).json()["data"]
            answer = await http.get(done["outputs"][0])
            assert answer.headers["content-type"].startswith("application/xml")
            codes.add((answer.status_code, answer.text.split("<Code>")[1].split("<")[0]))
    assert codes == {(403, "AccessDenied"), (404, "NoSuchKey")}  # seed 3 draws both


async def test_a_truncated_download_in_process_breaks_like_a_dropped_stream() -> None:
    async with in_process(FaultPlan.parse("download.truncate=1")) as (app, http):
        task = (await http.post(SUBMIT, json=body(), headers=AUTH)).json()["data"]
        await rendered(app, task["id"])
        done = (await http.get(task["urls"]["get"], headers=AUTH)).json()["data"]
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await http.get(done["outputs"][0])
        assert (await http.get(done["outputs"][0])).status_code == 200


# -- each cut, served over real sockets -------------------------------------------------------


def raw_request(url: str, request: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes to the served sandbox and read until it closes (bounded by ``timeout``)."""
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            received += b"<RST>"
    return received


def test_a_served_reset_closes_the_socket_without_a_byte_of_answer() -> None:
    payload = json.dumps(body()).encode()
    head = (
        "POST {submit} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    with served(FaultPlan.parse("submit.reset=1")) as (url, app):
        host = url.removeprefix("http://")  # a loopback sandbox answers its own Host only
        request = head.format(submit=SUBMIT, host=host, key=KEY, length=len(payload)).encode()
        assert raw_request(url, request + payload) == b"<RST>"
        with httpx.Client(base_url=url) as http:
            assert http.post(SUBMIT, json=body(), headers=AUTH).status_code == 200
    assert app.state.sandbox.accepted == 1


def test_a_served_drop_accepts_the_submit_then_cuts_the_connection() -> None:
    with served(FaultPlan.parse("submit.drop=1")) as (url, app), httpx.Client(base_url=url) as http:
        with pytest.raises(httpx.ReadError):
            http.post(SUBMIT, json=body(), headers=AUTH)
        assert app.state.sandbox.accepted == 1


def test_a_served_timeout_is_dropped_once_the_client_gives_up() -> None:
    with served(FaultPlan.parse("submit.timeout=1,slow=20")) as (url, app):
        with httpx.Client(base_url=url, timeout=0.3) as http:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                http.post(SUBMIT, json=body(), headers=AUTH)
            assert time.monotonic() - started < 5
            time.sleep(0.2)  # let the server notice the client left
            quick = http.post(SUBMIT, json=body("pan left"), headers=AUTH)
        assert quick.status_code == 200
        assert app.state.sandbox.accepted == 1  # the held submit was never handled
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5, "a held request kept the server from stopping"


def test_a_served_timeout_answers_late_to_a_client_that_waits() -> None:
    with (
        served(FaultPlan.parse("submit.timeout=1,slow=0.4")) as (url, app),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        started = time.monotonic()
        response = http.post(SUBMIT, json=body(), headers=AUTH)
        took = time.monotonic() - started
    assert response.status_code == 200 and took >= 0.4
    assert app.state.sandbox.accepted == 1


def test_a_served_download_is_cut_off_mid_stream() -> None:
    with (
        served(FaultPlan.parse("download.truncate=1")) as (url, app),
        httpx.Client(base_url=url) as http,
    ):
        task = http.post(SUBMIT, json=body(), headers=AUTH).json()["data"]
        app.state.sandbox.wait_for_render(task["id"], LIMIT)
        output = http.get(task["urls"]["get"], headers=AUTH).json()["data"]["outputs"][0]
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(output)
        whole = http.get(output)
    assert whole.status_code == 200
    assert whole.content == Path(app.state.sandbox.storage.video_path(task["id"])).read_bytes()


# -- scripts, counters, the admin routes ------------------------------------------------------


async def test_scripted_faults_hit_the_next_requests_of_their_route_in_order() -> None:
    plan = FaultPlan.parse("submit.429=2,submit.502=1,balance.500=1")
    async with in_process(plan) as (app, http):
        codes = [(await http.post(SUBMIT, json=body(), headers=AUTH)).status_code for _ in range(4)]
        balance = [(await http.get("/api/v3/balance", headers=AUTH)).status_code for _ in range(2)]
    assert codes == [429, 429, 502, 200]
    assert balance == [500, 200]
    stats = app.state.sandbox.faults.stats
    assert stats.fired == {"submit 429": 2, "submit 502": 1, "balance 500": 1}
    assert stats.requests == {"submit": 4, "balance": 2}


def test_the_admin_routes_answer_loopback_with_a_key_only() -> None:
    with (
        served(FaultPlan(), api_keys=frozenset({KEY})) as (url, _),
        httpx.Client(base_url=url) as http,
    ):
        assert http.get("/sandbox-admin/stats").status_code == 401
        assert (
            http.get("/sandbox-admin/stats", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        assert http.get("/sandbox-admin/stats", headers=AUTH).status_code == 200
        assert http.delete("/sandbox-admin/faults", headers=AUTH).status_code == 405
        assert http.get("/sandbox-admin/other", headers=AUTH).status_code == 404


async def test_the_admin_routes_refuse_other_hosts_and_do_not_exist_without_a_plan() -> None:
    app = create_app(config(FaultPlan()))
    remote = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=remote, base_url=API) as http:
        refused = await http.get("/sandbox-admin/stats", headers=AUTH)
    assert refused.status_code == 403 and refused.json()["code"] == 403
    async with in_process(None) as (_, http):
        assert (await http.get("/sandbox-admin/stats", headers=AUTH)).status_code == 404


def test_a_new_plan_can_be_posted_while_serving() -> None:
    with served(FaultPlan()) as (url, app), httpx.Client(base_url=url) as http:
        assert http.post(SUBMIT, json=body(), headers=AUTH).status_code == 200
        posted = http.post("/sandbox-admin/faults", json={"submit.503": 1, "seed": 4}, headers=AUTH)
        assert posted.json()["data"]["script"] == [{"route": "submit", "fault": "503", "times": 1}]
        assert http.post(SUBMIT, json=body("b"), headers=AUTH).status_code == 503
        assert http.post(SUBMIT, json=body("c"), headers=AUTH).status_code == 200
        bad = http.post("/sandbox-admin/faults", json={"429": 3}, headers=AUTH)
        assert bad.status_code == 400 and "probability" in bad.json()["message"]
        assert http.get("/sandbox-admin/faults", headers=AUTH).json()["data"]["seed"] == 4
        stats = http.get("/sandbox-admin/stats", headers=AUTH).json()["data"]
    assert stats["accepted"] == 2 == len(stats["submissions"])
    assert stats["faults"]["fired"] == {"submit 503": 1}
    assert stats["faults"]["requests"]["submit"] == 3
    assert stats["routes"][f"POST /api/v3/{wavenb.MODEL_ID}"] == 2
    assert {s["id"] for s in stats["submissions"]} == set(stats["outputs"])
    assert len({s["request_sha256"] for s in stats["submissions"]}) == 2
    assert app.state.sandbox.faults.plan.seed == 4


def test_the_cli_serves_faults_and_says_so(tmp_path: Path) -> None:
    """``wavenb sandbox --faults ...`` in its own process; stopped by its pid at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "wavenb", "sandbox", "--port", str(port), "--speed", "instant",
             "--faults", "submit.429=1,seed=3", "--max-concurrent", "2", "--submit-rate", "50/1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "WAVENB_HOME": str(tmp_path)},
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=5) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    first = http.post(SUBMIT, json=body(), headers=AUTH)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
            second = http.post(SUBMIT, json=body(), headers=AUTH)
            stats = http.get("/sandbox-admin/stats", headers=AUTH).json()["data"]
    finally:
        child.terminate()
        child.wait(30)
    assert (first.status_code, second.status_code) == (429, 200)
    assert stats["faults"]["fired"] == {"submit 429": 1} and stats["accepted"] == 1
    assert "INJECTING FAULTS: submit.429=1,seed=3" in log.read_text()


# -- the client through the faults -------------------------------------------------------------


async def test_the_client_retries_a_refused_submit_and_pays_once(tmp_path: Path) -> None:
    async with (
        in_process(FaultPlan.parse("submit.429=2,upload.500=1,upload.reset=1")) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        video = await client.generate(IMAGE, "Camera slowly zooms in")
    assert video.path is not None and video.path.stat().st_size > 0
    assert app.state.sandbox.accepted == 1
    assert app.state.sandbox.faults.stats.requests["submit"] == 3


@pytest.mark.parametrize("fault", ["drop", "truncate", "reset", "timeout", "500", "502"])
async def test_a_submit_that_may_have_been_taken_is_never_resent(
    fault: str, tmp_path: Path
) -> None:
    async with (
        in_process(FaultPlan.parse(f"submit.{fault}=1")) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        with pytest.raises(SubmissionUncertain, match="may have been accepted"):
            await client.submit(IMAGE, "Camera slowly zooms in")
        [row] = client.journal.rows()
    assert row.status == "unknown" and row.prediction_id is None
    assert app.state.sandbox.faults.stats.requests["submit"] == 1
    # Handled ones were accepted (and would be charged); the journal keeps them as maybe-charged.
    assert app.state.sandbox.accepted == (1 if fault in ("drop", "truncate") else 0)


async def test_a_failed_task_is_reported_with_the_servers_message(tmp_path: Path) -> None:
    async with (
        in_process(FaultPlan.parse("submit.fail=1")) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        with pytest.raises(PredictionFailed, match="could not generate") as caught:
            await client.generate(IMAGE, "Camera slowly zooms in")
        row = client.journal.get(caught.value.prediction.id)
    assert not caught.value.moderation
    assert row is not None and row.status == "failed" and row.error == FAILURE_MESSAGE


async def test_an_nsfw_flag_reaches_the_video(tmp_path: Path) -> None:
    async with (
        in_process(FaultPlan.parse("submit.nsfw=1")) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        video = await client.generate(IMAGE, "Camera slowly zooms in")
    assert video.prediction.has_nsfw_contents == (True,)


async def test_an_output_gone_404_is_not_found_and_the_row_is_marked_gone(
    tmp_path: Path,
) -> None:
    async with (
        in_process(FaultPlan.parse("submit.expire=1,seed=0")) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        with pytest.raises(NotFoundError, match="404"):
            await client.generate(IMAGE, "Camera slowly zooms in")
        [row] = client.journal.rows()
    assert app.state.sandbox.faults.stats.fates[row.prediction_id] == "expire:404"
    # A fresh result check was asked for a new URL first; still gone, so the row says so and
    # resume does not try it forever.
    assert row.status == "deleted" and row.phase.value == "gone" and not row.resumable


async def test_an_output_gone_403_says_it_expired_not_that_the_key_is_bad(tmp_path: Path) -> None:
    async with (
        in_process(FaultPlan.parse("submit.expire=1,seed=1")) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        with pytest.raises(NotFoundError, match=r"expired|gone|7 days") as caught:
            await client.generate(IMAGE, "Camera slowly zooms in")
    assert "WAVESPEED_API_KEY" not in str(caught.value)


async def test_reads_ride_out_resets_timeouts_5xx_and_broken_downloads(tmp_path: Path) -> None:
    # Four faults in a row on one route at most: testing mode gives a read five attempts.
    plan = FaultPlan.parse(
        "result.reset=1,result.timeout=1,result.502=1,result.truncate=1,"
        "download.truncate=1,download.reset=1,download.503=1,download.429=1,"
        "upload.drop=1,upload.truncate=1,upload.timeout=1"
    )
    async with in_process(plan) as (app, _), client_for(app, tmp_path) as client:
        video = await client.generate(IMAGE, "Camera slowly zooms in")
        row = client.journal.get(video.id)
    assert video.path is not None
    assert row is not None and row.sha256 == app.state.sandbox.output_sha256(video.id)
    assert not list((tmp_path / "out").glob("*.part"))
    assert app.state.sandbox.accepted == 1


async def test_a_download_that_breaks_every_time_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with served(FaultPlan.parse("truncate=1,routes=download")) as (url, _):
        async with AsyncClient(KEY, url, output_dir=out) as client:
            with pytest.raises(wavenb.TransportError, match="download"):
                await client.generate(IMAGE, "Camera slowly zooms in")
    assert list(out.iterdir()) == []


async def test_the_client_waits_out_the_submission_cap(tmp_path: Path, real_waits: None) -> None:
    """The per-key cap answers 429 with ``Retry-After``: the client waits it out and resubmits."""
    async with (
        in_process(FaultPlan(), submit_rate=(1, 1.0)) as (app, _),
        client_for(app, tmp_path) as client,
    ):
        await client.submit("https://img.example/a.jpg", "zoom in")
        started = time.monotonic()
        await asyncio.wait_for(client.submit("https://img.example/a.jpg", "pan left"), LIMIT)
        waited = time.monotonic() - started
    assert waited >= 0.9
    assert app.state.sandbox.accepted == 2
    assert app.state.sandbox.faults.stats.requests["submit"] == 3


# -- deadlines ---------------------------------------------------------------------------------


async def test_a_task_that_never_ends_times_out_at_the_deadline_and_resumes_later(
    tmp_path: Path, real_waits: None
) -> None:
    clock = FakeClock()  # never moves until told: the task stays queued
    app = create_app(SandboxConfig(speed="fast", clock=clock, duration=0.2))
    async with client_for(app, tmp_path, poll=FAST_POLL) as client:
        task = await client.submit(IMAGE, "Camera slowly zooms in")
        started = time.monotonic()
        with pytest.raises(PredictionTimeout, match=task.id) as caught:
            await asyncio.wait_for(client.wait(task, timeout=0.5), LIMIT)
        took = time.monotonic() - started
        assert caught.value.prediction.id == task.id
        assert caught.value.prediction.status is Status.CREATED
        row = client.journal.get(task.id)
        assert row is not None and row.resumable
        clock.now += 60  # the provider finishes it meanwhile
        await rendered(app, task.id)
        [resumed] = await asyncio.wait_for(client.resume(), LIMIT)
    assert 0.5 <= took < 2.0
    assert resumed.video is not None and resumed.video.path is not None
    assert app.state.sandbox.accepted == 1


async def test_a_poll_that_never_answers_ends_at_the_deadline_with_the_id(tmp_path: Path) -> None:
    plan = FaultPlan.parse("timeout=1,routes=result,slow=30")
    with served(plan) as (url, app):
        async with AsyncClient(KEY, url, timeout=0.5, output_dir=tmp_path) as client:
            task = await client.submit(IMAGE, "Camera slowly zooms in")
            started = time.monotonic()
            with pytest.raises(PredictionTimeout) as caught:
                await asyncio.wait_for(client.wait(task, timeout=1.0), LIMIT)
            took = time.monotonic() - started
    assert caught.value.prediction.id == task.id
    assert took < 2.0
    assert app.state.sandbox.faults.stats.fired["result timeout"] >= 1


def retry_after_hour(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        429, json={"code": 429, "message": "slow down"}, headers={"Retry-After": "3600"}
    )


async def test_a_retry_after_of_an_hour_does_not_outlast_the_wait_deadline(
    tmp_path: Path, real_waits: None
) -> None:
    transport = httpx.MockTransport(retry_after_hour)
    async with AsyncClient(
        KEY, API, transport=transport, output_dir=tmp_path, poll=FAST_POLL
    ) as client:
        with pytest.raises((PredictionTimeout, RateLimitError)):
            await asyncio.wait_for(
                client.wait("0123456789abcdef0123456789abcdef", timeout=1.0), 2.5
            )


async def test_a_retry_after_of_an_hour_on_submit_is_raised_not_slept(
    tmp_path: Path, real_waits: None
) -> None:
    transport = httpx.MockTransport(retry_after_hour)
    async with AsyncClient(KEY, API, transport=transport, output_dir=tmp_path) as client:
        with pytest.raises(RateLimitError) as caught:
            await asyncio.wait_for(client.submit("https://img.example/a.jpg", "zoom in"), 2.5)
    assert caught.value.retry_after == 3600


class ShortWaitClient(AsyncClient):
    """The Studio has no deadline of its own: this client gives every wait half a second."""

    async def wait(
        self, prediction: Any, *, timeout: float | None = 0.5, on_update: Any = None
    ) -> Any:
        return await super().wait(prediction, timeout=timeout, on_update=on_update)


async def timed_out_studio(tmp_path: Path) -> tuple[Any, Any, FakeClock]:
    """A Studio whose only run timed out (its task stays queued until the clock moves)."""
    pytest.importorskip("ipywidgets")
    from wavenb.studio.widget import Studio

    clock = FakeClock()
    app = create_app(SandboxConfig(speed="fast", clock=clock, duration=0.2))
    client = ShortWaitClient(
        CANARY_KEY, API, transport=httpx.ASGITransport(app=app), output_dir=tmp_path / "out"
    )
    studio = Studio(client=client, save_dir=tmp_path / "saved")
    studio.set_image(IMAGE)
    studio.prompt = "Camera slowly zooms in"
    await studio.wait_idle(LIMIT)
    assert await asyncio.wait_for(studio.generate(), LIMIT) is None
    return studio, app, clock


async def fetch_again(studio: Any, app: Any, clock: FakeClock) -> Any:
    [run] = studio.history
    clock.now += 60  # the provider finished it meanwhile
    await rendered(app, run.prediction_id)
    studio.receive({"do": "fetch", "n": run.number})  # the card's "Fetch again"
    await studio.wait_idle(LIMIT)
    return run


@pytest.mark.slow
async def test_the_studio_shows_a_timeout_with_the_id_and_fetches_it_later(tmp_path: Path) -> None:
    from wavenb import Phase

    studio, app, clock = await timed_out_studio(tmp_path)
    [run] = studio.history
    assert run.phase is Phase.STOPPED and run.prediction_id is not None
    assert isinstance(run.error, PredictionTimeout)
    box = studio.error["sentence"]
    assert run.prediction_id in box and "still queued" in box
    assert studio.runs[0]["fetchable"]  # offered
    run = await fetch_again(studio, app, clock)
    assert run.phase is Phase.DOWNLOADED and run.video is not None and run.error is None
    assert studio.error == {}
    await studio.client.aclose()


@pytest.mark.slow
async def test_a_run_fetched_after_a_timeout_plays_its_video(tmp_path: Path) -> None:
    studio, app, clock = await timed_out_studio(tmp_path)
    run = await fetch_again(studio, app, clock)
    assert run.video is not None
    assert studio.shown == run.number and studio.runs[0]["video"]
    await studio.client.aclose()
