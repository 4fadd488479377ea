"""The Studio (and the grid) in Jupyter Notebook 7, Voilà and marimo, in Debian's Chromium.

Each front end is served on loopback with a private home and the embedded sandbox; the Studio
is driven as a person would (a drop, a paste, the file picker, a prompt, Enter, Download) and
measured (bounded video, no horizontal overflow, no output drawn as an error). A 2x2 comparison
must fit one 1400x900 screen in each. Voilà runs without Chromium's autoplay override, as a
user's browser would: the muted result must play by itself.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import (
    COMPARE_CELLS,
    MS,
    QUIET_AUTOPLAY,
    WIDE,
    Server,
    assert_fits,
    assert_no_error_box,
    check_2x2_grid,
    chromium,
    drive_studio,
    free_port,
    jupyter,
    needs_chromium,
    notebooks_copy,
    rect,
    serving,
    shoot,
    wait_for_videos,
    write_notebook,
)
from tests.conftest import ASSETS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, needs_chromium]


def home(tmp_path: Path) -> Path:
    folder = tmp_path / "server-home"
    folder.mkdir(exist_ok=True)
    return folder


def run_in_notebook_7(browser: Browser, server: Server, name: str, widget: str) -> Page:
    """Open ``name`` in Notebook 7, run all its cells and wait for ``widget`` to appear."""
    page = browser.new_page(viewport=WIDE, accept_downloads=True)
    page.goto(server.url(f"notebooks/{name}?token={server.token}"))
    page.locator(".jp-Notebook").wait_for(timeout=60 * MS)
    page.wait_for_function(
        "() => document.querySelector('#jp-kernel-status, .jp-Notebook-ExecutionIndicator') !== null",
        timeout=60 * MS,
    )
    page.wait_for_timeout(2000)  # the kernel connects
    page.keyboard.press("Escape")
    page.locator(".jp-Notebook").click()
    page.evaluate("() => window.jupyterapp?.commands?.execute('notebook:run-all-cells')")
    shown = page.locator(widget).first
    if not shown.is_visible():
        page.get_by_role("menuitem", name="Run").click()
        page.get_by_text("Run All Cells", exact=True).click()
    shown.wait_for(timeout=60 * MS)
    return page


def test_studio_in_jupyter_notebook_7(tmp_path: Path) -> None:
    root = notebooks_copy(tmp_path)
    with jupyter("notebook", root, home(tmp_path)) as server, chromium(tmp_path) as browser:
        page = run_in_notebook_7(browser, server, "studio_app.ipynb", ".wnb-studio")
        studio = page.locator(".wnb-studio").first
        saved = drive_studio(page, studio, ASSETS / "product-coffee.jpg", tmp_path)
        assert saved.read_bytes()[4:8] == b"ftyp"
        assert rect(studio.locator("video").first)["height"] <= 0.6 * WIDE["height"] + 1
        assert_fits(page, ".wnb-studio")
        assert_no_error_box(page)
        shoot(page, "studio-notebook7", studio)


def test_a_2x2_comparison_fits_one_screen_in_jupyter_notebook_7(tmp_path: Path) -> None:
    root = notebooks_copy(tmp_path)
    write_notebook(root / "ab.ipynb", COMPARE_CELLS)
    with jupyter("notebook", root, home(tmp_path)) as server, chromium(tmp_path) as browser:
        page = run_in_notebook_7(browser, server, "ab.ipynb", ".wnb-grid")
        # The second cell (await cmp) ends after every cell's metrics are drawn.
        page.get_by_text("<Comparison 4 cells on sandbox").wait_for(timeout=120 * MS)
        grid = page.locator(".wnb-grid").first
        check_2x2_grid(page, grid, chrome=110)  # under Notebook 7's header and toolbar
        assert_no_error_box(page)
        shoot(page, "compare-notebook7", grid)


def test_studio_as_a_voila_app_plays_without_an_autoplay_override(tmp_path: Path) -> None:
    root = notebooks_copy(tmp_path)
    port = free_port()
    command = [sys.executable, "-m", "voila", "studio_app.ipynb", "--no-browser", f"--port={port}",
               "--Voila.ip=127.0.0.1", "--show_tracebacks=True"]  # fmt: skip
    with (
        serving(command, root, port, "", home(tmp_path)) as server,
        chromium(tmp_path, QUIET_AUTOPLAY) as browser,
    ):
        page = browser.new_page(viewport=WIDE, accept_downloads=True)
        page.goto(server.url(""), timeout=90 * MS)
        studio = page.locator(".wnb-studio").first
        studio.wait_for(timeout=90 * MS)
        saved = drive_studio(page, studio, ASSETS / "animal-chelsea.jpg", tmp_path)
        assert saved.read_bytes()[4:8] == b"ftyp"
        video = studio.locator("video").first
        page.wait_for_function("(v) => !v.paused && v.currentTime > 0", arg=video.element_handle(),
                               timeout=15 * MS)  # fmt: skip
        assert rect(video)["height"] <= 0.6 * WIDE["height"] + 1
        assert_fits(page, ".wnb-studio")
        assert_no_error_box(page)  # "no key, using the SANDBOX" is info, not a red box
        shoot(page, "studio-voila")


def test_a_2x2_comparison_fits_one_screen_as_a_voila_app(tmp_path: Path) -> None:
    root = notebooks_copy(tmp_path)
    write_notebook(root / "ab.ipynb", COMPARE_CELLS)
    port = free_port()
    command = [sys.executable, "-m", "voila", "ab.ipynb", "--no-browser", f"--port={port}",
               "--Voila.ip=127.0.0.1", "--show_tracebacks=True"]  # fmt: skip
    with serving(command, root, port, "", home(tmp_path)) as server, chromium(tmp_path) as browser:
        page = browser.new_page(viewport=WIDE)
        page.goto(server.url(""), timeout=90 * MS)
        grid = page.locator(".wnb-grid").first
        grid.wait_for(timeout=90 * MS)
        check_2x2_grid(page, grid, chrome=0)  # a Voilà page has no bars of its own
        assert_no_error_box(page)
        shoot(page, "compare-voila", grid)


def test_studio_and_grid_in_marimo(tmp_path: Path) -> None:
    root = notebooks_copy(tmp_path)
    port = free_port()
    command = [sys.executable, "-m", "marimo", "run", "marimo_studio.py", "--headless",
               "--host", "127.0.0.1", "--port", str(port), "--no-token"]  # fmt: skip
    with (
        serving(command, root, port, secrets.token_hex(4), home(tmp_path)) as server,
        chromium(tmp_path) as browser,
    ):
        page = browser.new_page(viewport=WIDE, accept_downloads=True)
        page.goto(server.url(""), timeout=90 * MS)
        studio = page.locator(".wnb-studio").first
        studio.wait_for(timeout=90 * MS)
        assert "Jupyter widgets are not supported" not in page.inner_text("body")
        grid = page.locator(".wnb-grid").first
        grid.wait_for(timeout=60 * MS)
        grid.evaluate("(node) => node.scrollIntoView({block: 'start'})")
        wait_for_videos(page, grid, 4)  # loaded because they are on screen
        saved = drive_studio(page, studio, ASSETS / "product-coffee.jpg", tmp_path)
        assert saved.read_bytes()[4:8] == b"ftyp"
        assert rect(studio.locator("video").first)["height"] <= 0.6 * WIDE["height"] + 1
        assert_fits(page, ".wnb-studio")
        assert_fits(page, ".wnb-grid")
        shoot(page, "studio-marimo", studio)
        shoot(page, "grid-marimo", page.locator(".wnb-grid").first)
