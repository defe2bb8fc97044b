"""Optional re-ranking: a cross-encoder reads the question with each of the top candidates
and scores the pair, which ranks better than comparing two separate vectors, at the
cost of one transformer pass per candidate. sentence-transformers' `CrossEncoder`
loads it from a local folder or a hub name (with internet).

The cross-encoder re-orders the fused ranking window by window, `depth` candidates at a
time (the first 20, then the next 20, ...), so asking for more hits only appends: the
top hits are the same at every k.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from semsearch.errors import ModelNotFoundError
from semsearch.params import parse_count
from semsearch.search.candidates import Candidate


class Reranker:
    """A cross-encoder that re-scores (question, entry text) pairs."""

    def __init__(self, model: str, depth: int = 20, device: str | None = None) -> None:
        parse_count(depth, name="[search] rerank_depth")
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

    def reorder(
        self, question: str, found: Sequence[Candidate], texts: Sequence[str]
    ) -> list[Candidate]:
        """`found` (a ranking, `texts` its entries' texts) re-scored by the cross-encoder
        and sorted by its score within each window of `depth`; each candidate keeps its
        other scores beside it. A last window shorter than `depth` only comes where the
        ranking has no more entries."""
        scores = self.scores(question, texts)
        rescored = [
            Candidate(c.rowid, score, {**(c.scores or {"dense": c.score}), "rerank": score})
            for c, score in zip(found, scores, strict=True)
        ]
        windows = [rescored[i : i + self.depth] for i in range(0, len(rescored), self.depth)]
        return [c for window in windows for c in sorted(window, key=lambda c: -c.score)]
