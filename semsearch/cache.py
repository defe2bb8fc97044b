"""The user's cache folder, and file hashes remembered there between processes.

A model's identity is the sha256 of its weights (90 MB for MiniLM, seconds for larger
models); a one-shot question must not pay for hashing them again, so the hash is kept
beside the file's size and modification time and reused while both are unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    """$SEMSEARCH_CACHE, else $XDG_CACHE_HOME/semsearch, else ~/.cache/semsearch."""
    explicit = os.environ.get("SEMSEARCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semsearch"


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _remembered(path: Path, size: int, mtime_ns: int) -> str:
    key = hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    memo = cache_root() / "hashes" / f"{key}.json"
    stamp = {"path": str(path), "size": size, "mtime_ns": mtime_ns}
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if {k: saved.get(k) for k in stamp} == stamp and isinstance(saved.get("sha256"), str):
            return str(saved["sha256"])
    digest = sha256_of(path)
    with contextlib.suppress(OSError):  # a read-only cache only costs the next process time
        memo.parent.mkdir(parents=True, exist_ok=True)
        partial = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({**stamp, "sha256": digest}), encoding="utf-8")
        os.replace(partial, memo)
    return digest


def remembered_sha256(path: Path) -> str:
    """sha256 of `path`, hashed once per (size, mtime) and remembered in the cache."""
    path = path.resolve()
    stat = path.stat()
    return _remembered(path, stat.st_size, stat.st_mtime_ns)
