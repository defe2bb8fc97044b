"""Fixtures of the index tests: real MiniLM vectors of WordNet glosses, encoded once.

The recall tests of every approximate type share them (tests/index/test_recall.py: one
module, which `--dist loadfile` gives to one pytest-xdist worker)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.conftest import shared_data

CORPUS, QUESTIONS = 5000, 200


@dataclass(frozen=True)
class Glosses:
    """5,000 distinct glosses (the corpus), 200 others (questions), their words, and
    MiniLM's vectors (int8 backend) of both and of the packaged generic questions (a build
    scores those for its threshold)."""

    corpus: list[str]
    questions: list[str]
    words: list[str]  # each corpus gloss's first lemma
    corpus_vectors: np.ndarray
    question_vectors: np.ndarray
    generic: list[str]
    generic_vectors: np.ndarray
    fingerprint: dict[str, Any]


class Lookup:
    """Serves vectors already computed by MiniLM, so each index build costs no encoding."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray, fingerprint: dict) -> None:
        self.rows = {text: row for text, row in zip(texts, vectors, strict=True)}
        self.dim = vectors.shape[1]
        self.fingerprint = fingerprint
        self.truncated = 0

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool | None = None
    ) -> np.ndarray:
        return np.stack([self.rows[text] for text in texts])


@pytest.fixture(scope="session")
def glosses(minilm_folder: Any) -> Glosses:
    """MiniLM embeds the 5,683 texts once per run with its int8 backend, in ~20 s of one
    core (fp32 took 1.8 times as long: ~160 short texts a second)."""
    from semsearch.encoders import load_encoder
    from semsearch.index.threshold import generic_questions

    lines = (shared_data("wordnet_glosses") / "glosses.jsonl").read_text(encoding="utf-8")
    entries = list({e["text"]: e for e in map(json.loads, lines.splitlines())}.values())
    random.Random(0).shuffle(entries)
    chosen = entries[: CORPUS + QUESTIONS]
    generic = generic_questions()
    minilm = load_encoder(backend="onnx-int8")
    vectors = minilm.encode([e["text"] for e in chosen] + generic, batch_size=64)
    return Glosses(
        corpus=[e["text"] for e in chosen[:CORPUS]],
        questions=[e["text"] for e in chosen[CORPUS:]],
        words=[e["words"][0].replace("_", " ") for e in chosen[:CORPUS]],
        corpus_vectors=vectors[:CORPUS],
        question_vectors=vectors[CORPUS : CORPUS + QUESTIONS],
        generic=generic,
        generic_vectors=vectors[CORPUS + QUESTIONS :],
        fingerprint=minilm.fingerprint,
    )
