"""SearchEngine: a question in, ranked known answers out, or "no answer" below a threshold.

This is what an FAQ bot imports: `SearchEngine.open("indexes/faq").search("...")`. The
encoder is rebuilt from the index's manifest, so queries always go through the same
model, pooling and layers that built the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.config import EncoderConfig, SearchConfig
from semsearch.encoders import Encoder, load_encoder
from semsearch.errors import ConfigError, InputError
from semsearch.index import IndexStore, check_encoder

ENCODER_KEYS = (
    "kind",
    "model",
    "layers",
    "layer_combine",
    "skip_special_tokens",
    "max_seq_length",
    "normalize",
)


@dataclass(frozen=True)
class Hit:
    """One known entry that answers the question; `score` is the cosine similarity."""

    id: str
    score: float
    text: str
    answer: str
    metadata: dict[str, Any]
    rank: int


@dataclass(frozen=True)
class SearchResult:
    """All hits of one question, and whether the best clears the threshold."""

    question: str
    hits: list[Hit]
    answered: bool
    threshold: float | None

    @property
    def confident(self) -> list[Hit]:
        """The hits at or above the threshold (all of them when there is none)."""
        if self.threshold is None:
            return self.hits
        return [hit for hit in self.hits if hit.score >= self.threshold]


def encoder_config_for(manifest_encoder: dict[str, Any], device: str = "auto") -> EncoderConfig:
    """The encoder settings that built an index, from its manifest's fingerprint."""
    values = {key: manifest_encoder[key] for key in ENCODER_KEYS if key in manifest_encoder}
    if manifest_encoder.get("precision") == "int8":
        values["backend"] = "onnx-int8"  # int8 vectors are only comparable with int8 ones
    if manifest_encoder.get("kind") == "bert":
        values["pooling"] = manifest_encoder["pooling"]
    else:
        values.pop("layers", None)
        values.pop("layer_combine", None)
    return EncoderConfig(**values, device=device)


class SearchEngine:
    """An open index plus the encoder that built it."""

    def __init__(
        self, store: IndexStore, encoder: Encoder, config: SearchConfig | None = None
    ) -> None:
        check_encoder(store.manifest.encoder, encoder.fingerprint)
        prepare = getattr(encoder, "prepare", None)  # stand-in encoders may have none
        if prepare is not None:
            prepare()  # load the backend now, so that no question pays for it
        self.store = store
        self.encoder = encoder
        self.config = config or SearchConfig()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        config: SearchConfig | None = None,
        device: str = "auto",
    ) -> SearchEngine:
        """Open an index folder; the encoder comes from its manifest unless one is given."""
        store = IndexStore.open(path)
        if encoder is None:
            encoder = load_encoder(encoder_config_for(store.manifest.encoder, device))
        return cls(store, encoder, config)

    @property
    def path(self) -> Path:
        return self.store.path

    def query_batch(
        self, questions: Sequence[str], k: int | None = None, threshold: float | None = None
    ) -> list[SearchResult]:
        """Every question's hits, best first, each answer once at its best score."""
        k = self.config.k if k is None else k
        threshold = self.config.threshold if threshold is None else threshold
        if k < 1:
            raise ConfigError("k must be at least 1")
        questions = list(questions)
        if any(not isinstance(q, str) or not q.strip() for q in questions):
            raise InputError("every question must be a non-empty string")
        if not questions:
            return []
        vectors = self.encoder.encode(questions)
        # several known questions may share one answer: fetch more, keep each answer once
        fetch = min(self.store.count, k * 4 if self.config.dedupe else k)
        raw = self.store.search_rowids(
            np.ascontiguousarray(vectors, dtype=np.float32), max(fetch, 1)
        )
        return [
            self._result(q, found, k, threshold) for q, found in zip(questions, raw, strict=True)
        ]

    def query(
        self, question: str, k: int | None = None, threshold: float | None = None
    ) -> SearchResult:
        return self.query_batch([question], k, threshold)[0]

    def search(
        self, question: str, k: int | None = None, threshold: float | None = None
    ) -> list[Hit]:
        """Hits at or above the threshold; an empty list means "no confident answer"."""
        return self.query(question, k, threshold).confident

    def search_batch(
        self, questions: Sequence[str], k: int | None = None, threshold: float | None = None
    ) -> list[list[Hit]]:
        return [result.confident for result in self.query_batch(questions, k, threshold)]

    def _result(
        self, question: str, found: list[tuple[int, float]], k: int, threshold: float | None
    ) -> SearchResult:
        hits: list[Hit] = []
        seen: set[str] = set()
        # Records are read k at a time: most answers are distinct, so one read of k rows
        # usually does, instead of reading all 4k candidates.
        for start in range(0, len(found), k):
            page = found[start : start + k]
            records = self.store.records_for(rowid for rowid, _ in page)
            for rowid, score in page:
                record = records[rowid]
                key = " ".join(record.answer.split())
                if self.config.dedupe and key in seen:
                    continue
                seen.add(key)
                hit = Hit(
                    record.id,
                    float(score),
                    record.text,
                    record.answer,
                    record.metadata,
                    len(hits) + 1,
                )
                hits.append(hit)
                if len(hits) == k:
                    return self._answered(question, hits, threshold)
        return self._answered(question, hits, threshold)

    @staticmethod
    def _answered(question: str, hits: list[Hit], threshold: float | None) -> SearchResult:
        answered = bool(hits) and (threshold is None or hits[0].score >= threshold)
        return SearchResult(question, hits, answered, threshold)
