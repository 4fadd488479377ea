"""Where settings come from: arguments first, then the environment, then defaults.

=====================  ==================================================================
``WAVESPEED_API_KEY``  the API key (the documented variable)
``WAVENB_BASE_URL``    another server, e.g. a sandbox served with ``wavenb sandbox``
                       (``WAVESPEED_BASE_URL`` is read too, as some official tools do)
``WAVENB_SANDBOX_SPEED`` ``instant``, ``fast`` (default) or ``realistic`` for the embedded sandbox
``WAVENB_HOME``        where wavenb keeps its files (default: the user data directory)
=====================  ==================================================================

With no key and no base URL, wavenb uses the embedded sandbox and says so once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

__all__ = ["DEFAULT_BASE_URL", "SANDBOX_BASE_URL", "Secret", "Settings", "data_dir", "resolve"]

DEFAULT_BASE_URL: Final = "https://api.wavespeed.ai"
SANDBOX_BASE_URL: Final = "http://sandbox.wavenb.invalid"
"""The embedded sandbox's address. ``.invalid`` never resolves, so nothing can leave the
process by mistake: requests to it only reach the in-process app."""
SANDBOX_KEY: Final = "sandbox"
SandboxSpeed = Literal["instant", "fast", "realistic"]
SPEEDS: Final = ("instant", "fast", "realistic")


class Secret:
    """A string that never shows itself: not in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it: the Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one client."""

    api_key: Secret
    base_url: str
    embedded: bool
    """True when requests go to the in-process sandbox."""
    sandbox_speed: SandboxSpeed


def resolve(api_key: str | None, base_url: str | None, sandbox_speed: str | None) -> Settings:
    """Settle the key, the server and the sandbox speed from arguments and environment."""
    key = (api_key or os.environ.get("WAVESPEED_API_KEY") or "").strip() or None
    if key is not None and any(c.isspace() or not c.isprintable() for c in key):
        from wavenb.core.errors import InputError  # noqa: PLC0415

        # Never quote the key: this message may end up in a log or a notebook.
        raise InputError(
            "the API key contains spaces, line breaks or control characters; copy it again"
        )
    url = base_url or os.environ.get("WAVENB_BASE_URL") or os.environ.get("WAVESPEED_BASE_URL")
    speed = sandbox_speed or os.environ.get("WAVENB_SANDBOX_SPEED") or "fast"
    if speed not in SPEEDS:
        from wavenb.core.errors import InputError  # noqa: PLC0415

        raise InputError(f"sandbox speed must be one of {', '.join(SPEEDS)}; got {speed!r}")
    # The embedded sandbox's own address (as journal rows record it) means the embedded sandbox.
    embedded = (key is None and url is None) or (url or "").rstrip("/") == SANDBOX_BASE_URL
    return Settings(
        api_key=Secret(key or SANDBOX_KEY),
        base_url=(url or (SANDBOX_BASE_URL if embedded else DEFAULT_BASE_URL)).rstrip("/"),
        embedded=embedded,
        sandbox_speed=cast("SandboxSpeed", speed),
    )


def data_dir() -> Path:
    """Wavenb's own folder: ``WAVENB_HOME``, else the platform's user data directory."""
    home = os.environ.get("WAVENB_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_data_dir("wavenb", appauthor=False))


def outputs_dir() -> Path:
    """Where generated videos are saved by default."""
    return data_dir() / "outputs"
