"""A comparison's per-video metrics: measured off the event loop, with idle CPU, cached.

As soon as a cell's video is on disk, the comparison asks ``Measurer.measure`` for its
metrics. The request goes to this process's one measuring thread (one video at a time), which
hands it to a helper process, ``python -m wavenb.ab.measuring`` (started on first use,
kept for the next videos, ended with this process): the helper decodes and measures the video
(``wavenb.ab.metrics``) at idle CPU priority (``SCHED_IDLE`` on Linux, else ``nice`` 19).

Why a helper process rather than the thread measuring itself: a comparison's cells render
(on a local sandbox), download and are polled on the kernel's own loop. Measuring in a thread
of the kernel took CPU and the GIL from them: on two cores, a CPU-bound 2 x 2 sandbox comparison
(``bench/compare_metrics.py``) finished its videos 11-15 % later with the thread measuring, and
1-3 % later with the helper (which shares no GIL with the kernel, and runs only when a core is
otherwise idle). A decoder crash in the helper also cannot take the kernel down. When no helper
can be started (an embedded interpreter with no ``python`` to run), the thread measures itself
at a lower priority.

Results are cached by the video's SHA-256 under ``<journal folder>/metrics/``
(``wavenb.ab.metrics.measure_cached``), so a comparison run again, or reloaded, measures
nothing twice. The metrics need numpy and PyAV (the ``sandbox`` extra): without them the
comparison shows missing values with ``MISSING_EXTRA`` as its note.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import functools
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Final

from wavenb.ab.cells import CellMetrics, CellRun
from wavenb.journal.rows import sha256_file

__all__ = ["MISSING_EXTRA", "Measurer", "measure_cell"]

logger = logging.getLogger("wavenb")

MISSING_EXTRA: Final = "no video metrics: they need numpy and PyAV (pip install 'wavenb[sandbox]')"
"""The one-line note a comparison shows when the metrics cannot be measured here."""
NICENESS: Final = 10
"""How much lower the measuring thread's priority is when it measures itself."""
HELPER_LIMIT: Final = 600.0
"""Seconds one video may take in the helper (at idle priority, on a busy machine) before the
helper is stopped and the video left unmeasured."""

_lock = threading.Lock()
_thread: ThreadPoolExecutor | None = None


def measure_cell(
    path: Path,
    *,
    sha256: str | None,
    cache_dir: Path | None,
    source: bytes | None,
    prompt: str,
) -> tuple[CellMetrics, str]:
    """Measure one cell's video, blocking, here; return its metrics and its digest.

    ``sha256`` is the journal's digest of the file (computed here when unknown); with a
    ``cache_dir`` the measures are kept in ``<cache_dir>/<sha256>.json``. ``source`` (the image's
    bytes) adds first-frame SSIM; ``prompt`` decides whether the camera moved as asked.

    Raises:
        ImportError: numpy or PyAV is missing.
        FileNotFoundError, ValueError, av.error.FFmpegError: the file is missing or is not a
            decodable video.
    """
    from wavenb.ab.metrics import measure, measure_cached  # noqa: PLC0415  (numpy, PyAV)

    digest = sha256 if sha256 is not None else sha256_file(path)[0]
    if cache_dir is None:
        measured = measure(path, source=source, prompt=prompt)
    else:
        measured = measure_cached(path, digest, cache_dir, source=source, prompt=prompt)
    return CellMetrics.of(measured), digest


class Measurer:
    """What a comparison measured and why some is missing; measures off the event loop."""

    def __init__(self) -> None:
        self.missing = False
        """True once numpy or PyAV turned out to be missing: nothing more is tried."""
        self.failures: dict[str, str] = {}
        """Cell id -> why its video could not be measured."""
        self._asked: set[str] = set()

    @property
    def note(self) -> str | None:
        """Why metrics are missing, in one line; ``None`` when nothing is missing for a reason."""
        if self.missing:
            return MISSING_EXTRA
        if self.failures:
            first = next(iter(self.failures.values()))
            return f"no metrics for {', '.join(self.failures)}: {first}"
        return None

    def wanted(self, run: CellRun) -> bool:
        """Whether ``run``'s video should be measured now (once per cell and video)."""
        if self.missing or run.metrics is not None or run.path is None or run.id in self._asked:
            return False
        self._asked.add(run.id)
        return True

    def forget(self, cell_id: str) -> None:
        """A cell has a new video: measure it again when asked."""
        self._asked.discard(cell_id)
        self.failures.pop(cell_id, None)

    async def measure(
        self, run: CellRun, *, sha256: str | None, cache_dir: Path | None, source: bytes | None
    ) -> tuple[CellMetrics, str] | None:
        """Measure ``run``'s video off the loop; ``None`` (and a note) if it cannot be."""
        assert run.path is not None  # noqa: S101  (wanted() checked)
        work = functools.partial(
            _measure_elsewhere, run.path, sha256=sha256, cache_dir=cache_dir, source=source,
            prompt=run.cell.prompt,
        )  # fmt: skip
        try:
            return await asyncio.get_running_loop().run_in_executor(_measuring_thread(), work)
        except asyncio.CancelledError:
            self._asked.discard(run.id)  # stopped before its answer: measure it next time
            raise
        except ImportError:
            if not self.missing:
                logger.warning("wavenb: %s", MISSING_EXTRA)
            self.missing = True
        except Exception as error:  # noqa: BLE001  (a video that does not decode: no metrics)
            self.failures[run.id] = f"{type(error).__name__}: {error}"
            logger.warning("wavenb: no metrics for cell %s: %s", run.id, error)
        return None


