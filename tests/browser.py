"""What the real-browser tests share: servers on loopback, Debian's Chromium, layout checks.

Every front end (JupyterLab, Notebook 7, Voilà, marimo) is started on a free 127.0.0.1 port
with a private home, no key and the embedded sandbox; Chromium is Debian's, driven by
Playwright, launched *with* real scrollbars (``--hide-scrollbars`` dropped) so a layout that
overflows shows one. Screenshots go to ``notebooks/assets/screenshots/`` (small JPEGs) for the
README, and a person looks at them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

MS = 1000
SERVER_START = 60.0
SCREENSHOTS = ROOT / "notebooks" / "assets" / "screenshots"
WIDE = {"width": 1400, "height": 900}
NARROW = {"width": 600, "height": 900}
PROMPT = "Camera slowly zooms in on the subject"
QUIET_AUTOPLAY = [arg for arg in CHROMIUM_ARGS if not arg.startswith("--autoplay-policy")]
"""Chromium's flags without the autoplay override: autoplay as a user's browser does it."""

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing")

OVERFLOW = """(roots) => {
  // Every element of the widget (and the output area around it) whose content is wider than
  // its box: a horizontal scrollbar, or content spilling out. Form fields scroll their own
  // text and media scale, so they are left out. (Roots come from a Playwright locator, which
  // reaches into shadow roots too: marimo renders widgets in one.)
  const skip = new Set(["INPUT", "TEXTAREA", "SELECT", "VIDEO", "IMG", "OPTION"]);
  const bad = [];
  for (const root of roots) {
    const around = root.closest(".jp-OutputArea-output, .output_subarea");
    for (const node of [around, root, ...root.querySelectorAll("*")]) {
      if (!node || skip.has(node.tagName) || node.clientWidth === 0) continue;
      if (node.scrollWidth > node.clientWidth + 1) {
        bad.push(`${node.tagName}.${String(node.className).slice(0, 40)} ${node.scrollWidth}>${node.clientWidth}`);
      }
    }
  }
  return bad;
}"""
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
"""An output Jupyter front ends draw as an error (a red or pink box)."""
DROP_AND_PASTE = """(node, [kind, name, base64]) => {
  // What the browser does when a file is dropped on the drop zone, or pasted: a DataTransfer
  // holding a File, in a drop event or a paste ClipboardEvent (both bubble, as real ones do).
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/png" }));
  const event = kind === "drop"
    ? new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true, composed: true })
    : new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true, composed: true });
  node.dispatchEvent(event);
  return event.defaultPrevented;  // the Studio took the file
}"""
RECT = "(node) => { const r = node.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
VIDEO_READY = "(video) => video.readyState >= 2 && video.duration > 0.5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_env(home: Path) -> dict[str, str]:
    """An environment with nothing of the user's: no key, no profile, temp dirs everywhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WAVESPEED_", "WAVENB_", "JUPYTER", "XDG_", "IPYTHON", "MARIMO"))
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
    env["MPLBACKEND"] = "agg"
    return env


@dataclass(frozen=True)
class Server:
    """A front end serving ``root`` on 127.0.0.1:``port``."""

    root: Path
    port: int
    token: str

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


def notebooks_copy(tmp_path: Path) -> Path:
    """A copy of notebooks/ to serve (tests may write notebooks into it)."""
    root = tmp_path / "notebooks"
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "screenshots")
    shutil.copytree(ROOT / "notebooks", root, ignore=ignore)
    return root


@contextmanager
def serving(
    command: Sequence[str], root: Path, port: int, token: str, home: Path
) -> Iterator[Server]:
    """Run a server and wait until its port answers (not its pages: some start kernels)."""
    log = (home / "server.log").open("w")
    server = subprocess.Popen(list(command), cwd=root, env=private_env(home), stdout=log,
                              stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"{command[2:4]} exited ({server.returncode}); see {log.name}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"{command[2:4]} did not listen within {SERVER_START:g} s; see {log.name}")
        yield Server(root, port, token)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def jupyter(app: str, root: Path, home: Path, extra: Sequence[str] = ()) -> Any:
    """``jupyter lab`` or ``jupyter notebook`` on ``root``, private and offline."""
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", app, "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", *extra,
    ]  # fmt: skip
    return serving(command, root, port, token, home)


