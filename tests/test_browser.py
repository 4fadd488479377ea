"""The Studio and the comparison grid in JupyterLab 4, in Debian's Chromium (real browser).

JupyterLab is served on loopback with a private profile; its kernel uses the embedded sandbox.
The Studio is driven as a person would (file picker, typing, Enter, Download) at 1400x900 and
in a 600 px wide panel, in the light and the dark theme; every check measures the page
(element sizes, no horizontal overflow), and the screenshots are saved for people to look at.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import (
    COMPARE_CELLS,
    MS,
    NARROW,
    WIDE,
    Server,
    assert_fits,
    assert_no_error_box,
    check_2x2_grid,
    chromium,
    drive_studio,
    jupyter,
    needs_chromium,
    notebooks_copy,
    rect,
    shoot,
    write_notebook,
)
from tests.conftest import ASSETS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, needs_chromium]

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
DARK = (
    "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Server]:
    root = notebooks_copy(tmp_path)
    settings = tmp_path / "lab-settings"
    settings.mkdir()
    overrides = {
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
        # Saved notebooks carry the widgets' state: the 1 MB check below must include it.
        "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    }
    (settings / "overrides.json").write_text(json.dumps(overrides))
    home = tmp_path / "server-home"
    home.mkdir()
    extra = [
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.app_settings_dir={settings}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries
    ]
    with jupyter("lab", root, home, extra) as server:
        yield server


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with chromium(tmp_path) as each:
        yield each


def open_notebook(browser: Browser, lab: Server, name: str) -> Page:
    """Open a notebook (no restored workspace), run every cell and wait until all ran."""
    page = browser.new_page(viewport=WIDE, accept_downloads=True)
    page.goto(lab.url(f"lab/tree/{name}?reset&token={lab.token}"))
    page.wait_for_function(KERNEL_READY, timeout=60 * MS)
    page.evaluate(RUN_ALL)
    page.wait_for_function(ALL_CELLS_RAN, timeout=120 * MS)
    return page


def test_studio_in_jupyterlab_fits_one_screen_and_downloads_in_the_browser(
    lab: Server, browser: Browser, tmp_path: Path
) -> None:
    page = open_notebook(browser, lab, "quickstart.ipynb")
    studio = page.locator(".wnb-studio").first
    saved = drive_studio(page, studio, ASSETS / "product-coffee.jpg", tmp_path)
    assert saved.read_bytes()[4:8] == b"ftyp"  # the MP4 itself reached "this computer"

    assert studio.get_by_text("SANDBOX", exact=True).first.is_visible()
    assert studio.get_by_role("button", name="Generate · free", exact=True).is_visible()
    assert_no_error_box(page)  # "no key, using the SANDBOX" is info, not a red box
    assert "downloaded" in studio.locator(".wnb-status").inner_text()
    inputs, result = rect(studio.locator(".wnb-inputs")), rect(studio.locator(".wnb-result"))
    assert result["x"] > inputs["x"] + inputs["width"] - 1  # side by side
    video = rect(studio.locator("video").first)
    assert 0 < video["height"] <= 0.6 * WIDE["height"] + 1
    assert studio.locator("video").count() == 1  # one <video> per result; the gallery has posters
    studio.locator(".wnb-card img").first.wait_for(timeout=30 * MS)  # a poster frame
    shoot(page, "studio-jupyterlab", studio)
    assert_fits(page, ".wnb-studio")

    # The one-liner's video: bounded too.
    one_liner = page.locator(".wnb-video-view video").first
    one_liner.scroll_into_view_if_needed()
    page.wait_for_function(
        "(v) => v.readyState >= 1", arg=one_liner.element_handle(), timeout=30 * MS
    )
    assert rect(one_liner)["height"] <= 0.6 * WIDE["height"] + 1

    page.set_viewport_size(NARROW)  # a VS Code side panel
    page.wait_for_timeout(500)
    inputs, result = rect(studio.locator(".wnb-inputs")), rect(studio.locator(".wnb-result"))
    assert result["y"] >= inputs["y"] + inputs["height"] - 1  # stacked
    assert rect(studio.locator("video").first)["height"] <= 0.6 * NARROW["height"] + 1
    assert_fits(page, ".wnb-studio")
    shoot(page, "studio-narrow", studio)

    page.set_viewport_size(WIDE)
    page.evaluate(DARK)
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30 * MS)
    page.wait_for_timeout(500)
    colors = studio.locator(".wnb-title").evaluate(
        "(n) => [getComputedStyle(n).color, getComputedStyle(document.body).backgroundColor]"
    )
    assert colors[0] != "rgb(31, 41, 55)"  # the theme's light text, not the fallback's dark
    shoot(page, "studio-dark", studio)


BIG_GRID = """\
from pathlib import Path
import wavenb
from wavenb.ab.cells import CellRun
from wavenb.ab.design import build_design
from wavenb.ab.engine import Comparison
clips = sorted(Path("clips").glob("*.mp4"))
design = build_design("assets/portrait-astronaut.jpg",
                      {f"P{i}": f"Camera move number {i}, slow and steady" for i in range(10)},
                      ["9:16"], repeats=10)
