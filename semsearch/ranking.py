"""From questions (their vectors and words) to ranked entries of one index, by mode.

- dense: the cosine with each entry's indexed text, exactly as before hybrid search;
- lexical: BM25 over question and answer;
- hybrid (the default): candidates from every part (the top `candidates` of each), each
  scored for real in every part, then fused (semsearch.fusion).

An index built before hybrid search has no lexical part: hybrid answers in dense mode
there, with a one-line notice, and lexical is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from semsearch import fusion
from semsearch.config import MODES, SearchConfig
from semsearch.errors import ConfigError

if TYPE_CHECKING:
    from semsearch.index import IndexStore
    from semsearch.index.types import VectorIndex

log = logging.getLogger("semsearch")


@dataclass(frozen=True)
class Ranked:
    """One entry's place for a question: `score` ranked it; `scores` has each part's."""

    rowid: int
    score: float
    scores: dict[str, float] | None = None


def effective_mode(store: IndexStore, mode: str) -> str:
    """The mode this index can answer in; hybrid falls back to dense on an old index."""
    if mode not in MODES:
        raise ConfigError(
            f"unknown mode {mode!r}: choose one of {', '.join(MODES)}", setting="mode"
        )
    if mode == "dense" or store.lexical is not None:
        return mode
    if mode == "lexical":
        raise ConfigError(
            f"{store.path} has no lexical part (it was built before hybrid search): "
            "rebuild it with `semsearch index` to search it by words",
            setting="mode",
        )
    if not getattr(store, "_told_dense", False):
        log.warning(
            "%s was built before hybrid search: answering in dense mode; "
            "`semsearch index` rebuilds it for hybrid",
            store.path,
        )
        store._told_dense = True  # type: ignore[attr-defined]
    return "dense"


def rank(
    store: IndexStore,
    vectors: np.ndarray,
    questions: Sequence[str],
    config: SearchConfig,
    fetch: int,
    mode: str | None = None,
) -> list[list[Ranked]]:
    """The best `fetch` entries for each question, best first."""
    mode = effective_mode(store, mode or config.mode)
    if mode == "dense":
        return [
            [Ranked(rowid, score) for rowid, score in hits]
            for hits in store.search_rowids(vectors, fetch)
        ]
    depth = max(config.candidates, fetch)
    dense = store.search_rowids(vectors, depth) if mode == "hybrid" else None
    second = store.search_rowids(vectors, depth, second=True) if dense and store.second else None
    return [
        _fuse(
            store,
            vectors[i],
            question,
            config,
            fetch,
            dense[i] if dense else None,
            second[i] if second else None,
        )
        for i, question in enumerate(questions)
    ]


def _fuse(
    store: IndexStore,
    vector: np.ndarray,
    question: str,
    config: SearchConfig,
    fetch: int,
    dense_hits: list[tuple[int, float]] | None,
    second_hits: list[tuple[int, float]] | None,
) -> list[Ranked]:
    """One question in hybrid (dense hits given) or lexical mode (none)."""
    assert store.lexical is not None
    depth = max(config.candidates, fetch) if dense_hits is not None else fetch
    lexical_hits, lexical_all = store.lexical.top(question, depth)
    found = [dense_hits or [], second_hits or [], lexical_hits]
    candidates = np.array(list(dict.fromkeys(rowid for hits in found for rowid, _ in hits)))
    if not len(candidates):
        return []
    dense = _real(dict(dense_hits or []), candidates, store.vectors, vector)
    parts = {"dense": dense}
    if store.second is not None:
        view = store.parts.second or "second"
        parts[view] = _real(dict(second_hits or []), candidates, store.second, vector)
    lexical = store.lexical.scores_of(lexical_all, candidates).astype(np.float64)
    parts["lexical"] = lexical
    if dense_hits is None:  # lexical mode: BM25 ranks
        fused = lexical
    elif config.fusion == "rrf":
        fused = fusion.rrf(list(parts.values()), config.rrf_k)
    else:
        dense_sum = sum(score for name, score in parts.items() if name != "lexical")
        fused = fusion.convex(np.asarray(dense_sum), lexical, config.dense_weight)
    order = np.argsort(-fused, kind="stable")[:fetch]
    return [
        Ranked(
            int(candidates[i]),
            float(fused[i]),
            {name: float(score[i]) for name, score in parts.items()},
        )
        for i in order.tolist()
    ]


def _real(
    known: dict[int, float], candidates: np.ndarray, vectors: VectorIndex, vector: np.ndarray
) -> np.ndarray:
    """Each candidate's score in one dense part: as its search found it, or computed."""
    missing = np.array([r for r in candidates.tolist() if r not in known], dtype=np.int64)
    if len(missing):
        computed = vectors.scores_of(vector, missing).tolist()
        known = {**known, **dict(zip(missing.tolist(), computed, strict=True))}
    return np.array([known[r] for r in candidates.tolist()], dtype=np.float64)
