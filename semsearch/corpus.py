"""Corpus readers: .csv, .tsv, .jsonl and .txt files and BEIR folders, streamed as Records.

Nothing reads a whole file: files are read in binary one physical line at a time and each
line is decoded on its own, so bad UTF-8 is reported with its line number. Line numbers in
errors are 1-based physical lines of the file; a CSV row whose quoted fields span several
lines is reported at the line it starts on. Without an id field the id is the 1-based data
row number: the header and (in .jsonl) blank lines are not rows; in .txt every line is a
row, so the id is the line number.
"""

from __future__ import annotations

import codecs
import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import islice, zip_longest
from pathlib import Path
from typing import Any

from semsearch.errors import InputError
from semsearch.text import not_utf8

TEXT_NAMES = ("question", "query", "text", "sentence", "title", "content", "body")
ANSWER_NAMES = ("answer", "response", "reply", "text")
ID_NAMES = ("id", "_id", "qid", "doc_id")
BEIR_TEXT = "title+text"
SUPPORTED = ".csv, .tsv, .jsonl and .txt files, or a BEIR folder (one with corpus.jsonl)"
_CSV_FIELD_LIMIT = 2**31 - 1  # the largest limit csv accepts on every platform

Rows = Generator[tuple[int, dict[str, Any]], None, None]


@dataclass(frozen=True)
class Record:
    """One corpus entry: `text` is embedded, `answer` is what a hit returns."""

    id: str
    text: str
    answer: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Fields:
    """Which columns a corpus is read from; stored with an index so `add` can reuse them."""

    text: str
    answer: str | None
    id: str | None
    detected: bool

    def describe(self) -> str:
        """One line telling the user what was picked, so a wrong guess is seen at once."""
        answer = f"answer from {self.answer!r}" if self.answer else "answer is the text"
        ident = f"id from {self.id!r}" if self.id else "id is the row number"
        how = "auto-detected" if self.detected else "as given"
        return f"text from {self.text!r}, {answer}, {ident} ({how})"


def _error(path: Path, line: int, message: str) -> InputError:
    return InputError(f"{path}, line {line}: {message}")


def _norm(name: str) -> str:
    return name.strip().lower()


def _lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """Physical lines decoded one by one, so bad UTF-8 is caught with its line number."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            data = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                yield number, data.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = data[exc.start]
                raise _error(
                    path,
                    number,
                    f"not valid UTF-8 (byte 0x{byte:02x} at byte {exc.start + 1} of the line); "
                    "the file must be UTF-8",
                ) from None


def _json_kind(value: Any) -> str:
    kinds = {bool: "true/false", dict: "an object", list: "an array", str: "a string"}
    return "null" if value is None else kinds.get(type(value), "a number")


def _as_text(path: Path, line: int, column: str, value: Any) -> str:
    """Strings pass; JSON numbers become text (ids like 17); a missing or null value is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _error(path, line, f"{column!r} must be a string or a number, got {_json_kind(value)}")


