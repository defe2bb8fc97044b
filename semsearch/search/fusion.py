"""Fusing the rankings of an index's parts into one: the arithmetic, nothing else.

Every candidate comes with its real score in each part (the cosine with the entry's
indexed text, the cosine with its second view, and BM25), so nothing is guessed for an
entry that one part did not list. Two ways to combine them:

- convex (the default): w x minmax(dense + second) + (1 - w) x minmax(lexical), each
  min-max normalised over the question's first candidate pool (`Span`), so cosines and
  BM25's unbounded scores share one scale;
- rrf: reciprocal-rank fusion, the sum over parts of 1 / (rrf_k + rank).

The spans are taken once per question, from the pool every ranking starts with, and
reused for candidates fetched deeper: every entry's fused score is then a fixed function
of the question, whatever number of hits was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """The lowest and highest value of one part over a candidate pool."""

    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> Span:
        values = np.asarray(values, dtype=np.float64)
        if not len(values):
            return cls(0.0, 0.0)
        return cls(float(values.min()), float(values.max()))

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Scaled so the span maps to [0, 1]; an empty span (all equal: no information)
        gives zeros."""
        values = np.asarray(values, dtype=np.float64)
        if self.high <= self.low:
            return np.zeros_like(values)
        return (values - self.low) / (self.high - self.low)


def minmax(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] over the values themselves; all equal gives zeros."""
    return Span.of(values).scale(values)


def convex(
    dense: np.ndarray,
    lexical: np.ndarray | None,
    dense_weight: float,
    spans: tuple[Span, Span | None] | None = None,
) -> np.ndarray:
    """w x minmax(dense) + (1 - w) x minmax(lexical); `dense` is already the sum of the
    dense views. `spans` (dense, lexical) normalise with a pool's range instead of the
    values' own. Without a lexical part the dense ranking is kept, scaled by w."""
    dense_span, lexical_span = spans or (Span.of(dense), None)
    fused = dense_weight * dense_span.scale(dense)
    if lexical is not None:
        lexical_span = lexical_span or Span.of(lexical)
        fused = fused + (1.0 - dense_weight) * lexical_span.scale(lexical)
    return fused


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the best value, 2 for the next...; ties take the order they came in."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    result = np.empty(len(order), dtype=np.int64)
    result[order] = np.arange(1, len(order) + 1)
    return result


def rrf(parts: list[np.ndarray], rrf_k: int, offset: int = 0) -> np.ndarray:
    """Reciprocal-rank fusion: sum over parts of 1 / (rrf_k + offset + rank in that part);
    `offset` counts the candidates of the pools ranked before these."""
    fused = np.zeros(len(parts[0]) if parts else 0, dtype=np.float64)
    for part in parts:
        fused += 1.0 / (rrf_k + offset + ranks(part))
    return fused
