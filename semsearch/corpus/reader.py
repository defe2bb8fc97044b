"""The Corpus: a corpus file or folder opened with its fields fixed, read as Records on
every pass, with the rows it skipped or found short counted and reported."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from semsearch.corpus.base import SUPPORTED, Fields, Record, Table, chunked, input_error
from semsearch.corpus.delimited import DEFAULT_DELIMITERS, DelimitedTable, parse_delimiter
from semsearch.corpus.lines import BeirTable, JsonlTable, TxtTable
from semsearch.corpus.parquet import ParquetTable
from semsearch.errors import InputError
from semsearch.regular import not_regular

log = logging.getLogger("semsearch")


class Corpus:
    """An opened corpus: fields are fixed at open, rows are re-read on every pass.

    Build it with `open_corpus`. Counts of the latest pass: `skipped_empty`, the rows
    skipped for an empty text; `short_rows`, the .csv/.tsv rows with fewer fields than
    the header, whose missing fields were read as empty (a pass that finds any ends with
    a warning on the `semsearch` logger; strict mode refuses them).
    """

    def __init__(self, path: Path, table: Table, fields: Fields, strict: bool) -> None:
        self.path = path
        self.fields = fields
        self.skipped_empty = 0
        self.short_rows = 0
        self.line = 0  # where the latest record starts (FileSet names it in errors)
        self._first_short = 0
        self._table = table
        self._strict = strict
        if isinstance(table, DelimitedTable):
            table.short_row = self._short_row

    @property
    def table(self) -> Table:
        """The file's reader (its `span` limits a pass to one part of the file)."""
        return self._table

    def describe(self) -> str:
        """One line on how the file is read: the fields, and a table's delimiter and header."""
        layout = self._table.describe()
        return f"{self.fields.describe()}; {layout}" if layout else self.fields.describe()

    def __iter__(self) -> Iterator[Record]:
        self.skipped_empty = self.short_rows = self._first_short = 0
        first_line: dict[str, int] = {}
        with closing(self._table.rows()) as rows:
            for number, (line, row) in enumerate(rows, self._table.span.first_row):
                self.line = line
                text = self._table.value(line, row, self.fields.text)
                if not text.strip():
                    self._skip_empty(line)
                    continue
                record = self._record(line, number, row, text)
                if record.id in first_line:
                    raise input_error(
                        self._table.path,
                        line,
                        f"duplicate id {record.id!r} (first on line {first_line[record.id]})",
                    )
                first_line[record.id] = line
                yield record
        if self.short_rows:
            log.warning(self._short_note())

    def chunks(self, size: int) -> Iterator[list[Record]]:
        """Lists of at most `size` records, so callers can encode in batches while streaming."""
        return chunked(self, size)

    def emptiness(self) -> str | None:
        """Why this corpus gives no record, in words; None when it gives one (only as
        far as the first record is read, so the file is refused before a model loads)."""
        records = iter(self)
        try:
            if next(records, None) is not None:
                return None
        finally:
            records.close()  # type: ignore[attr-defined]  # a generator
        if self.skipped_empty:
            return f"every row's text ({self.fields.text!r}) is empty"
        table = self._table
        if isinstance(table, DelimitedTable) and table.header and table.columns:
            return "it has a header row and no records"
        return "the file is empty"

    def _skip_empty(self, line: int) -> None:
        if self._strict:
            raise input_error(
                self._table.path, line, f"empty text in {self.fields.text!r} (strict mode)"
            )
        self.skipped_empty += 1

    def _short_row(self, line: int, count: int) -> None:
        assert isinstance(self._table, DelimitedTable)  # only tables with a header have these
        if self._strict:
            columns, first = len(self._table.columns), self._table.first_row
            raise input_error(
                self._table.path,
                line,
                f"{count} field{'s' * (count != 1)} but {first} has {columns} (strict mode)",
            )
        self.short_rows += 1
        self._first_short = self._first_short or line

    def short_note(self) -> str:
        """The latest pass's warning on short rows; "" where it found none."""
        return self._short_note() if self.short_rows else ""

    def _short_note(self) -> str:
        assert isinstance(self._table, DelimitedTable)
        rows = "1 row" if self.short_rows == 1 else f"{self.short_rows} rows"
        has = "has" if self.short_rows == 1 else "have"
        fields = "its missing fields are" if self.short_rows == 1 else "their missing fields are"
        return (
            f"{rows} of {self._table.path} {has} fewer fields than {self._table.first_row} "
            f"(first: line {self._first_short}); {fields} empty"
        )

    def _record(self, line: int, number: int, row: dict[str, Any], text: str) -> Record:
        fields, table = self.fields, self._table
        ident = str(number) if fields.id is None else table.value(line, row, fields.id)
        if not ident.strip():
            raise input_error(table.path, line, f"empty id in {fields.id!r}")
        answer = text if fields.answer is None else table.value(line, row, fields.answer)
        used = {fields.text, fields.answer, fields.id}
        return Record(ident, text, answer, table.metadata(row, used))


_LINE_FORMATS: dict[str, Callable[[Path], Table]] = {
    ".jsonl": JsonlTable,
    ".txt": TxtTable,
    ".parquet": ParquetTable,
}
CORPUS_SUFFIXES = (*DEFAULT_DELIMITERS, *_LINE_FORMATS)


def _refuse_table_options(path: Path, kind: str, delimiter: str | None, header: bool) -> None:
    """A delimiter or a missing header means something only in .csv and .tsv files."""
    if delimiter is not None:
        raise InputError(
            f"{path}: {kind} has no delimiter; only .csv and .tsv files take one",
            setting="delimiter",
        )
    if not header:
        raise InputError(
            f"{path}: {kind} has no header row to leave out; only .csv and .tsv files do",
            setting="header",
        )


def open_table(path: Path, delimiter: str | None, header: bool) -> Table:
    """The reader of one corpus file, or of a BEIR folder."""
    if path.is_dir():
        _refuse_table_options(path, "a BEIR folder", delimiter, header)
        return BeirTable(path)
    if not path.exists():
        raise InputError(f"corpus not found: {path}")
    kind = not_regular(path.stat().st_mode)
    if kind is not None:  # a FIFO would block, /dev/zero never end a line
        raise InputError(f"{path} is {kind}, not a regular file: give a corpus file")
    suffix = path.suffix.lower()
    if suffix in DEFAULT_DELIMITERS:
        chosen = None if delimiter is None else parse_delimiter(delimiter)
        return DelimitedTable(path, DEFAULT_DELIMITERS[suffix], chosen, header)
    table = _LINE_FORMATS.get(suffix)
    if table is None:
        raise InputError(f"{path}: unsupported corpus format; semsearch reads {SUPPORTED}")
    _refuse_table_options(path, f"a {suffix} file", delimiter, header)
    return table(path)


def open_file(
    path: Path, fields: tuple[str | None, ...], strict: bool, delimiter: str | None, header: bool
) -> Corpus:
    table = open_table(path, delimiter, header)
    return Corpus(path, table, table.fields(*fields), strict)
