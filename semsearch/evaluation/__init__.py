"""Measure encoders on public benchmarks: STS correlation, BEIR retrieval metrics, a
layer x pooling sweep for raw BERT, and embeddings as classifier features.

Each evaluation is a function over an `Encoder` returning a result with `to_json()`
(metrics as fractions); the CLI (`semsearch eval ...`) is a thin layer over them.
"""

from __future__ import annotations

from semsearch.evaluation.data import (
    Labelled,
    StsPairs,
    read_labelled,
    read_qrels,
    read_queries,
    read_sts,
)
from semsearch.evaluation.deps import INSTALL
from semsearch.evaluation.metrics import (
    RETRIEVAL_METRICS,
    accuracy,
    average_precision_at_k,
    evaluate_rankings,
    macro_f1,
    ndcg_at_k,
    pearson,
    query_metrics,
    rankdata,
    recall_at_k,
    reciprocal_rank_at_k,
    spearman,
)

__all__ = [
    "INSTALL",
    "RETRIEVAL_METRICS",
    "Labelled",
    "StsPairs",
    "accuracy",
    "average_precision_at_k",
    "evaluate_rankings",
    "macro_f1",
    "ndcg_at_k",
    "pearson",
    "query_metrics",
    "rankdata",
    "read_labelled",
    "read_qrels",
    "read_queries",
    "read_sts",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "spearman",
]
