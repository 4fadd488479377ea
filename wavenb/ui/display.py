"""How a finished video shows in a notebook: a player and a one-line label.

The player is an ipywidgets ``Video`` holding the MP4's bytes. The bytes travel over the
kernel's comm channel, so the browser never needs a route to the kernel's machine (remote
kernels, JupyterHub, Colab), and widget state is not written into the saved notebook unless
the user asks for it, so notebooks stay small.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipywidgets import VBox

__all__ = ["SANDBOX_BADGE", "video_widget"]

SANDBOX_BADGE = (
    '<span style="background:#b45309;color:white;border-radius:4px;padding:1px 6px;'
    'font-size:11px;font-weight:600;letter-spacing:.05em">SANDBOX</span>'
)
"""The badge shown beside anything the local sandbox made."""


def video_widget(path: Path, label: str, sandbox: bool) -> VBox:  # noqa: FBT001
    """A looping inline player for the MP4 at ``path`` with ``label`` under it."""
    import ipywidgets as widgets  # noqa: PLC0415  (heavy import, only when displaying)

    player = widgets.Video(
        value=path.read_bytes(), format="mp4", autoplay=True, loop=True, controls=True
    )
    player.layout.max_width = "100%"
    badge = SANDBOX_BADGE + " " if sandbox else ""
    caption = widgets.HTML(f"<small>{badge}{html.escape(label)}</small>")
    return widgets.VBox([player, caption])
