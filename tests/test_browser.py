"""The Studio and the A/B grid in a real browser: JupyterLab served locally, in Debian's Chromium.

Everything runs on this machine: JupyterLab on a free loopback port with a token, its kernel
on the embedded sandbox (fast speed), and Chromium through Playwright with a private profile.

- Studio: opens the quickstart notebook, runs it, uploads an image through the Studio's file
  picker, types a prompt, clicks Generate and waits for the ``<video>`` to load.
- A/B: runs a small notebook comparing 2 prompts x 2 repeats, waits for the grid's four
  ``<video>`` elements to load, and drives them with Pause all / Play all.

Each saves a screenshot (also copied to ``/tmp/wavenb-studio.png`` / ``/tmp/wavenb-compare.png``)
for a person to look at.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
SCREENSHOT = Path("/tmp/wavenb-studio.png")  # noqa: S108  (a fixed place for people to look)
COMPARE_SCREENSHOT = Path("/tmp/wavenb-compare.png")  # noqa: S108
SERVER_START = 60.0
"""Seconds JupyterLab gets to start listening."""
MS = 1000
PROMPT = "Camera slowly zooms in on the subject"

KERNEL_READY = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  const kernel = panel?.sessionContext?.session?.kernel;
  return !!kernel && kernel.connectionStatus === "connected" && kernel.status === "idle";
}"""
ALL_CELLS_RAN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const code = panel.content.widgets.filter((cell) => cell.model.type === "code");
  const done = code.every((cell) => cell.model.executionCount !== null);
  return done && panel.sessionContext.session.kernel.status === "idle";
}"""
RUN_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
"""Started, not awaited: the command's promise settles only when every cell has run."""
VIDEO_LOADED = """() => [...document.querySelectorAll(".wavenb-studio video")].some(
  (video) => video.readyState >= 1 && Math.abs(video.duration - 5) < 0.5
)"""
GRID_VIDEOS = """() => [...document.querySelectorAll(".wavenb-compare video")].map((video) => ({
  ready: video.readyState, duration: video.duration, paused: video.paused,
}))"""
GRID_LOADED = """(count) => {
  const videos = [...document.querySelectorAll(".wavenb-compare video")];
  return videos.length === count && videos.every(
    (video) => video.readyState >= 1 && Math.abs(video.duration - 5) < 0.5
  );
}"""
GRID_PAUSED = """(paused) => {
  const videos = [...document.querySelectorAll(".wavenb-compare video")];
  return videos.length > 0 && videos.every((video) => video.paused === paused);
}"""
AB_CELLS = [
    "import wavenb\n"
    "cmp = wavenb.compare(\n"
    '    image="assets/portrait-astronaut.jpg",\n'
    '    prompts={"A": "The model walks forward slowly", "B": "Camera slowly zooms in"},\n'
    "    repeats=2,\n"
    ")\n"
    "cmp",
    "await cmp\nprint(repr(cmp))",
]
"""The issue's "done when": 2 prompts x 2 repeats, end to end."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_env(home: Path) -> dict[str, str]:
    """An environment with nothing of the user's: no key, no profile, temp dirs everywhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WAVESPEED_", "WAVENB_", "JUPYTER", "XDG_", "IPYTHON"))
    }
    dirs = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local/share",
        "XDG_RUNTIME_DIR": home / "runtime",
        "JUPYTER_CONFIG_DIR": home / "jupyter-config",
        "JUPYTER_DATA_DIR": home / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter-runtime",
        "IPYTHONDIR": home / "ipython",
        "WAVENB_HOME": home / "wavenb",
    }
    for name, folder in dirs.items():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(folder)
    env["WAVENB_SANDBOX_SPEED"] = "fast"
    return env


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: the folder it serves and how to reach it."""

    root: Path
    port: int
    token: str

    def url(self, notebook: str) -> str:
        """The notebook's URL, opened without a restored workspace."""
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?reset&token={self.token}"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on a copy of notebooks/ (notebooks written into ``root`` are served too)."""
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp_path / "lab-settings"
    settings.mkdir()
    overrides = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}
    (settings / "overrides.json").write_text(json.dumps(overrides))
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.app_settings_dir={settings}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # no PyPI queries
            "--ServerApp.allow_root=True",  # CI containers run as root
        ],
        cwd=root,
        env=private_env(tmp_path / "server-home"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "jupyterlab.log"
    try:
        wait_for_listening(server, port, log)
        yield Lab(root, port, token)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for_listening(server: subprocess.Popen[str], port: int, log: Path) -> None:
    """Read the server's log (kept in ``log``) until it says it serves on ``port``."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert server.stderr is not None
        with log.open("w") as copy:
            for line in server.stderr:
                copy.write(line)
                copy.flush()
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + SERVER_START
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            pytest.fail(f"JupyterLab exited ({server.wait()}); see {log}")
        if f"127.0.0.1:{port}/lab" in line:
            return
    pytest.fail(f"JupyterLab did not start within {SERVER_START:g} s; see {log}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Debian's Chromium, headless, with a private profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            env=private_env(tmp_path / "browser-home"),
        )
        try:
            yield browser
        finally:
            browser.close()


def run_notebook(browser: Browser, url: str) -> Page:
    """Open the notebook, wait for its kernel, run every cell and wait until all have run."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(url)
    page.wait_for_function(KERNEL_READY, timeout=60 * MS)
    page.evaluate(RUN_ALL)
    page.wait_for_function(ALL_CELLS_RAN, timeout=90 * MS)
    return page


def test_studio_generates_a_video_in_jupyterlab(lab: Lab, browser: Browser, tmp_path: Path) -> None:
    page = run_notebook(browser, lab.url("quickstart.ipynb"))

    studio = page.locator(".wavenb-studio").first
    studio.locator("img").first.wait_for(timeout=60 * MS)  # the pre-filled preview
    # The picker's <input type=file> is never attached to the page: go through the
    # file chooser its button opens.
    with page.expect_file_chooser(timeout=30 * MS) as chooser:
        studio.locator(".widget-upload").click()
    chooser.value.set_files(str(ROOT / "notebooks" / "assets" / "product-coffee.jpg"))
    studio.get_by_text("product-coffee.jpg").wait_for(timeout=30 * MS)
    studio.locator("textarea").fill(PROMPT)
    studio.get_by_role("button", name="Generate").click(timeout=30 * MS)
    page.wait_for_function(VIDEO_LOADED, timeout=60 * MS)

    assert "SANDBOX" in studio.inner_text()
    assert "completed" in studio.inner_text()
    studio.locator("video").first.scroll_into_view_if_needed()
    shot = tmp_path / "studio.png"
    studio.screenshot(path=str(shot))
    shutil.copyfile(shot, SCREENSHOT)


def test_a_prompt_comparison_runs_end_to_end_in_jupyterlab(
    lab: Lab, browser: Browser, tmp_path: Path
) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in AB_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "ab_browser.ipynb")

    page = run_notebook(browser, lab.url("ab_browser.ipynb"))
    grid = page.locator(".wavenb-compare").first
    grid.wait_for(timeout=30 * MS)
    page.wait_for_function(GRID_LOADED, arg=4, timeout=60 * MS)

    text = grid.inner_text()
    assert "SANDBOX" in text
    assert "4 of 4 done" in text
    printed = page.locator(".jp-OutputArea").last.inner_text()
    assert "<Comparison 4 cells on sandbox: 4 completed>" in printed
    videos = page.evaluate(GRID_VIDEOS)
    assert len(videos) == 4, videos

    pause = grid.get_by_role("button", name="Pause all")
    play = grid.get_by_role("button", name="Play all")
    pause.click(timeout=10 * MS)
    page.wait_for_function(GRID_PAUSED, arg=True, timeout=10 * MS)
    play.click(timeout=10 * MS)
    page.wait_for_function(GRID_PAUSED, arg=False, timeout=10 * MS)
    pause.click(timeout=10 * MS)  # a still picture for the screenshot
    page.wait_for_function(GRID_PAUSED, arg=True, timeout=10 * MS)

    # The first cell's details: its task's timeline, drawn in the kernel, shown as an image.
    cell = grid.locator(".wavenb-cell").first
    cell.get_by_role("button", name="timeline").click(timeout=10 * MS)
    drawing = cell.locator("img").first
    drawing.wait_for(timeout=30 * MS)
    assert drawing.evaluate("(img) => img.complete && img.naturalWidth > 100")

    grid.scroll_into_view_if_needed()
    shot = tmp_path / "compare.png"
    grid.screenshot(path=str(shot))
    shutil.copyfile(shot, COMPARE_SCREENSHOT)
