"""The command line: exit 0 only for a downloaded video, one clear line for every failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ASSETS, CANARY_KEY, ROOT
from wavenb.cli.main import main
from wavenb.sandbox._render import probe_video

PAN = "Gentle camera pan to the right, revealing more of the scene"


def test_generate_on_the_embedded_sandbox_prints_the_path(tmp_path, capsys):
    out = tmp_path / "v.mp4"
    code = main(["generate", str(ASSETS / "animal-chelsea.jpg"), PAN, "-o", str(out), "--speed", "instant"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.strip() == str(out)
    assert "SANDBOX" in captured.err
    assert probe_video(out).codec == "h264"


def test_json_summary(tmp_path, capsys):
    code = main(["generate", str(ASSETS / "product-coffee.jpg"), "zoom in", "--aspect-ratio", "1:1",
                 "-o", str(tmp_path / "v.mp4"), "--speed", "instant", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["status"] == "completed" and summary["sandbox"] is True
    assert len(summary["id"]) == 32
    assert summary["path"] == str(tmp_path / "v.mp4")
    assert probe_video(tmp_path / "v.mp4").width == 960


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [(["/no/such.jpg", "zoom"], 2, "bad input: image file not found"),
     ([str(ASSETS / "animal-chelsea.jpg"), ""], 2, "bad input: prompt is empty"),
     ([str(ASSETS / "animal-chelsea.jpg"), "the gore"], 4, "generation failed"),
     ([str(ASSETS / "animal-chelsea.jpg"), "zoom", "--timeout", "0"], 5, "timed out")],
)
def test_failures_exit_non_zero_with_one_line(args, code, words, capsys, tmp_path):
    speed = "fast" if "--timeout" in args else "instant"
    assert main(["generate", *args, "-o", str(tmp_path / "v.mp4"), "--speed", speed]) == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("wavenb: ") and ":" in line[8:]]
    assert any(words in line for line in err)
    assert not (tmp_path / "v.mp4").exists()


def test_bad_ratio_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["generate", "x.jpg", "zoom", "--aspect-ratio", "2:1"])
    assert caught.value.code == 2
    assert "16:9" in capsys.readouterr().err


def test_wrong_key_against_a_served_sandbox_is_an_auth_failure(served_sandbox, capsys, tmp_path):
    url, _ = served_sandbox
    code = main(["generate", str(ASSETS / "animal-chelsea.jpg"), "zoom", "--base-url", url,
                 "--api-key", "not-the-key", "-o", str(tmp_path / "v.mp4")])
    err = capsys.readouterr().err
    assert code == 3
    assert "authentication failed" in err
    assert "not-the-key" not in err


def test_right_key_against_a_served_sandbox_over_real_http(served_sandbox, capsys, tmp_path):
    url, app = served_sandbox
    code = main(["generate", str(ASSETS / "animal-chelsea.jpg"), "zoom", "--base-url", url,
                 "--api-key", CANARY_KEY, "-o", str(tmp_path / "v.mp4")])
    assert code == 0
    assert app.state.sandbox.accepted == 1
    assert CANARY_KEY not in capsys.readouterr().err


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_python_dash_m_is_the_same_entry_point(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WAVESPEED_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "wavenb", "generate", str(ASSETS / "portrait-astronaut.jpg"),
         "Camera slowly zooms in", "-o", str(tmp_path / "v.mp4"), "--speed", "instant"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "v.mp4")
    assert probe_video(tmp_path / "v.mp4").height == 960


def test_sandbox_command_serves_with_the_settings_it_was_given(tmp_path):
    """`wavenb sandbox` flags reach the served app (its own page states its settings)."""
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "wavenb", "sandbox", "--port", str(port), "--speed", "realistic",
         "--max-concurrent", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline, page = time.monotonic() + 30, None
        while page is None and time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).text
            except httpx.TransportError:
                time.sleep(0.1)  # the server is still starting
        assert page is not None, "the sandbox never answered"
        assert "SANDBOX" in page
        assert "speed realistic, 5 s clips, 3 at once per key" in page
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "speed realistic" in err


def test_history_remote_lists_a_video_made_elsewhere_and_download_fetches_it(
    served_sandbox, capsys, tmp_path
):
    """A video made by another client (nothing in this journal): the account's history lists
    it, and ``wavenb download ID`` saves it, verified."""
    import wavenb
    from wavenb.core.mp4 import check_mp4

    url, _ = served_sandbox
    with wavenb.Client(CANARY_KEY, url, journal=False, output_dir=tmp_path / "elsewhere") as other:
        made = other.generate(str(ASSETS / "animal-chelsea.jpg"), PAN)
    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY)
    key = ["--base-url", url, "--api-key-file", str(key_file)]
    capsys.readouterr()
    assert main(["history", "--remote", *key]) == 0
    listed = capsys.readouterr().out
    assert made.id in listed and "wavenb download ID" in listed
    assert main(["history", "--remote", "--json", *key]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["status"], row["sandbox"]) == (made.id, "completed", True)
    target = tmp_path / "fetched.mp4"
    assert main(["download", made.id, "-o", str(target), *key]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert check_mp4(target).types[0] == "ftyp"
    assert target.read_bytes() == made.path.read_bytes()
    assert main(["download", "f" * 32, *key]) != 0  # an id the account does not have
    assert "not found" in capsys.readouterr().err.lower()
