"""Searching past tombstones: the top live entries of a FAISS part.

An hnsw index cannot remove vectors, so a deleted entry stays in it as a tombstone
(its rowid in `dead`) until the next compaction. A search then asks FAISS for more
than it needs, and for more again while a question is short, so every question gets
its k best live entries: the one over-fetch loop of the index, used by searches and by
the threshold's estimate alike.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from semsearch.index.selection import Selection
    from semsearch.index.types import VectorIndex


def live_top(
    index: VectorIndex,
    queries: np.ndarray,
    k: int,
    dead: Collection[int],
    within: Selection | None = None,
) -> list[list[tuple[int, float]]]:
    """Top-k live (rowid, score) per query vector, best first; among the entries a
    filter selected (`within`: live ones only) where given."""
    if within is not None:
        depth = min(k, max(1, len(within)))
        scores, ids = index.search_within(queries, depth, within.rowids, within.selector)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]
    total = index.ntotal
    fetch = min(2 * k, total) if dead else k
    while True:
        scores, ids = index.search(queries, fetch)
        found = []
        # Python numbers at once (tolist): int() and float() on each element cost more
        for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True):
            hits = zip(row_ids, row_scores, strict=True)
            found.append([(i, s) for i, s in hits if i >= 0 and i not in dead][:k])
        if not dead or fetch >= total or all(len(hits) == k for hits in found):
            return found
        fetch = min(4 * fetch, total)
