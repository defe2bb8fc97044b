"""A corpus split over several files: a folder of shards or a glob such as
`shards/*.parquet`, read in file-name order as one corpus, so a build is the same
whichever machine lists the files.

Every file is opened with the same field options and must give the same fields. Ids
stay unique across files: without an id field a record's id is its row number counted
through all the files (as if they were one file); with one, an id seen in an earlier
file is refused with both places.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

from semsearch.corpus.base import SUPPORTED, Fields, Record, chunked, input_error
from semsearch.corpus.reader import CORPUS_SUFFIXES, Corpus
from semsearch.errors import InputError

GLOB_CHARS = frozenset("*?[")


def _listed(files: list[Path]) -> list[Path]:
    """Corpus files among `files` (not hidden, not `_SUCCESS`-style markers), by name."""
    return sorted(
        file
        for file in files
        if file.is_file()
        and file.suffix.lower() in CORPUS_SUFFIXES
        and not file.name.startswith((".", "_"))
    )


def corpus_files(path: Path) -> list[Path] | None:
    """The files a folder of shards or a glob names, in name order; None where `path`
    is one file or a BEIR folder (read as before)."""
    kinds = ", ".join(CORPUS_SUFFIXES)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return None  # a BEIR folder
        if (path / "manifest.json").is_file():
            raise InputError(
                f"{path} is an index folder (it holds manifest.json), not a corpus: give the "
                "corpus file it was built from"
            )
        files = _listed(list(path.iterdir()))
        if not files:
            raise InputError(
                f"{path} is a folder without corpus.jsonl, so not a BEIR folder, and it holds "
                f"no corpus files ({kinds}); semsearch reads {SUPPORTED}"
            )
        return files
    if path.exists() or not GLOB_CHARS & set(str(path)):
        return None
    matched = [Path(name) for name in glob.glob(str(path), recursive=True)]
    files = _listed(matched)
    if not files:
        what = "nothing" if not matched else f"no corpus files ({kinds})"
        raise InputError(f"the pattern {path} matches {what}")
    return files


def _same_fields(corpora: Sequence[Corpus]) -> Fields:
    first = corpora[0]
    for other in corpora[1:]:
        chosen = (other.fields.text, other.fields.answer, other.fields.id)
        if chosen != (first.fields.text, first.fields.answer, first.fields.id):
            raise InputError(
                f"{other.path} is read with other fields than {first.path} "
                f"({other.fields.describe()}; but {first.fields.describe()}): every file of "
                "a corpus needs the same columns"
            )
    return first.fields


class FileSet:
    """Several corpus files read as one (the `Corpus` interface: fields, describe,
    iteration, chunks and the counts of the latest pass, summed over the files)."""

    def __init__(self, path: Path, corpora: Sequence[Corpus]) -> None:
        self.path = path
        self.corpora = list(corpora)
        self.fields = _same_fields(self.corpora)
        self.skipped_empty = 0
        self.short_rows = 0

    def describe(self) -> str:
        names = [corpus.path.name for corpus in self.corpora]
        shown = f"{names[0]} ... {names[-1]}" if len(names) > 2 else " and ".join(names)
        return f"{len(names)} files ({shown}); {self.corpora[0].describe()}"

    def __iter__(self) -> Iterator[Record]:
        self.skipped_empty = self.short_rows = 0
        numbered = self.fields.id is None
        offset = 0
        first: dict[str, tuple[Path, int]] = {}  # an id from the id field: where it was seen
        for corpus in self.corpora:
            count = 0
            for record in corpus:
                count += 1
                if numbered:  # the row number through every file
                    record = dataclasses.replace(record, id=str(offset + int(record.id)))
                elif record.id in first:  # within one file the Corpus refuses it itself
                    where, line = first[record.id]
                    raise input_error(
                        corpus.path,
                        corpus.line,
                        f"duplicate id {record.id!r} (first in {where}, line {line})",
                    )
                else:
                    first[record.id] = (corpus.path, corpus.line)
                yield record
            offset += count + corpus.skipped_empty
            self.skipped_empty += corpus.skipped_empty
            self.short_rows += corpus.short_rows

    def chunks(self, size: int) -> Iterator[list[Record]]:
        """Lists of at most `size` records (a chunk may span two files)."""
        return chunked(self, size)
