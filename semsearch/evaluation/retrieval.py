"""Retrieval on a BEIR folder: index the corpus the way `semsearch index` does, ask the
judged queries the way `semsearch query` does, and score the rankings with nDCG@10,
MRR@10, Recall@1/@10 and MAP@100.

The index is built by `IndexStore.build` in a temporary folder and every query goes
through `SearchEngine.query_batch`, the one question path of `query`, HTTP and Python,
with the same ranking settings (mode, fusion and weights, rerank, threshold): what is
measured is what is served. Two differences, both BEIR's: every document is ranked on
its own (the answer de-duplication is off: two entries with one answer are two
documents to BEIR), and no threshold applies unless one is given (a threshold leaves
an unanswered query with no hits, as `query` shows it).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semsearch.config import DENSE_WEIGHT, IndexConfig, SearchConfig
from semsearch.corpus import open_corpus
from semsearch.encoders import Encoder
from semsearch.errors import InputError
from semsearch.evaluation.common import encoder_summary
from semsearch.evaluation.data import read_qrels, read_queries
from semsearch.evaluation.metrics import RETRIEVAL_METRICS, evaluate_rankings
from semsearch.index import IndexStore
from semsearch.params import OFF, parse_k
from semsearch.search.adaptive import choose
from semsearch.search.engine import SearchEngine
from semsearch.search.fusion import Rule

DEFAULT_DEPTH = 100
"""Hits retrieved per query: enough for MAP@100."""
COMPARED = ("dense", "lexical", "hybrid-fixed", "hybrid-adaptive")
"""`compare`'s rankings of one index: plain cosine, BM25, the fixed fusion (dense views
0.8, BM25 0.2) and the index's own choice."""


@dataclass(frozen=True)
class BeirFolder:
    """The three parts of a BEIR data set, checked before any model is loaded."""

    path: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @classmethod
    def open(cls, path: str | Path, split: str = "test") -> BeirFolder:
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path} is not a folder: give a BEIR folder (corpus.jsonl, ...)")
        missing = [
            name
            for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")
            if not (path / name).is_file()
        ]
        if missing:
            splits = sorted(p.stem for p in (path / "qrels").glob("*.tsv"))
            known = f" (qrels splits here: {', '.join(splits)})" if splits else ""
            raise InputError(
                f"{path} is not a BEIR folder: {', '.join(missing)} missing{known}; a BEIR "
                "folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
            )
        queries = read_queries(path / "queries.jsonl")
        qrels = read_qrels(path / "qrels" / f"{split}.tsv")
        unknown = [  # a query with no relevant document is skipped, text or not
            query
            for query, docs in qrels.items()
            if query not in queries and any(level > 0 for level in docs.values())
        ]
        if unknown:
            raise InputError(
                f"{path / 'qrels' / f'{split}.tsv'} judges {len(unknown)} query id(s) missing "
                f"from queries.jsonl, e.g. {unknown[0]!r}"
            )
        return cls(path, split, queries, qrels)

    @property
    def judged(self) -> list[str]:
        """Query ids with at least one relevant document, in qrels order; the others are
        skipped, as BEIR does."""
        return [q for q, docs in self.qrels.items() if any(v > 0 for v in docs.values())]


@dataclass(frozen=True)
class RetrievalResult:
    folder: str
    split: str
    index_type: str
    corpus: int
    skipped_documents: int
    queries: int
    skipped_queries: int
    k: int
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    rankings: dict[str, list[tuple[str, float]]]
    seconds: dict[str, float]
    encoder: dict[str, Any]
    truncated: int = 0
    mode: str = "dense"
    by_mode: dict[str, dict[str, float]] = field(default_factory=dict)
    rankings_by_mode: dict[str, dict[str, list[tuple[str, float]]]] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)  # {"chosen": ..., "in_force": ...}

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "retrieval",
            "folder": self.folder,
            "split": self.split,
            "index_type": self.index_type,
            "corpus": self.corpus,
            "skipped_documents": self.skipped_documents,
            "queries": self.queries,
            "skipped_queries": self.skipped_queries,
            "k": self.k,
            "mode": self.mode,
            **{name: self.metrics[name] for name in RETRIEVAL_METRICS},
            "modes": {
                mode: {name: metrics[name] for name in RETRIEVAL_METRICS}
                for mode, metrics in self.by_mode.items()
            },
            "fusion": self.fusion,
            "truncated": self.truncated,
            "seconds": {key: round(value, 3) for key, value in self.seconds.items()},
            "encoder": self.encoder,
        }


