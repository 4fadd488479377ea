"""wavenb's pytest plugin (``wavenb.testing``), used the way a user's project would use it.

Each test writes a user's test file and runs pytest on it with ``pytester``, in a fresh process:
that proves the entry point, and in-process runs would unload (and then load twice) modules
such as numpy and httpcore that the inner run imported first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

import wavenb
from tests.conftest import ASSETS, ROOT
from wavenb import testing
from wavenb.sandbox import SandboxConfig

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""
SECRET = "wsk-plugin-canary-5f0c1d2e"


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: an ini for pytest-asyncio and an image to animate."""
    pytester.makeini(INI)
    shutil.copy(ASSETS / "animal-chelsea.jpg", pytester.path / "cat.jpg")
    return pytester


def test_the_entry_point_loads_the_plugin(project: pytest.Pytester) -> None:
    """A fresh pytest process finds the fixtures without any conftest."""
    result = run(project, "--fixtures")
    for name in (
        "wavenb_sandbox",
        "wavenb_sandbox_url",
        "wavenb_sandbox_factory",
        "wavenb_offline",
    ):
        result.stdout.fnmatch_lines([f"{name}*"])


def test_a_user_test_generates_a_video_with_wavenb_sandbox(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import wavenb

        async def test_generate(wavenb_sandbox):
            video = await wavenb_sandbox.client.generate("cat.jpg", "Camera slowly zooms in")
            assert video.prediction.status is wavenb.Status.COMPLETED
            assert video.sandbox and video.path.read_bytes()[4:8] == b"ftyp"
            assert wavenb_sandbox.state.accepted == 1
            assert wavenb_sandbox.client.backend == "sandbox"
            assert wavenb_sandbox.config.speed == "instant"
        """
    )
    run(project, "-W", "error").assert_outcomes(passed=1)


def test_a_plain_test_uses_the_blocking_client(project: pytest.Pytester) -> None:
    """No pytest-asyncio needed: ``sync_client`` blocks."""
    project.makepyfile(
        """
        def test_generate(wavenb_sandbox):
            video = wavenb_sandbox.sync_client.generate("cat.jpg", "Gentle camera pan to the right")
            assert video.path.exists()
            assert video.timeline().checks >= 1
        """
    )
    project.makeini("[pytest]")  # no asyncio settings: pytest-asyncio is switched off
    run(project, "-p", "no:asyncio", "-W", "error").assert_outcomes(passed=1)


def test_a_user_built_client_works_with_wavenb_sandbox_url(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import os
        import wavenb

        async def test_served(wavenb_sandbox_url):
            assert wavenb_sandbox_url.startswith("http://127.0.0.1:")
            assert "WAVENB_BASE_URL" not in os.environ  # nothing global points at it
            async with wavenb.AsyncClient("any-key", wavenb_sandbox_url) as client:
                video = await client.generate("cat.jpg", "Slow orbit around the subject")
            assert video.sandbox
            assert client.backend == "sandbox"
        """
    )
    run(project, "-W", "error").assert_outcomes(passed=1)


