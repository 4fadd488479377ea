"""``pip install wavenb`` without extras: the wheel alone, in a fresh virtual environment.

The wheel is built from this checkout and installed with its four core dependencies from the
package index (the only network these tests use, from pip in a subprocess). Then, with no
Jupyter stack, no numpy and no PyAV installed: ``import wavenb`` works, the command line makes a
video against a sandbox that this test's own environment serves on 127.0.0.1, and asking for the
Studio says which extra to install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import av
import pytest

from tests.conftest import ASSETS, ROOT

pytestmark = pytest.mark.slow

HEAVY = ("ipywidgets", "anywidget", "numpy", "av", "IPython", "matplotlib", "pandas")
"""Modules the lean import must not load (they come with extras)."""
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet")


def run(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, the assertion shows its output."""
    done = subprocess.run(
        [str(arg) for arg in args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``python`` of a fresh virtual environment with only the wheel and its dependencies."""
    folder = tmp_path_factory.mktemp("lean")
    run(*PIP, "wheel", ROOT, "--no-deps", "--wheel-dir", folder / "dist")
    (wheel,) = (folder / "dist").glob("wavenb-*.whl")
    venv.create(folder / "venv", with_pip=False)  # pip comes from this environment
    python = folder / "venv" / "bin" / "python"
    run(*PIP, "--python", python, "install", wheel)
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment (as the wavenb fixtures left it) without Python overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return env | extra


def test_only_the_core_dependencies_are_installed(lean: Path) -> None:
    code = f"import importlib.util as u, json; print(json.dumps([m for m in {HEAVY!r} if u.find_spec(m)]))"
    found = run(lean, "-c", code, cwd=lean.parent)
    assert json.loads(found.stdout) == []


def test_import_wavenb_needs_no_extra(lean: Path) -> None:
    done = run(
        lean, "-c", "import wavenb; print(wavenb.__file__)", env=clean_env(), cwd=lean.parent
    )
    assert "site-packages" in done.stdout  # the installed wheel, not this checkout


def test_the_version_is_the_one_in_pyproject(lean: Path) -> None:
    """pyproject.toml is the version's one home: the code reads it from the package metadata."""
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = run(lean, "-c", "import wavenb; print(wavenb.__version__)", cwd=lean.parent)
    assert done.stdout.strip() == expected


def test_import_wavenb_loads_no_heavy_module_even_when_installed() -> None:
    """In this environment every extra is installed: the import still leaves them alone."""
    code = "import json, sys, wavenb; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(run(sys.executable, "-c", code).stdout))
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_the_cli_makes_a_video_against_a_served_sandbox(
    lean: Path, wavenb_sandbox_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "clip.mp4"
    wavenb = lean.parent / "wavenb"
    image = ASSETS / "animal-chelsea.jpg"
    env = clean_env(WAVENB_HOME=str(tmp_path / "home"))
    done = run(
        wavenb,
        "generate",
        image,
        "Camera slowly zooms in",
        "--base-url",
        wavenb_sandbox_url,
        "-o",
        out,
        env=env,
        cwd=tmp_path,
    )
    assert done.stdout.strip() == str(out)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) in ((1104, 832), (1280, 720))
        assert sum(1 for _ in container.decode(video=0)) > 0


def test_the_studio_without_the_notebook_extra_names_it(lean: Path) -> None:
    code = (
        "import wavenb\n"
        "try:\n    wavenb.Studio\n"
        "except ImportError as error:\n    print(error)\n"
        "else:\n    raise SystemExit('no ImportError')\n"
    )
    message = run(lean, "-c", code, env=clean_env(), cwd=lean.parent).stdout
    assert "pip install 'wavenb[notebook]'" in message
