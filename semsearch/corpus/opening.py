"""Opening a corpus path, whatever it names: one file (semsearch.corpus.reader) or a
folder or glob of files read as one corpus (semsearch.corpus.files)."""

from __future__ import annotations

from pathlib import Path

from semsearch.corpus.files import FileSet, corpus_files
from semsearch.corpus.reader import Corpus, open_file
from semsearch.errors import InputError


def open_corpus(
    path: str | Path,
    *,
    text_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    strict: bool = False,
    delimiter: str | None = None,
    header: bool = True,
) -> Corpus | FileSet:
    """Open a corpus: the format and fields are checked now (header or first record only),
    so a wrong column name fails before any model is loaded; rows are read when iterated.

    For .csv and .tsv only: `delimiter` is one character or `tab` (default: detected from
    the first row among , ; tab |), and `header=False` reads a file whose first row is
    data, with columns named "1", "2", ... by position (text: column 1, answer: column 2,
    unless named).

    `path` may also be a folder of corpus files (one without corpus.jsonl, which makes
    it a BEIR folder) or a glob such as `shards/*.parquet`: the files are read in name
    order as one corpus (semsearch.corpus.files)."""
    path = Path(path)
    fields = (text_field, answer_field, id_field)
    files = corpus_files(path)
    if files is not None:
        parts = [open_file(file, fields, strict, delimiter, header) for file in files]
        return FileSet(path, parts) if len(parts) > 1 else parts[0]
    return open_file(path, fields, strict, delimiter, header)


def refuse_empty(corpus: Corpus | FileSet) -> None:
    """An InputError naming the corpus when it gives no record: what `index` and `add`
    check before a model loads (opening an empty file is not an error in itself)."""
    if isinstance(corpus, Corpus):
        why = corpus.emptiness()
        if why:
            raise InputError(f"{corpus.path} holds no records: {why}")
    elif all(part.emptiness() for part in corpus.corpora):
        raise InputError(f"{corpus.path}: none of its {len(corpus.corpora)} files holds a record")
