"""What every corpus format shares: the Record and Fields it yields, line-by-line UTF-8
reading with line numbers, and the Table every format reader is."""

from __future__ import annotations

import codecs
import math
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from semsearch.errors import InputError
from semsearch.regular import bounded_lines, open_regular
from semsearch.text import shown

TEXT_NAMES = ("question", "query", "text", "sentence", "title", "content", "body")
ANSWER_NAMES = ("answer", "response", "reply", "text")
ID_NAMES = ("id", "_id", "qid", "doc_id")
BEIR_TEXT = "title+text"
SUPPORTED = (
    ".csv, .tsv, .jsonl and .txt files, .parquet files, a folder or glob of such files, "
    "or a BEIR folder (one with corpus.jsonl)"
)

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
        answer = "answer is the text" if self.answer is None else f"answer from {self.answer!r}"
        ident = "id is the row number" if self.id is None else f"id from {self.id!r}"
        how = "auto-detected" if self.detected else "as given"
        return f"text from {self.text!r}, {answer}, {ident} ({how})"


UTF16_HINT = "NUL bytes: the file looks like UTF-16; save it as UTF-8"


def nul_hint(names: Iterable[str]) -> str:
    """A hint for a message about names read from a file, where they hold NUL bytes
    (UTF-16 without a byte order mark reads as UTF-8 with a NUL in every other byte)."""
    return f" ({UTF16_HINT})" if any("\x00" in name for name in names) else ""


def input_error(path: Path, line: int, message: str) -> InputError:
    """Every reader's errors start with the file and the line."""
    return InputError(f"{path}, line {line}: {message}")


def norm(name: str) -> str:
    """Column names match case-insensitively and without surrounding spaces."""
    return name.strip().lower()


@dataclass(frozen=True)
class Span:
    """The part of one corpus file a reader reads: bytes [start, stop) of a line format,
    cut at line starts, whose first line is `first_line`; or one Parquet row group.
    `first_row` numbers its first row, so ids by row number and messages' line numbers
    run on through the file (semsearch.distributed reads a file's parts on several
    workers). The default is the whole file."""

    start: int = 0
    stop: int | None = None
    first_line: int = 1
    row_group: int | None = None
    first_row: int = 1


WHOLE = Span()


def read_lines(path: Path, span: Span = WHOLE) -> Generator[tuple[int, str], None, None]:
    """Physical lines decoded one by one, so bad UTF-8 is caught with its line number;
    only from a regular file, and no line beyond `MAX_LINE_BYTES` (semsearch.regular).
    Only the lines of `span`, numbered from its first line."""
    with open_regular(path) as handle:
        handle.seek(span.start)
        read = span.start
        for number, raw in bounded_lines(handle, path, first=span.first_line):
            read += len(raw)
            data = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                yield number, data.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = data[exc.start]
                raise input_error(
                    path,
                    number,
                    f"not valid UTF-8 (byte 0x{byte:02x} at byte {exc.start + 1} of the line); "
                    "the file must be UTF-8",
                ) from None
            if span.stop is not None and read >= span.stop:
                return


def json_kind(value: Any) -> str:
    """A JSON value's kind in the user's words, for messages."""
    kinds = {bool: "true/false", dict: "an object", list: "an array", str: "a string"}
    return "null" if value is None else kinds.get(type(value), "a number")


def as_text(path: Path, line: int, column: str, value: Any) -> str:
    """Strings pass; JSON numbers become text (ids like 17); a missing or null value is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):  # a Parquet NaN or inf
        raise input_error(path, line, f"{column!r} is {value}, not a value: give a string")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    kind = json_kind(value)
    raise input_error(path, line, f"{column!r} must be a string or a number, got {kind}")


class Table(ABC):
    """A corpus file seen as rows of named values; each subclass knows one format.
    `span` limits `rows` to one part of the file (the columns are the whole file's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.span = WHOLE
        self.columns = self._read_columns()

    @abstractmethod
    def _read_columns(self) -> list[str]:
        """The column names, from the header or first record only."""

    @abstractmethod
    def rows(self) -> Rows:
        """Data rows, each with the physical line it starts on."""

    def count_rows(self) -> int:
        """How many rows `rows` gives (line formats count without parsing)."""
        with closing(self.rows()) as rows:
            return sum(1 for _ in rows)

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
                hint = nul_hint(self.columns)
                if hint:
                    raise InputError(f"{self.path}: the header holds {UTF16_HINT}")
                raise InputError(
                    f"{self.path}: no text column found; columns found: {shown(self.columns)}; "
                    "name the one to embed as the text field",
                    setting="text_field",
                )
            taken.add(text)
        if answer is None:
            answer = self._detect(ANSWER_NAMES, taken)
        if ident is None:
            ident = self._detect(ID_NAMES, taken)
        if answer is None and answer_field is None and text_field is not None:
            answer = self._only_other({text, ident})
        return Fields(text, answer, ident, detected)

    def _only_other(self, taken: set[str | None]) -> str | None:
        """Where the user named the text and no answer column is known by name: the one
        other column (a German Frage/Antwort table), else None (the text is the answer)."""
        others = [c for c in self.columns if c not in taken]
        return others[0] if len(others) == 1 else None

    def _given(self, name: str | None) -> str | None:
        """The column the user named: an exact match, else a case-insensitive one."""
        if name is None:
            return None
        matches = [c for c in self.columns if c == name] or [
            c for c in self.columns if norm(c) == norm(name)
        ]
        if not matches:
            raise InputError(
                f"{self.path} has no column {name!r}; columns found: {shown(self.columns)}"
                + nul_hint(self.columns)
            )
        return matches[0]

    def _detect(self, names: tuple[str, ...], taken: set[str]) -> str | None:
        """The column of the first known name (in `names` order) not already used by a field."""
        found = (c for name in names for c in self.columns if c not in taken and norm(c) == name)
        return next(found, None)

    def describe(self) -> str:
        """How the file is laid out, where the format has a choice (a delimiter, a header)."""
        return ""

    def value(self, line: int, row: dict[str, Any], column: str) -> str:
        return as_text(self.path, line, column, row.get(column))

    def metadata(self, row: dict[str, Any], used: set[str | None]) -> dict[str, Any]:
        return {key: value for key, value in row.items() if key not in used}


def chunked(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Lists of at most `size` records, so callers can encode in batches while streaming."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    stream = iter(records)
    while chunk := list(islice(stream, size)):
        yield chunk
