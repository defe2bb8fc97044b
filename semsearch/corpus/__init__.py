"""Corpus readers: .csv, .tsv, .jsonl and .txt files and BEIR folders, streamed as Records.

Nothing reads a whole file: files are read in binary one physical line at a time and each
line is decoded on its own, so bad UTF-8 is reported with its line number. Line numbers in
errors are 1-based physical lines of the file; a CSV row whose quoted fields span several
lines is reported at the line it starts on. Without an id field the id is the 1-based data
row number: the header and (in .jsonl) blank lines are not rows; in .txt every line is a
row, so the id is the line number (a lone CR ends a line there too, as in old Mac files).

`base` holds the records and what every format shares, `delimited` the .csv/.tsv reader,
`lines` the .jsonl, BEIR and .txt readers, and `reader` the Corpus that opens them.
"""

from semsearch.corpus.base import (
    ANSWER_NAMES,
    BEIR_TEXT,
    ID_NAMES,
    SUPPORTED,
    TEXT_NAMES,
    Fields,
    Record,
)
from semsearch.corpus.opening import open_corpus
from semsearch.corpus.reader import Corpus

__all__ = [
    "ANSWER_NAMES",
    "BEIR_TEXT",
    "ID_NAMES",
    "SUPPORTED",
    "TEXT_NAMES",
    "Corpus",
    "Fields",
    "Record",
    "open_corpus",
]
