"""Process plumbing: start the bench sandbox server, run client processes, fetch server state.

Every child process is started here, bounded in time, and ended by its own pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / "bench" / ".deps"
"""The official SDK and requests, installed for the bench only (never a project dependency)."""
WORK = ROOT / "bench" / ".work"
PYTHON = sys.executable


def child_env(*, deps: bool = False, home: Path | None = None) -> dict[str, str]:
    """The environment of a child: the repo importable, no user key, an isolated wavenb home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAVESPEED_", "WAVENB_"))}
    paths = [str(ROOT)]
    if deps:
        paths.insert(0, str(DEPS))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if home is not None:
        env["WAVENB_HOME"] = str(home)
    return env


def ensure_deps() -> None:
    """Install ``wavespeed`` 2.0.5 (and its ``requests``) into bench/.deps once."""
    marker = DEPS / ".installed-wavespeed-2.0.5"
    if marker.exists():
        return
    print("bench: installing the official SDK (wavespeed 2.0.5) into bench/.deps ...", flush=True)
    subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(DEPS),
            "wavespeed==2.0.5",
        ],
        check=True,
        timeout=300,
    )
    marker.touch()


class Server:
    """A running bench sandbox server (``bench.server``) in its own process."""

    def __init__(self, spec: dict[str, Any], module: str = "bench.server") -> None:
        self.spec = spec
        self.process = subprocess.Popen(
            [PYTHON, "-m", module, json.dumps(spec)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the bench server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}"

    def state(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_bench/state", timeout=60)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        fields = state.pop("log_fields")
        state["log"] = [dict(zip(fields, row, strict=True)) for row in state["log"]]
        return state

    def upload(self, path: Path, key: str) -> str:
        """Upload an image once; every client then sends the same URL."""
        with path.open("rb") as file:
            response = httpx.post(
                f"{self.base_url}/api/v3/media/upload/binary",
                headers={"Authorization": f"Bearer {key}"},
                files={"file": (path.name, file, "image/jpeg")},
                timeout=30,
            )
        response.raise_for_status()
        return str(response.json()["data"]["download_url"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def server(spec: dict[str, Any], module: str = "bench.server") -> Iterator[Server]:
    """A bench server process (``bench.server``, the sandbox; or ``bench.standin``)."""
    running = Server(spec, module)
    try:
        yield running
    finally:
        running.stop()


def run_json(
    args: list[str], *, env: dict[str, str], timeout: float, cwd: Path = ROOT
) -> dict[str, Any]:
    """Run a child that prints one JSON object on its last stdout line; return it.

    ``cwd`` comes first on the child's ``sys.path`` (``-m``): a folder holding another
    ``wavenb`` makes the child measure that tree (see ``bench.scale.tree``).
    """
    started = time.monotonic()
    done = subprocess.run(  # noqa: PLW1510
        [PYTHON, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-3000:]
        raise RuntimeError(f"{' '.join(args[:3])} failed ({done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    result.setdefault("wall", time.monotonic() - started)
    return result


class Spawned:
    """A client process running in the background (so several can share one server)."""

    def __init__(self, args: list[str], *, env: dict[str, str], timeout: float) -> None:
        self.args, self.timeout = args, timeout
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [PYTHON, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def result(self) -> dict[str, Any]:
        left = max(1.0, self.timeout - (time.monotonic() - self.started))
        try:
            out, err = self.process.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise RuntimeError(
                f"{' '.join(self.args[:3])} took longer than {self.timeout} s"
            ) from None
        lines = out.strip().splitlines()
        if self.process.returncode != 0 or not lines:
            raise RuntimeError(f"{' '.join(self.args[:3])} failed:\n{(err or out)[-3000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result
