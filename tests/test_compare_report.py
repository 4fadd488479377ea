"""Saving and loading a comparison, its HTML report, and the playback controls in Chromium.

The browser tests open the saved report straight from disk (``file://``, as a person would)
in Debian's Chromium through Playwright, with a private profile; they also run the grid's
anywidget module against a stand-in widget model. They are skipped only when
``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API, ASSETS, CANARY_KEY, CHROMIUM, CHROMIUM_ARGS
from wavenb import InputError, PollPolicy
from wavenb.client.async_client import AsyncClient
from wavenb.compare.comparison import Comparison, compare
from wavenb.compare.report import highlight_changes, render_report
from wavenb.compare.widget import PLAYBACK_ESM
from wavenb.journal.store import Journal
from wavenb.sandbox import SandboxConfig, create_app

WALK = "The model walks forward slowly"
TURN = "The model turns around slowly"
MS = 1000


QUICK = PollPolicy(min_interval=0.05, first_delay=0.05, growth=0.25, max_interval=0.1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Comparison, Path]:
    """A finished, rated, voted and saved comparison (2 prompts x 2 runs), made once.

    Made outside any event loop (``wait()``), with its own sandbox, journal and outputs
    folder, so it needs none of the per-test isolation.
    """
    root = tmp_path_factory.mktemp("compare-report")
    app = create_app(SandboxConfig(speed="instant", duration=1.0))
    client = AsyncClient(
        CANARY_KEY, "http://sandbox.wavenb.invalid", transport=httpx.ASGITransport(app=app),
        output_dir=root / "outputs", journal=Journal(root / "journal.sqlite3"), poll=QUICK,
    )  # fmt: skip
    cmp = compare(
        ASSETS / "portrait-astronaut.jpg", {"A": WALK, "B": TURN}, repeats=2, client=client
    )
    cmp.wait(timeout=60)
    cmp.rate("A/auto/0", 1, note="natural <walk>")
    left, right = cmp.pairs()[0]
    cmp.vote(left, right, "left")
    folder = cmp.save(root / "runs" / "model-ab")
    return cmp, folder


# -- save and load --------------------------------------------------------------------------


def test_save_writes_a_manifest_the_videos_the_image_and_a_report(
    saved: tuple[Comparison, Path],
) -> None:
    cmp, folder = saved
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == [
        "images/portrait-astronaut.jpg",
        "manifest.json",
        "report.html",
        "videos/01-A-auto-0.mp4",
        "videos/02-A-auto-1.mp4",
        "videos/03-B-auto-0.mp4",
        "videos/04-B-auto-1.mp4",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "wavenb.comparison"
    assert [c["path"] for c in manifest["cells"]][:2] == [
        "videos/01-A-auto-0.mp4",
        "videos/02-A-auto-1.mp4",
    ]
    assert [p["text"] for p in manifest["prompts"]] == [WALK, TURN]
    for row, run in zip(manifest["cells"], cmp.runs, strict=True):
        assert (folder / row["path"]).read_bytes() == run.path.read_bytes()  # type: ignore[union-attr]


def test_load_rebuilds_everything_without_an_api_call(saved: tuple[Comparison, Path]) -> None:
    cmp, folder = saved
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    offline = AsyncClient(CANARY_KEY, API, transport=httpx.MockTransport(refuse))
    loaded = Comparison.load(folder, client=offline)
    grid = loaded.widget

    def without_path(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "path"} for row in rows]

    assert without_path(loaded.rows) == without_path(cmp.rows)
    assert [Path(r["path"]).parent for r in loaded.rows] == [folder / "videos"] * 4
    assert loaded.votes == cmp.votes
    assert loaded.summary() == cmp.summary()
    assert loaded["A/auto/0"].note == "natural <walk>"
    assert all(view.player is not None for view in grid.cells.values())
    assert grid.cells["A/auto/0"].rating.value == 1
    assert loaded.finished
    assert seen == []


async def test_awaiting_a_loaded_comparison_runs_nothing(saved: tuple[Comparison, Path]) -> None:
    loaded = Comparison.load(saved[1])
    assert await loaded is loaded
    assert loaded.finished
    assert loaded._client is None  # no client was even needed


def test_load_refuses_a_folder_of_something_else(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a wavenb comparison"):
        Comparison.load(tmp_path)


# -- the report, as text --------------------------------------------------------------------


def test_the_report_uses_relative_paths_and_escapes_what_people_typed(
    saved: tuple[Comparison, Path],
) -> None:
    _, folder = saved
    page = (folder / "report.html").read_text()
    assert page.count("<video ") == 4
    assert 'src="videos/01-A-auto-0.mp4"' in page
    assert 'src="images/portrait-astronaut.jpg"' in page
    assert str(folder) not in page
    assert str(folder.parent / "outputs") not in page
    assert "natural &lt;walk&gt;" in page
    assert "<walk>" not in page
    assert "<mark>turns around</mark>" in page
    assert "SANDBOX" in page


def test_highlight_marks_only_the_words_that_changed() -> None:
    assert highlight_changes(WALK, WALK) == WALK
    assert highlight_changes(WALK, TURN) == "The model <mark>turns around</mark> slowly"
    assert highlight_changes("zoom in", "ZOOM in <fast>") == "ZOOM in <mark>&lt;fast&gt;</mark>"


def test_a_report_renders_cells_without_videos() -> None:
    manifest = {
        "model": "runwayml/gen4-turbo",
        "backend": "api",
        "aspect_ratios": ["16:9"],
        "repeats": 1,
        "images": [{"id": "img", "file": None, "url": "https://example.com/a.jpg"}],
        "prompts": [{"id": "A", "text": "a <b>"}],
        "cells": [
            {
                "cell_id": "A/16:9/0",
                "image": "img",
                "prompt_id": "A",
                "aspect_ratio": "16:9",
                "repeat": 0,
                "status": "failed",
                "error": "Content <policy>",
                "path": None,
            },
        ],
    }
    page = render_report(manifest)
    assert "<video src" not in page
    assert "Content &lt;policy&gt;" in page
    assert "a &lt;b&gt;" in page


# -- in a real browser ----------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's Chromium, headless, with a private profile and no network chatter."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (make browser installs it)")
    from playwright.sync_api import sync_playwright

    home = tmp_path / "chromium-home"
    env = {**os.environ, "HOME": str(home)}
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[name] = str(home / name.lower())
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            env=env,
            args=list(CHROMIUM_ARGS),
        )
        try:
            yield launched
        finally:
            launched.close()


ALL_LOADED = "() => [...document.querySelectorAll('video')].every((v) => v.readyState >= 1)"
STATES = """() => [...document.querySelectorAll('video')].map((v) => ({
  paused: v.paused, loop: v.loop, muted: v.muted, time: v.currentTime, duration: v.duration,
}))"""


@pytest.mark.browser
def test_the_report_opens_from_disk_with_every_video_loaded(
    saved: tuple[Comparison, Path], browser: Any, tmp_path: Path
) -> None:
    _, folder = saved
    page = browser.new_page()
    page.goto((folder / "report.html").as_uri())
    page.wait_for_function(ALL_LOADED, timeout=15 * MS)
    states = page.evaluate(STATES)
    assert len(states) == 4
    assert all(abs(s["duration"] - 1.0) < 0.2 for s in states)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

    page.get_by_role("button", name="Pause all").click()
    assert all(s["paused"] for s in page.evaluate(STATES))
    page.get_by_role("button", name="Play all").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every((v) => !v.paused)", timeout=5 * MS
    )
    assert all(s["muted"] and s["loop"] for s in page.evaluate(STATES))
    page.get_by_label("loop").uncheck()
    assert not any(s["loop"] for s in page.evaluate(STATES))


HARNESS = """<!doctype html><meta charset="utf-8">
<div class="grid-x"><div><div id="controls"></div></div>
  <video src="videos/01-A-auto-0.mp4" controls></video>
  <video src="videos/02-A-auto-1.mp4" controls></video>
