"""SearchEngine: a question in, ranked known answers out, or "no answer" below a threshold.

This is what an FAQ bot imports: `SearchEngine.open("indexes/faq").search("...")`, and
what every face of semsearch calls: `query` (one-shot, piped and interactive), POST
/search, `calibrate` and `eval retrieval`. The encoder is rebuilt from the index's
manifest, so queries always go through the same model, pooling and layers that built
the index.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.config import SearchConfig
from semsearch.corpus import Record
from semsearch.encoders import Encoder, load_encoder
from semsearch.errors import InputError
from semsearch.filters import parse_where
from semsearch.fingerprint import check as check_fingerprint
from semsearch.fingerprint import encoder_config
from semsearch.index import IndexStore
from semsearch.index.selection import Selection
from semsearch.index.threshold import value_of as threshold_value
from semsearch.params import parse_k, parse_mode
from semsearch.search import answer, candidates
from semsearch.search.candidates import Candidate
from semsearch.search.rerank import Reranker
from semsearch.search.results import Hit, SearchResult
from semsearch.text import not_utf8

log = logging.getLogger("semsearch")

OVERFETCH = 4
"""Several known questions may share one answer: candidates are fetched this many times
the hits wanted, and again as many times more while answers repeat."""


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
        self._told_dense = False

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
        return answer.threshold_in_force(given, self.config.threshold, own)

    def mode(self, given: str | None = None) -> str:
        """The mode a search given `given` answers in: it, else the config's; hybrid
        answers in dense mode on an index without a lexical part (said once)."""
        wanted = parse_mode(given) or self.config.mode
        mode = candidates.effective_mode(self.store, wanted)
        if mode != wanted and not self._told_dense:
            log.warning(
                "%s was built before hybrid search: answering in dense mode; "
                "`semsearch index` rebuilds it for hybrid",
                self.store.path,
            )
            self._told_dense = True
        return mode

    def select(self, where: str | Sequence[str] | None) -> Selection | None:
        """The entries a `where` filter selects (semsearch.filters; several expressions
        must all hold), None for no filter; FilterError names what is wrong with it."""
        tree = parse_where(where)
        return None if tree is None else self.store.select(tree)

    def query_batch(
        self,
        questions: Sequence[str],
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[SearchResult]:
        """Every question's hits, best first, each answer once at its best score.

        `mode` (default: the config's, hybrid) is hybrid, dense or lexical. `threshold`
        (default: the config's, else the index's own) is a cosine in [-1, 1], "none"
        (off) or "index" (the index's own). A question is answered when its top hit's
        cosine clears it, whatever `k` (semsearch.search.answer); an answered question
        lists its hits that clear it. `where` (semsearch.filters) answers only from the
        entries it selects: they are ranked as if the index held nothing else."""
        k = parse_k(self.config.k if k is None else k)
        threshold = self.threshold(threshold)
        mode = self.mode(mode)
        within = self.select(where)
        questions = list(questions)
        for number, question in enumerate(questions, 1):
            if not isinstance(question, str) or not question.strip():
                raise InputError("every question must be a non-empty string")
            problem = not_utf8(question)
            if problem:
                where = f"question {number}" if len(questions) > 1 else "the question"
                raise InputError(f"{where} holds {problem}: give it as UTF-8")
        if not questions:
            return []
        vectors = np.ascontiguousarray(self.encoder.encode(questions), dtype=np.float32)
        ranked = self._ranked(questions, vectors, k, mode, within)
        return [
            answer.result(question, hits, threshold, mode)
            for question, hits in zip(questions, ranked, strict=True)
        ]

    def query(
        self,
        question: str,
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> SearchResult:
        return self.query_batch([question], k, threshold, mode, where)[0]

    def search(
        self,
        question: str,
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[Hit]:
        """Hits at or above the threshold; an empty list means "no confident answer"."""
        return self.query(question, k, threshold, mode, where).confident

    def search_batch(
        self,
        questions: Sequence[str],
        k: int | None = None,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        results = self.query_batch(questions, k, threshold, mode, where)
        return [result.confident for result in results]

    def _ranked(
        self,
        questions: list[str],
        vectors: np.ndarray,
        k: int,
        mode: str,
        within: Selection | None = None,
    ) -> list[list[Hit]]:
        """Each question's first k hits of its one ranking, each answer once (with
        `dedupe`): the one over-fetch loop. Candidates are fetched deeper, for the
        questions still short of k answers, until they have k or the ranking ends."""
        depth = k * OVERFETCH if self.config.dedupe else k
        if self.reranker is not None:  # whole windows of the cross-encoder's depth
            window = self.reranker.depth
            depth = -(-depth // window) * window
        done: list[list[Hit]] = [[] for _ in questions]
        pending = list(range(len(questions)))
        while pending:
            asked = [questions[i] for i in pending]
            found = candidates.ranked(
                self.store, vectors[pending], asked, self.config, mode, depth, within
            )
            short = []
            for i, ranking in zip(pending, found, strict=True):
                records = None
                if self.reranker is not None:
                    records = self.store.records_for(c.rowid for c in ranking)
                    texts = [self.store.parts.lexical_text(records[c.rowid]) for c in ranking]
                    ranking = self.reranker.reorder(questions[i], ranking, texts)
                done[i] = self._distinct(ranking, k, records)
                if len(done[i]) < k and len(ranking) == depth:
                    short.append(i)
            pending, depth = short, depth * OVERFETCH
        return done

    def _distinct(
        self, ranking: list[Candidate], k: int, records: Mapping[int, Record] | None = None
    ) -> list[Hit]:
        """The first k hits of `ranking`, each answer once with `dedupe`. Records are
        read k at a time (unless given): most answers are distinct, so one read of k
        rows usually does, instead of reading every candidate."""
        hits: list[Hit] = []
        seen: set[str] = set()
        for start in range(0, len(ranking), k):
            page = ranking[start : start + k]
            known = records or self.store.records_for(c.rowid for c in page)
            for found in page:
                record = known[found.rowid]
                if self.config.dedupe:
                    key = " ".join(record.answer.split())
                    if key in seen:
                        continue
                    seen.add(key)
                hits.append(
                    Hit(
                        record.id,
                        found.score,
                        record.text,
                        record.answer,
                        record.metadata,
                        len(hits) + 1,
                        found.scores,
                    )
                )
                if len(hits) == k:
                    return hits
        return hits


def open_index(
    path: str | Path,
    *,
    config: SearchConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> SearchEngine:
    """An index folder opened for questions, with the encoder that built it: the same
    as `SearchEngine.open` (see there)."""
    return SearchEngine.open(path, config=config, overrides=overrides, device=device)
