"""Encoders turn texts into L2-normalised float32 vectors; `load_encoder` builds one."""

from __future__ import annotations

from typing import Any

from transformers.utils import logging as hf_logging

from semsearch.config import EncoderConfig
from semsearch.encoders.base import Encoder
from semsearch.errors import ConfigError
from semsearch.models import resolve_model

__all__ = ["Encoder", "load_encoder"]

hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise for users


def load_encoder(config: EncoderConfig | None = None, **overrides: Any) -> Encoder:
    """Build the encoder a config describes, e.g. load_encoder(kind="bert", pooling="cls")."""
    if config is None:
        config = EncoderConfig(**overrides)
    elif overrides:
        import dataclasses

        config = dataclasses.replace(config, **overrides)
    folder = resolve_model(config.model)
    if config.kind == "bert":
        from semsearch.encoders.bert import BertEncoder

        return BertEncoder(config, folder)
    default = EncoderConfig()
    if (config.pooling, config.layers, config.skip_special_tokens) != (
        default.pooling,
        default.layers,
        default.skip_special_tokens,
    ):
        raise ConfigError(
            "pooling, layers and special-token options apply to raw BERT: add --encoder bert "
            "(a sentence-transformers model keeps the pooling it was trained with)"
        )
    from semsearch.encoders.sbert import SentenceTransformerEncoder

    return SentenceTransformerEncoder(config, folder)
