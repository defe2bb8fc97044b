"""A text's vector is the same whatever it is batched with: alone, or among other texts
in batches of several sizes, with long texts that pad it. Every backend, int8 included
(ONNX Runtime's dynamic int8 scales activations over the whole input tensor, so the
int8 runner runs each text alone, unpadded)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from semsearch.encoders import load_encoder

BACKENDS = ("torch", "onnx", "onnx-int8")
FAQ = Path(__file__).resolve().parents[2] / "examples" / "faq.csv"
SIZES = (2, 3, 7, 16, 64)  # batch sizes; 64 holds every text in one padded batch


def texts() -> list[str]:
    """Short FAQ questions, and long answers run together so the questions get padding."""
    with FAQ.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    questions = [row["question"] for row in rows[:24]]
    answers = [row["answer"] for row in rows]
    long = [" ".join(answers[i : i + 4]) for i in range(0, 24, 4)]  # over 128 tokens
    return questions + long


def assert_batch_invariant(encoder, given: list[str]) -> None:
    alone = np.concatenate([encoder.encode([text]) for text in given])
    for size in SIZES:
        mixed = encoder.encode(given, batch_size=size)
        assert np.abs(mixed - alone).max() <= 1e-6, f"batch size {size}"
    reordered = list(reversed(given))  # other neighbours, other positions
    assert np.abs(encoder.encode(reordered, batch_size=5)[::-1] - alone).max() <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_sentence_transformer_vectors_do_not_depend_on_the_batch(tiny_sbert, backend):
    encoder = load_encoder(model=str(tiny_sbert), backend=backend)
    given = texts()
    assert encoder.encode(given).shape == (len(given), 32)
    assert_batch_invariant(encoder, given)


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_bert_vectors_do_not_depend_on_the_batch(tiny_bert, backend):
    options = {"pooling": "mean_max", "layers": "-2,-1", "layer_combine": "sum"}
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend=backend, **options)
    assert_batch_invariant(encoder, texts())


def test_int8_vectors_are_the_same_on_one_thread_or_two(tiny_sbert):
    given = texts()
    one = load_encoder(model=str(tiny_sbert), backend="onnx-int8", threads=1).encode(given)
    two = load_encoder(model=str(tiny_sbert), backend="onnx-int8", threads=2).encode(given)
    np.testing.assert_array_equal(one, two)


@pytest.mark.real
@pytest.mark.parametrize("backend", BACKENDS)
def test_minilm_vectors_do_not_depend_on_the_batch(minilm_folder, backend):
    """The tiny models above cover every batch size with all the texts; the real model
    needs only enough to mix short texts with long ones that pad them in every batch."""
    given = texts()
    encoder = load_encoder(model=str(minilm_folder), backend=backend)
    assert_batch_invariant(encoder, [*given[:5], given[-2], *given[5:8], given[-1]])