def _measure_elsewhere(
    path: Path, *, sha256: str | None, cache_dir: Path | None, source: bytes | None, prompt: str
) -> tuple[CellMetrics, str]:
    """On the measuring thread: ``measure_cell`` in the helper, or here if there is none.

    Raises:
        ImportError: numpy or PyAV is missing here. ValueError: as ``measure_cell``, or the
            helper ended or timed out while measuring.
    """
    importlib.import_module("wavenb.ab.metrics")  # ImportError here: nothing to start
    request = {
        "path": str(path), "sha256": sha256, "prompt": prompt,
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "source": None if source is None else base64.b64encode(source).decode("ascii"),
    }  # fmt: skip
    try:
        answer = _HELPER.ask(request)
    except OSError as error:  # no helper here: measure on this thread, at a lower priority
        logger.info("wavenb: measuring in the kernel's process (%s)", error)
        return measure_cell(path, sha256=sha256, cache_dir=cache_dir, source=source, prompt=prompt)
    if "error" in answer:
        raise ValueError(answer["error"])
    return CellMetrics.from_dict(answer["metrics"]), str(answer["sha256"])


class _Helper:
    """The helper process (``python -m wavenb.ab.measuring``), one per process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._unavailable: str | None = None
        atexit.register(self.stop)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request, return its answer (a blocking round trip; the caller's thread).

        Raises:
            OSError: no helper can be started here (the caller measures itself).
            ValueError: the helper ended (a crash) or was stopped after ``HELPER_LIMIT`` s.
        """
        process = self._started()
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None  # noqa: S101  (made with pipes)
        assert stdout is not None  # noqa: S101
        watchdog = threading.Timer(HELPER_LIMIT, process.kill)
        watchdog.start()
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        except OSError:
            line = ""
        finally:
            watchdog.cancel()
        if not line:
            self._process = None
            process.kill()
            raise ValueError("the measuring process ended before it answered (a crash, or slower "
                             f"than {HELPER_LIMIT:g} s)")  # fmt: skip
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _started(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        if self._unavailable is not None:
            raise OSError(self._unavailable)
        # The helper imports wavenb from wherever this process does.
        path = os.pathsep.join(entry for entry in sys.path if entry)
        try:
            self._process = subprocess.Popen(  # this interpreter, running a module of ours
                [sys.executable, "-m", "wavenb.ab.measuring"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
                env={**os.environ, "PYTHONPATH": path},
            )  # fmt: skip
        except OSError as error:
            self._unavailable = f"no measuring process: {error}"
            raise OSError(self._unavailable) from error
        return self._process

    def stop(self) -> None:
        """End the helper (at exit): closing its input ends it; a helper that hangs is killed."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()

    @property
    def pid(self) -> int | None:
        """The helper's process id while it runs (for tests and diagnostics)."""
        return None if self._process is None else self._process.pid


_HELPER = _Helper()


def _measuring_thread() -> ThreadPoolExecutor:
    """The process's one measuring thread (made on first use; it ends with the interpreter)."""
    global _thread  # noqa: PLW0603  (one per process, like the sandbox's render pool)
    with _lock:
        if _thread is None:
            _thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="wavenb-metrics", initializer=_lower_priority
            )
        return _thread


def _lower_priority() -> None:
    """Lower this thread's CPU priority (Linux: per thread; threads it starts inherit it)."""
    with contextlib.suppress(OSError, AttributeError):  # no such call (Windows), or refused
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, os.getpriority(os.PRIO_PROCESS, me) + NICENESS)


def _idle_priority() -> None:
    """Run only on CPU nothing else wants: ``SCHED_IDLE`` (Linux), else the lowest ``nice``."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.nice(19)


def serve(requests: IO[str], answers: IO[str]) -> None:
    """The helper's loop: one JSON request a line in, one JSON answer a line out, until EOF.

    An answer is ``{"metrics": {...}, "sha256": ...}`` or ``{"error": "..."}``.
    """
    for line in requests:
        request = json.loads(line)
        source = request.get("source")
        cache_dir = request.get("cache_dir")
        try:
            metrics, digest = measure_cell(
                Path(request["path"]), sha256=request.get("sha256"), prompt=request["prompt"],
                cache_dir=None if cache_dir is None else Path(cache_dir),
                source=None if source is None else base64.b64decode(source),
            )  # fmt: skip
            answer: dict[str, Any] = {"metrics": metrics.as_dict(), "sha256": digest}
        except Exception as error:  # noqa: BLE001  (reported to the comparison, never fatal)
            answer = {"error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":  # the helper process
    # A Ctrl-C (or a kernel interrupt) reaches the whole process group: the comparison decides
    # what stops; the helper ends when its input closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _idle_priority()
    protocol, sys.stdout = sys.stdout, sys.stderr  # stray prints must not break the protocol
    serve(sys.stdin, protocol)