class _Table(ABC):
    """A corpus file seen as rows of named values; each subclass knows one format."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns = self._read_columns()

    @abstractmethod
    def _read_columns(self) -> list[str]:
        """The column names, from the header or first record only."""

    @abstractmethod
    def rows(self) -> Rows:
        """Data rows, each with the physical line it starts on."""

    def fields(
        self, text_field: str | None, answer_field: str | None, id_field: str | None
    ) -> Fields:
        """Check the names the user gave against the columns and detect the others."""
        detected = None in (text_field, answer_field, id_field)
        if not self.columns:  # an empty file: nothing to check against, nothing will be read
            return Fields(text_field or "text", answer_field, id_field, detected)
        text, answer, ident = (self._given(name) for name in (text_field, answer_field, id_field))
        taken = {name for name in (text, answer, ident) if name is not None}
        if text is None:
            text = self._detect(TEXT_NAMES, taken)
            if text is None:
                raise InputError(
                    f"{self.path}: no text column found; columns found: {', '.join(self.columns)}; "
                    "name the one to embed as the text field",
                    setting="text_field",
                )
            taken.add(text)
        if answer is None:
            answer = self._detect(ANSWER_NAMES, taken)
        if ident is None:
            ident = self._detect(ID_NAMES, taken)
        return Fields(text, answer, ident, detected)

    def _given(self, name: str | None) -> str | None:
        """The column the user named: an exact match, else a case-insensitive one."""
        if name is None:
            return None
        matches = [c for c in self.columns if c == name] or [
            c for c in self.columns if _norm(c) == _norm(name)
        ]
        if not matches:
            raise InputError(
                f"{self.path} has no column {name!r}; columns found: {', '.join(self.columns)}"
            )
        return matches[0]

    def _detect(self, names: tuple[str, ...], taken: set[str]) -> str | None:
        """The column of the first known name (in `names` order) not already used by a field."""
        found = (c for name in names for c in self.columns if c not in taken and _norm(c) == name)
        return next(found, None)

    def value(self, line: int, row: dict[str, Any], column: str) -> str:
        return _as_text(self.path, line, column, row.get(column))

    def metadata(self, row: dict[str, Any], used: set[str | None]) -> dict[str, Any]:
        return {key: value for key, value in row.items() if key not in used}


class _CsvTable(_Table):
    """CSV or TSV with a header row; missing trailing cells read as empty."""

    def __init__(self, path: Path, delimiter: str) -> None:
        self.delimiter = delimiter
        super().__init__(path)

    def _records(self) -> Generator[tuple[int, list[str]], None, None]:
        """Non-blank CSV rows with their starting line; strict quoting so a stray quote is
        an error at its row instead of silently swallowing the rows after it."""
        csv.field_size_limit(_CSV_FIELD_LIMIT)
        with closing(_lines(self.path)) as lines:
            reader = csv.reader((text for _, text in lines), delimiter=self.delimiter, strict=True)
            start = 1
            while True:
                try:
                    row = next(reader, None)
                except csv.Error as exc:
                    raise _error(self.path, start, f"bad CSV ({exc}); check the quotes") from None
                if row is None:
                    return
                if row:
                    yield start, row
                start = reader.line_num + 1

    def _read_columns(self) -> list[str]:
        with closing(self._records()) as records:
            line, header = next(records, (0, []))
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise _error(self.path, line, f"the header repeats column(s) {', '.join(repeated)}")
        return header

    def rows(self) -> Rows:
        with closing(self._records()) as records:
            next(records, None)  # the header, read at open
            for line, row in records:
                if len(row) > len(self.columns):
                    raise _error(
                        self.path,
                        line,
                        f"{len(row)} fields but the header has {len(self.columns)}; "
                        f"quote fields that contain {self.delimiter!r}",
                    )
                yield line, dict(zip_longest(self.columns, row, fillvalue=""))


def _json_object(path: Path, line: int, text: str) -> dict[str, Any]:
    """One JSON object, or an error naming the line: no NaN/Infinity, no lone surrogate
    (only a \\u escape gives one), and limits on depth and number size."""

    def refuse_constant(name: str) -> Any:
        raise _error(path, line, f"{name} is not a JSON value: give a number, a string or null")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise _error(path, line, f"bad JSON: {exc.msg} (column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:  # too deep; an integer of 4,300+ digits
        detail = "nested too deeply to read" if isinstance(exc, RecursionError) else str(exc)
        raise _error(path, line, f"bad JSON: {detail}") from None
    if not isinstance(value, dict):
        raise _error(path, line, f"expected a JSON object {{...}}, got {_json_kind(value)}")
    problem = "\\u" in text and not_utf8(json.dumps(value, ensure_ascii=False), from_json=True)
    if problem:
        raise _error(path, line, f"holds {problem}, which is not text: fix that escape")
    return value


class _JsonlTable(_Table):
    """One JSON object per line; the columns are the keys of the first object."""

    def _read_columns(self) -> list[str]:
        with closing(self.rows()) as rows:
            _, first = next(rows, (0, {}))
        return list(first)

    def rows(self) -> Rows:
        with closing(_lines(self.path)) as lines:
            for line, text in lines:
                if text.strip():
                    yield line, _json_object(self.path, line, text)


class _BeirTable(_JsonlTable):
    """A BEIR corpus.jsonl; the default text is title and text joined, as BEIR's models do."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "corpus.jsonl")

    def _read_columns(self) -> list[str]:
        columns = super()._read_columns()
        return [*columns, BEIR_TEXT] if columns else columns

    def fields(
        self, text_field: str | None, answer_field: str | None, id_field: str | None
    ) -> Fields:
        chosen = super().fields(text_field or BEIR_TEXT, answer_field or "text", id_field or "_id")
        return replace(chosen, detected=None in (text_field, answer_field, id_field))

    def value(self, line: int, row: dict[str, Any], column: str) -> str:
        if column != BEIR_TEXT:
            return super().value(line, row, column)
        parts = (super().value(line, row, "title"), super().value(line, row, "text"))
        return " ".join(part for part in parts if part.strip())

    def metadata(self, row: dict[str, Any], used: set[str | None]) -> dict[str, Any]:
        """Other top-level keys (the title, by default), then the entries of `metadata`."""
        meta = super().metadata(row, used)
        if isinstance(meta.get("metadata"), dict):
            meta.update(meta.pop("metadata"))
        return meta


