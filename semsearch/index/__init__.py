"""The on-disk index folder: manifest.json + vectors.faiss + records.sqlite.

`IndexStore` is the entry point; the modules below it each own one file of the folder
(`manifest`, `vectors`, `records`) or the atomic folder swap (`atomic`).
"""

from __future__ import annotations

from semsearch.index.manifest import FORMAT_VERSION, IndexSection, Manifest
from semsearch.index.store import IndexStore
from semsearch.index.vectors import AUTO_HNSW_THRESHOLD, DEFAULT_PARAMS, INDEX_TYPES
from semsearch.index.writes import TOMBSTONE_LIMIT, VectorEncoder, WriteStats

__all__ = [
    "AUTO_HNSW_THRESHOLD",
    "DEFAULT_PARAMS",
    "FORMAT_VERSION",
    "INDEX_TYPES",
    "TOMBSTONE_LIMIT",
    "IndexSection",
    "IndexStore",
    "Manifest",
    "VectorEncoder",
    "WriteStats",
]
