"""API keys as the sandbox sees them: only their SHA-256 digests, never the keys themselves."""

from __future__ import annotations

import hashlib
from typing import Final

from starlette.types import Scope

__all__ = ["OWNER_KEY", "key_digest", "owner_of"]

OWNER_KEY: Final = "wavenb.key_digest"
"""Where the middleware leaves the checked key's digest in the ASGI scope for the endpoints."""


def key_digest(key: str) -> str:
    """Return the SHA-256 of an API key: what the sandbox keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def owner_of(scope: Scope) -> str | None:
    """Return a digest of the bearer key, or ``None`` if the header is missing or malformed.

    Only the digest is kept (history and concurrency are per key), so the key never lands in
    state or logs.
    """
    headers = dict(scope.get("headers") or [])
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key_digest(key.strip())
