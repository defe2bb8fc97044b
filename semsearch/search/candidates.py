"""From questions (their vectors and words) to the ranked entries of one index, by mode.

- dense: the cosine with each entry's indexed text, exactly as before hybrid search;
- lexical: BM25 over question and answer;
- hybrid (the default): candidates from every part (the top `candidates` of each), each
  scored for real in every part, then fused (semsearch.search.fusion).

Each question's ranking is one fixed order, whatever depth is asked: a deeper fetch only
appends to it. Hybrid gets that from pools: the first pool is the top `candidates` of
every part, fused with its own min-max spans; when more entries are wanted, the next
pool is every part's next `candidates` entries not ranked yet, fused with the first
pool's spans and ranked after it. So the top hits, and "answered", never depend on k.

An index built before hybrid search has no lexical part: hybrid answers in dense mode
there, and lexical is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from semsearch.config import SearchConfig
from semsearch.errors import ConfigError
from semsearch.search import fusion

if TYPE_CHECKING:
    from semsearch.index import IndexStore
    from semsearch.index.selection import Selection
    from semsearch.index.types import VectorIndex


@dataclass(frozen=True)
class Candidate:
    """One entry's place for a question: `score` ranked it; `scores` has each part's."""

    rowid: int
    score: float
    scores: dict[str, float] | None = None


def effective_mode(store: IndexStore, mode: str) -> str:
    """The mode this index can answer in (`mode` already parsed): hybrid falls back to
    dense on an index without a lexical part; lexical is refused there."""
    if mode == "dense" or store.lexical is not None:
        return mode
    if mode == "lexical":
        raise ConfigError(
            f"{store.path} has no lexical part (it was built before hybrid search): "
            "rebuild it with `semsearch index` to search it by words",
            setting="mode",
        )
    return "dense"


def ranked(
    store: IndexStore,
    vectors: np.ndarray,
    questions: Sequence[str],
    config: SearchConfig,
    mode: str,
    depth: int,
    within: Selection | None = None,
) -> list[list[Candidate]]:
    """The first `depth` entries of each question's ranking in `mode` (an effective
    mode), best first; fewer only when the ranking has no more. With `within` (a
    filter's selection) every part ranks only the entries it holds: the ranking is the
    one the index would give if it held only those."""
    if mode == "dense":
        return [
            [Candidate(rowid, score) for rowid, score in hits]
            for hits in store.search_rowids(vectors, depth, within=within)
        ]
    if mode == "lexical":
        return [_lexical(store, vectors[i], q, depth, within) for i, q in enumerate(questions)]
    first = _Fetched.search(store, vectors, questions, config.candidates, within)
    rankings = []
    for i, question in enumerate(questions):
        pool = _Hybrid(store, vectors[i], question, config)
        pool.add(first[i])
        while pool.count < depth and not pool.exhausted:
            more = _Fetched.search(store, vectors[i : i + 1], [question], pool.next_depth, within)
            pool.add(more[0])
        rankings.append(pool.first(depth))
    return rankings


def _lexical(
    store: IndexStore, vector: np.ndarray, question: str, depth: int, within: Selection | None
) -> list[Candidate]:
    """BM25 ranks; every dense part's score is computed beside it."""
    assert store.lexical is not None
    allowed = None if within is None else within.lexical
    hits, matches = store.lexical.top(question, depth, allowed)
    if not hits:
        return []
    rowids = np.array([rowid for rowid, _ in hits], dtype=np.int64)
    parts = _dense_parts(store, vector, rowids, {}, {})
    parts["lexical"] = store.lexical.scores_of(matches, rowids).astype(np.float64)
    return [
        Candidate(int(rowid), float(score), {name: float(v[i]) for name, v in parts.items()})
        for i, (rowid, score) in enumerate(hits)
    ]


@dataclass
class _Fetched:
    """One question's top entries of every part, at one depth."""

    depth: int
    dense: list[tuple[int, float]]
    second: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    matches: tuple[np.ndarray, np.ndarray]

    @classmethod
    def search(
        cls,
        store: IndexStore,
        vectors: np.ndarray,
        questions: Sequence[str],
        depth: int,
        within: Selection | None = None,
    ) -> list[_Fetched]:
        assert store.lexical is not None
        dense = store.search_rowids(vectors, depth, within=within)
        second = (
            store.search_rowids(vectors, depth, second=True, within=within)
            if store.second
            else None
        )
        allowed = within.lexical if within is not None else None
        fetched = []
        for i, question in enumerate(questions):
            lexical, matches = store.lexical.top(question, depth, allowed)
            fetched.append(cls(depth, dense[i], second[i] if second else [], lexical, matches))
        return fetched

    @property
    def complete(self) -> bool:
        """Whether every part listed all it has (fewer than asked)."""
        return all(len(hits) < self.depth for hits in (self.dense, self.second, self.lexical))


@dataclass(frozen=True)
class _Pool:
    """One pool's entries, their scores in every part and fused, and their order."""

    rowids: np.ndarray
    parts: dict[str, np.ndarray]
    fused: np.ndarray
    order: list[int]

    def candidates(self, n: int) -> list[Candidate]:
        """The pool's first `n` entries (made only when asked: most are never shown)."""
        return [
            Candidate(
                int(self.rowids[i]),
                float(self.fused[i]),
                {name: float(v[i]) for name, v in self.parts.items()},
            )
            for i in self.order[:n]
        ]


@dataclass
class _Hybrid:
    """One question's hybrid ranking, pool by pool (see the module's text)."""

    store: IndexStore
    vector: np.ndarray
    question: str
    config: SearchConfig
    pools: list[_Pool] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    spans: tuple[fusion.Span, fusion.Span] | None = None
    exhausted: bool = False

    @property
    def count(self) -> int:
        """Entries ranked so far."""
        return sum(len(pool.order) for pool in self.pools)

    @property
    def next_depth(self) -> int:
        return (len(self.pools) + 1) * self.config.candidates

    def first(self, n: int) -> list[Candidate]:
        """The first `n` entries of the ranking (fewer if it has no more yet)."""
        found: list[Candidate] = []
        for pool in self.pools:
            if len(found) >= n:
                break
            found += pool.candidates(n - len(found))
        return found

    def add(self, fetched: _Fetched) -> None:
        """Rank the entries of the next pool (every part's ranks from the previous
        pool's depth to `fetched.depth`) that no earlier pool holds."""
        start = len(self.pools) * self.config.candidates
        lists = (fetched.dense, fetched.second, fetched.lexical)
        new = dict.fromkeys(rowid for hits in lists for rowid, _ in hits[start:])
        rowids = np.array([r for r in new if r not in self.seen], dtype=np.int64)
        self.exhausted = fetched.complete
        assert self.store.lexical is not None
        parts = _dense_parts(
            self.store, self.vector, rowids, dict(fetched.dense), dict(fetched.second)
        )
        lexical = self.store.lexical.scores_of(fetched.matches, rowids).astype(np.float64)
        second = next((v for name, v in parts.items() if name != "dense"), None)
        parts["lexical"] = lexical
        rule = fusion.Rule.of(self.config, self.store.manifest.fusion)
        dense = rule.dense(parts["dense"], second)
        if self.spans is None:  # the first pool: its ranges scale every later one
            self.spans = (fusion.Span.of(dense), fusion.Span.of(lexical))
        if rule.fusion == "rrf":
            fused = fusion.rrf(list(parts.values()), self.config.rrf_k, offset=len(self.seen))
        else:
            fused = fusion.convex(dense, lexical, rule.dense_weight, self.spans)
        order = np.argsort(-fused, kind="stable").tolist()
        self.pools.append(_Pool(rowids, parts, fused, order))
        self.seen.update(rowids.tolist())


def _dense_parts(
    store: IndexStore,
    vector: np.ndarray,
    rowids: np.ndarray,
    dense: dict[int, float],
    second: dict[int, float],
) -> dict[str, np.ndarray]:
    """Each candidate's score in every dense part: as a search found it, or computed."""
    parts = {"dense": _real(dense, rowids, store.vectors, vector)}
    if store.second is not None:
        parts[store.parts.second or "second"] = _real(second, rowids, store.second, vector)
    return parts


def _real(
    known: dict[int, float], candidates: np.ndarray, vectors: VectorIndex, vector: np.ndarray
) -> np.ndarray:
    """Each candidate's score in one dense part: as its search found it, or computed."""
    missing = np.array([r for r in candidates.tolist() if r not in known], dtype=np.int64)
    if len(missing):
        computed = vectors.scores_of(vector, missing).tolist()
        known = {**known, **dict(zip(missing.tolist(), computed, strict=True))}
    return np.array([known[r] for r in candidates.tolist()], dtype=np.float64)
