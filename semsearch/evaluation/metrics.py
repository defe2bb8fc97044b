"""Evaluation metrics in plain NumPy, each checked against a reference implementation in tests.

Correlations: Spearman (average ranks for ties, as scipy.stats.spearmanr) and Pearson.
Retrieval, per query, with the definitions of trec_eval / pytrec_eval that BEIR reports:

- ``ndcg@k``: sum of rel_i / log2(i + 1) over the top k (i from 1), divided by the same
  sum for the ideal ranking of every judged document (graded: gain = relevance level).
- ``mrr@k``: 1 / rank of the first relevant document in the top k, else 0.
- ``recall@k``: relevant documents in the top k / all relevant documents.
- ``map@k``: sum of precision@i at each relevant document in the top k, divided by all
  relevant documents of the query.

A document is relevant when its judgement is above 0. Queries with no relevant document
are not evaluated (BEIR and trec_eval skip them), so they never pull a mean down.
Classification: accuracy and macro-F1 (labels seen in truth or prediction, as scikit-learn).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

RETRIEVAL_METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10", "map@100")
"""The metric names `semsearch eval retrieval` reports (firm JSON keys)."""


# -- correlations -----------------------------------------------------------------------
def rankdata(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the average of the ranks they span."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = len(x)
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (no ordering to compare)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"correlation of {a.shape[0]} and {b.shape[0]} values")
    if len(a) < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if denominator == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(a @ b) / denominator))


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation: Pearson of the (tie-averaged) ranks."""
    return pearson(rankdata(x), rankdata(y))


# -- retrieval --------------------------------------------------------------------------
def _relevant(relevance: Mapping[str, int]) -> dict[str, int]:
    return {doc: int(level) for doc, level in relevance.items() if level > 0}


def dcg(gains: Iterable[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Graded nDCG@k; the ideal ranking comes from the judgements, not from what was found."""
    relevant = _relevant(relevance)
    ideal = dcg(sorted(relevant.values(), reverse=True)[:k])
    if ideal == 0.0:
        return 0.0
    return dcg(relevant.get(doc, 0) for doc in ranked[:k]) / ideal


def reciprocal_rank_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    relevant = _relevant(relevance)
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    return len(relevant.keys() & set(ranked[:k])) / len(relevant)


def average_precision_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    found = 0
    total = 0.0
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            found += 1
            total += found / rank
    return total / len(relevant)


_FUNCTIONS = {
    "ndcg": ndcg_at_k,
    "mrr": reciprocal_rank_at_k,
    "recall": recall_at_k,
    "map": average_precision_at_k,
}


def query_metrics(
    ranked: Sequence[str],
    relevance: Mapping[str, int],
    names: Sequence[str] = RETRIEVAL_METRICS,
) -> dict[str, float]:
    """Every metric in `names` ('ndcg@10', 'map@100', ...) for one query's ranked doc ids."""
    ranked = list(ranked)
    if len(set(ranked)) != len(ranked):
        raise ValueError("a ranking lists a document more than once")
    values = {}
    for name in names:
        kind, _, cutoff = name.partition("@")
        if kind not in _FUNCTIONS or not cutoff.isdigit() or int(cutoff) < 1:
            raise ValueError(f"unknown metric {name!r}: use ndcg@K, mrr@K, recall@K or map@K")
        values[name] = _FUNCTIONS[kind](ranked, relevance, int(cutoff))
    return values


def evaluate_rankings(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    names: Sequence[str] = RETRIEVAL_METRICS,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics over the judged queries that have a relevant document, and the
    per-query values. A judged query missing from `rankings` found nothing (scores 0)."""
    per_query = {
        query: query_metrics(rankings.get(query, []), relevance, names)
        for query, relevance in qrels.items()
        if _relevant(relevance)
    }
    if not per_query:
        raise ValueError("no query has a relevant document: nothing to evaluate")
    means = {name: float(np.mean([m[name] for m in per_query.values()])) for name in names}
    return means, per_query


# -- classification ---------------------------------------------------------------------
def accuracy(truth: Sequence[object], predicted: Sequence[object]) -> float:
    if len(truth) != len(predicted) or not truth:
        raise ValueError("accuracy needs two label lists of the same, non-zero length")
    return sum(a == b for a, b in zip(truth, predicted, strict=True)) / len(truth)


def macro_f1(truth: Sequence[object], predicted: Sequence[object]) -> float:
    """Unweighted mean of per-label F1 over every label in truth or prediction
    (scikit-learn's f1_score(average='macro'); a label with no true or predicted
    example scores 0)."""
    if len(truth) != len(predicted) or not truth:
        raise ValueError("macro-F1 needs two label lists of the same, non-zero length")
    true_counts = Counter(truth)
    predicted_counts = Counter(predicted)
    hits = Counter(a for a, b in zip(truth, predicted, strict=True) if a == b)
    labels = true_counts.keys() | predicted_counts.keys()
    return float(
        np.mean(
            [2 * hits[label] / (true_counts[label] + predicted_counts[label]) for label in labels]
        )
    )
