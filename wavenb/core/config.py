"""Where settings come from: arguments first, then the environment, then defaults.

The environment variables wavenb reads:

- ``WAVESPEED_API_KEY``: the API key (the documented variable). Set: the real API,
  ``https://api.wavespeed.ai``, $0.50 a video. Unset: the embedded sandbox, free.
- ``WAVENB_BASE_URL``: another server, e.g. a sandbox served with ``wavenb sandbox``
  (``WAVESPEED_BASE_URL`` is read too, as some official tools do).
- ``WAVENB_SANDBOX_SPEED``: ``instant``, ``fast`` (default) or ``realistic``, for the embedded
  sandbox.
- ``WAVENB_HOME``: where wavenb keeps its files (default: the user data directory):
  ``journal.sqlite3`` (and its rescue file), ``outputs/`` (the videos), and the comparisons'
  ``metrics/`` and ``compare-cells/`` caches.
- ``WAVENB_MAX_SPEND``: a budget in US dollars, read by the client (``max_spend=``): a
  submission that would take the journal's spending past it raises ``BudgetExceeded`` before
  any request.

With no key and no base URL, wavenb uses the embedded sandbox and says so once.

The key goes only where it was given: to the official host, or to the base URL configured with
it (argument or environment). A key is never sent over plain HTTP except to this machine
(loopback): ``resolve`` refuses that combination before any request. Without a key, wavenb
sends the placeholder ``sandbox`` (sandboxes accept any key), which is no secret.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast
from urllib.parse import urlsplit

from wavenb.core.errors import InputError
from wavenb.core.redact import register

__all__ = [
    "DEFAULT_BASE_URL",
    "SANDBOX_BASE_URL",
    "SPEEDS",
    "SandboxSpeed",
    "Secret",
    "Settings",
    "data_dir",
    "is_loopback",
    "resolve",
]

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
    has_key: bool = False
    """True when a real key was given (argument or ``WAVESPEED_API_KEY``), not the placeholder."""


def resolve(
    api_key: str | None,
    base_url: str | None,
    sandbox_speed: str | None,
    *,
    key_from_env: bool = True,
) -> Settings:
    """Settle the key, the server and the sandbox speed from arguments and environment.

    ``key_from_env=False`` never reads ``WAVESPEED_API_KEY``: for servers the key does not
    belong to (``resume`` of a row made on another server).
    """
    from_env = os.environ.get("WAVESPEED_API_KEY") if key_from_env else None
    key = (api_key or from_env or "").strip() or None
    if key is not None and any(c.isspace() or not c.isprintable() for c in key):
        # Never quote the key: this message may end up in a log or a notebook.
        raise InputError(
            "the API key contains spaces, line breaks or control characters; copy it again"
        )
    if key != SANDBOX_KEY:  # the placeholder is no secret (and a word found in sandbox URLs)
        register(key)
    url = base_url or os.environ.get("WAVENB_BASE_URL") or os.environ.get("WAVESPEED_BASE_URL")
    speed = sandbox_speed or os.environ.get("WAVENB_SANDBOX_SPEED") or "fast"
    if speed not in SPEEDS:
        raise InputError(f"sandbox speed must be one of {', '.join(SPEEDS)}; got {speed!r}")
    # The embedded sandbox's own address (as journal rows record it) means the embedded sandbox.
    embedded = (key is None and url is None) or (url or "").rstrip("/") == SANDBOX_BASE_URL
    if not key_from_env and key is None and url is None:
        embedded = True
    server = (url or (SANDBOX_BASE_URL if embedded else DEFAULT_BASE_URL)).rstrip("/")
    if key is not None and not embedded:
        _check_safe_for_key(server)
    return Settings(
        api_key=Secret(key if key is not None and not embedded else SANDBOX_KEY),
        base_url=server,
        embedded=embedded,
        sandbox_speed=cast("SandboxSpeed", speed),
        has_key=key is not None and not embedded,
    )


def _check_safe_for_key(base_url: str) -> None:
    """Refuse to send a key in clear text over a network: HTTPS, or HTTP to loopback only."""
    try:
        parts = urlsplit(base_url)
    except ValueError:
        raise InputError(f"the base URL {base_url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"the base URL must be http(s)://host[:port]; got {base_url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InputError(
            f"refusing to send the API key over plain HTTP to {parts.hostname}: use https://, or "
            "a server on this machine (127.0.0.1 / localhost). A sandbox elsewhere needs no key: "
            "unset WAVESPEED_API_KEY for it."
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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
