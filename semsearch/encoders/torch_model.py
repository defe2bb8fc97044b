"""A model loaded in torch: the sentence module that backends run or export, the
transformers backbone behind it (for token vectors and layer sweeps), its tokenizer.

Importing this module imports torch; the question path on a cached ONNX export never does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from semsearch.config import EncoderConfig
from semsearch.encoders.base import ModelSpec
from semsearch.encoders.tokenizer import FastTokenizer, SlowTokenizer, from_transformers


class TorchModel(ABC):
    """One loaded model on `device`; subclasses say how it pools."""

    kind: str

    def __init__(self, config: EncoderConfig, folder: Path, device: str, tokenizer: Any) -> None:
        self.config = config
        self.folder = folder
        self.device = torch.device(device)
        self.hf_tokenizer = tokenizer

    # -- what subclasses provide ---------------------------------------------------
    @property
    @abstractmethod
    def backbone(self) -> torch.nn.Module:
        """The underlying transformers model, for token-level vectors."""

    @property
    @abstractmethod
    def spec(self) -> ModelSpec:
        """Pooling, width, token limit and inputs, for the batching loop."""

    @abstractmethod
    def sentence_module(self) -> torch.nn.Module:
        """forward(*tensors named by `input_names`) -> [batch, dim], not yet normalised."""

    # -- shared --------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        """The padded-batch tensors the sentence module reads, in argument order."""
        names = ["input_ids", "attention_mask"]
        if "token_type_ids" in getattr(self.hf_tokenizer, "model_input_names", ()):
            names.append("token_type_ids")
        if self.kind == "bert" and self.config.skip_special_tokens:
            names.append("special_tokens_mask")
        return tuple(names)

    @property
    def tokenizer(self) -> FastTokenizer | SlowTokenizer:
        return from_transformers(self.hf_tokenizer)

    @property
    def shape(self) -> tuple[int, int]:
        """(attention heads, hidden size), which ONNX Runtime's optimizer needs."""
        config = self.backbone.config
        heads = int(getattr(config, "num_attention_heads", 0))
        return heads, int(getattr(config, "hidden_size", 0))
