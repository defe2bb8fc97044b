"""Replace a whole folder in one step, so that readers, crashes and Ctrl-C only ever see
a complete old or a complete new version of an index.

A new version is written into `NAME.tmp-PID-XXXX` next to NAME, fsynced, given NAME's
permissions (a new folder: those `mkdir` gives under the umask), then swapped in. On
Linux, renameat2(RENAME_EXCHANGE) exchanges the two folders atomically; elsewhere NAME
is first renamed aside to `NAME.old-PID-XXXX` and the new one renamed in. A crash
between those two renames is repaired by `recover`, which only writers call (under
`locked`): readers find the old version with `interrupted` and read it where it lies.
The PID in the names lets the next writer remove what a killed writer left behind
without touching a live one's work: every writer does so when it takes the lock
(`tidy`), and `leftovers` and `stale_lock` tell a reader (`semsearch info`) what is there.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import glob
import os
import secrets
import shutil
import stat
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


def write_blocker(path: Path) -> str | None:
    """Why this process could not replace `path`, or None when it can: it must write to
    the nearest existing folder above `path` (missing ones are made) and, where `path`
    is a folder already, to that folder too (its old version is removed from it)."""
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"{above} is a file, not a folder: choose another path"
    for folder in (above, path) if path.is_dir() else (above,):
        if not _can_write(folder):
            return (
                f"the folder {folder} is not writable by this user: make it writable "
                f"(e.g. chmod u+w {folder}) and run again"
            )
    return None


def _can_write(folder: Path) -> bool:
    effective = os.access in os.supports_effective_ids
    return os.access(folder, os.W_OK | os.X_OK, effective_ids=effective)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the write lock of `path` (a `.NAME.lock` file beside it) for the block.

    A writer that reads the current version, changes it and swaps the result in must
    hold it throughout, or two processes could each start from the same version and the
    second swap would silently drop the first one's changes. Where `fcntl` is missing
    (Windows) writers are not serialised.

    The holder deletes the lock file before it lets go, so none stays behind. A process
    that was waiting on that file then holds a lock on a deleted file: it checks that
    the file at the lock's path is still the one it locked, and starts again if not.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_file(path)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if _same_file(lock, os.fstat(descriptor)):
                break
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # the previous holder deleted it: lock the next one
    try:
        tidy(path)  # what killed writers left; under the lock, so never a live one's work
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it, so nobody can have locked it meanwhile
        os.close(descriptor)


def lock_file(path: Path) -> Path:
    """Where `locked(path)` keeps its lock."""
    return path.parent / f".{path.name}.lock"


def leftovers(path: Path) -> list[Path]:
    """What killed writers left beside `path`: their `NAME.tmp-PID-*` folders, and their
    `NAME.old-PID-*` ones while `path` exists (without it, one is the version to recover)."""
    found = _abandoned(path, "tmp")
    return found + _abandoned(path, "old") if path.exists() else found


def stale_lock(path: Path) -> Path | None:
    """The lock file of `path` when it is there and no process holds it (its writer
    was killed before it could delete it); None when it is absent or held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    lock = lock_file(path)
    try:
        descriptor = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return None  # a writer holds it
    finally:
        os.close(descriptor)  # also lets go of the shared lock, if taken
    return lock


def folder_bytes(folder: Path) -> int:
    """The bytes of the files in `folder`, at any depth (what removing it frees)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def tidy(path: Path) -> None:
    """Remove `leftovers(path)`; only a writer holding `locked(path)` may call it."""
    for leftover in leftovers(path):
        _remove(leftover)


def _same_file(path: Path, opened: os.stat_result) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def _new_sibling(path: Path, kind: str) -> tuple[Path, int]:
    """Make an empty private folder `NAME.kind-PID-XXXX` beside `path`; returns it with
    the mode `mkdir` gave it (what a new folder should get under this umask)."""
    while True:
        folder = path.parent / f"{_sibling(path, kind)}{secrets.token_hex(4)}"
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        fresh = stat.S_IMODE(folder.stat().st_mode)
        os.chmod(folder, 0o700)  # private until it is complete
        return folder, fresh


def _remove(folder: Path) -> None:
    """Delete a staging folder, even one holding an old version made read-only."""
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `path`; when the block ends normally its
    contents are fsynced and swapped in as `path`, with the permissions `path` had (or,
    for a new folder, those `mkdir` gives). The temporary folder (holding the new
    version after an error, or the old one after the swap) is always removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging, mode = _new_sibling(path, "tmp")
    try:
        yield staging
        fsync_tree(staging)
        if path.is_dir():
            mode = stat.S_IMODE(path.stat().st_mode)
        os.chmod(staging, mode)
        _swap_in(staging, path)
    finally:
        _remove(staging)
    for leftover in _abandoned(path, "tmp") + _abandoned(path, "old"):
        _remove(leftover)


def interrupted(path: Path) -> Path | None:
    """Where the previous version of a missing `path` lies when a writer died between
    renaming it aside and renaming the new one in (readers read it there)."""
    if path.exists():
        return None
    asides = _abandoned(path, "old")
    return max(asides, key=lambda aside: aside.stat().st_mtime_ns) if asides else None


def recover(path: Path) -> Path | None:
    """Rename the version `interrupted` finds back to `path`; returns where it was. Only
    a writer holding `locked(path)` may call it: reading never changes a folder."""
    aside = interrupted(path)
    if aside is not None:
        os.rename(aside, path)
    return aside