def evaluate_retrieval(
    beir: BeirFolder,
    encoder: Encoder,
    *,
    index: IndexConfig | None = None,
    search: SearchConfig | None = None,
    also: Sequence[str] = (),
    compare: bool = False,
    text_field: str | None = None,
    k: int = DEFAULT_DEPTH,
    where: str | Sequence[str] | None = None,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> RetrievalResult:
    """Index `beir`'s corpus in a temporary folder, ask every judged query through
    `SearchEngine.query_batch` and score it in `search.mode` (the result's metrics), and
    in the modes `also` names (`by_mode`); with `compare`, also as COMPARED names them;
    with `where` (semsearch.filters), answered from the entries it selects only. The
    index chooses its own fusion as `semsearch index` does."""
    index = index or IndexConfig()
    k = parse_k(k)
    search = search or SearchConfig()
    search = dataclasses.replace(
        search, dedupe=False, threshold=OFF if search.threshold is None else search.threshold
    )
    started = time.perf_counter()
    corpus = open_corpus(beir.path, text_field=text_field)
    if log:
        log(f"reading {beir.path}: {corpus.fields.describe()}")
    with tempfile.TemporaryDirectory(prefix="semsearch-eval-") as scratch:
        store = IndexStore.build(
            Path(scratch) / "index",
            corpus.chunks(index.chunk_size),
            encoder,
            index_type=index.type,
            params=index.params,
            fields={
                "text": corpus.fields.text,
                "answer": corpus.fields.answer,
                "id": corpus.fields.id,
            },
            show_progress=show_progress,
            choose_fusion=choose,
        )
        try:
            indexed = time.perf_counter()
            truncated = store.stats.truncated if store.stats else 0
            judged = beir.judged
            if not judged:
                raise InputError(
                    f"{beir.path}: no query in qrels/{beir.split}.tsv has a relevant document"
                )
            texts = [beir.queries[query] for query in judged]
            engine = SearchEngine(store, encoder, search)
            modes = list(dict.fromkeys([engine.mode(), *also]))
            ranked = {}
            for mode in modes:
                results = engine.query_batch(texts, k, mode=mode, where=where)
                ranked[engine.mode(mode)] = {
                    query: [(hit.id, hit.score) for hit in result.hits]
                    for query, result in zip(judged, results, strict=True)
                }
                if len(ranked) == 1:
                    truncated += encoder.truncated
            if compare:
                ranked.update(_compared(store, encoder, search, judged, texts, k, where))
            fusion = {
                "chosen": store.manifest.fusion,
                "in_force": Rule.of(search, store.manifest.fusion).to_json(),
            }
            rankings = ranked[modes[0]]
            searched = time.perf_counter()
            index_type, count = store.manifest.index.type, store.count
        finally:
            store.close()
    qrels = {query: beir.qrels[query] for query in judged}
    by_mode = {
        mode: evaluate_rankings(
            {query: [doc for doc, _ in hits] for query, hits in found.items()}, qrels
        )
        for mode, found in ranked.items()
    }
    metrics, per_query = by_mode[modes[0]]
    return RetrievalResult(
        folder=str(beir.path),
        split=beir.split,
        index_type=index_type,
        corpus=count,
        skipped_documents=corpus.skipped_empty,
        queries=len(judged),
        skipped_queries=len(beir.qrels) - len(judged),
        k=k,
        metrics=metrics,
        per_query=per_query,
        rankings=rankings,
        seconds={
            "index": indexed - started,
            "search": searched - indexed,
            "total": time.perf_counter() - started,
        },
        encoder=encoder_summary(encoder),
        truncated=truncated,
        mode=modes[0],
        by_mode={mode: found[0] for mode, found in by_mode.items()},
        rankings_by_mode=ranked,
        fusion=fusion,
    )


def _compared(
    store: IndexStore,
    encoder: Encoder,
    search: SearchConfig,
    judged: list[str],
    texts: list[str],
    k: int,
    where: str | Sequence[str] | None,
) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """The COMPARED rankings of one index, each through `SearchEngine.query_batch`."""
    fixed = dataclasses.replace(search, fusion="convex", dense_weight=DENSE_WEIGHT)
    own = dataclasses.replace(search, fusion=None, dense_weight=None)
    ways = (("dense", search, "dense"), ("lexical", search, "lexical"),
            ("hybrid-fixed", fixed, "hybrid"), ("hybrid-adaptive", own, "hybrid"))  # fmt: skip
    found = {}
    for name, config, mode in ways:
        results = SearchEngine(store, encoder, config).query_batch(texts, k, mode=mode, where=where)
        found[name] = {
            query: [(hit.id, hit.score) for hit in result.hits]
            for query, result in zip(judged, results, strict=True)
        }
    return found


def write_per_query(result: RetrievalResult, beir: BeirFolder, path: str | Path) -> Path:
    """One JSON line per evaluated query: its metrics, its judgements and its top 10 hits."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        for query, metrics in result.per_query.items():
            relevance = beir.qrels[query]
            ranked = result.rankings.get(query, [])
            first = next(
                (rank for rank, (doc, _) in enumerate(ranked, 1) if relevance.get(doc, 0) > 0),
                None,
            )
            row = {
                "query_id": query,
                "query": beir.queries[query],
                **{name: round(value, 6) for name, value in metrics.items()},
                "first_relevant_rank": first,
                "relevant": {doc: level for doc, level in relevance.items() if level > 0},
                "hits": [
                    {"id": doc, "score": round(score, 6), "relevance": relevance.get(doc, 0)}
                    for doc, score in ranked[:10]
                ],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_run(result: RetrievalResult, path: str | Path) -> Path:
    """The rankings as a TREC run file, one line per hit: `query_id Q0 doc_id rank score
    semsearch-MODE`, every mode evaluated (trec_eval and ranx read it). Ranks and scores
    are those `semsearch query --json` gives for the same question."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        for mode, rankings in result.rankings_by_mode.items():
            for query, hits in rankings.items():
                for rank, (doc, score) in enumerate(hits, 1):
                    handle.write(f"{query} Q0 {doc} {rank} {score:.6f} semsearch-{mode}\n")
    return path
