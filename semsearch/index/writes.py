"""Writing an index folder's contents: encoding records into a new folder, and the
helpers that `IndexStore.add` and `delete` use on a staging copy. The atomic swap and
the write lock around them stay with `IndexStore` (store.py)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semsearch.cache import sha256_of
from semsearch.corpus import Record
from semsearch.errors import InputError
from semsearch.index import threshold, types
from semsearch.index.layout import MANIFEST, RECORDS, SECOND, VECTORS
from semsearch.index.lexical import LexicalIndex
from semsearch.index.manifest import IndexSection, Manifest, utc_now
from semsearch.index.records import TOMBSTONE_PREFIX, RecordStore
from semsearch.index.types import VectorIndex
from semsearch.index.views import Parts

TOMBSTONE_LIMIT = 0.2
"""An index that tombstones deleted entries (a type that cannot remove vectors: hnsw)
is rebuilt from its live vectors once tombstones exceed this fraction."""


class VectorEncoder(Protocol):
    """What the store needs from an encoder (semsearch.encoders.Encoder provides it)."""

    truncated: int

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> dict[str, Any]: ...

    def encode(
        self, texts: Sequence[str], batch_size: int | None = ..., show_progress: bool | None = ...
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class WriteStats:
    """What one build or add did: `count` is the live records afterwards."""

    count: int
    added: int
    updated: int
    truncated: int
    seconds: float


log = logging.getLogger("semsearch")


def check_ids(chunk: Sequence[Record], seen: set[str]) -> None:
    """Ids must be unique within one build or add (the corpus reader checks files too)."""
    for record in chunk:
        if record.id in seen:
            raise InputError(
                f"id {record.id!r} appears more than once in the input: ids must be unique"
            )
        if record.id.startswith(TOMBSTONE_PREFIX):
            raise InputError(f"id {record.id!r} starts with a reserved NUL character")
        seen.add(record.id)


def encode_chunk(
    encoder: VectorEncoder,
    chunk: Sequence[Record],
    batch_size: int | None,
    show_progress: bool | None,
) -> np.ndarray:
    return encoder.encode(
        [record.text for record in chunk], batch_size=batch_size, show_progress=show_progress
    )


def encode_views(
    encoder: VectorEncoder,
    chunk: Sequence[Record],
    parts: Parts,
    batch_size: int | None,
    show_progress: bool | None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The chunk's vectors, its second view's (only the entries whose second text
    differs are encoded again) and how many texts the first pass truncated."""
    primary = encode_chunk(encoder, chunk, batch_size, show_progress)
    truncated = encoder.truncated
    if parts.second is None:
        return primary, None, truncated
    texts = [parts.second_text(record) for record in chunk]
    differ = [
        i for i, (text, record) in enumerate(zip(texts, chunk, strict=True)) if text != record.text
    ]
    second = primary.copy()
    if differ:
        second[differ] = encoder.encode(
            [texts[i] for i in differ], batch_size=batch_size, show_progress=show_progress
        )
    return primary, second, truncated


Encoded = tuple[Sequence[Record], np.ndarray, np.ndarray | None, int]
"""A chunk of records with its vectors, its second view's (or None) and how many of its
texts were truncated: what `encode_views` returns, with the chunk."""

Engine = Callable[[Iterable[Sequence[Record]], Parts], Iterator[Encoded]]
"""What encodes a build's chunks, in their order: this process (`local_engine`) or a Ray
actor pool (semsearch.distributed.ray_engine). Whatever encodes them, the records,
index, lexical part, threshold and manifest are written the same way."""


def local_engine(
    encoder: VectorEncoder, batch_size: int | None, show_progress: bool | None
) -> Engine:
    """Encode each chunk in this process, one after the other, under one progress bar
    for the whole build (entries encoded so far; the total of a streamed corpus is
    unknown), not a bar per chunk. `show_progress` None: a bar when stderr is a terminal."""

    def encoded(chunks: Iterable[Sequence[Record]], parts: Parts) -> Iterator[Encoded]:
        shown = sys.stderr.isatty() if show_progress is None else show_progress
        progress = _entries_bar() if shown else None
        try:
            for chunk in chunks:
                yield (chunk, *encode_views(encoder, chunk, parts, batch_size, False))
                if progress is not None:
                    progress.update(len(chunk))
        finally:
            if progress is not None:
                progress.close()

    return encoded


