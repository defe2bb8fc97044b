"""Encoders turn texts into L2-normalised float32 vectors; `load_encoder` builds one.

On the CPU with an ONNX backend whose export is cached, the encoder is built from the
cache alone (tokenizer.json, the spec and the ONNX file): no torch, no transformers.
Otherwise the model is loaded in torch, and exported first where the backend is ONNX.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from semsearch.config import EncoderConfig
from semsearch.encoders.base import Encoder, ModelSpec
from semsearch.encoders.runners import Runner, TorchRunner, pick_device, resolve_backend
from semsearch.encoders.tokenizer import FastTokenizer
from semsearch.errors import ConfigError
from semsearch.fingerprint import RAW_BERT_ONLY
from semsearch.models import resolve_model

__all__ = ["Encoder", "ModelSpec", "load_encoder"]


def _check_kind_options(config: EncoderConfig) -> None:
    if config.kind == "bert":
        return
    default = EncoderConfig()
    if any(getattr(config, key) != getattr(default, key) for key in RAW_BERT_ONLY) or (
        config.skip_special_tokens != default.skip_special_tokens
    ):
        raise ConfigError(
            "pooling, layers and special-token options apply to raw BERT: use encoder kind "
            "bert (a sentence-transformers model keeps the pooling it was trained with)",
            setting="kind",
        )


def load_encoder(config: EncoderConfig | None = None, **overrides: Any) -> Encoder:
    """Build the encoder a config describes, e.g. load_encoder(kind="bert", pooling="cls")."""
    if config is None:
        config = EncoderConfig(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    _check_kind_options(config)
    folder = resolve_model(config.model)
    onnx_on_auto = config.backend.startswith("onnx") and config.device == "auto"
    device = pick_device("cpu" if onnx_on_auto else config.device)
    backend = resolve_backend(config.backend, device)
    load_torch = functools.partial(_load_torch_model, config, folder, device)
    if backend.startswith("onnx"):
        from semsearch.encoders import onnx

        precision = "int8" if backend == "onnx-int8" else "fp32"
        cached = onnx.find_export(config, folder, precision)
        if cached is None and precision == "int8":
            cached = onnx.int8_from_fp32(config, folder)
        if cached is not None and cached.tokenizer is not None:
            tokenizer = FastTokenizer.from_file(
                cached.tokenizer,
                pad_id=cached.spec.pad_id,
                with_types="token_type_ids" in cached.spec.input_names,
            )
            return Encoder(
                config,
                folder,
                cached.spec,
                tokenizer,
                backend=backend,
                device=device,
                runner=lambda encoder: cached.runner(encoder.threads),
                torch_model=load_torch,
            )
    model = load_torch()

    def runner(encoder: Encoder) -> Runner:
        if backend == "torch":
            return TorchRunner(
                model.sentence_module(), model.input_names, device, config.cuda_dtype
            )
        from semsearch.encoders import onnx

        return onnx.export(model, encoder.precision).runner(encoder.threads)

    return Encoder(
        config,
        folder,
        model.spec,
        model.tokenizer,
        backend=backend,
        device=device,
        runner=runner,
        torch_model=lambda: model,
    )


def _load_torch_model(config: EncoderConfig, folder: Path, device: str) -> Any:
    """The model `config` names, from `folder`, in torch on `device` (imported only now:
    a question answered from a cached ONNX export never loads torch)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise for users
    if config.kind == "bert":
        from semsearch.encoders.bert import RawBert

        return RawBert(config, folder, device)
    from semsearch.encoders.sbert import SentenceTransformerModel

    return SentenceTransformerModel(config, folder, device)
