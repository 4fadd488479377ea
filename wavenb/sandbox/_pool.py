"""Where renders run: worker processes for real clips, a thread for tiny ones.

One process pool per Python process, shared by every sandbox app in it, created on the first
long render and sized to the CPUs this process may use. Processes, because a render is CPU work
in Python, numpy, Pillow and x264 at once: in threads two renders fight over one GIL and starve
the event loop that answers the API; in processes each render has a core, and the server stays
responsive. The workers are fresh interpreters running ``python -m wavenb.sandbox._worker``
(``wavenb.sandbox._workers``): never ``fork`` (forking a process that runs threads, as a
Jupyter kernel or a uvicorn server does, can copy a held lock into the child and hang it), and
never ``multiprocessing``'s ``spawn`` either, which would run the user's unguarded script again
in every worker. They run at a lower priority (``nice``) and import the renderer once when
they start (about 0.45 CPU-s each, once per worker, never per render). A worker starts when a
render finds none idle: someone who renders one clip at a time has one worker, not one per CPU
at about 100 MB each.

A render is two threads (frames made ahead, x264 on one thread) that keep about 1.4 cores
busy: with one worker per CPU, renders side by side fill the cores without oversubscribing
them (see ``wavenb.sandbox._render``).

Tiny clips (under ``POOL_MIN_SECONDS``, what tests and the chaos soak render) stay in a
small thread pool: starting the worker processes costs more than such a render, and a test
suite then never starts a process at all.

Both pools end at interpreter exit (``shutdown`` is registered with ``atexit``); a test
that starts the process pool calls ``shutdown`` to leave no process behind. A worker also
ends as soon as its parent does, however it ends (a kernel restarted, a server killed): its
stdin reaches end-of-file.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

from wavenb.sandbox._jobs import Outcome
from wavenb.sandbox._renderjob import RenderTask, run
from wavenb.sandbox._workers import WorkerDied, WorkerPool

__all__ = [
    "POOL_MIN_SECONDS",
    "cpu_quota",
    "process_count",
    "shutdown",
    "submit_render",
    "uses_processes",
    "worker_pids",
]

POOL_MIN_SECONDS: Final = 2.0
"""Clips at least this long render in a worker process; shorter ones in a thread."""
_THREADS: Final = 2
_CPU_MAX: Final = Path("/sys/fs/cgroup/cpu.max")
"""cgroup v2's CPU quota of this container (``"max 100000"`` or ``"200000 100000"``)."""

_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None
_processes: WorkerPool | None = None


def uses_processes(task: RenderTask) -> bool:
    """Whether ``task`` renders in a worker process (a clip of ``POOL_MIN_SECONDS`` or more)."""
    return task.duration >= POOL_MIN_SECONDS


def process_count() -> int:
    """How many worker processes the pool has (or will have): the CPUs this process may use.

    That is the CPUs it may run on (its affinity), or fewer when a container's cgroup quota
    allows less CPU time than that (``docker run --cpus 2`` on a 16-core host: 2).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota = cpu_quota(_CPU_MAX.read_text())
    except OSError:  # no cgroup v2 (not Linux, or an older layout): no quota to honour
        quota = None
    return max(1, min(cpus, quota or cpus))


def cpu_quota(cpu_max: str) -> int | None:
    """The whole CPUs a cgroup v2 ``cpu.max`` line allows (rounded up), or ``None`` if no limit.

    Examples:
        >>> cpu_quota("150000 100000"), cpu_quota("max 100000")
        (2, None)

    """
    quota, _, period = cpu_max.strip().partition(" ")
    if not (quota.isdigit() and period.isdigit()) or int(period) == 0:
        return None  # "max": no limit (or a line we do not understand: assume none)
    return max(1, math.ceil(int(quota) / int(period)))


def submit_render(task: RenderTask, clock: Callable[[], float]) -> Future[Outcome]:
    """Start rendering ``task``; the future's outcome is stamped with ``clock()`` at its end.

    Cancelling the future cancels the render if it has not started; a running render goes on
    (and ``cancel()`` says ``False``), as with any executor.
    """
    if not uses_processes(task):
        return _RenderFuture(_thread_pool().submit(run, task), clock)
    return _RenderFuture(_process_pool().submit(task), clock)


def shutdown() -> None:
    """Stop both pools, waiting for running renders; the next render starts them again."""
    global _threads, _processes  # noqa: PLW0603  (the per-process pools, by design)
    with _lock:
        threads, processes = _threads, _processes
        _threads = _processes = None
    if threads is not None:
        threads.shutdown(wait=True, cancel_futures=True)
    if processes is not None:
        processes.shutdown()


def _thread_pool() -> ThreadPoolExecutor:
    global _threads  # noqa: PLW0603
    with _lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="wavenb-render")
        return _threads


def _process_pool() -> WorkerPool:
    global _processes  # noqa: PLW0603
    with _lock:
        if _processes is None:
            _processes = WorkerPool(process_count())
        return _processes


def worker_pids() -> list[int]:
    """The render worker processes running now (for tests and diagnostics)."""
    pool = _processes
    return [] if pool is None else pool.pids


class _RenderFuture(Future[Outcome]):
    """The outcome of a render running in ``inner``, stamped with the sandbox clock when done."""

    def __init__(
        self, inner: Future[tuple[str | None, str | None]], clock: Callable[[], float]
    ) -> None:
        super().__init__()
        self._inner = inner
        self._clock = clock
        inner.add_done_callback(self._settle)

    def cancel(self) -> bool:
        """Cancel the render if it has not started yet."""
        if not self._inner.cancel():
            return False  # running or done: the outcome will (or did) arrive
        return super().cancel()

    def _settle(self, inner: Future[tuple[str | None, str | None]]) -> None:
        if inner.cancelled():
            super().cancel()
            return
        try:
            output, error = inner.result()
        except WorkerDied:
            output, error = None, "Sandbox render error: the render worker ended"
        except Exception as exc:  # noqa: BLE001  (a dead worker fails one job, never hangs it)
            output, error = None, f"Sandbox render error: {type(exc).__name__}"
        if self.set_running_or_notify_cancel():
            self.set_result(Outcome(finished_at=self._clock(), output=output, error=error))


atexit.register(shutdown)
