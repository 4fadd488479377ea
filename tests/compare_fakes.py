"""What the comparison tests share: prompts, a scripted paid API, and sandbox counters.

``PaidApi`` is the real API as far as money goes ($0.50 a video, a quote, a balance), scripted
behind ``httpx.MockTransport`` (the one test seam): uploads, submits, result checks that
complete after ``checks`` looks (or fail for prompts containing ``fail``), CDN downloads of a
structurally whole MP4, and tasks it can ``forget`` (a 404, as after the 7-day retention).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import API, CANARY_KEY, MP4
from wavenb.client.async_client import AsyncClient

__all__ = ["GORE", "WALK", "ZOOM", "PaidApi", "accepted", "sandbox_state"]

WALK = "The model walks forward slowly"
ZOOM = "Camera slowly zooms in"
GORE = "Camera zooms in on the gore"
"""The sandbox's moderation filter refuses prompts with this word."""
CDN = "https://cdn.example.net"


def sandbox_state(app: Any) -> Any:
    """The sandbox's own counters (``SandboxState``)."""
    return app.state.sandbox


def accepted(app: Any) -> int:
    """How many video tasks the sandbox accepted (what would have been paid)."""
    return int(sandbox_state(app).accepted)


class PaidApi:
    """A scripted paid API (see the module docstring)."""

    def __init__(
        self,
        *,
        fail: str = "\x00",
        price: float = 0.5,
        balance: float = 100.0,
        checks: int = 0,
    ) -> None:
        self.fail = fail
        self.price = price
        self.balance = balance
        self.checks = checks
        """Result checks a task answers ``processing`` to before it completes."""
        self.seen: list[httpx.Request] = []
        self.prompts: dict[str, str] = {}
        self.looks: dict[str, int] = {}
        self.forgotten: set[str] = set()

    def client(self, folder: Path, **options: Any) -> AsyncClient:
        """A client of this API; its videos go under ``folder/paid``."""
        transport = httpx.MockTransport(self.handle)
        return AsyncClient(CANARY_KEY, API, transport=transport, output_dir=folder / "paid",
                           **options)  # fmt: skip

    def submits(self) -> list[httpx.Request]:
        """The paid POSTs received."""
        return [r for r in self.seen if r.url.path == "/api/v3/runwayml/gen4-turbo"]

    def uploads(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.path == "/api/v3/media/upload/binary"]

    def forget(self) -> None:
        """Every task so far is gone (404), as after the provider's retention."""
        self.forgotten |= set(self.prompts)

    def prediction(self, pid: str) -> dict[str, Any]:
        failed = self.fail in self.prompts[pid]
        done = self.looks.get(pid, 0) > self.checks
        status = ("failed" if failed else "completed") if done else "processing"
        return {
            "id": pid,
            "model": "runwayml/gen4-turbo",
            "status": status,
            "outputs": [f"{CDN}/{pid}/1.mp4"] if status == "completed" else [],
            "error": "Request failed." if status == "failed" else "",
            "timings": {"inference": 1500},
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if request.url.host == "cdn.example.net":
            return httpx.Response(200, content=MP4)
        if path == "/api/v3/balance":
            data: Any = {"balance": self.balance}
        elif path in ("/api/v3/model/price", "/api/v3/model/pricing"):
            data = {"price": self.price}
        elif path == "/api/v3/media/upload/binary":
            data = {"download_url": f"{CDN}/media/image.png", "type": "image"}
        elif path == "/api/v3/runwayml/gen4-turbo":
            pid = f"{len(self.prompts):032x}"
            self.prompts[pid] = json.loads(request.content)["prompt"]
            data = {**self.prediction(pid), "status": "created", "outputs": [], "error": ""}
        elif path.startswith("/api/v3/predictions/") and path.endswith("/result"):
            pid = path.split("/")[4]
            if pid in self.forgotten or pid not in self.prompts:
                body = {"code": 404, "message": "prediction not found", "data": None}
                return httpx.Response(404, json=body)
            self.looks[pid] = self.looks.get(pid, 0) + 1
            data = self.prediction(pid)
        else:
            return httpx.Response(404, json={"code": 404, "message": "no route", "data": None})
        return httpx.Response(200, json={"code": 200, "message": "success", "data": data})
