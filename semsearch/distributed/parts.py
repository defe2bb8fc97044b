"""Cutting a corpus into the parts that workers read on their own, and reading one.

A part is a whole file, one Parquet row group, or a byte range of a .jsonl or .txt file
(a BEIR folder's corpus.jsonl too) cut at line starts. A .csv or .tsv file is one part:
a quoted field may hold line breaks, so a byte offset is not known to start a record
without reading the file from its start. Cutting needs a few reads at the cut points
only; where a part's first line number or first row number (the id of a corpus without
an id field) depends on what comes before it, the workers `count` the earlier parts'
lines and rows, and `numbered` adds them up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semsearch.corpus.base import Fields, Span
from semsearch.corpus.files import FileSet
from semsearch.corpus.lines import JsonlTable, TxtTable
from semsearch.corpus.parquet import ParquetTable
from semsearch.corpus.reader import Corpus, open_table
from semsearch.regular import MAX_LINE_BYTES, open_regular

PART_BYTES = 64 << 20
"""At most this many bytes of a .jsonl or .txt file per part."""
PARTS_PER_WORKER = 4
"""A file is cut into at least this many parts per worker, so that the work evens out."""
_COUNT_BLOCK = 1 << 20


@dataclass(frozen=True)
class Reading:
    """How every file of the corpus is read: the fields the driver chose when it opened
    the corpus, and the reader options the user gave."""

    fields: Fields
    strict: bool = False
    delimiter: str | None = None
    header: bool = True


@dataclass(frozen=True)
class Part:
    """One part of the corpus: `source` as `open_table` takes it (a file or a BEIR
    folder), `file` the file it reads, and where in it (`span`)."""

    number: int
    source: str
    file: str
    span: Span
    cut: bool  # a byte range after the file's first: its numbers depend on earlier parts

    @property
    def where(self) -> str:
        """The part in words, for messages."""
        if self.span.row_group is not None:
            return f"{self.file}, row group {self.span.row_group}"
        if self.span.stop is not None or self.span.start:
            stop = "" if self.span.stop is None else self.span.stop
            return f"{self.file}, bytes {self.span.start}-{stop}"
        return self.file


def files_of(corpus: Corpus | FileSet) -> list[Corpus]:
    return list(corpus.corpora) if isinstance(corpus, FileSet) else [corpus]


def plan(corpus: Corpus | FileSet, workers: int) -> list[Part]:
    """The corpus's parts in reading order (their numbers as yet unknown past a cut)."""
    parts: list[Part] = []
    for opened in files_of(corpus):
        table, source = opened.table, str(opened.path)
        if isinstance(table, JsonlTable | TxtTable):
            for start, stop in _byte_ranges(table.path, workers):
                span = Span(start, stop)
                parts.append(Part(len(parts), source, str(table.path), span, start > 0))
        elif isinstance(table, ParquetTable):
            first = 1
            for group, rows in enumerate(table.row_groups()):
                span = Span(row_group=group, first_row=first)
                parts.append(Part(len(parts), source, str(table.path), span, False))
                first += rows
        else:  # .csv, .tsv: whole files
            parts.append(Part(len(parts), source, str(table.path), Span(), False))
    return parts


def _byte_ranges(path: Path, workers: int) -> list[tuple[int, int | None]]:
    """[start, stop) ranges that cover the file, each starting at a line start."""
    size = path.stat().st_size
    target = max(1, min(PART_BYTES, -(-size // (workers * PARTS_PER_WORKER))))
    starts = [0]
    with open_regular(path) as handle:
        while starts[-1] + target < size:
            handle.seek(starts[-1] + target - 1)
            handle.readline(MAX_LINE_BYTES + 1)  # to the end of the line the cut falls in
            following = handle.tell()
            if following >= size:
                break
            starts.append(following)
    return list(zip(starts, [*starts[1:], None], strict=True))


def needs_counts(parts: Sequence[Part], numbered: bool) -> bool:
    """Whether any part's first line or row depends on the parts before it."""
    if numbered:
        return len({part.file for part in parts}) > 1 or any(part.cut for part in parts)
    return any(part.cut for part in parts)


def count(part: Part, reading: Reading) -> tuple[int, int]:
    """(physical lines, rows) of the part: what the parts after it start from."""
    table = open_table(Path(part.source), reading.delimiter, reading.header)
    table.span = part.span
    lines = 0
    if part.span.row_group is None and isinstance(table, JsonlTable | TxtTable):
        with open_regular(Path(part.file)) as handle:
            handle.seek(part.span.start)
            left = None if part.span.stop is None else part.span.stop - part.span.start
            while block := handle.read(_COUNT_BLOCK if left is None else min(left, _COUNT_BLOCK)):
                lines += block.count(b"\n")
                if left is not None:
                    left -= len(block)
    return lines, table.count_rows()


def numbered(parts: Sequence[Part], counts: Sequence[tuple[int, int]]) -> list[Part]:
    """The parts with their first line and first row from the counts of the parts
    before them: lines run on within a file, rows through every file (as `FileSet`
    numbers a corpus without an id field)."""
    done: list[Part] = []
    line, row, file = 1, 1, None
    for part, (lines, rows) in zip(parts, counts, strict=True):
        if part.file != file:
            line, file = 1, part.file
        span = dataclasses.replace(part.span, first_line=line, first_row=row)
        done.append(dataclasses.replace(part, span=span))
        line, row = line + lines, row + rows
    return done


def records_of(part: Part, reading: Reading) -> Corpus:
    """The part opened as a Corpus: its rows, ids and errors as in the whole file."""
    table = open_table(Path(part.source), reading.delimiter, reading.header)
    table.span = part.span
    return Corpus(Path(part.source), table, reading.fields, reading.strict)
