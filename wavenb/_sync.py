"""The blocking ``Client``: the async client driven to completion, in a script or a notebook.

Each method is the ``AsyncClient`` method of the same name, run on an event loop: the running
loop when there is one (Jupyter's kernel loop, made re-entrant with nest-asyncio, applied only
then), or a private loop owned by this client otherwise. Nothing is written twice: the bodies
are the async ones.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import httpx

from ._client import AsyncClient
from ._images import ImageInput
from ._journal import Journal
from ._models import Video
from ._polling import PollPolicy
from ._types import AspectRatio

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
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self._run(self.aio.aclose())
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client backend={self.backend!r} base_url={self.aio.base_url!r}>"

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            # Inside Jupyter: the kernel's loop is already running this cell.
            import nest_asyncio  # noqa: PLC0415

            nest_asyncio.apply(loop)
            return loop.run_until_complete(coroutine)
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)


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
