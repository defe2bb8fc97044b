"""Before and after: how well held-out questions find their entries, scored with the
metrics `semsearch eval retrieval` uses (nDCG@10, and acc@1: the top hit answers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from semsearch.evaluation.metrics import evaluate_rankings
from semsearch.finetune.pairs import Corpus, Pair, relevance

DEPTH = 10
NAMES = {"ndcg@10": "ndcg@10", "mrr@1": "acc@1"}  # the reciprocal rank at 1 is acc@1


def score(model: Any, held_out: Sequence[Pair], corpus: Corpus) -> dict[str, float] | None:
    """Mean nDCG@10 and acc@1 of the held-out questions ranking every entry's document by
    cosine; an entry with the labelled one's answer counts as relevant. None without
    held-out questions."""
    if not held_out:
        return None
    from semsearch.finetune.model import encode

    wanted = relevance(held_out, corpus)
    questions = list(wanted)
    ids = list(corpus.entries)
    documents = encode(model, [corpus.entries[ident].document for ident in ids])
    similarity = encode(model, questions) @ documents.T
    depth = min(DEPTH, len(ids))
    rankings = {}
    for question, row in zip(questions, similarity, strict=True):
        top = np.argsort(-row, kind="stable")[:depth]
        rankings[question] = [ids[int(i)] for i in top]
    qrels = {question: dict.fromkeys(found, 1) for question, found in wanted.items()}
    means, _ = evaluate_rankings(rankings, qrels, tuple(NAMES))
    return {NAMES[name]: round(value, 6) for name, value in means.items()}
