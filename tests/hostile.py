"""A hostile HTTP server of the test suite's own (not the sandbox): real sockets, any misbehaviour.

The sandbox is polite even when it injects faults. The money promises have to hold against a
server that is not: one that echoes the Authorization header into its messages, answers with a
cut body or an endless one, hands out the same task id twice, answers about another task, or
sends a gzip bomb. ``Hostile`` is a raw HTTP/1.1 server on 127.0.0.1 in a thread of its own (so
byte-level misbehaviour is possible: no framework tidies it up). Each request goes to the
test's ``handler(request) -> Reply``; every request is recorded.

    with Hostile(handler) as server:
        client = AsyncClient("key...", server.url, ...)

A ``Reply`` is a status, headers and a body, sent in one of these ways:

- ``length`` (default): with a correct ``Content-Length``;
- ``claim=N``: with ``Content-Length: N`` whatever the body's size, then the connection closes
  (a body cut short of what it promised);
- ``close``: with no length at all, the body, then the connection closes (close-delimited: a
  client can only tell a cut by looking at what it got);
- ``endless``: chunked, repeating the body forever (until the client hangs up);
- ``drop``: nothing at all, the connection closes;
- ``hang``: nothing at all, and the connection stays open (until the server stops).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Hostile", "Provider", "Reply", "Seen", "envelope", "gzip_bomb", "prediction_data"]

Mode = Literal["length", "close", "endless", "drop", "hang"]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class Reply:
    """What to send back (see the module docstring for ``mode`` and ``claim``)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    mode: Mode = "length"
    claim: int | None = None

    @classmethod
    def json(cls, value: object, status: int = 200, **headers: str) -> Reply:
        return cls(status, json.dumps(value).encode(), {"content-type": "application/json", **headers})


def envelope(data: object, code: int = 200, message: str = "success") -> dict[str, object]:
    return {"code": code, "message": message, "data": data}


def prediction_data(pid: str, status: str = "created", **extra: object) -> dict[str, object]:
    """A gen4-turbo prediction as the real API sends it."""
    data: dict[str, object] = {
        "id": pid, "model": "runwayml/gen4-turbo", "outputs": [], "status": status,
        "urls": {"get": f"https://api.wavespeed.ai/api/v3/predictions/{pid}/result"},
        "has_nsfw_contents": [], "created_at": "2026-11-25T10:00:00.123Z", "error": "",
        "executionTime": 0, "timings": {"inference": 0},
    }  # fmt: skip
    data.update(extra)
    return data


def gzip_bomb(decoded_size: int) -> bytes:
    """A small gzip body that inflates to ``decoded_size`` bytes of JSON-looking zeros."""
    return gzip.compress(b"0" * decoded_size, compresslevel=9)


