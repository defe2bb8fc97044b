"""One search result and its one JSON form, shared by every edge.

`SearchEngine` (semsearch.search.engine) returns `SearchResult`s; `semsearch query
--json` prints `to_json()`; POST /search answers `to_json()` for one question and
`batch_to_json()` for several; the Python client reads them back with `from_json()` /
`batch_from_json()`; the search page and the pydantic response models in
`semsearch.service.schemas` read this shape too (a test keeps those models equal to it).

    {"question": "...", "answered": true, "threshold": 0.5, "mode": "hybrid",
     "best_score": 0.71,
     "results": [{"id", "score", "text", "answer", "metadata", "rank", "scores"}, ...]}

`threshold` is the one in force (the request's, the server's or the index's own; null:
none). `best_score` is the top-ranked hit's cosine (null when there is no hit), and
`answered` is whether it clears the threshold (semsearch.search.answer): neither depends
on how many hits were asked for. An answered question lists the hits whose cosine clears
the threshold; an unanswered one an empty list, with `best_score` saying how close it
came.

`score` is what ranked the hit: the fused score in hybrid mode, the cosine in dense
mode, BM25 in lexical mode. `scores` (hybrid and lexical modes) holds each part's own:
`dense` (the cosine with the entry's indexed text, which "answered" and the threshold
judge), `question` or `joint` (the cosine with the second view) and `lexical` (BM25).

Several questions (POST /search with "queries"):

    {"results": [[hit, ...], ...], "answered": [true, ...], "threshold": 0.5, "mode": ...,
     "best_score": [0.71, ...]}

Scores are rounded to 6 places in JSON, so a round trip keeps everything else exactly.
Standard library only: the client imports this without numpy, FAISS or torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCORE_DIGITS = 6


@dataclass(frozen=True)
class Hit:
    """One known entry that answers the question; `score` ranked it (see above)."""

    id: str
    score: float
    text: str
    answer: str
    metadata: dict[str, Any]
    rank: int
    scores: dict[str, float] | None = None

    @property
    def cosine(self) -> float:
        """The cosine with the entry's indexed text: what the threshold judges."""
        return self.scores["dense"] if self.scores else self.score

    def to_json(self) -> dict[str, Any]:
        """{"id", "score" (6 places), "text", "answer", "metadata", "rank"[, "scores"]}"""
        data = {
            "id": self.id,
            "score": round(self.score, SCORE_DIGITS),
            "text": self.text,
            "answer": self.answer,
            "metadata": self.metadata,
            "rank": self.rank,
        }
        if self.scores is not None:
            data["scores"] = {name: round(v, SCORE_DIGITS) for name, v in self.scores.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hit:
        """The inverse of `to_json`; `metadata`, `rank` and `scores` may be absent."""
        scores = data.get("scores")
        return cls(
            id=data["id"],
            score=float(data["score"]),
            text=data["text"],
            answer=data["answer"],
            metadata=dict(data.get("metadata") or {}),
            rank=int(data.get("rank", 0)),
            scores={str(k): float(v) for k, v in scores.items()} if scores else None,
        )


@dataclass(frozen=True)
class SearchResult:
    """The hits of one question that clear the threshold, and whether any does."""

    question: str
    hits: list[Hit]
    answered: bool
    threshold: float | None
    mode: str | None = None  # what ranked the hits: hybrid, dense or lexical
    best_score: float | None = None  # the top-ranked hit's cosine, before the filter

    @property
    def confident(self) -> list[Hit]:
        """The hits at or above the threshold: all of `hits`, which lists only those."""
        if self.threshold is None:
            return self.hits
        return [hit for hit in self.hits if hit.cosine >= self.threshold]

    def to_json(self) -> dict[str, Any]:
        """{"question", "answered", "threshold", "mode", "best_score", "results": [hit, ...]}"""
        return {
            "question": self.question,
            "answered": self.answered,
            "threshold": self.threshold,
            "mode": self.mode,
            "best_score": _rounded(self.best_score),
            "results": [hit.to_json() for hit in self.hits],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchResult:
        """The inverse of `to_json`."""
        return cls(
            question=data["question"],
            hits=[Hit.from_json(hit) for hit in data["results"]],
            answered=bool(data["answered"]),
            threshold=data.get("threshold"),
            mode=data.get("mode"),
            best_score=data.get("best_score"),
        )


def batch_to_json(results: Sequence[SearchResult]) -> dict[str, Any]:
    """Several questions' results, in order: {"results": [[hit, ...]], "answered": [...],
    "threshold": ...}. One request has one threshold: the first result's (None if empty)."""
    return {
        "results": [[hit.to_json() for hit in result.hits] for result in results],
        "answered": [result.answered for result in results],
        "threshold": results[0].threshold if results else None,
        "mode": results[0].mode if results else None,
        "best_score": [_rounded(result.best_score) for result in results],
    }


def batch_from_json(data: Mapping[str, Any], questions: Sequence[str]) -> list[SearchResult]:
    """The inverse of `batch_to_json`; the batch form has no questions, so the caller
    gives the ones it asked, in order."""
    rows = data["results"]
    if len(rows) != len(questions):
        raise ValueError(f"{len(rows)} results for {len(questions)} questions")
    answered = data.get("answered") or [bool(row) for row in rows]
    threshold, mode = data.get("threshold"), data.get("mode")
    best = data.get("best_score") or [None] * len(rows)
    return [
        SearchResult(
            question, [Hit.from_json(hit) for hit in row], bool(flag), threshold, mode, score
        )
        for question, row, flag, score in zip(questions, rows, answered, best, strict=True)
    ]


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, SCORE_DIGITS)