</div>
<script type="module">
  // A stand-in for the widget model: get / set / on / save_changes, as anywidget gives.
  const values = { scope: "grid-x", playing: true, loop: true, restarts: 0 };
  const listeners = {};
  window.saved = 0;
  window.model = {
    get: (name) => values[name],
    set: (name, value) => {
      values[name] = value;
      (listeners["change:" + name] || []).forEach((f) => f());
    },
    on: (event, f) => { (listeners[event] = listeners[event] || []).push(f); },
    save_changes: () => { window.saved += 1; },
  };
  const source = JSON.parse(document.getElementById("esm").textContent);
  const module = await import("data:text/javascript;charset=utf-8," + encodeURIComponent(source));
  module.default.render({ model: window.model, el: document.getElementById("controls") });
  window.ready = true;
</script>
<script type="application/json" id="esm">ESM</script>
"""


@pytest.mark.browser
def test_the_grid_playback_module_drives_every_video_together(
    saved: tuple[Comparison, Path], browser: Any
) -> None:
    _, folder = saved
    harness = folder / "harness.html"
    harness.write_text(HARNESS.replace("ESM", json.dumps(PLAYBACK_ESM).replace("</", "<\\/")))
    page = browser.new_page()
    page.goto(harness.as_uri())
    page.wait_for_function("() => window.ready === true", timeout=10 * MS)
    page.wait_for_function(ALL_LOADED, timeout=10 * MS)

    page.get_by_role("button", name="Pause all").click()
    assert all(s["paused"] for s in page.evaluate(STATES))
    assert page.evaluate("() => window.model.get('playing')") is False
    page.get_by_role("button", name="Play all").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every((v) => !v.paused)", timeout=5 * MS
    )
    assert page.evaluate("() => window.model.get('restarts')") == 1
    assert page.evaluate("() => window.saved") >= 3  # every click is saved to the kernel

    # A cell finishing later: its video joins the others, muted and playing.
    page.evaluate(
        """() => {
      const video = document.createElement("video");
      video.src = "videos/03-B-auto-0.mp4";
      document.querySelector(".grid-x").appendChild(video);
    }"""
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every((v) => !v.paused && v.muted)",
        timeout=5 * MS,
    )
    # The kernel side pauses everything (cmp.widget.controls.pause_all()).
    page.evaluate("() => window.model.set('playing', false)")
    assert all(s["paused"] for s in page.evaluate(STATES))
