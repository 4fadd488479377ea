"""Saving and loading a comparison (manifest v2, v1 still read), its pictures and HTML report.

The browser test opens the saved report straight from disk (``file://``, as a person would)
in Debian's Chromium through Playwright, with a private profile. It is skipped only when
``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import API, ASSETS, CANARY_KEY, CHROMIUM, CHROMIUM_ARGS
from wavenb import InputError, Phase, PollPolicy
from wavenb.ab.comparison import Comparison, compare
from wavenb.ab.report import highlight_changes, render_report
from wavenb.client.async_client import AsyncClient
from wavenb.journal.store import Journal
from wavenb.sandbox import SandboxConfig, create_app

WALK = "The model walks forward slowly"
PAN = "The camera pans left past the model"
MS = 1000
QUICK = PollPolicy(min_interval=0.05, first_delay=0.05, growth=0.25, max_interval=0.1)
SAVED_FILES = [
    "contact-sheet.png",
    "images/portrait-astronaut.jpg",
    "manifest.json",
    "previews/01-A-auto-0.webp",
    "previews/02-A-auto-1.webp",
    "previews/03-B-auto-0.webp",
    "previews/04-B-auto-1.webp",
    "report.html",
    "videos/01-A-auto-0.mp4",
    "videos/02-A-auto-1.mp4",
    "videos/03-B-auto-0.mp4",
    "videos/04-B-auto-1.mp4",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Comparison, Path]:
    """A finished, measured, rated, voted and saved comparison (2 prompts x 2 runs), made once.

    Made outside any event loop (``wait()``), with its own sandbox, journal and outputs
    folder, so it needs none of the per-test isolation.
    """
    root = tmp_path_factory.mktemp("compare-report")
    app = create_app(SandboxConfig(speed="instant", duration=1.0))
    client = AsyncClient(
        CANARY_KEY, "http://sandbox.wavenb.invalid", transport=httpx.ASGITransport(app=app),
        output_dir=root / "outputs", journal=Journal(root / "journal.sqlite3"), poll=QUICK,
    )  # fmt: skip
    cmp = compare(ASSETS / "portrait-astronaut.jpg", {"A": WALK, "B": PAN}, repeats=2,
                  client=client)  # fmt: skip
    cmp.wait(timeout=120)
    cmp.rate("A/auto/0", 1, note="natural <walk>")
    cmp.vote("B/auto/0", "A/auto/0")
    cmp.tie("A/auto/1", "B/auto/1")
    folder = cmp.save(root / "runs" / "model-ab")
    loop = cmp._loop  # the private loop wait() ran the cells on: close what lives on it
    assert loop is not None
    loop.run_until_complete(client.aclose())
    loop.close()
    return cmp, folder


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- save and load --------------------------------------------------------------------------


def test_save_writes_a_manifest_videos_image_pictures_and_a_report(
    saved: tuple[Comparison, Path],
) -> None:
    cmp, folder = saved
    assert files_in(folder) == SAVED_FILES
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("wavenb.comparison", 2)
    cells = manifest["cells"]
    assert [c["path"] for c in cells][:2] == ["videos/01-A-auto-0.mp4", "videos/02-A-auto-1.mp4"]
    assert {c["status"] for c in cells} == {"downloaded"}
    assert cells[2]["camera_move"] == "pan_left"
    assert cells[2]["badge"].startswith("pan left ✓")
    assert [p["text"] for p in manifest["prompts"]] == [WALK, PAN]
    assert manifest["votes"][0] == {
        "winner": "B/auto/0", "loser": "A/auto/0", "tie": False, "at": manifest["votes"][0]["at"],
    }  # fmt: skip
    assert manifest["ranking"]["prompts"][0]["prompt_id"] == "B"
    assert manifest["summary"]["text"] == str(cmp.summary())
    for row, run in zip(cells, cmp.runs, strict=True):
        assert (folder / row["path"]).read_bytes() == run.path.read_bytes()  # type: ignore[union-attr]


def test_the_contact_sheet_has_a_row_per_prompt_and_previews_are_animations(
    saved: tuple[Comparison, Path],
) -> None:
    _, folder = saved
    with Image.open(folder / "contact-sheet.png") as sheet:
        assert sheet.format == "PNG"
        width, height = sheet.size
        # Two rows of two videos x four frames: wider than tall, and not a sliver.
        assert width > height > 200
    for preview in sorted((folder / "previews").iterdir()):
        with Image.open(preview) as animation:
            assert animation.format == "WEBP"
            assert animation.is_animated
            assert animation.n_frames >= 8  # 1 s at 8 frames a second
            assert animation.width == 320


def test_load_rebuilds_everything_without_an_api_call(saved: tuple[Comparison, Path]) -> None:
    cmp, folder = saved
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    offline = AsyncClient(CANARY_KEY, API, transport=httpx.MockTransport(refuse))
    loaded = Comparison.load(folder, client=offline)

    def without_path(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "path"} for row in rows]

    assert without_path(loaded.rows) == without_path(cmp.rows)  # metrics included
    assert [Path(r["path"]).parent for r in loaded.rows] == [folder / "videos"] * 4
    assert [run.preview for run in loaded.runs] == [
        folder / f"previews/{n:02d}-{cell}.webp"
        for n, cell in enumerate(["A-auto-0", "A-auto-1", "B-auto-0", "B-auto-1"], start=1)
    ]
    assert loaded.votes == cmp.votes
    assert loaded.summary() == cmp.summary()
    assert loaded.rank().equals(cmp.rank())
    assert loaded["A/auto/0"].note == "natural <walk>"
    assert [run.badges for run in loaded.runs] == [run.badges for run in cmp.runs]
    assert loaded.finished
    assert not loaded.needs_confirmation
    assert seen == []


def test_a_loaded_comparison_saved_again_keeps_its_previews(
    saved: tuple[Comparison, Path], tmp_path: Path
) -> None:
    loaded = Comparison.load(saved[1])
    again = loaded.save(tmp_path / "copy")
    assert files_in(again) == SAVED_FILES
    for name in ("previews/01-A-auto-0.webp", "videos/03-B-auto-0.mp4"):
        assert (again / name).read_bytes() == (saved[1] / name).read_bytes()


async def test_awaiting_a_loaded_comparison_runs_nothing(saved: tuple[Comparison, Path]) -> None:
    loaded = Comparison.load(saved[1])
    assert await loaded is loaded
    assert loaded.finished
    assert loaded._client is None  # no client was even needed


def test_load_refuses_a_folder_of_something_else(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a wavenb comparison"):
        Comparison.load(tmp_path)


def test_load_refuses_a_manifest_from_a_newer_wavenb(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "wavenb.comparison",
                                                        "version": 3}))  # fmt: skip
    with pytest.raises(InputError, match="newer wavenb"):
        Comparison.load(tmp_path)


# -- version 1 --------------------------------------------------------------------------------


def v1_cell(cell_id: str, status: str, *, path: str | None = None, **extra: Any) -> dict[str, Any]:
    prompt_id, ratio, repeat = cell_id.split("/")
    row = {
        "cell_id": cell_id, "image": "img", "prompt_id": prompt_id, "prompt": f"prompt {prompt_id}",
        "aspect_ratio": ratio, "repeat": int(repeat), "prediction_id": f"{prompt_id}{repeat}" * 8,
        "status": status, "submitted_at": "2026-11-20T10:00:00.000000+00:00", "started_at": None,
        "finished_at": None, "inference_ms": 1500, "wall_s": 12.5, "cost": 0.5,
        "output_url": None, "path": path, "error": None, "rating": None, "note": "",
        "reused": False, "cell_key": f"key-{cell_id}",
    }  # fmt: skip
    return {**row, **extra}


@pytest.fixture
def v1_folder(tmp_path: Path) -> Path:
    """A comparison saved by wavenb's first comparison format, written by hand."""
    folder = tmp_path / "old"
    (folder / "videos").mkdir(parents=True)
    shutil.copyfile(ASSETS.parent / "assets" / "portrait-astronaut.jpg", folder / "image.jpg")
    (folder / "videos" / "01.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    manifest = {
        "format": "wavenb.comparison",
        "version": 1,
        "saved_at": "2026-11-20T10:05:00.000000+00:00",
        "model": "runwayml/gen4-turbo",
        "backend": "api",
        "base_url": API,
        "price_per_video": 0.5,
        "max_cost": 5.0,
        "concurrency": 2,
        "images": [
            {
                "id": "img",
                "source": "img.jpg",
                "sha256": "ab" * 32,
                "url": None,
                "width": 832,
                "height": 1104,
                "file": "image.jpg",
            },
        ],
        "prompts": [{"id": "A", "text": "prompt A"}, {"id": "B", "text": "prompt B"}],
        "aspect_ratios": ["16:9"],
        "repeats": 2,
        "cells": [
            v1_cell("A/16:9/0", "completed", path="videos/01.mp4", rating=1, note="good"),
            v1_cell("A/16:9/1", "cancelled"),
            v1_cell("B/16:9/0", "downloading"),
            v1_cell("B/16:9/1", "failed", error="Request failed."),
        ],
        "votes": [
            {
                "left": "A/16:9/0",
                "right": "B/16:9/0",
                "winner": "right",
                "at": "2026-11-20T10:04:00.000000+00:00",
            },
            {
                "left": "B/16:9/1",
                "right": "A/16:9/1",
                "winner": "tie",
                "at": "2026-11-20T10:04:30.000000+00:00",
            },
        ],
        "summary": [],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_version_1_manifest_loads_with_phase_words(v1_folder: Path) -> None:
    loaded = Comparison.load(v1_folder)
    assert [run.status for run in loaded.runs] == [
        Phase.DOWNLOADED, Phase.STOPPED, Phase.COMPLETED, Phase.FAILED,
    ]  # fmt: skip
    first = loaded["A/16:9/0"]
    assert first.path == v1_folder / "videos" / "01.mp4"
    assert (first.rating, first.note, first.wall_s, first.metrics) == (1, "good", 12.5, None)
    assert [(v.winner, v.loser, v.tie) for v in loaded.votes] == [
        ("B/16:9/0", "A/16:9/0", False),
        ("B/16:9/1", "A/16:9/1", True),
    ]
    assert loaded.design.images[0].data == (v1_folder / "image.jpg").read_bytes()
    assert (loaded.concurrency, loaded.max_cost, loaded.backend) == (2, 5.0, "api")
    # The cell still downloading when it was saved is the one thing left to do: its task
    # exists, so running it again follows it (free).
    assert (loaded.estimate.resumed, loaded.estimate.new, loaded.estimate.total) == (1, 0, 0)


def test_a_version_1_comparison_saves_as_version_2(v1_folder: Path, tmp_path: Path) -> None:
    folder = Comparison.load(v1_folder).save(tmp_path / "new")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == 2
    assert [c["status"] for c in manifest["cells"]] == [
        "downloaded", "stopped", "completed", "failed",
    ]  # fmt: skip
    reloaded = Comparison.load(folder)
    assert [run.status for run in reloaded.runs][:2] == [Phase.DOWNLOADED, Phase.STOPPED]
    assert [(v.winner, v.tie) for v in reloaded.votes] == [("B/16:9/0", False), ("B/16:9/1", True)]
    # Its one video does not decode (a stand-in): saved without a preview, and the note says so.
    assert manifest["cells"][0]["preview"] is None
    assert any("no preview for A/16:9/0" in note for note in manifest["notes"])


def test_a_damaged_manifest_is_refused_with_its_name(v1_folder: Path) -> None:
    data = json.loads((v1_folder / "manifest.json").read_text())
    del data["cells"][0]["cell_id"]
    (v1_folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"manifest\.json is damaged"):
        Comparison.load(v1_folder)


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
    assert "<mark>The camera pans left past</mark> the model" in page
    assert "SANDBOX" in page


def test_the_report_shows_the_verdict_ranking_sheet_previews_and_metrics(
    saved: tuple[Comparison, Path],
) -> None:
    cmp, folder = saved
    page = (folder / "report.html").read_text()
    assert "<h2>Verdict</h2>" in page
    assert "“B” leads “A”" in page
    ranking = page[page.index("<h2>Ranking</h2>") : page.index("<h2>Per prompt</h2>")]
    table = cmp.rank()
    assert f"<td>1</td><td><b>B</b></td><td>{table.loc['B', 'score']:+.2f}</td>" in ranking
    assert f"{table.loc['B', 'ci_low']:+.2f} to {table.loc['B', 'ci_high']:+.2f}" in ranking
    assert "Laplace approximation" in ranking
    assert '<img class="sheet" src="contact-sheet.png"' in page
    assert 'poster="previews/03-B-auto-0.webp"' in page
    assert page.count("poster=") == 4
    assert "pan left ✓" in page  # B's badge
    assert "<th>camera_move</th>" in page


def test_highlight_marks_only_the_words_that_changed() -> None:
    assert highlight_changes(WALK, WALK) == WALK
    assert highlight_changes(WALK, "The model turns around slowly") == (
        "The model <mark>turns around</mark> slowly"
    )
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
        "notes": ["no video metrics: <why>"],
    }
    page = render_report(manifest)
    assert "<video src" not in page
    assert "Content &lt;policy&gt;" in page
    assert "a &lt;b&gt;" in page
    assert "no video metrics: &lt;why&gt;" in page
    assert "<h2>Ranking</h2>" not in page


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
PICTURES = """() => [...document.querySelectorAll('img')].map((img) => ({
  src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
}))"""


@pytest.mark.browser
def test_the_report_opens_from_disk_with_every_video_and_picture_loaded(
    saved: tuple[Comparison, Path], browser: Any, tmp_path: Path
) -> None:
    _, folder = saved
    page = browser.new_page()
    page.goto((folder / "report.html").as_uri())
    page.wait_for_function(ALL_LOADED, timeout=15 * MS)
    states = page.evaluate(STATES)
    assert len(states) == 4
    assert all(abs(s["duration"] - 1.0) < 0.2 for s in states)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].every((img) => img.complete)",
        timeout=10 * MS,
    )
    pictures = {p["src"]: p for p in page.evaluate(PICTURES)}
    assert pictures["contact-sheet.png"]["width"] > 200
    assert pictures["images/portrait-astronaut.jpg"]["width"] > 100
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
