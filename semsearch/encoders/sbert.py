"""Sentence-transformers models (the default): their own pooling, our batching loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch

from semsearch.config import EncoderConfig
from semsearch.encoders.base import ModelSpec
from semsearch.encoders.torch_model import TorchModel
from semsearch.errors import ConfigError


class SentenceTransformerModel(TorchModel):
    kind = "sentence-transformer"

    def __init__(self, config: EncoderConfig, folder: Path, device: str) -> None:
        if not (folder / "modules.json").is_file():
            raise ConfigError(
                f"{folder} is not a sentence-transformers model (no modules.json): "
                "load it as a raw BERT (encoder kind bert) with a pooling of your choice",
                setting="kind",
            )
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize

        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        super().__init__(config, folder, device, model.tokenizer)
        self._transformer: Any = cast(Any, model[0]).auto_model
        position_limit = int(self._transformer.config.max_position_embeddings)
        self.model_max = min(position_limit, int(cast(Any, model).max_seq_length or position_limit))
        self.model = model.to(self.device).eval()
        self.dim = int(cast(Any, model).get_embedding_dimension())
        # a final Normalize module makes the vectors unit length inside the graph already
        self.normalized_by_model = isinstance(model[-1], Normalize)
        pooling = model[1] if len(model) > 1 else None
        self.pooling = (
            str(getattr(pooling, "pooling_mode", "mean")) if pooling is not None else "cls"
        )

    @property
    def backbone(self) -> torch.nn.Module:
        return cast(torch.nn.Module, self._transformer)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            kind=self.kind,
            pooling=self.pooling,
            dim=self.dim,
            model_max=self.model_max,
            input_names=self.input_names,
            pad_id=int(self.hf_tokenizer.pad_token_id or 0),
            normalized_by_model=self.normalized_by_model,
        )

    def sentence_module(self) -> torch.nn.Module:
        return _SentenceEmbedding(self.model, list(self.input_names))


class _SentenceEmbedding(torch.nn.Module):
    """The model's own module pipeline (transformer, pooling, dense, ...) as one forward."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        features = dict(zip(self.names, tensors, strict=True))
        return cast(torch.Tensor, self.model(features)["sentence_embedding"])
