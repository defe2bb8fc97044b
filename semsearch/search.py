"""SearchEngine: a question in, ranked known answers out, or "no answer" below a threshold.

This is what an FAQ bot imports: `SearchEngine.open("indexes/faq").search("...")`. The
encoder is rebuilt from the index's manifest, so queries always go through the same
model, pooling and layers that built the index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.config import SearchConfig, resolve_threshold
from semsearch.encoders import Encoder, load_encoder
from semsearch.errors import ConfigError, InputError
from semsearch.fingerprint import check as check_fingerprint
from semsearch.fingerprint import encoder_config
from semsearch.index import IndexStore
from semsearch.index.threshold import value_of as threshold_value
from semsearch.ranking import Ranked, effective_mode, rank
from semsearch.rerank import Reranker
from semsearch.results import Hit, SearchResult  # defined there; importable from here too
from semsearch.text import not_utf8


class SearchEngine:
    """An open index plus the encoder that built it."""

    def __init__(
        self,
        store: IndexStore,
        encoder: Encoder,
        config: SearchConfig | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        check_fingerprint(store.manifest.encoder, encoder.fingerprint)
        prepare = getattr(encoder, "prepare", None)  # stand-in encoders may have none
        if prepare is not None:
            prepare()  # load the backend now, so that no question pays for it
        self.store = store
        self.encoder = encoder
        self.config = config or SearchConfig()
        if reranker is None and self.config.rerank:
            reranker = Reranker(self.config.rerank, self.config.rerank_depth)
        self.reranker = reranker

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        overrides: Mapping[str, Any] | None = None,
        encoder: Encoder | None = None,
        config: SearchConfig | None = None,
        device: str | None = None,
    ) -> SearchEngine:
        """Open an index folder with the encoder that built it.

        The encoder settings come from the index's manifest; `overrides` (EncoderConfig
        fields, e.g. {"device": "cpu", "threads": 1}) are laid over them, and an encoder
        whose vectors would differ is refused. A ready `encoder` may be given instead."""
        store = IndexStore.open(path)
        try:
            if encoder is None:
                settings = {
                    **(overrides or {}),
                    "device": device or (overrides or {}).get("device"),
                }
                encoder = load_encoder(encoder_config(store.manifest.encoder, **settings))
            return cls(store, encoder, config)
        except BaseException:
            store.close()
            raise

    @property
    def path(self) -> Path:
        return self.store.path

    def threshold(self, given: float | str | None = None) -> float | None:
        """The threshold in force for a search given `given`: it, else the config's,
        else the index's own (None: every question is answered by its best hit)."""
        own = threshold_value(self.store.manifest.threshold)
        return resolve_threshold(given, self.config.threshold, own)

    def query_batch(
        self,
        questions: Sequence[str],
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
    ) -> list[SearchResult]:
        """Every question's hits, best first, each answer once at its best score.

        `mode` (default: the config's, hybrid) is hybrid, dense or lexical. `threshold`
        (default: the config's, else the index's own) is a cosine in [-1, 1] or "none"
        (off); with one in force only the hits whose cosine clears it are listed."""
        k = self.config.k if k is None else k
        threshold = self.threshold(threshold)
        if k < 1:
            raise ConfigError("k must be at least 1", setting="k")
        questions = list(questions)
        for number, question in enumerate(questions, 1):
            if not isinstance(question, str) or not question.strip():
                raise InputError("every question must be a non-empty string")
            problem = not_utf8(question)
            if problem:
                where = f"question {number}" if len(questions) > 1 else "the question"
                raise InputError(f"{where} holds {problem}: give it as UTF-8")
        mode = effective_mode(self.store, mode or self.config.mode)
        if not questions:
            return []
        vectors = np.ascontiguousarray(self.encoder.encode(questions), dtype=np.float32)
        # several known questions may share one answer: fetch more, keep each answer once
        fetch = min(self.store.count, k * 4 if self.config.dedupe else k)
        if self.reranker is not None:  # it reads `depth` candidates, at least those shown
            fetch = min(self.store.count, max(fetch, self.reranker.depth))
        ranked = rank(self.store, vectors, questions, self.config, max(fetch, 1), mode)
        if self.reranker is not None:
            ranked = [self._reranked(q, found) for q, found in zip(questions, ranked, strict=True)]
        return [
            self._result(q, found, k, threshold, mode)
            for q, found in zip(questions, ranked, strict=True)
        ]

    def query(
        self,
        question: str,
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
    ) -> SearchResult:
        return self.query_batch([question], k, threshold, mode)[0]

    def search(
        self,
        question: str,
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
    ) -> list[Hit]:
        """Hits at or above the threshold; an empty list means "no confident answer"."""
        return self.query(question, k, threshold, mode).confident

    def search_batch(
        self,
        questions: Sequence[str],
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
    ) -> list[list[Hit]]:
        return [result.confident for result in self.query_batch(questions, k, threshold, mode)]

    def _reranked(self, question: str, found: list[Ranked]) -> list[Ranked]:
        """The candidates re-scored by the cross-encoder (question with question and
        answer) and sorted by its score; each keeps its other scores beside it."""
        assert self.reranker is not None
        records = self.store.records_for(ranked.rowid for ranked in found)
        texts = [self.store.parts.lexical_text(records[ranked.rowid]) for ranked in found]
        scores = self.reranker.scores(question, texts)
        rescored = [
            Ranked(
                ranked.rowid, score, {**(ranked.scores or {"dense": ranked.score}), "rerank": score}
            )
            for ranked, score in zip(found, scores, strict=True)
        ]
        return sorted(rescored, key=lambda ranked: -ranked.score)

    def _result(
        self, question: str, found: list[Ranked], k: int, threshold: float | None, mode: str
    ) -> SearchResult:
        hits: list[Hit] = []
        seen: set[str] = set()
        # Records are read k at a time: most answers are distinct, so one read of k rows
        # usually does, instead of reading all 4k candidates.
        for start in range(0, len(found), k):
            page = found[start : start + k]
            records = self.store.records_for(ranked.rowid for ranked in page)
            for ranked in page:
                record = records[ranked.rowid]
                key = " ".join(record.answer.split())
                if self.config.dedupe and key in seen:
                    continue
                seen.add(key)
                hit = Hit(
                    record.id,
                    ranked.score,
                    record.text,
                    record.answer,
                    record.metadata,
                    len(hits) + 1,
                    ranked.scores,
                )
                hits.append(hit)
                if len(hits) == k:
                    break
            if len(hits) == k:
                break
        best = max((hit.cosine for hit in hits), default=None)
        if threshold is not None:
            cleared = [hit for hit in hits if hit.cosine >= threshold]
            hits = [dataclasses.replace(hit, rank=i) for i, hit in enumerate(cleared, 1)]
        return SearchResult(question, hits, bool(hits), threshold, mode, best)
