"""A shard: what one worker writes for one part of the corpus, and the files it holds.

A worker reads its part with semsearch's readers (`parts.records_of`), encodes it chunk
by chunk as a local build does (`encode_views`) and writes, into its own folder in the
build's staging folder:

- `records.sqlite`: the part's records, rowids 1, 2, ... (records.py's schema), and a
  `lines` table of the line each record starts on, to name both places of an id that
  two parts hold;
- `vectors.f32` (and `second.f32` where the index has a second view): float32 rows in
  record order. Float32, not float16: flat and hnsw are assembled from them and must
  answer as a local build does; ivfpq's float16 copy is written at assembly;
- `terms.npz`: the part's BM25 term counts (semsearch.index.lexical_counts).

The folder is written under a temporary name and renamed when complete, so a task
that Ray runs again after its worker died starts afresh and leaves one shard.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from semsearch.corpus import Corpus, Record
from semsearch.distributed.parts import Part, Reading, records_of
from semsearch.index.layout import RECORDS
from semsearch.index.lexical_counts import TermCounts
from semsearch.index.records import RecordStore
from semsearch.index.views import Parts
from semsearch.index.writes import VectorEncoder, check_ids, encode_views

VECTORS_FILE = "vectors.f32"
SECOND_FILE = "second.f32"
TERMS_FILE = "terms.npz"


@dataclass(frozen=True)
class Shard:
    """What a worker wrote for one part: where, and small counts."""

    part: Part
    folder: str
    count: int
    dim: int
    skipped_empty: int
    short_rows: int
    short_note: str
    truncated: int

    def vectors(self, second: bool = False) -> np.ndarray:
        """The shard's vectors (or its second view's), memory-mapped, [count, dim]."""
        name = SECOND_FILE if second else VECTORS_FILE
        if not self.count:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.memmap(Path(self.folder) / name, np.float32, "r", shape=(self.count, self.dim))

    @property
    def records(self) -> Path:
        return Path(self.folder) / RECORDS

    @property
    def terms(self) -> Path:
        return Path(self.folder) / TERMS_FILE

    def line_of(self, rowid: int) -> int:
        """The line (row, in .txt and .parquet) the shard's record `rowid` starts on."""
        store = RecordStore.open(self.records)
        try:
            found = store.connection.execute("SELECT line FROM lines WHERE rowid = ?", (rowid,))
            return int(found.fetchone()[0])
        finally:
            store.close()


def write_shard(
    encoder: VectorEncoder,
    part: Part,
    reading: Reading,
    parts: Parts,
    folder: Path,
    chunk_size: int,
) -> Shard:
    """Read, encode and write one part into `folder` (replaced if a try before left it)."""
    corpus = records_of(part, reading)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()  # not its parents: a build that failed meanwhile removed them
    store = RecordStore.create(partial / RECORDS)
    store.connection.execute("CREATE TABLE lines (rowid INTEGER PRIMARY KEY, line INTEGER)")
    count = truncated = 0
    dim = encoder.dim
    lexical: list[str] = []
    seen: set[str] = set()
    try:
        with (
            (partial / VECTORS_FILE).open("wb") as first,
            (partial / SECOND_FILE).open("wb") as second,
        ):
            for chunk, lines in _chunks(corpus, chunk_size):
                check_ids(chunk, seen)
                truncated += _write(encoder, chunk, lines, parts, store, first, second)
                lexical.extend(_lexical(chunk, parts))
                count += len(chunk)
        if parts.second is None:
            (partial / SECOND_FILE).unlink()
        store.commit()
    finally:
        store.close()
    if parts.lexical:
        TermCounts.of(lexical).save(partial / TERMS_FILE)
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(partial, folder)
    skipped, short = corpus.skipped_empty, corpus.short_rows
    return Shard(part, str(folder), count, dim, skipped, short, corpus.short_note(), truncated)


def _chunks(corpus: Corpus, size: int) -> Iterator[tuple[list[Record], list[int]]]:
    """The part's records in chunks of at most `size`, with the line each starts on."""
    chunk: list[Record] = []
    lines: list[int] = []
    for record in corpus:
        chunk.append(record)
        lines.append(corpus.line)
        if len(chunk) >= size:
            yield chunk, lines
            chunk, lines = [], []
    if chunk:
        yield chunk, lines


def _lexical(chunk: list[Record], parts: Parts) -> list[str]:
    return [parts.lexical_text(record) for record in chunk] if parts.lexical else []


def _write(
    encoder: VectorEncoder,
    chunk: list[Record],
    lines: list[int],
    parts: Parts,
    store: RecordStore,
    first: BinaryIO,
    second: BinaryIO,
) -> int:
    primary, other, truncated = encode_views(encoder, chunk, parts, None, False)
    rowids = store.insert(chunk)
    store.connection.executemany(
        "INSERT INTO lines (rowid, line) VALUES (?, ?)",
        zip(rowids.tolist(), lines, strict=True),
    )
    first.write(np.ascontiguousarray(primary, dtype=np.float32).tobytes())
    if other is not None:
        second.write(np.ascontiguousarray(other, dtype=np.float32).tobytes())
    return truncated
