"""``FrontEnd``: an anywidget whose browser side asks the kernel for things by message.

Every wavenb view (the Studio, the comparison grid, an inline video) is one anywidget: one ES
module and one stylesheet under ``wavenb/ui/static/``, its state in synced traits (plain JSON),
and everything heavy (videos, poster frames, timeline plots) sent as binary buffers of custom
messages, only when the front end asks. So the widget state, and a notebook saved with it,
stays small, and the bytes reach the browser over the kernel's own channel (remote kernels,
JupyterHub, Colab, VS Code and marimo alike).

The front end sends ``{"do": <action>, ...}`` (with buffers for an uploaded file); the view
handles it in ``_do_<action>(content, buffers)``, for actions it lists in ``ACTIONS``. The view
answers with ``reply(kind, data, **fields)``: ``{"kind": kind, **fields}`` plus the bytes.

ipywidgets swallows exceptions raised in message handlers; here they go to ``show_error``,
which every view implements with an error area the user sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import anywidget

__all__ = ["STATIC", "FrontEnd", "static"]

STATIC: Final = Path(__file__).resolve().parent / "static"
"""The folder of the views' ES modules and stylesheets (package data)."""


def static(name: str) -> Path:
    """The path of a file in ``STATIC`` (an ``_esm`` / ``_css`` of a view)."""
    return STATIC / name


class FrontEnd(anywidget.AnyWidget):
    """An anywidget with a message channel: actions in, binary replies out."""

    ACTIONS: ClassVar[frozenset[str]] = frozenset()
    """The actions the front end may ask for; each has a ``_do_<action>`` method."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401  (traitlets' keyword values)
        super().__init__(**kwargs)
        self.on_msg(self._on_front_end)

    def show_error(self, error: BaseException, /) -> None:
        """Show ``error`` where the user sees it (each view has an error area)."""
        raise NotImplementedError

    def reply(self, kind: str, data: bytes | None = None, **fields: Any) -> None:  # noqa: ANN401
        """Send ``{"kind": kind, **fields}`` to the front end, with ``data`` as a buffer."""
        self.send({"kind": kind, **fields}, None if data is None else [data])

    def receive(self, content: dict[str, Any], buffers: Sequence[bytes] = ()) -> None:
        """Handle one message from the front end (what a click sends); errors are shown.

        Tests and Python code can call it to do exactly what the browser does.
        """
        action = str(content.get("do", ""))
        if action not in self.ACTIONS:
            self.show_error(ValueError(f"the front end asked for an unknown action {action!r}"))
            return
        try:
            getattr(self, f"_do_{action}")(content, [bytes(b) for b in buffers])
        except Exception as error:  # noqa: BLE001  (shown to the user, never swallowed)
            self.show_error(error)

    def _on_front_end(self, _widget: object, content: Any, buffers: Any) -> None:  # noqa: ANN401
        if isinstance(content, dict):
            self.receive(content, list(buffers or ()))
