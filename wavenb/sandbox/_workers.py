"""Render worker processes that never run the user's script: ``python -m wavenb.sandbox._worker``.

Python's own process pools start their workers with ``multiprocessing``, which, under ``spawn``
(the only safe start method in a threaded kernel or server), imports the parent's main module in
every worker. A user's script without an ``if __name__ == "__main__":`` guard, such as a
three-line ``wavenb.generate(...)``, then runs again in each worker, which starts its own
sandbox, tries to start workers during its bootstrap, and breaks the pool: the user's very first
video fails. So the workers here are plain subprocesses running a module of ours, fed over
their stdin and stdout:

- a task goes down as a pickled, length-prefixed frame, the answer comes back the same way;
- a worker that dies fails the one render it was doing (``WorkerDied``) and is replaced on the
  next render;
- a worker whose parent ends (however: killed, crashed) reads end-of-file on its stdin and ends
  too, so none is left behind;
- workers start when a render finds none idle, up to ``size``, and are reused.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import IO, Any, Final

__all__ = ["WorkerDied", "WorkerPool", "read_frame", "write_frame"]

_HEADER: Final = struct.Struct(">Q")
MODULE: Final = "wavenb.sandbox._worker"


class WorkerDied(RuntimeError):
    """The worker process ended while rendering (killed, out of memory)."""


def write_frame(stream: IO[bytes], value: object) -> None:
    """Send one pickled value, length first."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:  # noqa: ANN401  (whatever the other side sent)
    """Receive one pickled value; ``EOFError`` when the other side is gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return pickle.loads(payload)  # noqa: S301  (our own worker's answer, over our own pipe)


class WorkerPool:
    """At most ``size`` worker processes; ``submit(task)`` returns a ``Future`` of its answer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._tasks: queue.SimpleQueue[tuple[object, Future[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pending = 0
        """Tasks submitted and not yet answered: more than threads means none is idle."""
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The worker processes running now."""
        with self._lock:
            return [process.pid for process in self._processes if process.poll() is None]

    def submit(self, task: object) -> Future[Any]:
        """Queue ``task`` for the next free worker (starting one if none is idle)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the render pool is shut down")
            self._pending += 1
            if self._pending > len(self._threads) and len(self._threads) < self.size:
                thread = threading.Thread(target=self._serve, name="wavenb-render-worker",
                                          daemon=True)  # fmt: skip
                self._threads.append(thread)
                thread.start()
        self._tasks.put((task, future))
        return future

    def shutdown(self) -> None:
        """Stop every worker (a running render is abandoned) and wait for the threads."""
        with self._lock:
            self._closed = True
            threads, processes = list(self._threads), list(self._processes)
        for _ in threads:
            self._tasks.put(None)
        for process in processes:
            _stop(process)
        for thread in threads:
            thread.join(10)

    def _serve(self) -> None:
        process: subprocess.Popen[bytes] | None = None
        try:
            while (item := self._tasks.get()) is not None:
                task, future = item
                if future.set_running_or_notify_cancel():
                    process = self._run(process, task, future)
                with self._lock:
                    self._pending -= 1
        finally:
            if process is not None:
                _stop(process)

    def _run(
        self, process: subprocess.Popen[bytes] | None, task: object, future: Future[Any]
    ) -> subprocess.Popen[bytes] | None:
        try:
            if process is None or process.poll() is not None:
                process = self._start()
            assert process.stdin is not None and process.stdout is not None  # noqa: S101, PT018
            write_frame(process.stdin, task)
            answer = read_frame(process.stdout)
        except (EOFError, OSError, pickle.PickleError) as error:
            future.set_exception(WorkerDied(f"the render worker ended ({type(error).__name__})"))
            if process is not None:
                _stop(process)
                with self._lock:
                    self._processes.discard(process)
            return None
        future.set_result(answer)
        return process

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # noqa: S603  (this interpreter, a module of ours: no user input)
            [sys.executable, "-m", MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        with self._lock:
            self._processes.add(process)
        return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()  # end-of-file: the worker ends by itself
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
