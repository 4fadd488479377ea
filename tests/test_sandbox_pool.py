"""Where renders run: worker processes (spawned, shared, shut down) for clips, threads for tiny ones."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.test_sandbox_api import data_uri, png
from wavenb.sandbox import _pool
from wavenb.sandbox._jobs import Outcome
from wavenb.sandbox._render import probe_video
from wavenb.sandbox._renderjob import RenderTask

RENDER = 120.0
"""Seconds a test waits (bounded) for a render, worker start-up included."""


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Every test starts without the pool and leaves no process behind."""
    _pool.shutdown()
    yield
    _pool.shutdown()
    assert multiprocessing.active_children() == []


def task(tmp_path: Path, seconds: float, name: str = "v", image: str = "") -> RenderTask:
    return RenderTask(
        prompt="slow pan right",
        image=image or data_uri(png((320, 180), "teal")),
        aspect_ratio="16:9",
        duration=seconds,
        path=tmp_path / name / "1.mp4",
        media_dir=tmp_path,
        url_path=f"/videos/{name}.mp4",
    )


def ticking() -> Callable[[], float]:
    times = iter(range(1000))
    return lambda: float(next(times))


def test_a_clip_renders_in_a_spawned_worker_process(tmp_path: Path) -> None:
    long_clip = task(tmp_path, _pool.POOL_MIN_SECONDS)
    assert _pool.uses_processes(long_clip)
    outcome = _pool.submit_render(long_clip, ticking()).result(RENDER)
    assert outcome == Outcome(finished_at=0.0, output="/videos/v.mp4", error=None)
    assert probe_video(long_clip.path).duration == pytest.approx(_pool.POOL_MIN_SECONDS)
    workers = multiprocessing.active_children()
    assert 1 <= len(workers) <= _pool.process_count()
    assert all(worker.pid != os.getpid() for worker in workers)
    assert _pool._processes is not None
    assert _pool._processes._mp_context.get_start_method() == "spawn"  # never fork


def test_tiny_clips_render_in_a_thread_without_starting_processes(tmp_path: Path) -> None:
    short = task(tmp_path, 0.25)
    assert not _pool.uses_processes(short)
    outcome = _pool.submit_render(short, ticking()).result(RENDER)
    assert outcome.output == "/videos/v.mp4"
    assert _pool._processes is None
    assert multiprocessing.active_children() == []


def test_the_pool_is_sized_to_the_usable_cpus() -> None:
    assert _pool.process_count() == len(os.sched_getaffinity(0))


def test_several_clips_render_at_once_in_the_pool(tmp_path: Path) -> None:
    tasks = [task(tmp_path, _pool.POOL_MIN_SECONDS, f"v{n}") for n in range(3)]
    futures = [_pool.submit_render(t, ticking()) for t in tasks]
    outcomes = [future.result(RENDER) for future in futures]
    assert [o.output for o in outcomes] == [f"/videos/v{n}.mp4" for n in range(3)]
    assert all(t.path.is_file() for t in tasks)


def test_a_failure_in_the_worker_becomes_the_jobs_error(tmp_path: Path) -> None:
    broken = task(tmp_path, _pool.POOL_MIN_SECONDS, image="data:image/png;base64,!!")
    outcome = _pool.submit_render(broken, ticking()).result(RENDER)
    assert outcome.output is None and outcome.error is not None and "base64" in outcome.error


def test_a_killed_worker_fails_at_most_its_job_and_the_pool_recovers(tmp_path: Path) -> None:
    _pool.submit_render(task(tmp_path, _pool.POOL_MIN_SECONDS, "warm"), ticking()).result(RENDER)
    victim = multiprocessing.active_children()[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(RENDER)
    first = _pool.submit_render(task(tmp_path, _pool.POOL_MIN_SECONDS, "a"), ticking()).result(
        RENDER
    )
    assert first.output is not None or first.error == "Sandbox render error: BrokenProcessPool"
    second = _pool.submit_render(task(tmp_path, _pool.POOL_MIN_SECONDS, "b"), ticking()).result(
        RENDER
    )
    assert second.output == "/videos/b.mp4"


def test_a_render_not_started_can_be_cancelled() -> None:
    inner: Future[tuple[str | None, str | None]] = Future()
    outer = _pool._RenderFuture(inner, ticking())
    assert outer.cancel()
    assert inner.cancelled() and outer.cancelled()


def test_a_running_render_cannot_be_cancelled_and_its_outcome_arrives() -> None:
    inner: Future[tuple[str | None, str | None]] = Future()
    outer = _pool._RenderFuture(inner, lambda: 42.0)
    assert inner.set_running_or_notify_cancel()
    assert not outer.cancel()
    inner.set_result(("/videos/v.mp4", None))
    assert outer.result(0) == Outcome(finished_at=42.0, output="/videos/v.mp4")


def test_a_worker_crash_is_an_error_outcome_not_an_exception() -> None:
    inner: Future[tuple[str | None, str | None]] = Future()
    outer = _pool._RenderFuture(inner, lambda: 1.0)
    inner.set_exception(MemoryError())
    assert outer.result(0) == Outcome(finished_at=1.0, error="Sandbox render error: MemoryError")
