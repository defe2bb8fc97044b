"""Fusing the rankings of an index's parts into one: the arithmetic, nothing else.

Every candidate comes with its real score in each part (the cosine with the entry's
indexed text, the cosine with its second view, and BM25), so nothing is guessed for an
entry that one part did not list. Two ways to combine them:

- convex (the default): w x minmax(dense views) + (1 - w) x minmax(lexical), each
  min-max normalised over the question's first candidate pool (`Span`), so cosines and
  BM25's unbounded scores share one scale. The dense views are the entry's text and its
  second view, t x text + (1 - t) x second, with w and t the index's own choice
  (semsearch.index.fusion_choice); an index without one, or settings that give the
  fusion or its weight, sum the two views (t = 0.5 ranks the same) at w from the
  settings, else 0.8 (`Rule.of`);
- rrf: reciprocal-rank fusion, the sum over parts of 1 / (rrf_k + rank).

The spans are taken once per question, from the pool every ranking starts with, and
reused for candidates fetched deeper: every entry's fused score is then a fixed function
of the question, whatever number of hits was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from semsearch.config import DENSE_WEIGHT, SearchConfig
from semsearch.index.fusion_choice import weights as chosen_weights


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
    dense_weight: float | np.ndarray,
    spans: tuple[Span, Span | None] | None = None,
) -> np.ndarray:
    """w x minmax(dense) + (1 - w) x minmax(lexical); `dense` is already the sum of the
    dense views. `spans` (dense, lexical) normalise with a pool's range instead of the
    values' own. Without a lexical part the dense ranking is kept, scaled by w. An array
    of weights gives a row each (a build scores its grid of fusions so)."""
    dense_span, lexical_span = spans or (Span.of(dense), None)
    weight = np.asarray(dense_weight, dtype=np.float64)
    if weight.ndim:
        weight = weight[:, None]
    fused = weight * dense_span.scale(dense)
    if lexical is not None:
        lexical_span = lexical_span or Span.of(lexical)
        fused = fused + (1.0 - weight) * lexical_span.scale(lexical)
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


@dataclass(frozen=True)
class Rule:
    """The fusion hybrid questions are ranked with, and where it came from: "index" (the
    index's own choice), "settings" (the fusion and dense_weight settings) or "fixed"
    (an index that kept no choice: the fixed default)."""

    fusion: str
    dense_weight: float
    text_share: float | None  # None: the dense views summed, as the fixed fusion does
    source: str

    @classmethod
    def of(cls, config: SearchConfig, chosen: dict[str, Any] | None) -> Rule:
        """Settings that give the fusion or its weight override the index's choice."""
        own = chosen_weights(chosen)
        if config.fusion is not None or config.dense_weight is not None:
            weight = DENSE_WEIGHT if config.dense_weight is None else config.dense_weight
            return cls(config.fusion or "convex", weight, None, "settings")
        if own is None:
            return cls("convex", DENSE_WEIGHT, None, "fixed")
        return cls("convex", own[0], own[1], "index")

    def dense(self, text: np.ndarray, second: np.ndarray | None) -> np.ndarray:
        """The dense views' combined score (the text's alone without a second view)."""
        if second is None:
            return np.asarray(text, dtype=np.float64)
        if self.text_share is None:
            return np.asarray(text + second, dtype=np.float64)
        return self.text_share * text + (1.0 - self.text_share) * second

    def to_json(self) -> dict[str, Any]:
        return {
            "fusion": self.fusion,
            "dense_weight": self.dense_weight,
            "text_share": self.text_share,
            "source": self.source,
        }
