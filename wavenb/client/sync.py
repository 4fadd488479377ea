"""The blocking ``Client``: the async client driven to completion, in a script or a notebook.

Each method is the ``AsyncClient`` method of the same name, run to completion on a private event
loop that this client keeps in a background thread; the caller's thread waits for the result.
Nothing is written twice: the bodies are the async ones.

Why a thread and not nest-asyncio: re-entering Jupyter's running loop (nest-asyncio's patch)
breaks ipykernel 7, which handles each incoming message inside one shared context. A message
arriving while a blocking call runs (the next cell of "run all", a widget event) then fails with
"cannot enter context ... is already entered" and the kernel stops answering; we saw exactly
that in JupyterLab. A private loop in its own thread never touches the kernel's loop, works the
same in scripts, and keeps the connection pool on one loop for the client's whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import httpx

from wavenb.client.async_client import AsyncClient
from wavenb.core.images import ImageInput
from wavenb.core.models import Video
from wavenb.core.polling import PollPolicy
from wavenb.core.types import AspectRatio
from wavenb.journal.store import Journal

__all__ = ["Client", "generate"]

P = ParamSpec("P")
T = TypeVar("T")


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Client, P], T]:
    def run(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self.aio, *args, **kwargs))

    functools.update_wrapper(run, method)  # name, docstring and signature of the async method
    return run


class Client:
    """Blocking client for scripts and notebook cells. Same arguments as ``AsyncClient``.

    Example:
        >>> with Client() as client:                                       # doctest: +SKIP
        ...     video = client.generate("cat.jpg", "Gentle camera pan to the right")
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        poll: PollPolicy | None = None,
        sandbox_speed: Literal["instant", "fast", "realistic"] | None = None,
        output_dir: str | Path | None = None,
        journal: Journal | bool = True,
        max_spend: float | None = None,
    ) -> None:
        self.aio = AsyncClient(
            api_key,
            base_url,
            timeout=timeout,
            transport=transport,
            poll=poll,
            sandbox_speed=sandbox_speed,
            output_dir=output_dir,
            journal=journal,
            max_spend=max_spend,
        )
        """The ``AsyncClient`` underneath, for code that wants to await."""
        self._runner = _LoopThread()

    upload = _blocking(AsyncClient.upload)
    submit = _blocking(AsyncClient.submit)
    get = _blocking(AsyncClient.get)
    wait = _blocking(AsyncClient.wait)
    download = _blocking(AsyncClient.download)
    generate = _blocking(AsyncClient.generate)
    enhance_prompt = _blocking(AsyncClient.enhance_prompt)
    balance = _blocking(AsyncClient.balance)
    resume = _blocking(AsyncClient.resume)

    @property
    def journal(self) -> Journal | None:
        """The journal every submission is recorded in."""
        return self.aio.journal

    def spent(self, since: datetime | None = None) -> float:
        """US dollars spent (or possibly spent) according to the journal."""
        return self.aio.spent(since)

    @property
    def backend(self) -> Literal["sandbox", "api"]:
        """``"sandbox"`` for wavenb's local sandbox, else ``"api"``."""
        return self.aio.backend

    @property
    def price_per_video(self) -> float:
        """US dollars one video costs here."""
        return self.aio.price_per_video

    def close(self) -> None:
        """Close connections and this client's private loop."""
        if self._runner.started:
            self._run(self.aio.aclose())
        self._runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client backend={self.backend!r} base_url={self.aio.base_url!r}>"

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)


class _LoopThread:
    """An event loop running in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether the loop thread is running."""
        return self._thread is not None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it; an interrupt cancels it there too."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._start())
        try:
            return future.result()
        except BaseException:
            # Ctrl-C / kernel interrupt: cancel the task so it records what it was doing
            # (a submit in flight is journaled as unknown) before the interrupt goes on.
            future.cancel()
            with contextlib.suppress(BaseException):
                future.exception(timeout=5)
            raise

    def stop(self) -> None:
        """Stop the loop and wait for its thread."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="wavenb-client", daemon=True
                )
                self._thread.start()
            return self._loop


def generate(
    image: ImageInput,
    prompt: str,
    aspect_ratio: AspectRatio | None = None,
    *,
    output: str | Path | None = None,
    fresh: bool = False,
) -> Video:
    """Make one video with default settings: the one-liner for a notebook cell.

    Uses the real API when ``WAVESPEED_API_KEY`` is set, else the local sandbox.

    Example:
        >>> video = wavenb.generate("cat.jpg", "Camera slowly zooms in")   # doctest: +SKIP
        >>> video                                                           # plays inline
    """
    with Client() as client:
        return client.generate(image, prompt, aspect_ratio, output=output, fresh=fresh)