@contextmanager
def chromium(tmp_path: Path, args: Sequence[str] = CHROMIUM_ARGS) -> Iterator[Browser]:
    """Debian's Chromium, headless, private profile, real scrollbars."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(args),
            ignore_default_args=["--hide-scrollbars"],
            env=private_env(tmp_path / "browser-home"),
        )
        try:
            yield browser
        finally:
            browser.close()


def shoot(page: Page, name: str, top: Any = None, quality: int = 70) -> Path:
    """Save what the screen shows as screenshots/<name>.jpg (``top`` scrolled to the top)."""
    if top is not None:
        top.evaluate("(node) => node.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.jpg"
    page.screenshot(path=str(path), type="jpeg", quality=quality)
    return path


def assert_fits(page: Page, selector: str) -> None:
    """No element of the widget is wider than its box (no horizontal scrollbar anywhere)."""
    page.wait_for_timeout(300)  # let the layout settle after the last change
    roots = page.locator(selector)
    assert roots.count() > 0, f"nothing matches {selector}"
    overflowing = roots.evaluate_all(OVERFLOW)
    assert overflowing == [], overflowing[:8]


def rect(locator: Any) -> dict[str, float]:
    return locator.evaluate(RECT)


def assert_no_error_box(page: Page) -> None:
    """No output is drawn as an error (stderr): info such as "using the SANDBOX" is not one."""
    boxes = page.locator(STDERR)
    assert boxes.count() == 0, [text[:200] for text in boxes.all_inner_texts()]


def give_image(page: Page, studio: Any, kind: str, name: str, data: bytes) -> None:
    """Drop (``kind="drop"``) or paste (``"paste"``) an image file; wait for its preview."""
    import base64

    preview = studio.locator("img.wnb-preview")
    before = preview.get_attribute("src")
    target = studio.locator(".wnb-drop")
    taken = target.evaluate(DROP_AND_PASTE, [kind, name, base64.b64encode(data).decode()])
    assert taken, f"the Studio ignored a {kind} of {name}"
    page.wait_for_function(
        "([info, name]) => info.textContent.startsWith(name)",
        arg=[studio.locator(".wnb-image-info").element_handle(), name],
        timeout=30 * MS,
    )
    assert preview.get_attribute("src") not in (None, before)  # a new preview is drawn
    assert preview.is_visible()


def drive_studio(page: Page, studio: Any, image: Path, tmp_path: Path) -> Path:
    """Drop an image, paste another, pick ``image``, type a prompt, press Enter, wait for the
    video; download it. Returns the downloaded MP4."""
    from tests.conftest import png_bytes

    studio.locator("img.wnb-preview").wait_for(timeout=60 * MS)  # the pre-filled image
    give_image(page, studio, "drop", "dropped.png", png_bytes((320, 180), "teal"))
    give_image(page, studio, "paste", "image.png", png_bytes((180, 320), "purple"))
    studio.locator("input[type=file]").set_input_files(str(image))
    studio.get_by_text(image.name).first.wait_for(timeout=30 * MS)
    prompt = studio.get_by_role("textbox", name="Prompt")
    prompt.fill(PROMPT)
    generate = studio.get_by_role("button", name="Generate")
    page.wait_for_function("(b) => !b.disabled", arg=generate.element_handle(), timeout=30 * MS)
    assert generate.inner_text().startswith("Generate")
    # The price is part of the button's accessible name: screen readers hear it too.
    assert studio.get_by_role("button", name=generate.inner_text(), exact=True).count() == 1
    prompt.press("Enter")
    video = studio.locator("video[src]").first
    video.wait_for(timeout=90 * MS)
    page.wait_for_function(VIDEO_READY, arg=video.element_handle(), timeout=30 * MS)
    with page.expect_download(timeout=30 * MS) as download:
        studio.get_by_role("button", name="Download", exact=True).click()
    saved = tmp_path / "downloaded.mp4"
    download.value.save_as(saved)
    return saved


def wait_for_videos(page: Page, scope: Any, count: int, timeout: float = 120) -> None:
    """Wait until ``scope`` holds ``count`` loaded ``<video>`` elements (shadow roots too)."""
    deadline = time.monotonic() + timeout
    videos = scope.locator("video")
    while time.monotonic() < deadline:
        if videos.count() == count and all(
            videos.evaluate_all("(all) => all.map((v) => v.readyState >= 1 && v.duration > 0.5)")
        ):
            return
        page.wait_for_timeout(250)
    pytest.fail(f"{videos.count()} of {count} videos loaded in {timeout:g} s")


COMPARE_CELLS = [
    "import wavenb\n"
    "cmp = wavenb.compare(\n"
    '    image="assets/portrait-astronaut.jpg",\n'
    '    prompts={"A": "The model walks forward slowly", "B": "Camera slowly zooms in"},\n'
    '    aspect_ratios=["16:9", "9:16"],\n'
    ")\n"
    "cmp",
    "await cmp\nprint(repr(cmp))",
]
"""A 2 x 2 grid whose columns have different ratios."""


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


def check_2x2_grid(page: Page, grid: Any, chrome: float) -> None:
    """The 2x2 comparison of ``COMPARE_CELLS``: done, its four videos loaded, on one screen
    (``chrome``: the front end's own bars above and below), rows aligned, nothing overflowing."""
    grid.evaluate("(node) => node.scrollIntoView({block: 'start'})")
    wait_for_videos(page, grid, 4)
    page.wait_for_function("(g) => g.innerText.includes('4 of 4 done')",
                           arg=grid.element_handle(), timeout=60 * MS)  # fmt: skip
    assert "SANDBOX" in grid.inner_text()
    assert rect(grid)["height"] <= WIDE["height"] - chrome  # the whole grid on one screen
    media = grid.locator(".wnb-media").evaluate_all(
        "(all) => all.map((m) => m.getBoundingClientRect().top)"
    )
    assert abs(media[0] - media[1]) < 1 and abs(media[2] - media[3]) < 1  # rows line up
    assert_fits(page, ".wnb-grid")
