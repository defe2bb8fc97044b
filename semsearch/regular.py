"""Read only regular files, and never without a bound.

A FIFO given as a corpus blocks forever waiting for a writer, and a symlink to
/dev/zero never ends a line: every file semsearch reads from a path a user (or an
index folder) names is opened here, refused by kind when it is not a regular file
(symlinks are followed), and read one bounded line, or up to a size limit, at a time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from semsearch.errors import ConfigError, InputError, SemsearchError

MAX_LINE_BYTES = 64 << 20
"""The longest physical line read from a text file (64 MiB): longer is not a corpus row."""

MAX_FILE_BYTES = 1 << 30
"""The largest file read whole (labelled questions, a list of texts): 1 GiB."""
MAX_SETTINGS_BYTES = 16 << 20
"""The largest settings file (TOML, manifest.json): 16 MiB."""

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular(mode: int) -> str | None:
    """What a file of `mode` is, in the user's words, when it is not a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path, error: type[SemsearchError] = InputError) -> BinaryIO:
    """`path` opened for binary reading, or `error` naming what it is instead of a
    regular file. Opening does not wait on a FIFO (O_NONBLOCK); reads then block as usual."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"file not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    kind = not_regular(os.fstat(descriptor).st_mode)
    if kind is not None:
        os.close(descriptor)
        raise error(f"{path} is {kind}, not a regular file: give a file semsearch can read")
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def read_regular(path: Path, limit: int, error: type[SemsearchError] = InputError) -> bytes:
    """A whole regular file of at most `limit` bytes, or `error` saying it is larger."""
    with open_regular(path, error) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path} is larger than {limit >> 20} MiB, which no such file is")
    return data


def bounded_lines(
    handle: BinaryIO, path: Path, error: type[SemsearchError] = InputError, first: int = 1
) -> Iterator[tuple[int, bytes]]:
    """(line number from `first`, raw line) from `handle`; a line longer than
    `MAX_LINE_BYTES` is an error naming it, read no further than that bound."""
    number = first - 1
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise error(
                f"{path}, line {number}: longer than {MAX_LINE_BYTES >> 20} MiB; "
                "a line that long is not text semsearch reads"
            )
        yield number, raw


def read_settings(path: Path) -> str:
    """A settings (TOML) file's text: FileNotFoundError where there is none, a
    ConfigError where it is not a regular file or not small enough to be settings."""
    if not path.exists():
        raise FileNotFoundError(path)
    return read_regular(path, MAX_SETTINGS_BYTES, ConfigError).decode("utf-8")
