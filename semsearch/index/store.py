"""The index folder as a whole: build, open, search, add and delete.

Every write works on a temporary copy next to the folder and swaps it in only once it
has been written, fsynced and opened again successfully (see `atomic`), so a crash,
an exception or Ctrl-C leaves the previous index answering exactly as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semsearch import atomic
from semsearch.corpus import Record
from semsearch.errors import IndexFolderError, InputError
from semsearch.index.manifest import (
    DATA_FILES,
    MANIFEST_FILE,
    RECORDS_FILE,
    VECTORS_FILE,
    IndexSection,
    Manifest,
    check_encoder,
    utc_now,
)
from semsearch.index.records import TOMBSTONE_PREFIX, RecordStore
from semsearch.index.vectors import (
    DEFAULT_PARAMS,
    VectorIndex,
    check_params,
    resolve_params,
    resolve_type,
)

FILES = (MANIFEST_FILE, *DATA_FILES)

_OPEN_ATTEMPTS = 3
TOMBSTONE_LIMIT = 0.2
"""An hnsw index is rebuilt from its live vectors once tombstones exceed this fraction."""

Hit = tuple[Record, float]


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_ids(chunk: Sequence[Record], seen: set[str]) -> None:
    """Ids must be unique within one build or add (the corpus reader checks files too)."""
    for record in chunk:
        if record.id in seen:
            raise InputError(
                f"id {record.id!r} appears more than once in the input: ids must be unique"
            )
        if record.id.startswith(TOMBSTONE_PREFIX):
            raise InputError(f"id {record.id!r} starts with a reserved NUL character")
        seen.add(record.id)


def _encode(
    encoder: VectorEncoder,
    chunk: Sequence[Record],
    batch_size: int | None,
    show_progress: bool | None,
) -> np.ndarray:
    return encoder.encode(
        [record.text for record in chunk], batch_size=batch_size, show_progress=show_progress
    )


def _save(folder: Path, manifest: Manifest, vectors: VectorIndex) -> None:
    """Write vectors.faiss, then manifest.json with the checksums of both data files."""
    vectors.save(folder / VECTORS_FILE)
    checksums = {name: sha256_file(folder / name) for name in DATA_FILES}
    manifest = dataclasses.replace(manifest, checksums=checksums)
    (folder / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")


def _semsearch_version() -> str:
    from semsearch import __version__  # here: semsearch/__init__ may import this module

    return __version__


def _refuse_foreign(path: Path) -> None:
    """A build replaces `path` wholesale, so it must be new, empty, or an index already."""
    if not path.exists():
        return
    if path.is_dir() and ((path / MANIFEST_FILE).is_file() or not any(path.iterdir())):
        return
    raise IndexFolderError(
        f"{path} exists and is not a semsearch index folder: give a new or empty folder "
        "(building replaces the folder)"
    )


class IndexStore:
    """An opened index folder: manifest, FAISS vectors and SQLite records, kept consistent.

    Open one with `IndexStore.open` or `IndexStore.build`. Searches may run from several
    threads at once. `add` and `delete` reload this object when they finish, so run them
    while it serves no searches; other processes and objects keep the version they opened
    until they open it again (poll `current_version` to notice).
    """

    def __init__(
        self, path: Path, manifest: Manifest, vectors: VectorIndex, records: RecordStore
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.vectors = vectors
        self.records = records
        self.version = manifest.version
        self.stats: WriteStats | None = None
        self._tombstones = records.tombstones()

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> IndexStore:
        """Open and check an index folder; the caller builds the encoder from
        `store.manifest.encoder` and checks it with `check_encoder`.

        A write that swaps in a new version while this reads is noticed (the manifest
        changed meanwhile) and the open starts again, so the files always match."""
        path = Path(path)
        recovered = atomic.recover(path)
        if recovered is not None:
            print(
                f"semsearch: {path} was missing after an interrupted write; restored the "
                f"previous version from {recovered.name}",
                file=sys.stderr,
            )
        for _ in range(_OPEN_ATTEMPTS):
            before = _peek_version(path)
            try:
                store = cls._load(path)
            except IndexFolderError:
                if _peek_version(path) == before:
                    raise
                continue
            if store.version == _peek_version(path):
                return store
            store.close()
        raise IndexFolderError(f"{path} kept changing while it was being opened: try again")

    @classmethod
    def _load(cls, path: Path) -> IndexStore:
        if not path.is_dir():
            raise IndexFolderError(f"no index folder at {path}: run `semsearch index` to build it")
        for name in FILES:
            if not (path / name).is_file():
                raise IndexFolderError(
                    f"{name} is missing from the index folder {path}: "
                    "run `semsearch index` to build it"
                )
        manifest = Manifest.read(path)
        for name in DATA_FILES:
            if sha256_file(path / name) != manifest.checksums.get(name):
                raise IndexFolderError(
                    f"{name} in {path} is corrupt: its checksum does not match manifest.json; "
                    "rebuild the index with `semsearch index`"
                )
        section = manifest.index
        if section.type not in DEFAULT_PARAMS or set(section.params) != set(
            DEFAULT_PARAMS[section.type]
        ):
            raise IndexFolderError(
                f"{path / MANIFEST_FILE} names an unknown index type {section.type!r} or "
                f"wrong parameters {section.params}: rebuild the index"
            )
        vectors = VectorIndex.load(path / VECTORS_FILE, section.type, section.params)
        records = RecordStore.open(path / RECORDS_FILE)
        counts = (section.count, section.deleted)
        if records.counts() != counts or vectors.ntotal != sum(counts):
            found = records.counts()
            records.close()
            raise IndexFolderError(
                f"{path} is inconsistent: manifest.json counts {counts[0]} records and "
                f"{counts[1]} deleted, records.sqlite {found[0]} and {found[1]}, vectors.faiss "
                f"{vectors.ntotal} vectors; rebuild the index"
            )
        return cls(path, manifest, vectors, records)

    @staticmethod
    def current_version(path: str | Path) -> str:
        """A token that changes with every write, read from manifest.json alone (cheap
        enough to poll for hot reload)."""
        return Manifest.read(Path(path)).version

    # -- building ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        path: str | Path,
        chunks: Iterable[Sequence[Record]],
        encoder: VectorEncoder,
        *,
        index_type: str = "auto",
        params: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        show_progress: bool | None = None,
        batch_size: int | None = None,
    ) -> IndexStore:
        """Encode every chunk and write a new index folder at `path`, replacing any
        index there only once the new one is complete."""
        started = time.perf_counter()
        path = Path(path)
        _refuse_foreign(path)
        resolve_type(index_type, 0)  # bad settings fail before any encoding
        if index_type != "auto":  # auto's type, and so its valid params, depend on the count
            check_params(index_type, params)
        truncated = 0
        with atomic.locked(path), atomic.replacing(path) as staging:
            records = RecordStore.create(staging / RECORDS_FILE)
            try:
                seen: set[str] = set()
                parts: list[np.ndarray] = []
                rowids: list[np.ndarray] = []
                for chunk in chunks:
                    _check_ids(chunk, seen)
                    if not chunk:
                        continue
                    parts.append(_encode(encoder, chunk, batch_size, show_progress))
                    truncated += encoder.truncated
                    rowids.append(records.insert(chunk))
                if not parts:
                    raise InputError("no texts to index: the corpus holds no records")
                matrix = np.concatenate(parts)
                concrete = resolve_type(index_type, len(matrix))
                resolved = resolve_params(concrete, params, len(matrix))
                vectors = VectorIndex.create(concrete, encoder.dim, resolved, training=matrix)
                vectors.add(matrix, np.concatenate(rowids))
                records.commit()
            finally:
                records.close()
            now = utc_now()
            manifest = Manifest(
                semsearch_version=_semsearch_version(),
                created=now,
                updated=now,
                encoder=dict(encoder.fingerprint),
                index=IndexSection(
                    type=concrete, faiss_factory=vectors.factory, count=len(matrix), params=resolved
                ),
                fields=dict(fields or {}),
            )
            _save(staging, manifest, vectors)
            cls.open(staging).close()
        store = cls.open(path)
        store.stats = WriteStats(
            count=store.count,
            added=store.count,
            updated=0,
            truncated=truncated,
            seconds=time.perf_counter() - started,
        )
        return store

    # -- reading -------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Live records."""
        return self.manifest.index.count

    @property
    def deleted(self) -> int:
        """Tombstoned vectors still in the FAISS index (hnsw only)."""
        return self.manifest.index.deleted

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k live records per query vector, best first, scored by inner product
        (= cosine for normalised vectors)."""
        found = self.search_rowids(query_vectors, k)
        records = self.records.by_rowids(rowid for hits in found for rowid, _ in hits)
        return [[(records[rowid], score) for rowid, score in hits] for hits in found]

    def search_rowids(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k live (rowid, score) per query vector, best first; `records_for` reads the
        records, so a caller that needs only some of them reads only those."""
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        total = self.vectors.ntotal
        fetch = min(2 * k, total) if self._tombstones else k
        while True:
            scores, ids = self.vectors.search(query_vectors, fetch)
            found = [
                [
                    (int(i), float(s))
                    for i, s in zip(row_ids, row_scores, strict=True)
                    if i >= 0 and i not in self._tombstones
                ][:k]
                for row_ids, row_scores in zip(ids, scores, strict=True)
            ]
            if not self._tombstones or fetch >= total or all(len(hits) == k for hits in found):
                break
            fetch = min(4 * fetch, total)
        return found

    def records_for(self, rowids: Iterable[int]) -> dict[int, Record]:
        """Live records by rowid (the ids `search_rowids` returns)."""
        return self.records.by_rowids(rowids)

    def get(self, ids: Iterable[str]) -> dict[str, Record]:
        """Live records by user id; unknown ids are left out."""
        return self.records.by_ids(ids)

    def info(self) -> dict[str, Any]:
        """A summary for `semsearch info` and the HTTP health route."""
        section = self.manifest.index
        return {
            "path": str(self.path),
            "count": section.count,
            "deleted": section.deleted,
            "encoder": dict(self.manifest.encoder),
            "index": {
                "type": section.type,
                "faiss_factory": section.faiss_factory,
                "metric": section.metric,
                "params": dict(section.params),
            },
            "fields": dict(self.manifest.fields),
            "files": {name: (self.path / name).stat().st_size for name in FILES},
            "format_version": self.manifest.format_version,
            "semsearch_version": self.manifest.semsearch_version,
            "created": self.manifest.created,
            "updated": self.manifest.updated,
            "version": self.version,
        }

    # -- writing -------------------------------------------------------------------
    def add(
        self,
        chunks: Iterable[Sequence[Record]],
        encoder: VectorEncoder,
        *,
        show_progress: bool | None = None,
        batch_size: int | None = None,
    ) -> WriteStats:
        """Add records; a record whose id is already indexed replaces the old one."""
        started = time.perf_counter()
        check_encoder(self.manifest.encoder, encoder.fingerprint)
        added = updated = truncated = 0
        with self._editing() as (records, vectors):
            seen: set[str] = set()
            for chunk in chunks:
                _check_ids(chunk, seen)
                if not chunk:
                    continue
                matrix = _encode(encoder, chunk, batch_size, show_progress)
                truncated += encoder.truncated
                old = records.rowids_of(record.id for record in chunk)
                _drop(records, vectors, list(old.values()))
                vectors.add(matrix, records.insert(chunk))
                updated += len(old)
                added += len(chunk) - len(old)
        self.stats = WriteStats(
            count=self.count,
            added=added,
            updated=updated,
            truncated=truncated,
            seconds=time.perf_counter() - started,
        )
        return self.stats

    def delete(self, ids: Iterable[str]) -> int:
        """Remove records by user id; returns how many. Unknown ids change nothing."""
        wanted = list(dict.fromkeys(ids))
        known = self.records.rowids_of(wanted)
        unknown = [repr(ident) for ident in wanted if ident not in known]
        if unknown:
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise InputError(f"unknown id(s) {', '.join(unknown[:20])}{more}: nothing was deleted")
        if wanted:
            with self._editing() as (records, vectors):
                _drop(records, vectors, list(records.rowids_of(wanted).values()))
        return len(wanted)

    @contextlib.contextmanager
    def _editing(self) -> Iterator[tuple[RecordStore, VectorIndex]]:
        """Yield writable copies of the records and vectors; when the block ends they
        are compacted, saved, checked and swapped in, and this store reloads them.

        The folder's write lock is held from the version check to the swap: a second
        writer waits, then finds the version changed and refuses, so no change is lost.
        """
        with atomic.locked(self.path):
            if IndexStore.current_version(self.path) != self.version:
                raise IndexFolderError(
                    f"{self.path} changed on disk since it was opened: open it again, then write"
                )
            section = self.manifest.index
            with atomic.replacing(self.path) as staging:
                shutil.copyfile(self.path / RECORDS_FILE, staging / RECORDS_FILE)
                records = RecordStore.open(staging / RECORDS_FILE, writable=True)
                try:
                    vectors = VectorIndex.load(
                        self.path / VECTORS_FILE, section.type, section.params
                    )
                    yield records, vectors
                    vectors = _compacted(records, vectors)
                    records.commit()
                    live, deleted = records.counts()
                finally:
                    records.close()
                manifest = dataclasses.replace(
                    self.manifest,
                    semsearch_version=_semsearch_version(),
                    updated=utc_now(),
                    index=dataclasses.replace(section, count=live, deleted=deleted),
                )
                _save(staging, manifest, vectors)
                IndexStore.open(staging).close()
        self._reload()

    def _reload(self) -> None:
        fresh = IndexStore.open(self.path)
        self.records.close()
        self.manifest, self.vectors, self.records = fresh.manifest, fresh.vectors, fresh.records
        self.version, self._tombstones = fresh.version, fresh._tombstones

    def close(self) -> None:
        self.records.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _peek_version(path: Path) -> str | None:
    try:
        return Manifest.read(path).version
    except IndexFolderError:
        return None


def _drop(records: RecordStore, vectors: VectorIndex, rowids: list[int]) -> None:
    """Remove records with their vectors, or tombstone them where FAISS cannot remove."""
    if not rowids:
        return
    if vectors.can_remove:
        vectors.remove(np.array(rowids, dtype=np.int64))
        records.remove(rowids)
    else:
        records.tombstone(rowids)


def _compacted(records: RecordStore, vectors: VectorIndex) -> VectorIndex:
    """Rebuild an hnsw index without its tombstoned vectors once they pass TOMBSTONE_LIMIT."""
    dead = records.tombstones()
    if not dead or len(dead) <= TOMBSTONE_LIMIT * vectors.ntotal:
        return vectors
    rebuilt = vectors.without(dead)
    records.remove(dead)
    return rebuilt
