""".csv and .tsv files: the delimiter is detected from the first row (or given), the
columns are named by a header row (or, without one, numbered from 1), and rows with fewer
fields than the header are reported, never silently read as if whole."""

from __future__ import annotations

import csv
from collections.abc import Callable, Generator
from contextlib import closing
from itertools import zip_longest
from pathlib import Path

from semsearch.corpus.base import Fields, Rows, Table, input_error, read_lines
from semsearch.errors import ConfigError, InputError
from semsearch.text import echoed

DELIMITERS = (",", ";", "\t", "|")
"""The delimiters detection chooses from, in the order that breaks a tie."""
DEFAULT_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_NAMED = {"tab": "\t", "\\t": "\t"}  # a tab is hard to type in a shell
_CSV_FIELD_LIMIT = 2**31 - 1  # the largest limit csv accepts on every platform
_DETECT_CHARS = 1 << 16  # how much of a first row that spans lines detection looks at


def parse_delimiter(value: str) -> str:
    """The delimiter a user typed: one character, or `tab` (also written `\\t`)."""
    char = _NAMED.get(value.lower(), value)
    if len(char) != 1 or char in '"\r\n':
        raise ConfigError(
            f"a delimiter is one character other than a quote or a line end "
            f"(or 'tab'), got {echoed(value)}",
            setting="delimiter",
        )
    return char


def detect_delimiter(path: Path, default: str) -> str:
    """The one of `DELIMITERS` that occurs most often outside quotes in the first non-blank
    row; the format's own (`default`) when none occurs or it ties for the most."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted, seen = False, 0
    with closing(read_lines(path)) as lines:
        for _, text in lines:
            if not quoted and not text.strip():
                continue  # blank lines before the first row
            for char in text:
                if char == '"':
                    quoted = not quoted
                elif not quoted and char in counts:
                    counts[char] += 1
            seen += len(text)
            if not quoted or seen > _DETECT_CHARS:
                break
    most = max(counts.values())
    if most == 0 or counts.get(default) == most:
        return default
    return next(char for char in DELIMITERS if counts[char] == most)


def _csv_problem(exc: csv.Error) -> str:
    """csv's message, less its advice on opening files, which is not the user's to take."""
    if "new-line character seen in unquoted field" in str(exc):
        return "bad CSV (a carriage return inside an unquoted field); quote that field"
    return f"bad CSV ({exc}); check the quotes"


class DelimitedTable(Table):
    """CSV or TSV. With a header the columns are its names; without one they are named
    by position, "1", "2", ..., after the first row. A row with fewer fields than the
    columns reads its missing fields as empty and is reported to `short_row(line,
    fields)`; a row with more is an error, since which column a field belongs to is lost.
    """

    def __init__(self, path: Path, default: str, delimiter: str | None, header: bool) -> None:
        self.delimiter = delimiter or detect_delimiter(path, default)
        self.delimiter_given = delimiter is not None
        self.header = header
        self.short_row: Callable[[int, int], None] | None = None
        super().__init__(path)

    @property
    def first_row(self) -> str:
        """What names the columns, in the user's words."""
        return "the header" if self.header else "the first row"

    def describe(self) -> str:
        how = "as given" if self.delimiter_given else "detected"
        layout = "" if self.header else "; no header: columns are numbered from 1"
        return f"fields separated by {self.delimiter!r} ({how}){layout}"

    def _records(self) -> Generator[tuple[int, list[str]], None, None]:
        """Non-blank CSV rows with their starting line; strict quoting so a stray quote is
        an error at its row instead of silently swallowing the rows after it."""
        csv.field_size_limit(_CSV_FIELD_LIMIT)
        with closing(read_lines(self.path)) as lines:
            reader = csv.reader((text for _, text in lines), delimiter=self.delimiter, strict=True)
            start = 1
            while True:
                try:
                    row = next(reader, None)
                except csv.Error as exc:
                    raise input_error(self.path, start, _csv_problem(exc)) from None
                if row is None:
                    return
                if row:
                    yield start, row
                start = reader.line_num + 1

    def _read_columns(self) -> list[str]:
        with closing(self._records()) as records:
            line, first = next(records, (0, []))
        if not self.header:
            return [str(position) for position in range(1, len(first) + 1)]
        repeated = sorted({name for name in first if first.count(name) > 1})
        if repeated:
            named = ", ".join(repeated)
            raise input_error(self.path, line, f"the header repeats column(s) {named}")
        return first

    def rows(self) -> Rows:
        with closing(self._records()) as records:
            if self.header:
                next(records, None)  # the header, read at open
            for line, row in records:
                if len(row) > len(self.columns):
                    raise input_error(
                        self.path,
                        line,
                        f"{len(row)} fields but {self.first_row} has {len(self.columns)}; "
                        f"quote fields that contain {self.delimiter!r}",
                    )
                if len(row) < len(self.columns) and self.short_row is not None:
                    self.short_row(line, len(row))
                yield line, dict(zip_longest(self.columns, row, fillvalue=""))

    def fields(
        self, text_field: str | None, answer_field: str | None, id_field: str | None
    ) -> Fields:
        """With a header, by name (see `Table.fields`). Without one, the fields not named
        take the columns not named, in order: the text, then the answer; the id is the
        row number unless named."""
        if self.header or not self.columns:
            return super().fields(text_field, answer_field, id_field)
        text, answer, ident = (self._given(name) for name in (text_field, answer_field, id_field))
        free = iter(c for c in self.columns if c not in (text, answer, ident))
        text = text or next(free, None)
        if text is None:
            raise InputError(
                f"{self.path}: every column is taken by the answer or the id; "
                "name the column to embed as the text field",
                setting="text_field",
            )
        answer = answer or next(free, None)
        return Fields(text, answer, ident, None in (text_field, answer_field, id_field))