class Hostile:
    """A raw HTTP/1.1 server on 127.0.0.1 answering with ``handler``; a context manager."""

    def __init__(self, handler: Callable[[Seen], Reply]) -> None:
        self.handler = handler
        self.requests: list[Seen] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> Hostile:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        port = future.result(10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def seen(self, method: str | None = None, path_end: str = "") -> list[Seen]:
        """The requests received, filtered by method and the end of the path."""
        return [r for r in self.requests
                if (method is None or r.method == method) and r.path.endswith(path_end)]  # fmt: skip

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():  # connections left hanging
            if task is not current:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                seen = await _read_request(reader)
                if seen is None:
                    return
                self.requests.append(seen)
                reply = self.handler(seen)
                if not await _write_reply(writer, reply):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return Seen(method, path, query, headers, body)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> bool:
    """Send ``reply``; returns whether the connection may be reused."""
    if reply.mode == "drop":
        return False
    if reply.mode == "hang":
        await asyncio.sleep(3600)  # the client gives up, or is killed, first
        return False
    head = [f"HTTP/1.1 {reply.status} X"]
    headers = {k.lower(): v for k, v in reply.headers.items()}
    if reply.mode == "endless":
        headers["transfer-encoding"] = "chunked"
    elif reply.mode == "length":
        headers["content-length"] = str(reply.claim if reply.claim is not None else len(reply.body))
    else:
        headers["connection"] = "close"
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    if reply.mode == "endless":
        chunk = reply.body or b"\x00" * 65536
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while True:  # until the client hangs up (the write then fails)
            writer.write(frame)
            await writer.drain()
    writer.write(reply.body)
    await writer.drain()
    cut = reply.claim is not None and reply.claim != len(reply.body)
    return reply.mode == "length" and not cut


class Provider:
    """A well-behaved provider on top of ``Hostile``, for tests that break one thing at a time.

    Uploads return a URL; each submit creates a task with an id of its own (``ids`` lists them);
    a task is ``processing`` until ``finish()`` (or at once with ``instant=True``), then
    ``completed`` with an output served by this same server; the account's history lists every
    task with its inputs. ``override(seen) -> Reply | None`` replaces any answer.
    """

    def __init__(self, *, instant: bool = True, mp4: bytes = b"") -> None:
        self.instant = instant
        self.finished = False
        if not mp4:
            from tests.conftest import MP4

            mp4 = MP4
        self.mp4 = mp4
        self.tasks: dict[str, dict[str, object]] = {}
        self.ids: list[str] = []
        self.override: Callable[[Seen], Reply | None] | None = None
        self.server = Hostile(self)

    def __enter__(self) -> Provider:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.server.url

    def finish(self) -> None:
        self.finished = True

    def submits(self) -> list[Seen]:
        return self.server.seen("POST", "/gen4-turbo")

    def made_elsewhere(self, inputs: dict[str, object]) -> str:
        """A task of this account made by another client (the web playground): charged, not
        in this journal. Returns its id."""
        pid = f"{len(self.ids) + 1:032x}"
        self.ids.append(pid)
        self.tasks[pid] = {"input": inputs, "created_at": _now_iso()}
        return pid

    def __call__(self, seen: Seen) -> Reply:
        if self.override is not None and (reply := self.override(seen)) is not None:
            return reply
        return self.answer(seen)

    def answer(self, seen: Seen) -> Reply:
        """What a well-behaved provider answers (whatever ``override`` says)."""
        path = seen.path
        if "/model/" in path:
            return Reply.json(envelope({"model_id": "runwayml/gen4-turbo", "price": 0.5}))
        if path.endswith("/upload/binary"):
            return Reply.json(envelope({"download_url": f"{self.url}/media/{len(self.server.requests)}.png"}))
        if path.endswith("/gen4-turbo"):
            pid = f"{len(self.ids) + 1:032x}"
            self.ids.append(pid)
            self.tasks[pid] = {"input": seen.json(), "created_at": _now_iso()}
            return Reply.json(envelope(self.prediction(pid, fresh=True)))
        if path.endswith("/result"):
            pid = path.split("/")[-2]
            if pid not in self.tasks:
                return Reply.json(envelope(None, 404, "not found"), status=404)
            return Reply.json(envelope(self.prediction(pid)))
        if path == "/api/v3/predictions":
            items = [{**self.prediction(pid), "input": task["input"]} for pid, task in self.tasks.items()]
            return Reply.json(envelope({"page": 1, "page_size": 100, "total": len(items), "items": items[::-1]}))
        if path.startswith("/out/"):
            return Reply(200, self.mp4, {"content-type": "video/mp4"})
        return Reply.json(envelope(None, 404, "no route"), status=404)

    def prediction(self, pid: str, *, fresh: bool = False) -> dict[str, object]:
        done = not fresh and (self.instant or self.finished)
        created = self.tasks[pid]["created_at"]
        if done:
            return prediction_data(pid, "completed", outputs=[f"{self.url}/out/{pid}.mp4"],
                                   created_at=created)  # fmt: skip
        return prediction_data(pid, "created" if fresh else "processing", created_at=created)


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
