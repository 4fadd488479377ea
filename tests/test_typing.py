"""``mypy --strict`` passes on a user's script that uses wavenb's public names.

The lazily imported names (``Studio``, ``compare``, ``Comparison``, ``plot_timeline``) are
declared for type checkers under ``TYPE_CHECKING`` in ``wavenb/__init__.py``. The script is
checked as a user would check theirs: wavenb is followed but its own internals are silent (as
for any installed package), so only the script's errors count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "typing" / "user_script.py"


def mypy_strict(script: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` as a user runs it: their script's errors only (wavenb is followed)."""
    config = folder / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\nfollow_imports = silent\n")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
         str(folder / "cache"), str(script)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_a_users_script_passes_mypy_strict(tmp_path: Path) -> None:
    result = mypy_strict(SCRIPT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_really_checks_the_script(tmp_path: Path) -> None:
    """The same check fails on a script that misuses the API (so the passing one means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import wavenb\n"
        "def f() -> int:\n"
        "    return wavenb.Studio(image=1, prompt=2)\n"
    )
    result = mypy_strict(bad, tmp_path)
    assert result.returncode == 1 and "bad.py:3" in result.stdout
