"""Optional re-ranking: a cross-encoder reads the question with each of the top candidates
and scores the pair, which ranks better than comparing two separate vectors, at the
cost of one transformer pass per candidate. sentence-transformers' `CrossEncoder`
loads it from a local folder or a hub name (with internet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from semsearch.errors import ConfigError, ModelNotFoundError


class Reranker:
    """A cross-encoder that re-scores (question, entry text) pairs."""

    def __init__(self, model: str, depth: int = 20, device: str | None = None) -> None:
        if depth < 1:
            raise ConfigError("[search] rerank_depth must be at least 1")
        from sentence_transformers import CrossEncoder

        try:
            self.model: Any = CrossEncoder(model, device=device)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"cannot load the cross-encoder {model!r} ({str(exc).splitlines()[0]}): "
                "give a local folder or a hub name reachable from here",
                setting="rerank",
            ) from None
        self.name = model
        self.depth = depth

    def scores(self, question: str, texts: Sequence[str]) -> list[float]:
        """The cross-encoder's score of each (question, text) pair."""
        if not texts:
            return []
        pairs = [(question, text) for text in texts]
        return [float(s) for s in self.model.predict(pairs, show_progress_bar=False)]
