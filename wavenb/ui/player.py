"""``VideoView``: one finished video as a small anywidget (what displaying a ``Video`` shows).

The page asks for the bytes (``{"do": "video"}``) when it draws the player and gets them as
one binary buffer; they are never part of the widget state. Download saves them in the browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import traitlets

from wavenb.ui.channel import FrontEnd, static

__all__ = ["VideoView"]


class VideoView(FrontEnd):
    """A looping, bounded player for the MP4 at ``path``, its label, and a Download button."""

    _esm = static("video.js")
    _css = static("video.css")
    ACTIONS: ClassVar[frozenset[str]] = frozenset({"video"})

    label = traitlets.Unicode(help="One line under the player.").tag(sync=True)
    name = traitlets.Unicode(help="The file name Download suggests.").tag(sync=True)
    sandbox = traitlets.Bool(default_value=False, help="Show the SANDBOX badge.").tag(sync=True)
    problem = traitlets.Unicode(help="Why the video cannot be shown.").tag(sync=True)

    def __init__(self, path: Path, label: str, *, sandbox: bool) -> None:
        self.path = path
        """The MP4 on the kernel's machine."""
        super().__init__(label=label, name=path.name, sandbox=sandbox)

    def show_error(self, error: BaseException, /) -> None:
        """Say under the player why there is no video."""
        self.problem = f"{type(error).__name__}: {error}"

    def _do_video(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.reply("video", self.path.read_bytes())

    def __repr__(self) -> str:
        return f"<VideoView {self.name}>"
