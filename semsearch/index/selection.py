"""What a `where` filter selects in an open index, kept for the next questions.

A selection is computed once per filter and index version (SQLite by the indexed
columns, then the lexical part's mask), and an open index keeps the last few: a bot
asks with the same few filters, and a 50% selection of 165k entries costs more to
read than to search."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from semsearch.filters import Filter

KEPT = 16
"""Filters whose selections an open index keeps."""


@dataclass(frozen=True)
class Selection:
    """The live entries a filter selects: their rowids (ascending), and the lexical
    part's mask of them by position (None without a lexical part)."""

    rowids: np.ndarray
    lexical: np.ndarray | None

    def __len__(self) -> int:
        return len(self.rowids)

    @functools.cached_property
    def selector(self) -> Any:
        """FAISS's ID selector of the rowids, made once (a hash set: ~1 ms per 10,000
        ids) for every question with this filter; searches only read it."""
        return faiss.IDSelectorBatch(np.ascontiguousarray(self.rowids, dtype=np.int64))


class Selections:
    """The last KEPT selections of one index version, by the filter's canonical text;
    safe to use from several threads."""

    def __init__(self, compute: Callable[[Filter], Selection]) -> None:
        self._compute = compute
        self._kept: dict[str, Selection] = {}
        self._lock = threading.Lock()

    def __call__(self, tree: Filter) -> Selection:
        key = str(tree)
        found = self._kept.get(key)
        if found is None:
            found = self._compute(tree)
            with self._lock:
                if len(self._kept) >= KEPT:
                    self._kept.pop(next(iter(self._kept)), None)
                self._kept[key] = found
        return found
