"""The version, read from the installed package's metadata: pyproject.toml is its one home."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

__all__ = ["VERSION"]

try:
    VERSION: Final = version("wavenb")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"  # type: ignore[misc]
