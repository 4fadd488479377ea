"""Where the command line gets an API key, without leaving it where others can read it.

``--api-key KEY`` works but is readable by every local user in the process list (``ps``) and
lands in shell history: a warning says so. ``--api-key-file PATH`` reads the first line of a
file, and ``--api-key-file -`` reads it from standard input (``pass show wavespeed | wavenb ...``).
``WAVESPEED_API_KEY`` is read when neither is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wavenb.core.errors import InputError
from wavenb.core.redact import register

__all__ = ["add_key_options", "api_key"]

ARGV_WARNING = (
    "wavenb: warning: --api-key is visible to other users of this machine (ps) and stays in "
    "shell history; prefer --api-key-file PATH, --api-key-file - (stdin) or WAVESPEED_API_KEY"
)


def add_key_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--api-key`` and ``--api-key-file`` to a subcommand."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--api-key-file",
        default=None,
        metavar="PATH",
        help="read the API key from this file's first line ('-' reads standard input)",
    )
    group.add_argument(
        "--api-key",
        default=None,
        help="the API key (visible in the process list: prefer --api-key-file or "
        "$WAVESPEED_API_KEY)",
    )


def api_key(args: argparse.Namespace) -> str | None:
    """The key the user gave on the command line, or ``None`` (the environment's then counts).

    Raises:
        InputError: the key file cannot be read or is empty.
    """
    if args.api_key is not None:
        register(args.api_key)
        print(ARGV_WARNING, file=sys.stderr)
        return str(args.api_key)
    if args.api_key_file is None:
        return None
    source = str(args.api_key_file)
    try:
        text = sys.stdin.readline() if source == "-" else Path(source).read_text("utf-8")
    except OSError as error:
        raise InputError(f"cannot read the API key file {source}: {error.strerror}") from None
    key = (text.splitlines() or [""])[0].strip()
    if not key:
        raise InputError(f"the API key file {source} is empty")
    register(key)
    return key
