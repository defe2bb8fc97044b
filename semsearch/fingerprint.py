"""What decides an encoder's vectors: built once here, compared here, and turned back
into the encoder settings that reproduce it.

An index stores the fingerprint of the encoder that built it (manifest.json "encoder");
opening the index rebuilds that encoder with `encoder_config`, and `check` refuses a
query encoder whose vectors would not be comparable. A new encoder setting is one entry
in `KEYS` and, if it must travel back from a manifest, one in `RESTORED`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from semsearch.config import EncoderConfig
from semsearch.errors import EncoderMismatchError

KEYS = (
    "kind",
    "model",
    "weights_sha256",
    "pooling",
    "layers",
    "layer_combine",
    "skip_special_tokens",
    "max_seq_length",
    "normalize",
    "dim",
    "backend",
    "precision",
)

RESTORED = tuple(
    key for key in KEYS if key not in ("weights_sha256", "dim", "backend", "precision")
)
"""Settings an index's fingerprint gives back to the encoder that queries it (the
others are what the model or the run decided)."""

RAW_BERT_ONLY = ("pooling", "layers", "layer_combine")
"""A sentence-transformers model keeps its own pooling; these apply to raw BERT only."""

# "model" is a display name: two names for the same weights (a folder and its hub name)
# give the same vectors, and weights_sha256 is what identifies the model. "backend" is
# what ran it: torch and onnx fp32 give the same vectors (max abs difference < 1e-6,
# tests/test_backends.py), so "precision" decides, and int8 vectors match only int8 ones.
IGNORED = frozenset({"model", "backend", "precision"})


def build(
    config: EncoderConfig,
    *,
    weights_sha256: str,
    pooling: str,
    dim: int,
    max_seq_length: int,
    backend: str,
    precision: str,
) -> dict[str, Any]:
    """The fingerprint of an encoder loaded from `config` (values the model decided are
    passed in: its pooling, dimension and token limit)."""
    raw_bert = config.kind == "bert"
    return {
        "kind": config.kind,
        "model": config.model,
        "weights_sha256": weights_sha256,
        "pooling": pooling,
        "layers": list(config.layers) if raw_bert else [-1],
        "layer_combine": config.layer_combine if raw_bert else "concat",
        "skip_special_tokens": config.skip_special_tokens,
        "max_seq_length": max_seq_length,
        "normalize": config.normalize,
        "dim": dim,
        "backend": backend,
        "precision": precision,
    }


def encoder_config(fingerprint: Mapping[str, Any], **overrides: Any) -> EncoderConfig:
    """The encoder settings that reproduce `fingerprint`, with `overrides` laid over them
    (a device, a thread count, or settings a user insists on: `check` then judges)."""
    values = {key: fingerprint[key] for key in RESTORED if key in fingerprint}
    if fingerprint.get("precision") == "int8":
        values["backend"] = "onnx-int8"  # int8 vectors are only comparable with int8 ones
    if values.get("kind") != "bert":
        for key in RAW_BERT_ONLY:
            values.pop(key, None)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return dataclasses.replace(EncoderConfig(), **values)


def _vector_family(fingerprint: Mapping[str, Any]) -> str:
    """int8 or float; fp16/bf16 autocast on a GPU gives float vectors (indexes built
    before backends existed have no precision: fp32)."""
    return "int8" if fingerprint.get("precision") == "int8" else "float"


def _backend_named(fingerprint: Mapping[str, Any]) -> str:
    backend = fingerprint.get("backend", "torch")
    return f"backend {backend!r} ({fingerprint.get('precision', 'fp32')} vectors)"


def differences(built: Mapping[str, Any], used: Mapping[str, Any]) -> list[str]:
    """Why vectors from an encoder fingerprinted `used` are not comparable with `built`."""
    found: list[str] = []
    if _vector_family(built) != _vector_family(used):
        found.append(
            f"the index was built with {_backend_named(built)}, this encoder "
            f"uses {_backend_named(used)}"
        )
    for key in sorted(set(built) | set(used)):
        if key in IGNORED or built.get(key) == used.get(key):
            continue
        if key == "weights_sha256":
            found.append(
                f"the index was built with weights_sha256={built.get(key)!r} "
                f"(model {built.get('model')!r}), this encoder uses "
                f"weights_sha256={used.get(key)!r} (model {used.get('model')!r})"
            )
        else:
            found.append(
                f"the index was built with {key}={built.get(key)!r}, "
                f"this encoder uses {key}={used.get(key)!r}"
            )
    return found


def check(built: Mapping[str, Any], used: Mapping[str, Any]) -> None:
    """Refuse a query encoder whose vectors would not be comparable with the index's."""
    found = differences(built, used)
    if found:
        raise EncoderMismatchError(
            "the query encoder differs from the one that built the index: "
            + "; ".join(found)
            + ". Query with the encoder settings in the index's manifest.json, or rebuild the index"
        )


def summary(fingerprint: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The named entries of a fingerprint, for reports."""
    return {key: fingerprint[key] for key in keys if key in fingerprint}
