"""The index folder as a whole: build, open, search, add and delete.

Every write works on a temporary copy next to the folder and swaps it in only once it
has been written, fsynced and opened again successfully (see `atomic`), so a crash,
an exception or Ctrl-C leaves the previous index answering exactly as before."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch import atomic
from semsearch.corpus import Record
from semsearch.errors import IndexFolderError, InputError
from semsearch.filters import Filter
from semsearch.fingerprint import check as check_fingerprint
from semsearch.index import threshold, types
from semsearch.index.checks import check_counts, checked_manifest
from semsearch.index.guards import check_writable, refuse_foreign, replaced_index, write_errors
from semsearch.index.layout import RECORDS, SECOND, VECTORS
from semsearch.index.lexical import LexicalIndex
from semsearch.index.live import live_top
from semsearch.index.manifest import Manifest, peek_version, utc_now
from semsearch.index.records import RecordStore
from semsearch.index.selection import Selection, Selections
from semsearch.index.summary import summary
from semsearch.index.types import VectorIndex
from semsearch.index.views import Parts
from semsearch.index.writes import (
    Engine,
    FusionChooser,
    Staged,
    VectorEncoder,
    WriteStats,
    check_ids,
    keep_fusion,
    save_folder,
    semsearch_version,
    write_new,
)
from semsearch.params import parse_k

log = logging.getLogger("semsearch")

_OPEN_ATTEMPTS = 3
_LOADING = threading.Lock()  # np.load reads headers with ast, unsafe in threads (gh-106905)


class IndexStore:
    """An opened index folder: manifest, FAISS vectors and SQLite records, kept consistent.

    Open one with `IndexStore.open` or `IndexStore.build`. Searches may run from several
    threads at once. `add` and `delete` reload this object when they finish, so run them
    while it serves no searches; other processes and objects keep the version they opened
    until they open it again (poll `current_version` to notice).
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        vectors: VectorIndex,
        records: RecordStore,
        second: VectorIndex | None = None,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self.path = path
        self.folder = path  # where the files were read: `path`, or its crash leftover
        self.manifest = manifest
        self.vectors = vectors
        self.records = records
        self.parts = Parts.from_json(manifest.parts)
        self.second = second  # the second dense view (semsearch.index.views)
        self.lexical = lexical
        self.version = manifest.version
        self.stats: WriteStats | None = None
        self._tombstones = records.tombstones()
        self.select = Selections(self._selected)

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> IndexStore:
        """Open and check an index folder; the caller builds the encoder from
        `store.manifest.encoder` (`semsearch.fingerprint`).

        A write that swaps in a new version while this reads is noticed (the manifest
        changed meanwhile) and the open starts again, so the files always match."""
        path = Path(path)
        for _ in range(_OPEN_ATTEMPTS):
            folder = atomic.interrupted(path) or path  # opening never changes a folder
            before = peek_version(folder)
            try:
                with _LOADING:
                    store = cls._load(folder)
                store.path = path  # `folder` may be where a crash left it
            except IndexFolderError:
                if peek_version(folder) == before:
                    raise
                continue
            if store.version == peek_version(folder):
                if folder != path:
                    log.warning(
                        "%s is missing after an interrupted write: reading the previous "
                        "version from %s (the next add, delete or index puts it back)",
                        path,
                        folder.name,
                    )
                return store
            store.close()
        raise IndexFolderError(f"{path} kept changing while it was being opened: try again")

    @classmethod
    def _load(cls, path: Path) -> IndexStore:
        manifest = checked_manifest(path)
        parts, section = Parts.from_json(manifest.parts), manifest.index
        kind = types.get(section.type)
        vectors = kind.load(path / VECTORS, section.params)
        second = kind.load(path / SECOND, section.params) if parts.second else None
        lexical = LexicalIndex.load(path) if parts.lexical else None
        records = RecordStore.open(path / RECORDS)
        try:
            check_counts(path, section, records.counts(), vectors, second, lexical)
        except IndexFolderError:
            records.close()
            raise
        return cls(path, manifest, vectors, records, second, lexical)

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
        engine: Engine | None = None,
        choose_fusion: FusionChooser | None = None,
    ) -> IndexStore:
        """Encode every chunk (in this process, or with `engine`) and write a new index
        folder at `path`, replacing any index there only once the new one is complete.

        `choose_fusion` (semsearch.search.adaptive.choose) picks the index's own hybrid
        fusion, kept in its manifest; without it the index keeps the fixed one."""

        def write(staging: Path, replaced: tuple[Path, Manifest] | None) -> int:
            truncated = write_new(
                staging,
                chunks,
                encoder,
                index_type=index_type,
                params=params,
                fields=fields,
                show_progress=show_progress,
                batch_size=batch_size,
                engine=engine,
                replaced=replaced,
            )
            if choose_fusion is not None:
                with cls.open(staging) as written:
                    chosen = choose_fusion(written, encoder)
                keep_fusion(staging, chosen)
            return truncated

        return cls.build_with(path, write, index_type=index_type, params=params)

    @classmethod
    def build_with(
        cls,
        path: str | Path,
        write: Callable[[Path, tuple[Path, Manifest] | None], int],
        *,
        index_type: str = "auto",
        params: dict[str, Any] | None = None,
    ) -> IndexStore:
        """Write a new index folder at `path` with `write(staging, replaced)`, which fills
        the temporary folder and returns how many texts were truncated (`replaced`: the
        index being replaced, if any). The lock, the checks and the atomic swap are the
        same whoever writes: this process (`build`) or Ray workers' shards."""
        started = time.perf_counter()
        path = Path(path)
        refuse_foreign(path)
        check_writable(path)
        types.check(index_type, params)  # bad settings fail before any encoding
        with write_errors(path), atomic.locked(path), atomic.replacing(path) as staging:
            truncated = write(staging, replaced_index(path))
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

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[Record, float]]]:
        """Top-k live records per query vector, best first, scored by inner product
        (= cosine for normalised vectors)."""
        found = self.search_rowids(query_vectors, k)
        records = self.records.by_rowids(rowid for hits in found for rowid, _ in hits)
        return [[(records[rowid], score) for rowid, score in hits] for hits in found]

    def search_rowids(
        self,
        query_vectors: np.ndarray,
        k: int,
        *,
        second: bool = False,
        within: Selection | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top-k live (rowid, score) per query vector, best first, in the indexed texts'
        vectors (or the second view's), among the entries `within` selects where given;
        `records_for` reads the records, so a caller that needs only some of them reads
        only those."""
        index = self.second if second and self.second is not None else self.vectors
        return live_top(index, query_vectors, parse_k(k), self._tombstones, within)

    def _selected(self, tree: Filter) -> Selection:
        """The live entries a parsed filter selects (semsearch.filters); FilterError when
        this index cannot run it (an unknown field, a value of the wrong kind, built
        before filters). `select` is this, kept for the next questions."""
        rowids = self.records.select(tree, str(self.path))
        mask = self.lexical.mask_of(rowids) if self.lexical is not None else None
        return Selection(rowids, mask)

    def records_for(self, rowids: Iterable[int]) -> dict[int, Record]:
        """Live records by rowid (the ids `search_rowids` returns)."""
        return self.records.by_rowids(rowids)

    def get(self, ids: Iterable[str]) -> dict[str, Record]:
        """Live records by user id; unknown ids are left out."""
        return self.records.by_ids(ids)

    def info(self) -> dict[str, Any]:
        """A summary for `semsearch info` and the HTTP health route."""
        return summary(self)

    # -- writing -------------------------------------------------------------------
    def add(
        self,
        chunks: Iterable[Sequence[Record]],
        encoder: VectorEncoder,
        *,
        show_progress: bool | None = None,
        batch_size: int | None = None,
        new_ids: bool = False,
    ) -> WriteStats:
        """Add records; a record whose id is already indexed replaces the old one.

        With `new_ids` (a corpus whose ids are only row numbers), every record gets a new
        number after the largest one in the index instead, so nothing is replaced."""
        started = time.perf_counter()
        self.vectors.kind.check_editable("add")
        check_fingerprint(self.manifest.encoder, encoder.fingerprint)
        added = updated = truncated = 0
        with self._editing() as staged:
            records = staged.records
            seen: set[str] = set()
            following = records.largest_number_id() + 1
            for chunk in chunks:
                if new_ids:
                    chunk = [
                        dataclasses.replace(record, id=str(following + i))
                        for i, record in enumerate(chunk)
                    ]
                    following += len(chunk)
                check_ids(chunk, seen)
                if not chunk:
                    continue
                old = records.rowids_of(record.id for record in chunk)
                staged.drop(list(old.values()))
                truncated += staged.add(chunk, encoder, batch_size, show_progress)
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
        self.vectors.kind.check_editable("delete")
        wanted = list(dict.fromkeys(ids))
        known = self.records.rowids_of(wanted)
        unknown = [repr(ident) for ident in wanted if ident not in known]
        if unknown:
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise InputError(f"unknown id(s) {', '.join(unknown[:20])}{more}: nothing was deleted")
        if wanted:
            with self._editing() as staged:
                staged.drop(list(staged.records.rowids_of(wanted).values()))
        return len(wanted)

    def set_threshold(self, chosen: dict[str, Any]) -> None:
        """Store a threshold (semsearch.index.threshold) through the same write path."""
        with self._editing(chosen):
            pass

    @contextlib.contextmanager
    def _editing(self, chosen: dict[str, Any] | None = None) -> Iterator[Staged]:
        """Yield writable copies of the records and every part; when the block ends they
        are compacted, saved, checked and swapped in, and this store reloads them.

        The folder's write lock is held from the version check to the swap: a second
        writer waits, then finds the version changed and refuses, so no change is lost.
        """
        check_writable(self.path)
        with write_errors(self.path), atomic.locked(self.path):
            atomic.recover(self.path)  # a write puts back what a crash left aside
            if IndexStore.current_version(self.path) != self.version:
                raise IndexFolderError(
                    f"{self.path} changed on disk since it was opened: open it again, then write"
                )
            section, kind = self.manifest.index, self.vectors.kind
            with atomic.replacing(self.path) as staging:
                shutil.copyfile(self.path / RECORDS, staging / RECORDS)
                records = RecordStore.open(staging / RECORDS, writable=True)
                try:
                    staged = Staged(
                        records,
                        kind.load(self.path / VECTORS, section.params),
                        self.second and kind.load(self.path / SECOND, section.params),
                        self.parts,
                    )
                    yield staged
                    staged.compact()
                    records.commit()
                    live, deleted = records.counts()
                    lexical = staged.lexical()
                    generic, kept = threshold.kept(self, staged, chosen)
                finally:
                    records.close()
                manifest = dataclasses.replace(
                    self.manifest,
                    semsearch_version=semsearch_version(),
                    updated=utc_now(),
                    index=dataclasses.replace(section, count=live, deleted=deleted),
                    threshold=kept,
                )
                save_folder(staging, manifest, staged.vectors, staged.second, lexical, generic)
                IndexStore.open(staging).close()
        self._reload()

    def _reload(self) -> None:
        fresh = IndexStore.open(self.path)
        self.records.close()
        self.manifest, self.vectors, self.records = fresh.manifest, fresh.vectors, fresh.records
        self.parts, self.second, self.lexical = fresh.parts, fresh.second, fresh.lexical
        self.version, self._tombstones = fresh.version, fresh._tombstones
        self.select = Selections(self._selected)

    def close(self) -> None:
        self.records.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
