"""Encoder behaviour: batching, padding, truncation, bad input, fingerprints, models."""

from __future__ import annotations

import numpy as np
import pytest

from semsearch.encoders import load_encoder
from semsearch.encoders.words import token_vectors, word_vectors
from semsearch.errors import ConfigError, InputError, ModelNotFoundError
from semsearch.models import resolve_model, weights_sha256

TEXTS = [
    "How do I reset my password?",
    "Export",
    "Can I use the app without an internet connection at all, for example on a plane?",
    "",
    "Where are my notes stored and are they encrypted at rest?",
    "Billing.",
]


@pytest.fixture(scope="module", params=["bert", "sentence-transformer"])
def tiny_encoder(request, tiny_bert, tiny_sbert):
    if request.param == "bert":
        return load_encoder(kind="bert", model=str(tiny_bert), pooling="mean")
    return load_encoder(model=str(tiny_sbert))


def test_batch_and_padding_invariance(tiny_encoder):
    alone = np.stack([tiny_encoder.encode([text])[0] for text in TEXTS])
    for batch_size in (1, 2, 4, 32):
        together = tiny_encoder.encode(TEXTS, batch_size=batch_size)
        assert np.abs(together - alone).max() < 1e-5
    reversed_order = tiny_encoder.encode(TEXTS[::-1], batch_size=3)[::-1]
    assert np.abs(reversed_order - alone).max() < 1e-5


def test_output_is_float32_normalised_in_input_order(tiny_encoder):
    vectors = tiny_encoder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), tiny_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[2], tiny_encoder.encode([TEXTS[2]])[0], atol=1e-5)


def test_empty_list_and_empty_string(tiny_encoder):
    assert tiny_encoder.encode([]).shape == (0, tiny_encoder.dim)
    empty = tiny_encoder.encode([""])
    assert empty.shape == (1, tiny_encoder.dim) and np.isfinite(empty).all()


def test_non_strings_are_refused(tiny_encoder):
    with pytest.raises(InputError, match=r"text 1 is a int, not a string"):
        tiny_encoder.encode(["fine", 3])
    with pytest.raises(InputError, match=r"not one string"):
        tiny_encoder.encode("a bare string")


def test_truncation_is_counted_and_reported(tiny_bert, caplog):
    encoder = load_encoder(kind="bert", model=str(tiny_bert), max_seq_length=8)
    long = "one two three four five six seven eight nine ten"
    huge = " ".join(["word"] * 5000)  # hundreds of windows of 8 tokens, still one text
    vectors = encoder.encode(["short", long, long + " eleven", "a b c d e f", huge])
    assert encoder.truncated == 3
    assert "3 of 5 texts were longer than 8 tokens and were truncated" in caplog.text
    caplog.clear()
    # a truncated text has the vector of its first 8 tokens (6 words + [CLS] + [SEP])
    np.testing.assert_allclose(
        vectors[1], encoder.encode(["one two three four five six"])[0], atol=1e-5
    )
    encoder.encode(["short"])
    assert encoder.truncated == 0 and caplog.text == ""


def test_max_seq_length_above_the_model_limit(tiny_bert):
    with pytest.raises(ConfigError, match=r"exceeds the model's limit of 128 tokens"):
        load_encoder(kind="bert", model=str(tiny_bert), max_seq_length=1000)


def test_fingerprint_names_everything_that_decides_the_vectors(tiny_bert):
    encoder = load_encoder(
        kind="bert", model=str(tiny_bert), pooling="max", layers="-2,-1", layer_combine="sum"
    )
    assert encoder.fingerprint == {
        "kind": "bert",
        "model": str(tiny_bert),
        "weights_sha256": weights_sha256(tiny_bert),
        "pooling": "max",
        "layers": [-2, -1],
        "layer_combine": "sum",
        "skip_special_tokens": False,
        "max_seq_length": 128,
        "normalize": True,
        "dim": 32,
        "backend": "onnx",
        "precision": "fp32",
    }
    assert len(encoder.fingerprint["weights_sha256"]) == 64


