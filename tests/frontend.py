"""A stand-in for a widget's browser side: the comm, recorded, as ipywidgets speaks it.

``comm.create_comm`` is the documented hook front ends replace (marimo does); here it returns a
comm that keeps every message the widget sends. ``FrontEnd.click`` / ``type`` send what the
page sends (custom messages, state updates) through the widget's real message handling.
"""

from __future__ import annotations

from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    """A comm that keeps what the kernel publishes instead of sending it anywhere."""

    def __init__(self, **kwargs: Any) -> None:
        self.published: list[tuple[dict[str, Any], list[bytes]]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:  # fmt: skip
        self.published.append((data or {}, [bytes(b) for b in buffers or []]))


@pytest.fixture
def recorded_comms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


class Page:
    """What the browser does with one widget."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        assert isinstance(widget.comm, RecordingComm)

    def click(self, action: str, buffers: list[bytes] | None = None, **fields: Any) -> None:
        """Send ``{"do": action, **fields}`` as the page's buttons do."""
        message = {"content": {"data": {"method": "custom", "content": {"do": action, **fields}}},
                   "buffers": buffers or []}  # fmt: skip
        self.widget._handle_msg(message)

    def type(self, **state: Any) -> None:
        """Change synced traits as the page's fields do."""
        self.widget._handle_msg({"content": {"data": {"method": "update", "state": state}},
                                 "buffers": []})  # fmt: skip

    def replies(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        """The custom messages of ``kind`` the widget sent, with their buffers."""
        out = []
        for data, buffers in self.widget.comm.published:
            if data.get("method") == "custom" and data["content"].get("kind") == kind:
                out.append((data["content"], buffers))
        return out