class _TxtTable(_Table):
    """One text per line, no columns: the id is the line number and the answer the text."""

    def _read_columns(self) -> list[str]:
        return ["line"]

    def rows(self) -> Rows:
        with closing(_lines(self.path)) as lines:
            for line, text in lines:
                yield line, {"line": text.rstrip("\r\n")}

    def fields(
        self, text_field: str | None, answer_field: str | None, id_field: str | None
    ) -> Fields:
        if (text_field, answer_field, id_field) != (None, None, None):
            raise InputError(
                f"{self.path}: a .txt corpus is one text per line and has no columns; "
                "give no text, answer or id field, or use .csv or .jsonl",
                setting="text_field",
            )
        return Fields("line", None, None, detected=True)


class Corpus:
    """An opened corpus: fields are fixed at open, rows are re-read on every pass.

    Build it with `open_corpus`. `skipped_empty` counts the rows of the latest pass
    that were skipped for an empty text.
    """

    def __init__(self, path: Path, table: _Table, fields: Fields, strict: bool) -> None:
        self.path = path
        self.fields = fields
        self.skipped_empty = 0
        self._table = table
        self._strict = strict

    def __iter__(self) -> Iterator[Record]:
        self.skipped_empty = 0
        first_line: dict[str, int] = {}
        with closing(self._table.rows()) as rows:
            for number, (line, row) in enumerate(rows, 1):
                text = self._table.value(line, row, self.fields.text)
                if not text.strip():
                    self._skip_empty(line)
                    continue
                record = self._record(line, number, row, text)
                if record.id in first_line:
                    raise _error(
                        self._table.path,
                        line,
                        f"duplicate id {record.id!r} (first on line {first_line[record.id]})",
                    )
                first_line[record.id] = line
                yield record

    def chunks(self, size: int) -> Iterator[list[Record]]:
        """Lists of at most `size` records, so callers can encode in batches while streaming."""
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        records = iter(self)
        while chunk := list(islice(records, size)):
            yield chunk

    def _skip_empty(self, line: int) -> None:
        if self._strict:
            raise _error(
                self._table.path, line, f"empty text in {self.fields.text!r} (strict mode)"
            )
        self.skipped_empty += 1

    def _record(self, line: int, number: int, row: dict[str, Any], text: str) -> Record:
        fields, table = self.fields, self._table
        ident = table.value(line, row, fields.id) if fields.id else str(number)
        if not ident.strip():
            raise _error(table.path, line, f"empty id in {fields.id!r}")
        answer = table.value(line, row, fields.answer) if fields.answer else text
        used = {fields.text, fields.answer, fields.id}
        return Record(ident, text, answer, table.metadata(row, used))


_FORMATS: dict[str, Callable[[Path], _Table]] = {
    ".csv": lambda path: _CsvTable(path, ","),
    ".tsv": lambda path: _CsvTable(path, "\t"),
    ".jsonl": _JsonlTable,
    ".txt": _TxtTable,
}


def _open_table(path: Path) -> _Table:
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return _BeirTable(path)
        raise InputError(
            f"{path} is a folder without corpus.jsonl, so not a BEIR folder; "
            f"semsearch reads {SUPPORTED}"
        )
    if not path.exists():
        raise InputError(f"corpus not found: {path}")
    table = _FORMATS.get(path.suffix.lower())
    if table is None:
        raise InputError(f"{path}: unsupported corpus format; semsearch reads {SUPPORTED}")
    return table(path)


def open_corpus(
    path: str | Path,
    *,
    text_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    strict: bool = False,
) -> Corpus:
    """Open a corpus: the format and fields are checked now (header or first record only),
    so a wrong column name fails before any model is loaded; rows are read when iterated."""
    path = Path(path)
    table = _open_table(path)
    return Corpus(path, table, table.fields(text_field, answer_field, id_field), strict)
