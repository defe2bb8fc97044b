"""What the batch worker does with a batch of /search and /embed requests.

All searches of a batch that ask for the same `k`, threshold, mode and filter go through one
`SearchEngine.query_batch` call: one forward pass, one FAISS search, one SQLite query,
on one leased index version. /embed texts of the batch share one `encode` call.

A request worth more than one batch is cut into pieces (`spans`) by its estimated
tokens, so that no single batch, and so no request, holds the model for long.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from semsearch.errors import FilterError
from semsearch.search.results import SearchResult
from semsearch.service.live import LiveIndex


@dataclass(frozen=True)
class SearchJob:
    questions: list[str]
    k: int
    threshold: float | str | None
    mode: str | None = None
    where: tuple[str, ...] = ()  # every expression must hold; () no filter


@dataclass(frozen=True)
class EmbedJob:
    texts: list[str]


Job = SearchJob | EmbedJob


class QuietEncoder:
    """The index's encoder as the server uses it: no progress bar, no truncation notes
    (limits cap the input; long texts are cut silently), fingerprint hashed once."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        encoder.report_truncation = False
        self.truncated = 0
        self._fingerprint: dict[str, Any] = dict(encoder.fingerprint)

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def max_tokens(self) -> int:
        """The most tokens the encoder reads of one text (longer ones are cut)."""
        return int(getattr(self.encoder, "max_seq_length", None) or 512)

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self._fingerprint

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool | None = None
    ) -> np.ndarray:
        vectors = self.encoder.encode(texts, batch_size=batch_size, show_progress=False)
        self.truncated = self.encoder.truncated
        return np.asarray(vectors, dtype=np.float32)


def estimate_tokens(text: str, limit: int) -> int:
    """Word-pieces of `text` as the encoder will read them, estimated without tokenising:
    about 4 bytes of UTF-8 per piece, plus [CLS] and [SEP], at most `limit`."""
    return min(limit, 2 + (len(text.encode("utf-8", "surrogatepass")) + 3) // 4)


def spans(costs: Sequence[float], max_cost: float, max_texts: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) pieces of at most `max_texts` texts and `max_cost` (a
    piece holds at least one text, whatever it costs); one piece when all fit."""
    pieces: list[tuple[int, int]] = []
    start, total = 0, 0.0
    for i, cost in enumerate(costs):
        if i > start and (total + cost > max_cost or i - start >= max_texts):
            pieces.append((start, i))
            start, total = i, 0.0
        total += cost
    if costs:
        pieces.append((start, len(costs)))
    return pieces


def processor(live: LiveIndex) -> Callable[[list[Job]], list[Any]]:
    """The batch function for MicroBatcher: results in job order."""

    def process(jobs: list[Job]) -> list[Any]:
        results: list[Any] = [None] * len(jobs)
        embeds = [i for i, job in enumerate(jobs) if isinstance(job, EmbedJob)]
        if embeds:
            texts = [text for i in embeds for text in _texts(jobs[i])]
            _split(live.encoder.encode(texts), embeds, jobs, results)
        groups: dict[Any, list[int]] = {}
        for i, job in enumerate(jobs):
            if isinstance(job, SearchJob):
                groups.setdefault((job.k, job.threshold, job.mode, job.where), []).append(i)
        if groups:
            with live.engine() as engine:
                for (k, threshold, mode, where), members in groups.items():
                    questions = [q for i in members for q in _texts(jobs[i])]
                    try:
                        found = engine.query_batch(questions, k, threshold, mode, list(where))
                    except FilterError as exc:  # that filter's requests fail, not the batch
                        for i in members:
                            results[i] = exc
                        continue
                    _split(found, members, jobs, results)
        return results

    return process


def _texts(job: Job) -> list[str]:
    return job.questions if isinstance(job, SearchJob) else job.texts


def _split(
    rows: np.ndarray | list[SearchResult], members: list[int], jobs: list[Job], out: list[Any]
) -> None:
    start = 0
    for i in members:
        count = len(_texts(jobs[i]))
        out[i] = rows[start : start + count]
        start += count
