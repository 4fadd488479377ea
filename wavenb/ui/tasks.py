"""What the widgets share: status colours and the guard that shows callback errors."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

from wavenb.core.errors import WavenbError

__all__ = ["STATUS_COLORS", "guarded", "spawn"]

STATUS_COLORS: Final = {
    "waiting": "#6b7280",
    "submitting": "#6b7280",
    "accepted": "#2563eb",
    "queued": "#6b7280",
    "processing": "#2563eb",
    "downloading": "#2563eb",
    "completed": "#2563eb",
    "downloaded": "#15803d",
    "failed": "#b91c1c",
    "gone": "#b91c1c",
    "refused": "#7c3aed",
    "unknown": "#b45309",
    "stopped": "#b45309",
    "cancelled": "#b45309",
}
"""Chip colours by phase word (``wavenb.Phase``), for HTML reports; the widgets' stylesheets
use the same colours."""


class ShowsErrors(Protocol):
    """A view with somewhere to show an error."""

    def show_error(self, error: BaseException, /) -> None: ...


P = ParamSpec("P")
V = TypeVar("V", bound=ShowsErrors)


def guarded(handler: Callable[Concatenate[V, P], None]) -> Callable[Concatenate[V, P], None]:
    """Route a widget callback's exception to the view's error area.

    ipywidgets swallows exceptions raised in callbacks; the user would see nothing.
    """

    def run(self: V, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            handler(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001  (shown to the user, not swallowed)
            self.show_error(error)

    functools.update_wrapper(run, handler)
    return run


T = TypeVar("T")


def spawn(
    work: Coroutine[Any, Any, T], keep: set[asyncio.Task[Any]], where: str
) -> asyncio.Task[T]:
    """Run ``work`` on the running loop (the kernel's), keeping a reference in ``keep``.

    A task nobody refers to can be collected mid-run; ``keep`` holds it until it ends. With no
    running loop, raises ``WavenbError`` saying ``where`` needs one.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        work.close()
        raise WavenbError(
            f"{where} needs a running event loop: use it in Jupyter, or await it"
        ) from None
    task = loop.create_task(work)
    keep.add(task)
    task.add_done_callback(keep.discard)
    return task
