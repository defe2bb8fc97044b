"""Silencing a file descriptor for a block: native code (FAISS's on-disk lists, Ray's
C++ core) prints with printf below Python, where `sys.stdout` cannot catch it, and
stdout must stay clean for `--json`."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from threading import RLock

_SWAP = RLock()
"""One swap at a time: two threads swapping at once would save each other's /dev/null
and leave the descriptor pointing there for good. Re-entrant, so a nested swap in the
same thread restores in order."""


@contextlib.contextmanager
def silenced(fd: int) -> Iterator[None]:
    """Point `fd` (1 or 2) at /dev/null for the block, then put it back."""
    stream = sys.stdout if fd == 1 else sys.stderr
    with _SWAP:
        stream.flush()
        saved = os.dup(fd)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), fd)
            yield
        finally:
            ctypes.CDLL(None).fflush(None)  # C's buffered output goes to /dev/null too
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
