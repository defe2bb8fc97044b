"""ONNX Runtime backends: export a sentence module once, cache it on disk, run it.

The whole text-to-vector graph (transformer, layer choice, pooling) is exported with
`torch.onnx`, its attention, LayerNorm and GELU are fused by ONNX Runtime's transformer
optimizer, and for `onnx-int8` its weights are quantized per channel to 7 bits with
`quantize_dynamic` (each text then runs alone: `RowwiseOnnxRunner`). Each result lives
in its own cache folder named by a hash of the weights and every export setting, written
through `atomic.replacing`, so a killed export leaves nothing a later run would load.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semsearch import atomic
from semsearch.cache import cache_root
from semsearch.config import EncoderConfig
from semsearch.encoders.base import ModelSpec
from semsearch.encoders.runners import OnnxRunner, RowwiseOnnxRunner, require_onnxruntime
from semsearch.errors import ConfigError
from semsearch.models import settings_sha256, weights_sha256

if TYPE_CHECKING:
    import torch

    from semsearch.encoders.torch_model import TorchModel

log = logging.getLogger("semsearch")

EXPORT_FORMAT = 2  # bump when the exported graph or the folder's contents change
OPSET = 17
MODEL_FILE = "model.onnx"
INFO_FILE = "export.json"
TOKENIZER_FILE = "tokenizer.json"
INT8_SCHEME = "dynamic-s7-per-channel-rowwise"  # in int8's cache key: old int8 files differ
EXPORT_TOLERANCE = 1e-4  # fp32 graph vs torch on the sample batch; larger means a bad export


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("torch", "onnxruntime", "onnx")}


def cache_label(model: str) -> str:
    """A readable folder-name prefix: a short name, or a path's last two parts."""
    short = "-".join(Path(model).parts[-2:]) if os.sep in model else model
    return re.sub(r"[^A-Za-z0-9._]+", "-", short).strip("-.")[-48:] or "model"


def source_settings(config: EncoderConfig, folder: Path) -> dict[str, Any]:
    """What decides the exported graph, known without loading the model: the weights,
    the rest of the model folder, and raw BERT's layer and pooling choice."""
    raw_bert = config.kind == "bert"
    return {
        "kind": config.kind,
        "weights_sha256": weights_sha256(folder),
        "settings_sha256": settings_sha256(folder),
        "pooling": config.pooling if raw_bert else None,
        "layers": list(config.layers) if raw_bert else None,
        "layer_combine": config.layer_combine if raw_bert else None,
        "skip_special_tokens": config.skip_special_tokens if raw_bert else False,
    }


def export_key(settings: dict[str, Any], precision: str) -> str:
    """A short hash of everything that decides the exported file's contents."""
    described = {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "precision": precision,
        "versions": _versions(),
        **settings,
    }
    if precision == "int8":
        described["int8_scheme"] = INT8_SCHEME
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def export_folder(config: EncoderConfig, folder: Path, precision: str) -> Path:
    """The cache folder of `config`'s model exported at `precision` (fp32 or int8): one
    made already for the same key under another name of the model (its folder's path,
    its short name: the key covers the weights and every setting), else a new one."""
    key = export_key(source_settings(config, folder), precision)
    root = cache_root() / "onnx"
    named = root / f"{cache_label(config.model)}-{precision}-{key}"
    if _complete(named) or not root.is_dir():
        return named
    return next(filter(_complete, sorted(root.glob(f"*-{precision}-{key}"))), named)


def _complete(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / INFO_FILE).is_file()


@dataclass(frozen=True)
class Export:
    """A cached export: the ONNX file, the model's spec, its tokenizer.json (None for a
    model with only a slow tokenizer, which then needs transformers to tokenise), and
    its precision (fp32 or int8)."""

    path: Path
    spec: ModelSpec
    tokenizer: Path | None
    precision: str

    def runner(self, threads: int) -> OnnxRunner | RowwiseOnnxRunner:
        """int8 runs each text alone: its activation scales must not see the batch."""
        if self.precision == "int8":
            return RowwiseOnnxRunner(self.path, self.spec.input_names, threads)
        return OnnxRunner(self.path, self.spec.input_names, threads)


