"""The index folder's file names, in one place.

```
NAME/
  manifest.json    what built the index, its parts, every file's checksum (manifest.py)
  vectors.faiss    the entries' vectors, in the index type's FAISS form (types/)
  records.sqlite   ids, texts, answers and metadata (records.py)
  second.faiss     the second dense view, where the entries have one (views.py)
  lexical.npz      the BM25 part: score matrix (lexical.py)
  lexical.json     the BM25 part: tokenizer settings (lexical.py)
  generic.npy      the generic questions' vectors, for the no-answer estimate (threshold.py)
  STEM.ivfdata, STEM.f16.npy, STEM.ids.npy
                   ivfpq only: beside each view's STEM.faiss (types/ivfpq.py)
```

Beside the folder, only while it is written: `.NAME.lock`, `NAME.tmp-PID-XXXX` and
`NAME.old-PID-XXXX`. Those are `semsearch.atomic`'s names, which it gives every folder
it swaps (ONNX exports too), so they are spelled there.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
RECORDS = "records.sqlite"
REQUIRED = (VECTORS, RECORDS)
"""The data files every index folder holds beside its manifest."""

SECOND = "second.faiss"
LEXICAL_ARRAYS = "lexical.npz"
LEXICAL_SETTINGS = "lexical.json"
LEXICAL = (LEXICAL_ARRAYS, LEXICAL_SETTINGS)
GENERIC = "generic.npy"

FAISS = ".faiss"
"""The suffix of a dense view's FAISS file; files kept beside it share its stem."""
IVFDATA = ".ivfdata"
"""ivfpq: a view's inverted lists, memory-mapped (named inside its .faiss file)."""
FULL_VECTORS = ".f16.npy"
"""ivfpq: a view's vectors in float16, in id order, for exact re-ranking."""
VECTOR_IDS = ".ids.npy"
"""ivfpq: the ids of those vectors, sorted."""
IVFPQ_SUFFIXES = (IVFDATA, FULL_VECTORS, VECTOR_IDS)


def view_files(second: bool) -> tuple[str, ...]:
    """The FAISS files of the dense views: vectors.faiss, and second.faiss if kept."""
    return (VECTORS, SECOND) if second else (VECTORS,)


def beside(view: str, suffix: str) -> str:
    """The name of a file kept beside the view file `view` (`vectors.faiss` + `.ivfdata`
    -> `vectors.ivfdata`)."""
    return view.removesuffix(FAISS) + suffix


def shard_file(view: Path, number: int) -> Path:
    """ivfpq: a shard of the lists, written beside `view` while it is built, then merged
    and removed."""
    return view.with_name(beside(view.name, f".shard-{number}{FAISS}"))
