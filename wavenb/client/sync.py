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
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, Unpack

from wavenb.api.resources import Account, Enhancer, Media, Models, Predictions
from wavenb.client.async_client import AsyncClient, ClientOptions
from wavenb.core.images import ImageInput
from wavenb.core.models import Timeline, Video
from wavenb.core.polling import DurationStats
from wavenb.core.runtime import Runtime
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


def _same(name: str, doc: str | None) -> property:
    """A read-only property that reads the async client's property of the same name."""
    return property(lambda self: getattr(self.aio, name), doc=doc)


class Client:
    """Blocking client for scripts and notebook cells. Same arguments as ``AsyncClient``.

    Every method and property of ``AsyncClient`` is here, blocking: the body is the async one,
    run on this client's private loop. (Not ``job`` and ``follow``: a ``Job``'s steps are
    coroutines; ``aio`` is the async client, for code that awaits.)

    Examples:
        >>> with Client() as client:                                       # doctest: +SKIP
        ...     video = client.generate("cat.jpg", "Gentle camera pan to the right")
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.aio = AsyncClient(api_key, base_url, **options)
        """The ``AsyncClient`` underneath, for code that wants to await."""
        self._runner = _LoopThread()

    upload = _blocking(AsyncClient.upload)
    submit = _blocking(AsyncClient.submit)
    get = _blocking(AsyncClient.get)
    wait = _blocking(AsyncClient.wait)
    download = _blocking(AsyncClient.download)
    generate = _blocking(AsyncClient.generate)
    find_reusable = _blocking(AsyncClient.find_reusable)
    enhance_prompt = _blocking(AsyncClient.enhance_prompt)
    balance = _blocking(AsyncClient.balance)
    check_balance = _blocking(AsyncClient.check_balance)
    price = _blocking(AsyncClient.price)
    detect = _blocking(AsyncClient.detect)
    resume = _blocking(AsyncClient.resume)
    reconcile = _blocking(AsyncClient.reconcile)

    backend: Literal["sandbox", "api"] = _same("backend", AsyncClient.backend.__doc__)  # type: ignore[assignment]
    base_url: str = _same("base_url", AsyncClient.base_url.__doc__)  # type: ignore[assignment]
    output_dir: Path = _same("output_dir", AsyncClient.output_dir.__doc__)  # type: ignore[assignment]
    price_per_video: float = _same("price_per_video", AsyncClient.price_per_video.__doc__)  # type: ignore[assignment]
    durations: DurationStats = _same("durations", AsyncClient.durations.__doc__)  # type: ignore[assignment]
    journal: Journal | None = _same("journal", AsyncClient.journal.__doc__)  # type: ignore[assignment]
    predictions: Predictions = _same("predictions", AsyncClient.predictions.__doc__)  # type: ignore[assignment]
    media: Media = _same("media", AsyncClient.media.__doc__)  # type: ignore[assignment]
    account: Account = _same("account", AsyncClient.account.__doc__)  # type: ignore[assignment]
    models: Models = _same("models", AsyncClient.models.__doc__)  # type: ignore[assignment]
    enhancer: Enhancer = _same("enhancer", AsyncClient.enhancer.__doc__)  # type: ignore[assignment]
    runtime: Runtime = _same("runtime", AsyncClient.runtime.__doc__)  # type: ignore[assignment]
    # Not here: ``job`` and ``follow`` hand out a ``Job``, whose steps are coroutines on the
    # client's loop; blocking code uses ``generate`` / ``submit`` / ``wait`` / ``resume``.

    def timeline(self, prediction_id: str) -> Timeline:
        """Every request this client made about a task, in order (empty if it made none)."""
        return self.aio.timeline(prediction_id)

    def spent(self, since: datetime | None = None) -> float:
        """US dollars spent (or possibly spent) according to the journal."""
        return self.aio.spent(since)

    def close(self) -> None:
        """Close connections and this client's private loop."""
        if self._runner.started:
            self._run(self.aio.aclose())
        else:
            self.aio.session.close()
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

    Examples:
        >>> video = wavenb.generate("cat.jpg", "Camera slowly zooms in")   # doctest: +SKIP
        >>> video                                                           # plays inline
    """
    with Client() as client:
        return client.generate(image, prompt, aspect_ratio, output=output, fresh=fresh)
