"""records.sqlite: ids, texts, answers and metadata of the indexed entries.

The SQLite rowid is the vector's FAISS id. An hnsw index cannot drop a vector, so a
deleted or replaced entry becomes a tombstone row (deleted = 1) until the index is
rebuilt: its text, answer and metadata are erased at once, and its user id is rewritten
to TOMBSTONE_PREFIX + rowid so that the id is free to be added again (ids are UNIQUE).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from semsearch.corpus import Record
from semsearch.errors import IndexFolderError, InputError
from semsearch.filters import Filter
from semsearch.index import filtering

SCHEMA = """
CREATE TABLE records (
    rowid INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    text TEXT NOT NULL,
    answer TEXT NOT NULL,
    metadata TEXT NOT NULL, -- a JSON object
    deleted INTEGER NOT NULL DEFAULT 0
)
"""
TOMBSTONE_PREFIX = "\x00deleted:"
_BATCH = 500  # values per IN (...) query, well under SQLite's variable limit


def _batches(values: Sequence[int] | Sequence[str]) -> Iterator[list]:
    for start in range(0, len(values), _BATCH):
        yield list(values[start : start + _BATCH])


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


def _record(row: tuple[str, str, str, str]) -> Record:
    return Record(id=row[0], text=row[1], answer=row[2], metadata=json.loads(row[3]))


def _writable(path: Path) -> sqlite3.Connection:
    """No journal file, no syncs: a temporary copy is thrown away on failure and fsynced
    as a whole before it is swapped in; MEMORY journaling still allows rollback."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = MEMORY")
    connection.execute("PRAGMA synchronous = OFF")
    return connection


