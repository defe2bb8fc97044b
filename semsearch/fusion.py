"""Fusing the rankings of an index's parts into one: the arithmetic, nothing else.

Every candidate comes with its real score in each part (the cosine with the entry's
indexed text, the cosine with its second view, and BM25), so nothing is guessed for an
entry that one part did not list. Two ways to combine them:

- convex (the default): w x minmax(dense + second) + (1 - w) x minmax(lexical), each
  min-max normalised over the candidates, so cosines and BM25's unbounded scores share
  one scale;
- rrf: reciprocal-rank fusion, the sum over parts of 1 / (rrf_k + rank).
"""

from __future__ import annotations

import numpy as np


def minmax(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] over the candidates; all equal (no information) gives zeros."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return values
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def convex(dense: np.ndarray, lexical: np.ndarray | None, dense_weight: float) -> np.ndarray:
    """w x minmax(dense) + (1 - w) x minmax(lexical); `dense` is already the sum of the
    dense views. Without a lexical part the dense ranking is kept, scaled by w."""
    fused = dense_weight * minmax(dense)
    if lexical is not None:
        fused = fused + (1.0 - dense_weight) * minmax(lexical)
    return fused


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the best value, 2 for the next...; ties take the order they came in."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    result = np.empty(len(order), dtype=np.int64)
    result[order] = np.arange(1, len(order) + 1)
    return result


def rrf(parts: list[np.ndarray], rrf_k: int) -> np.ndarray:
    """Reciprocal-rank fusion: sum over parts of 1 / (rrf_k + rank in that part)."""
    fused = np.zeros(len(parts[0]) if parts else 0, dtype=np.float64)
    for part in parts:
        fused += 1.0 / (rrf_k + ranks(part))
    return fused
