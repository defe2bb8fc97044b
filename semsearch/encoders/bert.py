"""Raw BERT: transformers' AutoModel with all hidden states, then a pooling you choose.

This is what the seeds and bert-as-service do; its cosine scores are anisotropic
(unrelated sentences still score high), so rank with them, don't trust their value.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

from semsearch.config import EncoderConfig
from semsearch.encoders.base import ModelSpec
from semsearch.encoders.pooling import check_layers, combine_layers, pool
from semsearch.encoders.torch_model import TorchModel
from semsearch.errors import ConfigError


class RawBert(TorchModel):
    kind = "bert"

    def __init__(self, config: EncoderConfig, folder: Path, device: str) -> None:
        super().__init__(config, folder, device, AutoTokenizer.from_pretrained(folder))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verbosity = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()
            try:
                model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
            finally:
                transformers.logging.set_verbosity(verbosity)
        self.model_max = min(
            int(model.config.max_position_embeddings), int(self.hf_tokenizer.model_max_length)
        )
        self.model = model.to(self.device).eval()
        self.num_layers = int(model.config.num_hidden_layers)
        check_layers(config.layers, self.num_layers)
        missing = info.get("missing_keys", [])
        self.has_pooler = getattr(model, "pooler", None) is not None and not any(
            "pooler" in key for key in missing
        )
        if config.pooling == "pooler" and not self.has_pooler:
            raise ConfigError(
                f"{folder} has no pooler weights, so pooling 'pooler' is not available: "
                "use cls, mean, max, mean_max or last",
                setting="pooling",
            )
        width = int(model.config.hidden_size)
        if config.layer_combine == "concat":
            width *= len(config.layers)
        self.dim = width * (2 if config.pooling == "mean_max" else 1)

    @property
    def backbone(self) -> torch.nn.Module:
        return self.model

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            kind=self.kind,
            pooling=self.config.pooling,
            dim=self.dim,
            model_max=self.model_max,
            input_names=self.input_names,
            pad_id=int(self.hf_tokenizer.pad_token_id or 0),
            normalized_by_model=False,
        )

    def sentence_module(self) -> torch.nn.Module:
        return _PooledBert(self.model, self.config, self.has_pooler, list(self.input_names))


class _PooledBert(torch.nn.Module):
    """BERT, then the chosen layers and pooling: the graph the onnx backends export whole."""

    def __init__(
        self, model: torch.nn.Module, config: EncoderConfig, has_pooler: bool, names: list[str]
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.has_pooler = has_pooler
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.names, tensors, strict=True))
        config = self.config
        needs_all = config.layers != (-1,)
        output = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch.get("token_type_ids"),
            output_hidden_states=needs_all,
        )
        if needs_all:
            tokens = combine_layers(output.hidden_states, config.layers, config.layer_combine)
        else:
            tokens = output.last_hidden_state
        return pool(
            tokens,
            batch["attention_mask"],
            config.pooling,
            special_tokens_mask=batch.get("special_tokens_mask"),
            pooler_output=getattr(output, "pooler_output", None) if self.has_pooler else None,
        )
