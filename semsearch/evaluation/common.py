"""Helpers shared by the evaluations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from semsearch.encoders import Encoder


def encode_unique(
    encoder: Encoder, texts: Sequence[str], show_progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode each distinct text once; returns (vectors of the distinct texts, the row of
    each input text in them, how many distinct texts were truncated)."""
    position: dict[str, int] = {}
    rows = np.fromiter(
        (position.setdefault(text, len(position)) for text in texts),
        dtype=np.int64,
        count=len(texts),
    )
    vectors = encoder.encode(list(position), show_progress=show_progress)
    return vectors, rows, encoder.truncated


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 in float64 (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def encoder_summary(encoder: Encoder) -> dict[str, Any]:
    """What produced the numbers: the encoder's fingerprint (as stored in index manifests)."""
    return dict(encoder.fingerprint)


def finite(value: float) -> float | None:
    """JSON has no NaN: an undefined metric (e.g. a constant prediction) becomes null."""
    return None if value is None or math.isnan(value) else float(value)
