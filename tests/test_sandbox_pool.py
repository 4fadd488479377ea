"""Where renders run: worker processes (spawned, shared, shut down) for clips, threads for tiny ones."""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
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
    started = _pool.worker_pids()
    _pool.shutdown()
    assert _pool.worker_pids() == []
    assert [pid for pid in started if not ended_within(pid, 10.0)] == []


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


def ended_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` (not our child) ends within ``seconds``: waits on a pidfd."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], seconds)
        return bool(readable)
    finally:
        os.close(handle)


def test_a_clip_renders_in_a_worker_process_of_our_own_module(tmp_path: Path) -> None:
    long_clip = task(tmp_path, _pool.POOL_MIN_SECONDS)
    assert _pool.uses_processes(long_clip)
    outcome = _pool.submit_render(long_clip, ticking()).result(RENDER)
    assert outcome == Outcome(finished_at=0.0, output="/videos/v.mp4", error=None)
    assert probe_video(long_clip.path).duration == pytest.approx(_pool.POOL_MIN_SECONDS)
    workers = _pool.worker_pids()
    assert len(workers) == 1  # started when a render needs one: one at a time needs one
    assert all(pid != os.getpid() for pid in workers)
    for pid in workers:  # a fresh interpreter running our module: never fork, never the user's script
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:3] == [b"-m", b"wavenb.sandbox._worker"]


def test_tiny_clips_render_in_a_thread_without_starting_processes(tmp_path: Path) -> None:
    short = task(tmp_path, 0.25)
    assert not _pool.uses_processes(short)
    outcome = _pool.submit_render(short, ticking()).result(RENDER)
    assert outcome.output == "/videos/v.mp4"
    assert _pool._processes is None
    assert _pool.worker_pids() == []


def test_the_pool_is_sized_to_the_usable_cpus() -> None:
    try:
        quota = _pool.cpu_quota(Path("/sys/fs/cgroup/cpu.max").read_text())
    except OSError:
        quota = None
    assert _pool.process_count() == min(len(os.sched_getaffinity(0)), quota or math.inf)


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),  # 1.5 CPUs of time: two workers, each busy 3/4 of the time
        ("50000 100000\n", 1),
        ("", None),
        ("100000 0\n", None),
    ],
)
def test_a_cgroup_quota_caps_the_workers(cpu_max: str, cpus: int | None) -> None:
    assert _pool.cpu_quota(cpu_max) == cpus


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A parent killed outright (no atexit, no shutdown) takes its workers with it."""
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from tests.test_sandbox_pool import task\n"
        "from wavenb.sandbox import _pool\n"
        "if __name__ == '__main__':\n"
        "    folder = Path(sys.argv[1])\n"
        "    clips = [task(folder, _pool.POOL_MIN_SECONDS, str(n)) for n in range(2)]\n"
        "    for future in [_pool.submit_render(c, time.monotonic) for c in clips]:\n"
        "        future.result()\n"
        "    pids = ' '.join(str(pid) for pid in _pool.worker_pids())\n"
        "    (folder / 'pids').write_text(pids)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    # Files, not pipes, for the output: the workers inherit them, and would hold a pipe open.
    with (tmp_path / "stderr").open("wb") as stderr:
        killed = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=RENDER,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "stderr").read_text()
    pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert len(pids) == min(2, _pool.process_count())
    survivors = [pid for pid in pids if not ended_within(pid, 30.0)]
    for pid in survivors:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_several_clips_render_at_once_in_the_pool(tmp_path: Path) -> None:
    tasks = [task(tmp_path, _pool.POOL_MIN_SECONDS, f"v{n}") for n in range(3)]
    futures = [_pool.submit_render(t, ticking()) for t in tasks]
    outcomes = [future.result(RENDER) for future in futures]
    assert [o.output for o in outcomes] == [f"/videos/v{n}.mp4" for n in range(3)]
    assert all(t.path.is_file() for t in tasks)
    assert len(_pool.worker_pids()) == min(3, _pool.process_count())


def test_a_failure_in_the_worker_becomes_the_jobs_error(tmp_path: Path) -> None:
    broken = task(tmp_path, _pool.POOL_MIN_SECONDS, image="data:image/png;base64,!!")
    outcome = _pool.submit_render(broken, ticking()).result(RENDER)
    assert outcome.output is None and outcome.error is not None and "base64" in outcome.error


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_a_killed_worker_fails_at_most_its_job_and_the_pool_recovers(tmp_path: Path) -> None:
    _pool.submit_render(task(tmp_path, _pool.POOL_MIN_SECONDS, "warm"), ticking()).result(RENDER)
    victim = _pool.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert ended_within(victim, RENDER)
    first = _pool.submit_render(task(tmp_path, _pool.POOL_MIN_SECONDS, "a"), ticking()).result(
        RENDER
    )
    assert first.output is not None or first.error == "Sandbox render error: the render worker ended"
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


UNGUARDED = """
import sys, wavenb
video = wavenb.generate(sys.argv[1], "Camera slowly zooms in")
print("made", video.path)
"""


@pytest.mark.slow  # a subprocess, real waits or large memory: make test runs it
def test_a_script_without_a_main_guard_makes_one_video(tmp_path: Path) -> None:
    """The three-line script of a new user: its top level runs once, and the video is made.

    (With multiprocessing's spawn, every render worker ran the script again and the pool broke.)
    """
    script = tmp_path / "make_video.py"
    script.write_text(UNGUARDED)
    image = Path(__file__).resolve().parent.parent / "notebooks" / "assets" / "animal-chelsea.jpg"
    env = {k: v for k, v in os.environ.items() if k not in ("WAVESPEED_API_KEY", "WAVENB_BASE_URL")}
    env.update(WAVENB_HOME=str(tmp_path / "home"), WAVENB_SANDBOX_SPEED="instant")
    made = subprocess.run([sys.executable, str(script), str(image)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=RENDER, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stdout.count("made ") == 1
    assert probe_video(Path(made.stdout.split("made ", 1)[1].strip())).duration >= _pool.POOL_MIN_SECONDS
