"""Metadata filters in records.sqlite: which fields are filterable, their indexed
columns, and a parsed filter (semsearch.filters) turned into parameterised SQL.

Every top-level metadata field that holds a string or a number gets a column of its
own in `records` (named f1, f2, ... by this module, never by the data) with an SQLite
index on it, so a filter selects its entries by index lookups instead of decoding every
entry's metadata JSON. The `filter_fields` table maps field names to columns and says
what kinds of values each has held (text, numbers), so that comparing a field with a
value of a kind it never holds is refused instead of silently matching nothing.
Booleans, nulls, lists and objects are not filterable: their entries have NULL there.

An index written before filters has no `filter_fields` table; filtering it is refused
with the advice to rebuild it (its files are read-only and checksummed, so the columns
are not added on the fly).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from semsearch.errors import FilterError
from semsearch.filters import ORDER, And, Compare, Filter, In, Not, Or, Value

log = logging.getLogger("semsearch")

TABLE = "filter_fields"
SCHEMA = f"""
CREATE TABLE {TABLE} (
    name TEXT PRIMARY KEY,
    col TEXT UNIQUE NOT NULL,
    text INTEGER NOT NULL DEFAULT 0,   -- 1: some entry held a string here
    number INTEGER NOT NULL DEFAULT 0  -- 1: some entry held a number here
)
"""
MAX_FIELDS = 64
"""Filterable fields per index: a corpus with more metadata keys (a feature dump) gets
its first 64 in order of appearance, and a warning naming how many were left out."""

_NUMERIC = "typeof({col}) IN ('integer', 'real')"


@dataclass(frozen=True)
class Column:
    """One filterable field: its column and the kinds of values it has held."""

    name: str
    col: str
    text: bool
    number: bool

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, held in (("text", self.text), ("number", self.number)) if held]


def is_filterable(value: Any) -> bool:
    """A string or a number (not a boolean: JSON's true is not the number 1)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def has_filters(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    return found is not None


def read_columns(connection: sqlite3.Connection) -> dict[str, Column]:
    """Field name -> Column, in the order the fields were first seen."""
    rows = connection.execute(f"SELECT name, col, text, number FROM {TABLE} ORDER BY rowid")
    return {name: Column(name, col, bool(text), bool(number)) for name, col, text, number in rows}


def add_columns(
    connection: sqlite3.Connection, columns: dict[str, Column], metadata: Iterable[dict[str, Any]]
) -> dict[str, Column]:
    """Give every new filterable field of `metadata` its indexed column and note the kinds
    of values seen; returns the updated map (also written to the table)."""
    seen: dict[str, tuple[bool, bool]] = {}
    for entry in metadata:
        for name, value in entry.items():
            if is_filterable(value):
                text, number = seen.get(name, (False, False))
                seen[name] = (text or isinstance(value, str), number or not isinstance(value, str))
    updated = dict(columns)
    left_out = []
    for name, (text, number) in seen.items():
        old = updated.get(name)
        if old is None:
            if len(updated) >= MAX_FIELDS:
                left_out.append(name)
                continue
            col = f"f{len(updated) + 1}"
            connection.execute(f"ALTER TABLE records ADD COLUMN {col}")  # no type: kept as given
            connection.execute(f"CREATE INDEX records_{col} ON records ({col})")
            connection.execute(f"INSERT INTO {TABLE} (name, col) VALUES (?, ?)", (name, col))
            old = Column(name, col, False, False)
        if (text and not old.text) or (number and not old.number):
            old = Column(name, old.col, old.text or text, old.number or number)
            connection.execute(
                f"UPDATE {TABLE} SET text = ?, number = ? WHERE name = ?",
                (int(old.text), int(old.number), name),
            )
        updated[name] = old
    if left_out:
        log.warning(
            "only %d metadata fields are filterable; %d more (%s) are stored but cannot "
            "be filtered on",
            MAX_FIELDS,
            len(left_out),
            ", ".join(left_out[:5]) + (" ..." if len(left_out) > 5 else ""),
        )
    return updated


def column_values(columns: dict[str, Column], metadata: dict[str, Any]) -> list[Value | None]:
    """One entry's values for the columns, in the map's order (NULL: not filterable)."""
    return [value if is_filterable(value := metadata.get(name)) else None for name in columns]


def compile_filter(
    tree: Filter, columns: dict[str, Column] | None, where: str = "this index"
) -> tuple[str, list[Value]]:
    """SQL that is true for the entries `tree` selects, and its parameters; the SQL holds
    only this module's words and column names. `columns` None: an index from before
    filters (refused, naming `where`)."""
    if columns is None:
        raise FilterError(
            f"{where} was built before filters: rebuild it with `semsearch index` to filter "
            "on its metadata",
            setting="where",
        )
    params: list[Value] = []
    return _sql(tree, columns, params), params


def _sql(tree: Filter, columns: dict[str, Column], params: list[Value]) -> str:
    if isinstance(tree, And | Or):
        joiner = " AND " if isinstance(tree, And) else " OR "
        return "(" + joiner.join(_sql(part, columns, params) for part in tree.parts) + ")"
    if isinstance(tree, Not):  # the complement: an unknown (NULL) operand counts as false
        return f"(NOT coalesce({_sql(tree.part, columns, params)}, 0))"
    column = _column(tree.field, columns)
    values = tree.values if isinstance(tree, In) else (tree.value,)
    if isinstance(tree, Compare) and tree.op in ORDER and not column.number:
        raise FilterError(
            f"filter field {column.name!r} holds text, not numbers: {tree.op} compares numbers",
            setting="where",
        )
    for value in values:
        _check_kind(column, value)
    params.extend(values)
    col = column.col
    if isinstance(tree, In):
        return f"({col} IN ({','.join('?' * len(values))}))"
    if tree.op == "=":
        return f"({col} = ?)"
    if tree.op == "!=":
        return f"({col} IS NOT NULL AND {col} <> ?)"
    # SQLite orders every number before every string: only numbers may be compared
    return f"({_NUMERIC.format(col=col)} AND {col} {tree.op} ?)"


def _column(name: str, columns: dict[str, Column]) -> Column:
    column = columns.get(name)
    if column is None:
        known = ", ".join(columns) if columns else None
        there = (
            f"the filterable fields are {known}"
            if known
            else "this index has no filterable metadata fields"
        )
        raise FilterError(f"unknown filter field {name!r}: {there}", setting="where")
    return column


def _check_kind(column: Column, value: Value) -> None:
    if isinstance(value, str) and not column.text:
        raise FilterError(
            f"filter field {column.name!r} holds numbers, not text: compare it with a "
            f"number, not {value!r}",
            setting="where",
        )
    if not isinstance(value, str) and not column.number:
        raise FilterError(
            f"filter field {column.name!r} holds text, not numbers: quote the value "
            f"('{value}') to compare it as text",
            setting="where",
        )


def distinct_counts(connection: sqlite3.Connection, columns: Sequence[Column]) -> dict[str, int]:
    """How many distinct values each field holds among the live entries."""
    return {
        column.name: int(
            connection.execute(
                f"SELECT count(DISTINCT {column.col}) FROM records WHERE deleted = 0"
            ).fetchone()[0]
        )
        for column in columns
    }
