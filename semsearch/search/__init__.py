"""THE question path, used by every face of semsearch and by `eval retrieval`.

    engine.py      SearchEngine: open, query, query_batch, search, search_batch
    candidates.py  one fixed ranking per question, fetched from the index's parts
    fusion.py      normalisation and weights
    rerank.py      the optional cross-encoder stage
    answer.py      the one "answered" rule and best_score, independent of k
    results.py     Hit / SearchResult and their one JSON form (standard library only)

`from semsearch.search import SearchEngine` loads the engine (numpy, FAISS) on first
use, so the HTTP client can read `semsearch.search.results` without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from semsearch.search.results import Hit, SearchResult

if TYPE_CHECKING:
    from semsearch.search.engine import SearchEngine

__all__ = ["Hit", "SearchEngine", "SearchResult"]


def __getattr__(name: str) -> Any:
    if name == "SearchEngine":
        return importlib.import_module("semsearch.search.engine").SearchEngine
    raise AttributeError(f"module 'semsearch.search' has no attribute {name!r}")
