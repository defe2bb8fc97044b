"""Token and word vectors: BERT's contextual vector for every word-piece, and word-pieces
merged back into whole words with their character spans in the original text.

This is the seeds' "bank vault vs river bank" experiment: the same word gets a
different vector in each context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from semsearch.config import LAYER_COMBINES
from semsearch.encoders.base import Encoder, check_texts
from semsearch.encoders.pooling import combine_layers
from semsearch.errors import ConfigError

WORD_MERGES = ("first", "last", "mean", "sum")


@dataclass(frozen=True)
class Pieces:
    """One text's units (word-pieces or words), their vectors [n, dim] and character spans."""

    units: list[str]
    vectors: np.ndarray
    spans: list[tuple[int, int]]


def token_vectors(
    encoder: Encoder,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    combine: str | None = None,
) -> list[Pieces]:
    """Per word-piece vectors ([CLS] and [SEP] included, span (0, 0)) from the chosen layers."""
    return [_encode_pieces(encoder, text, layers, combine)[0] for text in check_texts(texts)]


def word_vectors(
    encoder: Encoder,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    combine: str | None = None,
    merge: str = "mean",
) -> list[Pieces]:
    """Per word vectors: the word-pieces of each word merged by first, last, mean or sum."""
    if merge not in WORD_MERGES:
        raise ConfigError(
            f"unknown word merge {merge!r}: choose one of {', '.join(WORD_MERGES)}",
            setting="merge",
        )
    result = []
    for text in check_texts(texts):
        pieces, word_ids = _encode_pieces(encoder, text, layers, combine)
        result.append(_merge_words(text, pieces, word_ids, merge))
    return result


def _encode_pieces(
    encoder: Encoder, text: str, layers: Sequence[int] | None, combine: str | None
) -> tuple[Pieces, list[int | None]]:
    layers = tuple(layers) if layers is not None else encoder.config.layers
    combine = combine or encoder.config.layer_combine
    if combine not in LAYER_COMBINES:
        raise ConfigError(
            f"unknown layer combination {combine!r}: choose one of {', '.join(LAYER_COMBINES)}",
            setting="layer_combine",
        )
    model = encoder.torch_model  # token vectors come from the torch model, whatever the backend
    encoded = model.hf_tokenizer(
        text, truncation=True, max_length=encoder.max_seq_length, return_offsets_mapping=True
    )
    ids = torch.tensor([encoded["input_ids"]], device=model.device)
    with torch.inference_mode():
        output = model.backbone(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            token_type_ids=torch.zeros_like(ids),
            output_hidden_states=True,
        )
    vectors = combine_layers(output.hidden_states, layers, combine)[0].float().cpu().numpy()
    pieces = Pieces(
        units=model.hf_tokenizer.convert_ids_to_tokens(encoded["input_ids"]),
        vectors=vectors,
        spans=[(int(a), int(b)) for a, b in encoded["offset_mapping"]],
    )
    return pieces, encoded.word_ids()


def _merge_words(text: str, pieces: Pieces, word_ids: list[int | None], merge: str) -> Pieces:
    groups: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            groups.setdefault(word, []).append(position)
    units, vectors, spans = [], [], []
    for positions in groups.values():
        start, end = pieces.spans[positions[0]][0], pieces.spans[positions[-1]][1]
        block = pieces.vectors[positions]
        merged = {"first": block[0], "last": block[-1], "mean": block.mean(0), "sum": block.sum(0)}
        units.append(text[start:end])
        vectors.append(merged[merge])
        spans.append((start, end))
    dim = pieces.vectors.shape[1]
    array = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    return Pieces(units=units, vectors=array, spans=spans)