def find_export(config: EncoderConfig, folder: Path, precision: str) -> Export | None:
    """The cached export for these settings, or None; reads no model and imports no torch."""
    target = export_folder(config, folder, precision)
    model = target / MODEL_FILE
    try:
        info = json.loads((target / INFO_FILE).read_text(encoding="utf-8"))
        spec = ModelSpec.from_json(info["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not model.is_file():
        return None
    tokenizer = target / TOKENIZER_FILE
    return Export(model, spec, tokenizer if tokenizer.is_file() else None, precision)


@contextlib.contextmanager
def _eager_attention(module: torch.nn.Module) -> Iterator[None]:
    """Export attention as plain MatMul/Softmax, the pattern ONNX Runtime's optimizer fuses."""
    changed = []
    for sub in module.modules():
        config = getattr(sub, "config", None)
        setter = getattr(sub, "set_attn_implementation", None)
        if config is None or setter is None or sub in changed:
            continue
        previous = getattr(config, "_attn_implementation", None)
        if previous in (None, "eager"):
            continue
        try:
            setter("eager")
        except (ValueError, TypeError, AttributeError):
            continue
        changed.append((setter, previous))
    try:
        yield
    finally:
        for setter, previous in changed:
            setter(previous)


def _sample_inputs(names: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Two rows of different lengths, so padding is traced as data, not as a constant."""
    import torch

    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    special = ((ids == 101) | (ids == 102) | (ids == 0)).long()
    values = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "special_tokens_mask": special,
    }
    return tuple(values[name] for name in names)


def _export_fp32(
    module: torch.nn.Module, names: Sequence[str], target: Path, heads: int, hidden: int
) -> None:
    import torch
    from onnxruntime.transformers import optimizer

    raw = target.with_name("raw.onnx")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names} | {"vectors": {0: "batch"}}
    with warnings.catch_warnings(), _eager_attention(module), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        sample = _sample_inputs(names)  # made here: tracing refuses inference-mode tensors
        module = module.cpu().eval()
        torch.onnx.export(
            module,
            sample,
            str(raw),
            input_names=list(names),
            output_names=["vectors"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
        with torch.no_grad():
            expected = module(*sample).float().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimizer.optimize_model(
            str(raw), model_type="bert", num_heads=heads, hidden_size=hidden
        )
        fused.save_model_to_file(str(target))
    raw.unlink()
    got = OnnxRunner(target, names, threads=1)(
        {name: value.numpy() for name, value in zip(names, sample, strict=True)}
    )
    difference = float(np.abs(got - expected).max())
    if not difference <= EXPORT_TOLERANCE:
        raise ConfigError(
            f"the ONNX export of this model gives different vectors (max abs difference "
            f"{difference:.2e}): use backend torch",
            setting="backend",
        )


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8: weights per output channel, activations quantized at run time
    (per text: `RowwiseOnnxRunner` runs each alone).

    Only MatMuls with a constant weight are quantized (not attention's Q.K and A.V),
    and embeddings stay fp32: both keep int8 vectors at cosine > 0.99 to fp32. Weights
    use 7 bits (`reduce_range`): u8 activations times s8 weights summed in pairs then fit
    in int16, so CPUs without VNNI (AVX2's vpmaddubsw saturates there) compute the same
    integers as those with it, instead of clipping some sums.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet_root = logging.getLogger()  # the quantizer logs advice to the root logger
    level = quiet_root.level
    quiet_root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={
                    "MatMulConstBOnly": True,
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                },
            )
    finally:
        quiet_root.setLevel(level)


def _cached(folder: Path, what: str, build: Callable[[Path], None], info: dict[str, Any]) -> None:
    """Build `folder` (atomically) unless its model file is there already; `build` writes
    the model file into the staging folder it is given."""
    if _complete(folder):
        return
    log.info("%s (once; cached in %s)", what, folder)
    started = time.perf_counter()
    try:
        with atomic.replacing(folder) as staging:
            build(staging)
            seconds = time.perf_counter() - started
            info = {**info, "seconds": round(seconds, 2), "created": time.time()}
            (staging / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the ONNX cache in {folder}: {exc}") from None
    log.info("done in %.1f s", seconds)


def int8_from_fp32(config: EncoderConfig, folder: Path) -> Export | None:
    """The int8 export quantized from a cached fp32 one, or None where there is none (or
    it has no tokenizer.json): the fp32 folder holds all that int8 needs (graph, spec,
    tokenizer), so a first int8 run after an fp32 one imports no torch and loads no
    model (5 s of CPU for the packaged model, most of a small index's build)."""
    source = export_folder(config, folder, "fp32")
    fp32 = find_export(config, folder, "fp32")
    if fp32 is None or fp32.tokenizer is None:
        return None
    require_onnxruntime(export=True)

    def int8(staging: Path) -> None:
        _quantize_int8(fp32.path, staging / MODEL_FILE)
        shutil.copy2(source / TOKENIZER_FILE, staging / TOKENIZER_FILE)

    info = {
        "settings": source_settings(config, folder),
        "spec": fp32.spec.to_json(),
        "versions": _versions(),
        "precision": "int8",
    }
    label = cache_label(config.model)
    _cached(export_folder(config, folder, "int8"), f"quantizing {label} to int8", int8, info)
    return find_export(config, folder, "int8")


def export(model: TorchModel, precision: str) -> Export:
    """`model`'s sentence module as a cached ONNX file at `precision` (fp32 or int8),
    exporting (and quantizing) first where the cache does not hold it yet."""
    require_onnxruntime(export=True)
    config, folder = model.config, model.folder
    names = list(model.input_names)
    spec = model.spec
    tokenizer = model.tokenizer
    label = cache_label(config.model)
    info = {
        "settings": source_settings(config, folder),
        "spec": spec.to_json(),
        "versions": _versions(),
    }

    def save_tokenizer(staging: Path) -> None:
        if hasattr(tokenizer, "save"):  # a fast tokenizer: the question path needs no transformers
            tokenizer.save(staging / TOKENIZER_FILE)

    def fp32(staging: Path) -> None:
        heads, hidden = model.shape
        _export_fp32(model.sentence_module(), names, staging / MODEL_FILE, heads, hidden)
        save_tokenizer(staging)

    fp32_folder = export_folder(config, folder, "fp32")
    _cached(fp32_folder, f"exporting {label} to ONNX", fp32, {**info, "precision": "fp32"})
    if precision != "fp32":

        def int8(staging: Path) -> None:
            _quantize_int8(fp32_folder / MODEL_FILE, staging / MODEL_FILE)
            save_tokenizer(staging)

        target = export_folder(config, folder, "int8")
        _cached(target, f"quantizing {label} to int8", int8, {**info, "precision": "int8"})
    found = find_export(config, folder, precision)
    if found is None:
        raise ConfigError(f"the ONNX export of {label} was written but cannot be read back")
    return found
