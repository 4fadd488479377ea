"""How a finished ``Video`` shows in a notebook: a bounded player and a one-line label.

With the ``notebook`` extra it is ``VideoView``, a small anywidget (``static/video.js``): the
page asks for the MP4's bytes over the kernel's comm channel when it draws the player, so the
browser needs no route to the kernel's machine (remote kernels, JupyterHub, Colab, VS Code,
marimo) and no video lands in the saved notebook. Without the extra, ``video_html`` gives plain
HTML: a ``<video>`` with the file inline as a data URI when it is small, else the path.

Either way the player is at most 60 % of the window's height, whatever the video's ratio.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Final

__all__ = ["INLINE_LIMIT", "SANDBOX_BADGE", "video_html", "video_view"]

SANDBOX_BADGE = (
    '<span style="background:#b45309;color:white;border-radius:4px;padding:1px 6px;'
    'font-size:11px;font-weight:600;letter-spacing:.05em">SANDBOX</span>'
)
"""The badge shown beside anything the local sandbox made (HTML reports)."""

INLINE_LIMIT: Final = 8 * 1024 * 1024
"""Largest MP4 put inline into HTML as a data URI (base64 makes it a third bigger)."""
PLAYER_STYLE: Final = "max-width:100%;max-height:60vh;display:block"


def video_view(path: Path, label: str, *, sandbox: bool) -> Any:  # noqa: ANN401  (anywidget)
    """A ``VideoView`` widget for the MP4 at ``path``, or ``None`` without anywidget."""
    try:
        from wavenb.ui.player import VideoView  # noqa: PLC0415  (the notebook extra: optional)
    except ImportError:
        return None
    return VideoView(path, label, sandbox=sandbox)


def video_html(path: Path | None, url: str, label: str, *, sandbox: bool) -> str:
    """Plain HTML for a video: inline when the file is small, else its path (or its URL)."""
    badge = f"{SANDBOX_BADGE} " if sandbox else ""
    caption = f"<div><small>{badge}{html.escape(label)}</small></div>"
    if path is not None and path.exists() and path.stat().st_size <= INLINE_LIMIT:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        source = f"data:video/mp4;base64,{data}"
    elif path is not None and path.exists():
        where = html.escape(str(path))
        return f"<div><small>{badge}{html.escape(label)}</small><br><code>{where}</code></div>"
    else:
        source = html.escape(url, quote=True)
    return (
        f'<div><video src="{source}" controls loop muted playsinline style="{PLAYER_STYLE}">'
        f"</video>{caption}</div>"
    )
