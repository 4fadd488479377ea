"""A render worker: ``python -m wavenb.sandbox._worker`` (started by ``_workers.WorkerPool``).

Reads render tasks from stdin, renders each, writes the answer to stdout, one pickled frame
each way. Runs at a lower priority so the API answers first, imports the renderer once, and
ends when its stdin ends (its parent is gone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Final

from wavenb.sandbox._workers import read_frame, write_frame

NICENESS: Final = 5


def main() -> None:
    """Serve render tasks until the parent closes the pipe."""
    # Ctrl-C in a terminal, or a kernel shutting down, signals the whole process group: the
    # parent decides what stops, and a worker ends when its pipe does (no traceback spam).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    from wavenb.sandbox._renderjob import run  # noqa: PLC0415  (after nice: the import is heavy)

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    while True:
        try:
            task = read_frame(requests)
        except EOFError:
            return
        write_frame(answers, run(task))


if __name__ == "__main__":
    main()