def test_sentence_transformer_refuses_raw_bert_options(tiny_sbert):
    with pytest.raises(ConfigError, match=r"apply to raw BERT: use encoder kind bert"):
        load_encoder(model=str(tiny_sbert), pooling="cls")


def test_raw_bert_folder_is_not_a_sentence_transformer(tiny_bert):
    with pytest.raises(ConfigError, match=r"not a sentence-transformers model.*encoder kind bert"):
        load_encoder(model=str(tiny_bert))


def test_missing_models_name_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=r"pip install gt-no-such-model-xyz"):
        resolve_model("no-such-model-xyz")
    with pytest.raises(ModelNotFoundError, match=r"holds no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"does not exist"):
        resolve_model(str(tmp_path / "absent"))


def test_unknown_device():
    with pytest.raises(ConfigError, match=r"unknown device 'gpu7'"):
        load_encoder(device="gpu7")


def test_word_pieces_merge_into_words_with_spans(tiny_bert):
    encoder = load_encoder(kind="bert", model=str(tiny_bert))
    text = "Here is the sentence I want embeddings for."
    pieces = token_vectors(encoder, [text], layers=(-2, -1), combine="concat")[0]
    assert pieces.units[7:11] == ["em", "##bed", "##ding", "##s"]
    assert pieces.vectors.shape == (14, 64)
    for merge, expected in (
        ("first", pieces.vectors[7]),
        ("last", pieces.vectors[10]),
        ("mean", pieces.vectors[7:11].mean(0)),
        ("sum", pieces.vectors[7:11].sum(0)),
    ):
        words = word_vectors(encoder, [text], layers=(-2, -1), combine="concat", merge=merge)[0]
        assert words.units == [
            "Here",
            "is",
            "the",
            "sentence",
            "I",
            "want",
            "embeddings",
            "for",
            ".",
        ]
        assert words.spans[6] == (28, 38) and text[28:38] == "embeddings"
        np.testing.assert_allclose(words.vectors[6], expected, atol=1e-6)
    with pytest.raises(ConfigError, match=r"unknown word merge 'avg'"):
        word_vectors(encoder, [text], merge="avg")


# -- the packaged all-MiniLM-L6-v2 ----------------------------------------------------


@pytest.fixture(scope="module")
def minilm(minilm_folder):
    return load_encoder()


@pytest.mark.real
def test_default_model_similarity(minilm):
    vectors = minilm.encode(["A man is eating food.", "A man is eating a piece of bread."])
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.7553, abs=0.001)
    assert minilm.dim == 384 and minilm.max_seq_length == 256


@pytest.mark.real
def test_default_model_matches_sentence_transformers(minilm, minilm_folder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_folder), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    assert np.abs(minilm.encode(TEXTS, batch_size=4) - reference).max() < 1e-5


@pytest.mark.real
def test_tokenisation_goldens(minilm):
    tokens = minilm.torch_model.hf_tokenizer.tokenize("Here is the sentence I want embeddings for.")
    assert " ".join(tokens) == "here is the sentence i want em ##bed ##ding ##s for ."
    text = (
        "After stealing money from the bank vault, the bank robber was seen "
        "fishing on the Mississippi river bank."
    )
    ids = minilm.tokenize([text])[0]["input_ids"]
    assert len(ids) == 22 and ids[0] == 101 and ids[-1] == 102
    assert [i for i, token in enumerate(ids) if token == 2924] == [6, 10, 19]


@pytest.mark.real
def test_bank_in_context_raw_bert_sum_of_last_four(minilm_folder):
    """The seeds' experiment: two money 'bank's are closer than a money and a river 'bank'."""
    encoder = load_encoder(kind="bert")
    text = (
        "After stealing money from the bank vault, the bank robber was seen "
        "fishing on the Mississippi river bank."
    )
    pieces = token_vectors(encoder, [text], layers=(-4, -3, -2, -1), combine="sum")[0]
    vault, robber, river = (pieces.vectors[i] for i in (6, 10, 19))

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(vault, robber) > cosine(robber, river)
    assert cosine(vault, robber) > cosine(vault, river)