class RecordStore:
    """One connection to records.sqlite: read-only for searching, writable inside the
    temporary copy that a build, add or delete works on."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path
        self.columns: dict[str, filtering.Column] | None = None  # None: built before filters

    @classmethod
    def create(cls, path: Path) -> RecordStore:
        connection = _writable(path)
        connection.executescript(SCHEMA + ";" + filtering.SCHEMA)
        store = cls(connection, path)
        store.columns = {}
        return store

    @classmethod
    def open(cls, path: Path, *, writable: bool = False) -> RecordStore:
        """Read-only unless `writable` (only for the temporary copy a write works on)."""
        if writable:
            connection = _writable(path)
        else:
            # immutable: the file never changes in place (writes swap whole folders),
            # so SQLite needs no locks and the connection can serve several threads.
            uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        store = cls(connection, path)
        try:
            store.counts()
            if filtering.has_filters(connection):
                store.columns = filtering.read_columns(connection)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise IndexFolderError(
                f"{path} is not a readable records database ({exc}): rebuild the index"
            ) from None
        return store

    def insert(self, records: Sequence[Record]) -> np.ndarray:
        """Append rows; returns their rowids (the vectors' FAISS ids) as int64."""
        cursor = self.connection.cursor()
        rowids = np.empty(len(records), dtype=np.int64)
        columns = self.columns
        if columns is not None:
            columns = self.columns = filtering.add_columns(
                self.connection, columns, (record.metadata for record in records)
            )
        names = "".join(f", {column.col}" for column in (columns or {}).values())
        insert = (
            f"INSERT INTO records (id, text, answer, metadata{names}) "
            f"VALUES (?, ?, ?, ?{', ?' * len(columns or {})})"
        )
        for position, record in enumerate(records):
            try:
                metadata = json.dumps(record.metadata, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"metadata of record {record.id!r} cannot be stored as JSON: {exc}"
                ) from None
            values = filtering.column_values(columns, record.metadata) if columns else []
            cursor.execute(insert, (record.id, record.text, record.answer, metadata, *values))
            assert cursor.lastrowid is not None  # set by every successful INSERT
            rowids[position] = cursor.lastrowid
        return rowids

    def by_rowids(self, rowids: Iterable[int]) -> dict[int, Record]:
        """Live records for the given rowids (tombstones and unknown rowids left out)."""
        found: dict[int, Record] = {}
        for batch in _batches(sorted(set(rowids))):
            rows = self.connection.execute(
                "SELECT id, text, answer, metadata, rowid FROM records "
                f"WHERE deleted = 0 AND rowid IN ({_placeholders(len(batch))})",
                batch,
            )
            found.update((row[4], _record(row[:4])) for row in rows)
        return found

    def live(self) -> Iterator[tuple[int, Record]]:
        """Every live record with its rowid, in rowid order."""
        rows = self.connection.execute(
            "SELECT id, text, answer, metadata, rowid FROM records WHERE deleted = 0 ORDER BY rowid"
        )
        for row in rows:
            yield row[4], _record(row[:4])

    def by_ids(self, ids: Iterable[str]) -> dict[str, Record]:
        """Live records for the given user ids (unknown ids left out)."""
        found: dict[str, Record] = {}
        for batch in _batches(sorted(set(ids))):
            rows = self.connection.execute(
                "SELECT id, text, answer, metadata FROM records "
                f"WHERE deleted = 0 AND id IN ({_placeholders(len(batch))})",
                batch,
            )
            found.update((row[0], _record(row)) for row in rows)
        return found

    def select(self, tree: Filter, where: str = "this index") -> np.ndarray:
        """The rowids of the live entries that `tree` selects, ascending (int64); a
        filter this index cannot run raises FilterError (naming `where`)."""
        condition, params = filtering.compile_filter(tree, self.columns, where)
        rows = self.connection.execute(
            f"SELECT rowid FROM records WHERE deleted = 0 AND {condition} ORDER BY rowid", params
        )
        return np.fromiter((row[0] for row in rows), dtype=np.int64)

    def filter_fields(self) -> dict[str, dict[str, object]] | None:
        """Each filterable field: the kinds of values it holds and how many distinct
        ones among the live entries; None for an index built before filters."""
        if self.columns is None:
            return None
        counts = filtering.distinct_counts(self.connection, list(self.columns.values()))
        return {
            name: {"kinds": column.kinds, "values": counts[name]}
            for name, column in self.columns.items()
        }

    def largest_number_id(self) -> int:
        """The largest id made of digits only (row-number ids), 0 when there is none."""
        found = self.connection.execute(
            "SELECT max(CAST(id AS INTEGER)) FROM records WHERE id <> '' AND id NOT GLOB '*[^0-9]*'"
        ).fetchone()[0]
        return int(found or 0)

    def rowids_of(self, ids: Iterable[str]) -> dict[str, int]:
        """User id -> rowid for the live records among `ids`."""
        found: dict[str, int] = {}
        for batch in _batches(sorted(set(ids))):
            rows = self.connection.execute(
                "SELECT id, rowid FROM records "
                f"WHERE deleted = 0 AND id IN ({_placeholders(len(batch))})",
                batch,
            )
            found.update(rows)
        return found

    def tombstone(self, rowids: Iterable[int]) -> None:
        """Mark rows deleted while their vectors stay in the index (hnsw)."""
        erased = "".join(f", {column.col} = NULL" for column in (self.columns or {}).values())
        self.connection.executemany(
            "UPDATE records SET deleted = 1, id = ? || rowid, text = '', answer = '', "
            f"metadata = '{{}}'{erased} WHERE rowid = ?",
            [(TOMBSTONE_PREFIX, int(rowid)) for rowid in rowids],
        )

    def remove(self, rowids: Iterable[int]) -> None:
        """Drop rows outright: their vectors were removed too."""
        self.connection.executemany(
            "DELETE FROM records WHERE rowid = ?", [(int(rowid),) for rowid in rowids]
        )

    def tombstones(self) -> set[int]:
        return {
            row[0] for row in self.connection.execute("SELECT rowid FROM records WHERE deleted = 1")
        }

    def counts(self) -> tuple[int, int]:
        """(live records, tombstones)."""
        totals = dict(
            self.connection.execute("SELECT deleted, count(*) FROM records GROUP BY deleted")
        )
        return totals.get(0, 0), totals.get(1, 0)

    def commit(self) -> None:
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()
