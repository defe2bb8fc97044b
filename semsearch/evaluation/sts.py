"""Semantic textual similarity: Spearman and Pearson of cosine similarity against gold scores."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from semsearch.encoders import Encoder
from semsearch.evaluation.common import encode_unique, encoder_summary, finite, unit
from semsearch.evaluation.data import StsPairs
from semsearch.evaluation.metrics import pearson, spearman


@dataclass(frozen=True)
class StsResult:
    """Correlations (fractions in [-1, 1]) of one encoder on one STS file."""

    file: str
    pairs: int
    sentences: int
    spearman: float
    pearson: float
    truncated: int
    seconds: float
    encoder: dict[str, Any]
    similarities: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "sts",
            "file": self.file,
            "pairs": self.pairs,
            "sentences": self.sentences,
            "spearman": finite(self.spearman),
            "pearson": finite(self.pearson),
            "truncated": self.truncated,
            "seconds": round(self.seconds, 3),
            "encoder": self.encoder,
        }


def cosine_similarities(
    encoder: Encoder, pairs: StsPairs, show_progress: bool | None = None
) -> tuple[np.ndarray, int, int]:
    """Cosine similarity of every pair; each distinct sentence is encoded once."""
    vectors, rows, truncated = encode_unique(
        encoder, [*pairs.sentence1, *pairs.sentence2], show_progress
    )
    vectors = unit(vectors)
    left, right = vectors[rows[: len(pairs)]], vectors[rows[len(pairs) :]]
    return np.einsum("ij,ij->i", left, right), len(vectors), truncated


def evaluate_sts(
    encoder: Encoder, pairs: StsPairs, *, show_progress: bool | None = None
) -> StsResult:
    """Spearman and Pearson correlation of the cosine similarities with the gold scores."""
    started = time.perf_counter()
    similarities, sentences, truncated = cosine_similarities(encoder, pairs, show_progress)
    return StsResult(
        file=str(pairs.path),
        pairs=len(pairs),
        sentences=sentences,
        spearman=spearman(pairs.scores, similarities),
        pearson=pearson(pairs.scores, similarities),
        truncated=truncated,
        seconds=time.perf_counter() - started,
        encoder=encoder_summary(encoder),
        similarities=similarities,
    )
