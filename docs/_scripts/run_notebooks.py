"""Run copies of notebooks/*.ipynb on the sandbox; save them, with outputs, in docs/notebooks/.

``make docs-notebooks`` runs this; ``make docs`` then renders the saved copies without running
them (mkdocs-jupyter, ``execute: false``). The notebooks in notebooks/ stay committed without
outputs; these copies are committed with them, small:

- the kernel runs in a throwaway environment: temporary IPython and Jupyter folders, a
  temporary ``WAVENB_HOME`` (fresh journal: nothing is "reused from history"), no API key and
  no base URL (nothing can reach the real API), the ``instant`` sandbox, matplotlib's inline
  backend (so plots are saved as images);
- widget state is dropped. A displayed ``Video`` becomes a still frame from its MP4 (a widget
  cannot play without a kernel); any other widget (the Studio, a comparison grid) becomes a
  short note;
- long text is cut to ``MAX_LINES`` lines, larger images are re-encoded, timing metadata is
  removed, and the temporary folders' paths are replaced by stable names so that a re-run only
  changes what really changed.

Needs the ``test`` extra (the sandbox, the notebook extra, nbclient, ipykernel).
Usage: ``python docs/_scripts/run_notebooks.py [NAME.ipynb ...]``.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "notebooks"
TARGET = ROOT / "docs" / "notebooks"

MAX_LINES = 40
"""Lines of text kept per output; the rest is summarised in one line."""
MAX_IMAGE_BYTES = 10_000
"""A PNG larger than this (decoded) is re-encoded with a 32-colour palette: plots lose nothing
visible and shrink about 4 times."""
STILL_WIDTH = 480
"""Width in pixels of the still that stands in for a video."""

WIDGET = "application/vnd.jupyter.widget-view+json"
SCREENSHOTS = {"<Studio": "studio-jupyterlab.jpg", "<Comparison": "compare-2x2.jpg"}
"""Widgets by repr, and their screenshot in the site (copied from notebooks/assets/screenshots,
where tests/test_browser.py saves them)."""
VIDEO_PATH = re.compile(r"path=(\S+\.mp4)>")
UNSET = ("WAVESPEED_API_KEY", "WAVENB_BASE_URL", "WAVESPEED_BASE_URL", "WAVENB_MAX_SPEND")


def run(path: Path, scratch: Path) -> nbformat.NotebookNode:
    """Execute a copy of the notebook at ``path`` in an isolated kernel; return it executed.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (the notebook is broken).
    """
    notebook = nbformat.read(path, as_version=4)
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    for name in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        folder = scratch / name.lower()
        folder.mkdir(exist_ok=True)
        env[name] = str(folder)
    env |= {
        "WAVENB_HOME": str(scratch / "wavenb-home"),
        "WAVENB_SANDBOX_SPEED": "instant",
        # Not "agg" as in tests/test_notebooks.py: the pages should show the plots, and only
        # the inline backend (ipykernel's default, no display needed) puts them in the outputs.
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    # The kernel inherits this process's environment: set it for the run, then put it back.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


def tidy(notebook: nbformat.NotebookNode, scratch: Path) -> nbformat.NotebookNode:
    """Make an executed notebook small and stable (see the module docstring); returns it."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = [_tidy_output(output) for output in cell.outputs]
    text = nbformat.writes(notebook)
    text = text.replace(str(scratch / "wavenb-home"), "~/.local/share/wavenb")
    # Temporary folders the notebooks make themselves: one stable name.
    text = re.sub(r"/tmp/[\w.-]+", "/tmp/tmpdir", text)  # noqa: S108  (not a file we create)
    return nbformat.reads(text, as_version=4)


def _tidy_output(output: nbformat.NotebookNode) -> nbformat.NotebookNode:
    if output.output_type == "stream":
        output.text = _cut("".join(output.text))
        return output
    if output.output_type == "error":
        return output
    data: dict[str, Any] = output.get("data", {})
    if "text/plain" in data:
        data["text/plain"] = _cut("".join(data["text/plain"]))
    if WIDGET in data:
        data.pop(WIDGET)
        data["text/html"] = _widget_stand_in(data.get("text/plain", ""))
    if "image/png" in data:
        data["image/png"] = _shrink_png(data["image/png"])
    output.get("metadata", {}).pop(WIDGET, None)
    return output


def _widget_stand_in(plain: str) -> str:
    """What stands in for a widget view: a still for a ``Video``, a note for any other widget.

    The note shows the screenshot the real-browser test took of that kind of widget, if any.
    """
    match = VIDEO_PATH.search(plain)
    if match and Path(match.group(1)).exists():
        still = base64.b64encode(_still(Path(match.group(1)))).decode()
        return (
            f'<figure class="wavenb-still"><img src="data:image/jpeg;base64,{still}" '
            f'alt="a still from the video" style="max-width:{STILL_WIDTH}px">'
            "<figcaption><small>A still from the video (a sandbox render). Run the notebook "
            "to play it.</small></figcaption></figure>"
        )
    what = html.escape(plain.strip() or "a widget")
    note = f"<p><em>An interactive widget here ({what}): run the notebook in Jupyter to use it."
    shot = next((name for prefix, name in SCREENSHOTS.items() if plain.startswith(prefix)), None)
    if shot is None:
        return note + "</em></p>"
    return (
        f"{note} This is how one looks in JupyterLab (a screenshot taken by the real-browser "
        f'test):</em></p><img src="../assets/screenshots/{shot}" alt="{what}" loading="lazy">'
    )


def _still(path: Path) -> bytes:
    """A JPEG of the frame in the middle of the MP4 at ``path``, ``STILL_WIDTH`` wide."""
    import av  # noqa: PLC0415  (the sandbox extra; only needed here)

    with av.open(str(path)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    image = frames[len(frames) // 2]
    image.thumbnail((STILL_WIDTH, STILL_WIDTH))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def _shrink_png(encoded: str) -> str:
    raw = base64.b64decode(encoded)
    if len(raw) <= MAX_IMAGE_BYTES:
        return encoded
    image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=32)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    smaller = buffer.getvalue()
    return base64.b64encode(smaller if len(smaller) < len(raw) else raw).decode()


def _cut(text: str) -> str:
    lines = text.splitlines(keepends=True)
    if len(lines) <= MAX_LINES:
        return text
    return "".join(lines[:MAX_LINES]) + f"... ({len(lines) - MAX_LINES} more lines)\n"


def main(names: list[str]) -> int:
    """Run the named notebooks (default: all of notebooks/) into docs/notebooks/."""
    paths = [SOURCE / name for name in names] if names else sorted(SOURCE.glob("*.ipynb"))
    TARGET.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="wavenb-docs-") as folder:
            scratch = Path(folder)
            notebook = tidy(run(path, scratch), scratch)
        target = TARGET / path.name
        nbformat.write(notebook, target)
        size = target.stat().st_size / 1000
        print(f"{target.relative_to(ROOT)}: {size:.0f} kB")  # noqa: T201  (a script reports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