def test_factory_configs_raise_the_typed_errors(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        import wavenb

        async def test_wrong_key_is_an_authentication_error(wavenb_sandbox_factory):
            sandbox = wavenb_sandbox_factory(api_keys=frozenset({"right"}), api_key="wrong")
            with pytest.raises(wavenb.AuthenticationError) as caught:
                await sandbox.client.submit("cat.jpg", "Camera slowly zooms in")
            assert caught.value.status == 401

        def test_over_the_rate_is_a_rate_limit_error(wavenb_sandbox_factory):
            sandbox = wavenb_sandbox_factory(submit_rate=(1, 600.0))
            sandbox.sync_client.submit("cat.jpg", "Camera slowly zooms in")
            with pytest.raises(wavenb.RateLimitError) as caught:
                sandbox.sync_client.submit("cat.jpg", "Camera pans left")
            assert caught.value.retry_after is not None and caught.value.retry_after > 0

        async def test_moderated_prompt_fails(wavenb_sandbox):
            with pytest.raises(wavenb.PredictionFailed) as caught:
                await wavenb_sandbox.client.generate("cat.jpg", "Zoom in on the gore")
            assert caught.value.moderation
        """
    )
    run(project, "-W", "error").assert_outcomes(passed=3)


def test_the_users_key_never_reaches_a_test(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a fresh process with a key in the environment: gone inside, back after."""
    monkeypatch.setenv("WAVESPEED_API_KEY", SECRET)
    monkeypatch.setenv("WAVENB_BASE_URL", "https://api.wavespeed.ai")
    project.makepyfile(
        f"""
        import os
        import wavenb
        from wavenb.core import runtime

        def test_isolated(wavenb_offline, tmp_path):
            assert "WAVESPEED_API_KEY" not in os.environ
            assert "WAVENB_BASE_URL" not in os.environ
            assert wavenb_offline == tmp_path / "wavenb-home"
            assert os.environ["WAVENB_HOME"] == str(wavenb_offline)
            assert wavenb.AsyncClient().backend == "sandbox"
            assert runtime.current().scale == 0.02  # a fresh, scaled runtime for this test

        def test_restored_afterwards():
            assert os.environ["WAVESPEED_API_KEY"] == "{SECRET}"
            assert runtime.current().scale == 1.0
        """
    )
    result = run(project)
    result.assert_outcomes(passed=2)
    assert SECRET not in result.stdout.str()


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_a_cassette_recorded_from_the_sandbox_replays_offline(project: pytest.Pytester) -> None:
    """The README's recipe: record once (few polls, no key), replay with the network blocked."""
    project.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="module")
        def vcr_config():
            return {
                "filter_headers": [("authorization", "Bearer REDACTED")],
                "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
            }
        """
    )
    project.makepyfile(
        test_pipeline=f"""
        import pytest
        import wavenb

        @pytest.mark.vcr
        async def test_pipeline(wavenb_sandbox_factory):
            sandbox = wavenb_sandbox_factory(api_key="{SECRET}")
            video = await sandbox.client.generate("cat.jpg", "Camera slowly zooms in")
            assert video.prediction.status is wavenb.Status.COMPLETED
            print("sandbox requests:", sum(sandbox.state.requests.values()))
        """
    )
    recorded = run(project, "-s", "--record-mode=once")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["*sandbox requests: [1-9]*"])

    cassette = project.path / "cassettes" / "test_pipeline" / "test_pipeline.yaml"
    text = cassette.read_text()
    assert SECRET not in text
    uris = [i["request"]["uri"] for i in yaml.safe_load(text)["interactions"]]
    assert all(uri.startswith("https://api.wavespeed.ai/") for uri in uris)
    checks = sum(uri.endswith("/result") for uri in uris)
    assert 1 <= checks <= 10, f"recording should poll politely, not spin: {checks} checks"

    replayed = run(project, "-s", "--record-mode=none", "--block-network")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*sandbox requests: 0*"])


async def test_raw_requests_through_the_transport(wavenb_sandbox: testing.Sandbox) -> None:
    async with httpx.AsyncClient(
        transport=wavenb_sandbox.transport(),
        base_url=wavenb_sandbox.base_url,
        headers={"Authorization": "Bearer anything"},
    ) as http:
        answer = await http.get("/api/v3/balance")
    assert answer.json()["data"]["balance"] == wavenb_sandbox.config.balance
    assert wavenb_sandbox.state.requests["GET /api/v3/balance"] == 1


def test_serve_sandbox_stops_the_server_on_exit(tmp_path) -> None:
    config = SandboxConfig(**testing.TEST_SANDBOX, storage_dir=tmp_path)
    with testing.serve_sandbox(config) as (url, app):
        assert httpx.get(f"{url}/").status_code == 200
        assert app.state.sandbox.config.speed == "instant"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/")


async def test_the_factory_passes_a_fault_plan_through(
    wavenb_sandbox_factory: testing.SandboxFactory, portrait
) -> None:
    """Two 503s on the result route: wavenb retries the reads and still gets the video."""
    from wavenb.sandbox._faults import FaultPlan

    sandbox = wavenb_sandbox_factory(faults=FaultPlan.parse("result.503=2"))
    video = await sandbox.client.generate(portrait, "Camera slowly zooms in")
    assert video.prediction.status is wavenb.Status.COMPLETED
    assert sandbox.state.faults is not None
    assert sandbox.state.faults.stats.fired["result 503"] == 2


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_a_test_module_needing_an_absent_extra_is_skipped_with_the_extra_named(tmp_path: Path) -> None:
    """Without matplotlib (the ``plot`` extra) the timeline tests are skipped, saying what to
    install: not a collection error."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['matplotlib'] = None  # as if not installed\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_timeline.py", "tests/test_protocol.py"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "needs matplotlib: pip install 'wavenb[plot]'" in done.stdout
    assert "error" not in done.stdout.lower()  # the rest of the suite ran as usual
