"""encoders/tokenizer.py: a tokenizer.json is parsed once per process and version of
the file, and encoders that share the parsed tokenizer still tokenise as if alone."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from semsearch.encoders.tokenizer import FastTokenizer


def _copy(tiny_bert: Path, folder: Path) -> Path:
    folder.mkdir()
    return Path(shutil.copy(tiny_bert / "tokenizer.json", folder / "tokenizer.json"))


def test_one_parse_per_file_version(tiny_bert: Path, tmp_path: Path) -> None:
    path = _copy(tiny_bert, tmp_path / "a")
    first = FastTokenizer.from_file(path, pad_id=0, with_types=True)
    second = FastTokenizer.from_file(path, pad_id=0, with_types=False)
    assert first.backend is second.backend and first._lock is second._lock
    other = FastTokenizer.from_file(_copy(tiny_bert, tmp_path / "b"), pad_id=0, with_types=True)
    assert other.backend is not first.backend  # another file
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # written again
    assert FastTokenizer.from_file(path, pad_id=0, with_types=True).backend is not first.backend


def test_sharers_keep_their_own_lengths_across_threads(tiny_bert: Path, tmp_path: Path) -> None:
    """Each call sets its truncation under the shared lock: two encoders of one file
    with other max lengths, tokenising at once, each get their own cut."""
    path = _copy(tiny_bert, tmp_path / "a")
    short, long = (FastTokenizer.from_file(path, pad_id=0, with_types=True) for _ in "ab")
    text = "the quick brown fox jumps over the lazy dog " * 8
    got: dict[str, set[int]] = {"short": set(), "long": set()}

    def tokenise(name: str, tokenizer: FastTokenizer, limit: int) -> None:
        for _ in range(200):
            rows, cut = tokenizer.rows([text], None, limit)
            got[name].add(len(rows[0]["input_ids"]))
            assert cut == 1

    threads = [
        threading.Thread(target=tokenise, args=("short", short, 8)),
        threading.Thread(target=tokenise, args=("long", long, 40)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == {"short": {8}, "long": {40}}