cells = design.cells(model=wavenb.MODEL_ID, base_url="http://sandbox.local")
runs = [CellRun(cell, status=wavenb.Phase.DOWNLOADED, path=clips[i % len(clips)].resolve(),
                prediction_id=f"{i:032x}", wall_s=3.0) for i, cell in enumerate(cells)]
big = Comparison(design, cells, runs, client=None, backend="sandbox",
                 base_url="http://sandbox.local", price=0.0)
big"""
"""100 finished cells (10 prompts x 10 repeats) over a few real clips: the grid, not the engine,
is what is measured."""


def write_clips(folder: Path, count: int = 4) -> None:
    """A few short, real H.264 clips (9:16, 2 s), different colours, made with PyAV."""
    import av
    import numpy as np

    folder.mkdir()
    for index in range(count):
        with av.open(str(folder / f"clip{index}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 360, 640, "yuv420p"
            for frame_number in range(48):
                pixels = np.zeros((640, 360, 3), dtype=np.uint8)
                pixels[..., index % 3] = 90 + 40 * index
                pixels[frame_number * 12 % 640 :][:40] = 255  # a bar moving down
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())


def test_a_2x2_comparison_fits_one_screen_in_jupyterlab(lab: Server, browser: Browser) -> None:
    write_notebook(lab.root / "ab.ipynb", COMPARE_CELLS)
    page = open_notebook(browser, lab, "ab.ipynb")
    grid = page.locator(".wnb-grid").first
    check_2x2_grid(page, grid, chrome=120)  # under Lab's bars
    assert "<Comparison 4 cells on sandbox" in page.locator(".jp-OutputArea").last.inner_text()
    assert_no_error_box(page)
    grid.get_by_role("button", name="Pause all").click()
    page.wait_for_function("(g) => [...g.querySelectorAll('video')].every((v) => v.paused)",
                           arg=grid.element_handle(), timeout=10 * MS)  # fmt: skip
    grid.get_by_role("button", name="Play all").click()
    page.wait_for_function("(g) => [...g.querySelectorAll('video')].every((v) => !v.paused)",
                           arg=grid.element_handle(), timeout=10 * MS)  # fmt: skip
    grid.get_by_role("button", name="Cell A/16:9/0: good").click()
    page.wait_for_function("(b) => b.getAttribute('aria-pressed') === 'true'",
                           arg=grid.get_by_role("button", name="Cell A/16:9/0: good").element_handle(),
                           timeout=10 * MS)  # fmt: skip
    assert_fits(page, ".wnb-grid")
    shoot(page, "compare-2x2", grid)


def test_a_100_cell_grid_paints_posters_first_and_loads_only_visible_videos(
    lab: Server, browser: Browser
) -> None:
    pytest.importorskip("av")
    write_clips(lab.root / "clips")
    write_notebook(lab.root / "big.ipynb", [BIG_GRID])
    page = open_notebook(browser, lab, "big.ipynb")
    started = page.evaluate("() => performance.now()")
    grid = page.locator(".wnb-grid").first
    grid.wait_for(timeout=30 * MS)
    page.wait_for_function("(g) => g.querySelectorAll('.wnb-cell').length === 100",
                           arg=grid.element_handle(), timeout=30 * MS)  # fmt: skip
    grid.evaluate("(node) => node.scrollIntoView({block: 'start'})")
    page.wait_for_function("(g) => g.querySelectorAll('.wnb-media img, .wnb-media video[poster]').length >= 10",
                           arg=grid.element_handle(), timeout=30 * MS)  # fmt: skip
    first_paint = page.evaluate("() => performance.now()") - started
    page.wait_for_timeout(2000)
    loaded = grid.locator("video").count()
    assert 0 < loaded < 40, loaded  # only what is on screen (and a margin), never all 100
    for _ in range(6):  # scroll through the whole grid
        page.mouse.wheel(0, 800)
        page.wait_for_timeout(400)
    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}
    held = grid.locator("video").count()
    assert held <= 24 + 8, held  # videos far off screen were let go
    heap = metrics["JSHeapUsedSize"] / 2**20
    print(
        f"\n100-cell grid: posters on screen {first_paint:.0f} ms after the cell ran (output "
        f"already drawn), {loaded} videos loaded at first, {held} held after scrolling, JS "
        f"heap {heap:.1f} MiB, DOM nodes {metrics['Nodes']:.0f}"
    )
    assert_fits(page, ".wnb-grid")
    grid.evaluate("(node) => node.scrollIntoView({block: 'start'})")
    shoot(page, "compare-100")
    notebook = lab.root / "big.ipynb"
    written = notebook.stat().st_mtime_ns
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while not (notebook.stat().st_mtime_ns != written and "widget-state" in notebook.read_text()):
        assert time.monotonic() < deadline, "the notebook was not saved with its widget state"
        page.wait_for_timeout(250)
    size = notebook.stat().st_size
    print(f"saved notebook with the grid's widget state: {size / 1024:.0f} kB")
    assert size < 2**20