def _entries_bar() -> Any:
    from tqdm.auto import tqdm

    return tqdm(unit="entry", desc="encoding", file=sys.stderr)


def checked_chunks(chunks: Iterable[Sequence[Record]]) -> Iterator[Sequence[Record]]:
    """The non-empty chunks, their ids checked before any of them is encoded."""
    seen: set[str] = set()
    for chunk in chunks:
        check_ids(chunk, seen)
        if chunk:
            yield chunk


@dataclass
class Staged:
    """The writable contents of an index folder being written: the records and every
    part, changed together so they stay in step (same rowids everywhere)."""

    records: RecordStore
    vectors: VectorIndex
    second: VectorIndex | None
    parts: Parts

    def add(
        self,
        chunk: Sequence[Record],
        encoder: VectorEncoder,
        batch_size: int | None,
        show_progress: bool | None,
    ) -> int:
        """Insert and index a chunk; returns how many texts were truncated."""
        primary, second, truncated = encode_views(
            encoder, chunk, self.parts, batch_size, show_progress
        )
        rowids = self.records.insert(chunk)
        self.vectors.add(primary, rowids)
        if self.second is not None and second is not None:
            self.second.add(second, rowids)
        return truncated

    def drop(self, rowids: list[int]) -> None:
        """Remove records with their vectors, or tombstone them where FAISS cannot remove."""
        if not rowids:
            return
        if self.vectors.can_remove:
            ids = np.array(rowids, dtype=np.int64)
            for vectors in (self.vectors, self.second):
                if vectors is not None:
                    vectors.remove(ids)
            self.records.remove(rowids)
        else:
            self.records.tombstone(rowids)

    def compact(self) -> None:
        """Rebuild indexes that tombstone (hnsw) without their tombstoned vectors once
        these pass TOMBSTONE_LIMIT."""
        dead = self.records.tombstones()
        if not dead or len(dead) <= TOMBSTONE_LIMIT * self.vectors.ntotal:
            return
        self.vectors = self.vectors.without(dead)
        if self.second is not None:
            self.second = self.second.without(dead)
        self.records.remove(dead)

    def lexical(self) -> LexicalIndex | None:
        """BM25 over every live record, built afresh (bm25s has no incremental update)."""
        if not self.parts.lexical:
            return None
        live = list(self.records.live())
        texts = [self.parts.lexical_text(record) for _, record in live]
        return LexicalIndex.build(texts, np.array([rowid for rowid, _ in live], dtype=np.int64))


