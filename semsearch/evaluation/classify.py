"""Sentence embeddings as features: a logistic-regression classifier (scikit-learn) trained
on one labelled file and scored on another, with accuracy and macro-F1."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from semsearch.encoders import Encoder
from semsearch.errors import InputError
from semsearch.evaluation.common import encode_unique, encoder_summary
from semsearch.evaluation.data import Labelled
from semsearch.evaluation.deps import require
from semsearch.evaluation.metrics import accuracy, macro_f1

MAX_ITER = 1000
"""lbfgs iterations: enough to converge on 384-1536-dim normalised features."""


@dataclass(frozen=True)
class ClassifyResult:
    train: str
    test: str
    train_size: int
    train_total: int
    test_size: int
    classes: int
    unseen_test_labels: int
    accuracy: float
    macro_f1: float
    seconds: dict[str, float]
    encoder: dict[str, Any]
    seed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "classify",
            "train": self.train,
            "test": self.test,
            "train_size": self.train_size,
            "train_total": self.train_total,
            "test_size": self.test_size,
            "classes": self.classes,
            "unseen_test_labels": self.unseen_test_labels,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "classifier": f"LogisticRegression(max_iter={MAX_ITER})",
            "seed": self.seed,
            "seconds": {key: round(value, 3) for key, value in self.seconds.items()},
            "encoder": self.encoder,
        }


def sample_rows(total: int, limit: int | None, seed: int) -> np.ndarray:
    """All row numbers, or `limit` of them drawn at random (seeded), in file order."""
    if limit is None or limit >= total:
        return np.arange(total)
    if limit < 1:
        raise InputError(f"limit_train must be at least 1, got {limit}", setting="limit_train")
    return np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))


def evaluate_classification(
    encoder: Encoder,
    train: Labelled,
    test: Labelled,
    *,
    limit_train: int | None = None,
    seed: int = 0,
    show_progress: bool | None = None,
) -> ClassifyResult:
    """Embed both files, fit LogisticRegression on the training vectors, score the test."""
    require("sklearn", "eval classify")
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    rows = sample_rows(len(train), limit_train, seed)
    train_texts = [train.texts[i] for i in rows]
    train_labels = [train.labels[i] for i in rows]
    if len(set(train_labels)) < 2:
        raise InputError(f"{train.path}: the training texts carry a single label; need two or more")
    vectors, index, _ = encode_unique(encoder, train_texts + test.texts, show_progress)
    features = vectors[index]
    x_train, x_test = features[: len(train_texts)], features[len(train_texts) :]
    encoded = time.perf_counter()
    classifier = LogisticRegression(max_iter=MAX_ITER)
    classifier.fit(x_train, train_labels)
    predicted = [str(label) for label in classifier.predict(x_test)]
    fitted = time.perf_counter()
    return ClassifyResult(
        train=str(train.path),
        test=str(test.path),
        train_size=len(train_texts),
        train_total=len(train),
        test_size=len(test),
        classes=len(set(train_labels)),
        unseen_test_labels=sum(label not in set(train_labels) for label in test.labels),
        accuracy=accuracy(test.labels, predicted),
        macro_f1=macro_f1(test.labels, predicted),
        seconds={"encode": encoded - started, "fit": fitted - encoded, "total": fitted - started},
        encoder=encoder_summary(encoder),
        seed=seed,
    )
