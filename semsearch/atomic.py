"""Replace a whole folder in one step, so that readers, crashes and Ctrl-C only ever see
a complete old or a complete new version of an index.

A new version is written into `NAME.tmp-PID-XXXX` next to NAME, fsynced, then swapped
in. On Linux, renameat2(RENAME_EXCHANGE) exchanges the two folders atomically; elsewhere
NAME is first renamed aside to `NAME.old-PID-XXXX` and the new one renamed in, and a
crash between those two renames is repaired by `recover`. The PID in the names lets the
next writer remove what a killed writer left behind without touching a live one's work.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no libc handle, or glibc older than 2.28
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False where the OS or file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if (
        renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(second))


def fsync_tree(folder: Path) -> None:
    """Flush every file in `folder` and the folder itself to disk."""
    for item in folder.iterdir():
        if item.is_file():
            with item.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sibling(path: Path, kind: str) -> str:
    return f"{path.name}.{kind}-{os.getpid()}-"


def _writer_pid(sibling: Path, path: Path, kind: str) -> int | None:
    """The PID in `NAME.kind-PID-XXXX`, or None when the name is not of that form."""
    rest = sibling.name[len(f"{path.name}.{kind}-") :]
    pid, _, _ = rest.partition("-")
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _abandoned(path: Path, kind: str) -> list[Path]:
    """`NAME.kind-PID-*` siblings whose writer process no longer runs."""
    found = []
    for sibling in path.parent.glob(f"{glob.escape(path.name)}.{kind}-*"):
        pid = _writer_pid(sibling, path, kind)
        if sibling.is_dir() and pid is not None and pid != os.getpid() and not _alive(pid):
            found.append(sibling)
    return sorted(found)


def _swap_in(new: Path, path: Path) -> None:
    """Put `new` at `path`; afterwards `new` holds the previous version, if any."""
    if not path.exists():
        os.rename(new, path)
    elif not exchange(new, path):
        aside = Path(tempfile.mkdtemp(prefix=_sibling(path, "old"), dir=path.parent))
        os.rename(path, aside)  # replaces the empty folder mkdtemp made
        os.rename(new, path)
        os.rename(aside, new)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the write lock of `path` (a `.NAME.lock` file beside it) for the block.

    A writer that reads the current version, changes it and swaps the result in must
    hold it throughout, or two processes could each start from the same version and the
    second swap would silently drop the first one's changes. Where `fcntl` is missing
    (Windows) writers are not serialised.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `path`; when the block ends normally its
    contents are fsynced and swapped in as `path`. The temporary folder (holding the
    new version after an error, or the old one after the swap) is always removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_sibling(path, "tmp"), dir=path.parent))
    try:
        yield staging
        fsync_tree(staging)
        _swap_in(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for leftover in _abandoned(path, "tmp") + _abandoned(path, "old"):
        shutil.rmtree(leftover, ignore_errors=True)


def recover(path: Path) -> Path | None:
    """When `path` is missing because a writer died between renaming the old version
    aside and the new one in, rename the old version back; returns where it was."""
    if path.exists():
        return None
    asides = _abandoned(path, "old")
    if not asides:
        return None
    newest = max(asides, key=lambda aside: aside.stat().st_mtime_ns)
    os.rename(newest, path)
    return newest