def save_folder(
    folder: Path,
    manifest: Manifest,
    vectors: VectorIndex,
    second: VectorIndex | None = None,
    lexical: LexicalIndex | None = None,
    generic: np.ndarray | None = None,
) -> None:
    """Write vectors.faiss and the parts' files, then manifest.json with the parts and
    the checksums of every data file."""
    vectors.save(folder / VECTORS)
    if generic is not None:
        threshold.save_generic(folder, generic)
    if second is not None:
        second.save(folder / SECOND)
    if lexical is not None:
        lexical.save(folder)
    files = Parts.from_json(manifest.parts).data_files(vectors.kind)
    checksums = {name: sha256_of(folder / name) for name in files}
    manifest = dataclasses.replace(manifest, checksums=checksums)
    (folder / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")


FusionChooser = Callable[[Any, VectorEncoder], dict[str, Any] | None]
"""What chooses a new index's own hybrid fusion from the opened, finished folder and its
encoder (semsearch.search.adaptive.choose): the manifest's "fusion" object, or None."""


def keep_fusion(folder: Path, chosen: dict[str, Any] | None) -> None:
    """Write the chosen fusion into the folder's manifest (the data files and their
    checksums are as they were)."""
    manifest = dataclasses.replace(Manifest.read(folder), fusion=chosen)
    (folder / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")


def semsearch_version() -> str:
    from semsearch import __version__  # here: semsearch/__init__ may import this module

    return __version__


def write_new(
    staging: Path,
    chunks: Iterable[Sequence[Record]],
    encoder: VectorEncoder,
    *,
    index_type: str,
    params: dict[str, Any] | None,
    fields: dict[str, Any] | None,
    show_progress: bool | None,
    batch_size: int | None,
    engine: Engine | None = None,
    replaced: tuple[Path, Manifest] | None = None,
) -> int:
    """Encode every chunk (with `engine`, by default in this process) into a complete
    index folder at `staging`; returns how many texts were truncated. `encoder` gives
    the fingerprint and dimension and encodes the no-answer estimate's questions.
    `replaced`: the path and manifest of the index this build replaces, whose calibrated
    threshold is kept where the encoder is the same (and a note logged either way)."""
    truncated = 0
    parts = dataclasses.replace(Parts.choose(fields), generic=True)
    engine = engine or local_engine(encoder, batch_size, show_progress)
    records = RecordStore.create(staging / RECORDS)
    try:
        matrices: list[np.ndarray] = []
        seconds: list[np.ndarray] = []
        rowids: list[np.ndarray] = []
        for chunk, primary, second, count in engine(checked_chunks(chunks), parts):
            matrices.append(primary)
            seconds.extend([second] if second is not None else [])
            truncated += count
            rowids.append(records.insert(chunk))
        if not matrices:
            raise InputError("no texts to index: the corpus holds no records")
        matrix, ids = np.concatenate(matrices), np.concatenate(rowids)
        kind = types.get(types.resolve_type(index_type, len(matrix)))
        resolved = kind.resolve_params(params, len(matrix), encoder.dim)
        vectors = kind.create(encoder.dim, resolved, training=matrix)
        vectors.add(matrix, ids)
        second_vectors = None
        if seconds:
            other = np.concatenate(seconds)
            second_vectors = kind.create(encoder.dim, resolved, training=other)
            second_vectors.add(other, ids)
        records.commit()
        lexical = Staged(records, vectors, second_vectors, parts).lexical()
    finally:
        records.close()
    generic = threshold.generic_vectors(encoder, batch_size)
    top = threshold.top_cosines(vectors, generic, set())
    written = Written(kind.name, resolved, len(matrix), vectors, second_vectors, lexical)
    finish(staging, written, encoder.fingerprint, generic, top, fields, parts, replaced)
    return truncated


@dataclass
class Written:
    """An index folder's parts, written or in memory, before its manifest."""

    type: str
    params: dict[str, int]
    count: int
    vectors: VectorIndex
    second: VectorIndex | None
    lexical: LexicalIndex | None


def finish(
    staging: Path,
    written: Written,
    fingerprint: dict[str, Any],
    generic: np.ndarray,
    top: np.ndarray,
    fields: dict[str, Any] | None,
    parts: Parts,
    replaced: tuple[Path, Manifest] | None,
) -> None:
    """The manifest of a new index (its no-answer threshold estimated from `top`, the
    generic questions' best cosines, or carried over from the index it replaces) and
    every part saved into `staging`: what any build ends with, however it encoded."""
    now = utc_now()
    manifest = Manifest(
        semsearch_version=semsearch_version(),
        created=now,
        updated=now,
        encoder=dict(fingerprint),
        index=IndexSection(
            type=written.type,
            faiss_factory=written.vectors.factory,
            count=written.count,
            params=written.params,
        ),
        fields=dict(fields or {}),
        parts=parts.to_json(),
        threshold=threshold.estimate(top, fingerprint) if len(top) else None,
    )
    if replaced is not None:
        path, old = replaced
        kept, note = threshold.carried(
            old.threshold, old.encoder, manifest.encoder, written.count, path
        )
        if kept is not None:
            manifest = dataclasses.replace(manifest, threshold=kept)
        if note:
            log.warning(note)
    save_folder(staging, manifest, written.vectors, written.second, written.lexical, generic)
