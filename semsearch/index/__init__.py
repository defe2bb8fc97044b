"""The on-disk index folder: manifest.json + vectors.faiss + records.sqlite (and the
parts beside them; every file name is in `layout`).

`IndexStore` is the entry point; the modules below it each own one file of the folder
(`manifest`, `records`, `lexical`; `types`: the vector index, one module per index
type behind one interface) or the atomic folder swap (`semsearch.atomic`).
"""

from __future__ import annotations

from semsearch.index.manifest import FORMAT_VERSION, IndexSection, Manifest
from semsearch.index.store import IndexStore
from semsearch.index.types import AUTO_HNSW_THRESHOLD, INDEX_TYPES
from semsearch.index.writes import TOMBSTONE_LIMIT, VectorEncoder, WriteStats

__all__ = [
    "AUTO_HNSW_THRESHOLD",
    "FORMAT_VERSION",
    "INDEX_TYPES",
    "TOMBSTONE_LIMIT",
    "IndexSection",
    "IndexStore",
    "Manifest",
    "VectorEncoder",
    "WriteStats",
]
