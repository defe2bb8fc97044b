"""Checks around an index write, made before any work and at its edges: the folder is
one a build may replace and the file system will let it finish; a failure half way is
one clear line with the index unchanged."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from semsearch import atomic
from semsearch.errors import IndexFolderError, InputError, SemsearchError
from semsearch.index.layout import MANIFEST
from semsearch.index.manifest import Manifest


def replaced_index(path: Path) -> tuple[Path, Manifest] | None:
    """The index a build is about to replace, where one is there and readable (its
    calibrated threshold may carry over); None for a new folder or a broken one."""
    if not (path / MANIFEST).exists():
        return None
    try:
        return path, Manifest.read(path)
    except SemsearchError:
        return None


def refuse_foreign(path: Path) -> None:
    """A build replaces `path` wholesale, so it must be new, empty, or an index already."""
    if not path.exists():
        return
    if path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir())):
        return
    raise IndexFolderError(
        f"{path} exists and is not a semsearch index folder: give a new or empty folder "
        "(building replaces the folder)"
    )


def check_writable(path: Path) -> None:
    """Refuse a write that the file system would stop half way, before any work."""
    blocker = atomic.write_blocker(path)
    if blocker is not None:
        raise IndexFolderError(f"cannot write to {path}: {blocker} (nothing was changed)")


@contextlib.contextmanager
def write_errors(path: Path) -> Iterator[None]:
    """A file-system failure during a write (its temporary copy is already removed) as
    one clear line: the index stays as it was. A file that could not be read outside
    the index's folder is an input of the write (a corpus), reported as such."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise IndexFolderError(f"cannot write to {path}: {exc}; the index was not changed") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename and not Path(exc.filename).resolve().is_relative_to(path.parent.resolve()):
            raise InputError(f"cannot read {exc.filename}: {reason}") from exc
        where = f" ({exc.filename})" if exc.filename and not exc.filename2 else ""
        raise IndexFolderError(
            f"cannot write to {path}: {reason}{where}; the index was not changed"
        ) from exc
