"""ONNX Runtime backends: export a sentence module once, cache it on disk, run it.

The whole text-to-vector graph (transformer, layer choice, pooling) is exported with
`torch.onnx`, its attention, LayerNorm and GELU are fused by ONNX Runtime's transformer
optimizer, and for `onnx-int8` its weights are quantized per channel with
`quantize_dynamic`. Each result lives in its own cache folder named by a hash of the
weights and every export setting, written through `atomic.replacing`, so a killed export
leaves nothing a later run would load.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semsearch import atomic
from semsearch.errors import ConfigError

EXPORT_FORMAT = 1  # bump when the exported graph changes for the same settings
OPSET = 17
MODEL_FILE = "model.onnx"
INFO_FILE = "export.json"
EXPORT_TOLERANCE = 1e-4  # fp32 graph vs torch on the sample batch; larger means a bad export


def cache_root() -> Path:
    """$SEMSEARCH_CACHE, else $XDG_CACHE_HOME/semsearch, else ~/.cache/semsearch."""
    explicit = os.environ.get("SEMSEARCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semsearch"


def require_onnxruntime() -> None:
    """Refuse an ONNX backend early, with the install line, where the packages are missing."""
    for module in ("onnxruntime", "onnx"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"the onnx backends need the '{module}' package: pip install onnxruntime onnx, "
                "or use --backend torch"
            ) from None


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # a container's CPU quota (cgroup v2)


def default_threads() -> int:
    """The cores this process may use: its affinity mask, capped by a container's CPU
    quota (a 2-CPU container on a 64-core host must not start 64 threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity mask decides
    return max(1, cores)


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("torch", "onnxruntime", "onnx")}


def cache_label(model: str) -> str:
    """A readable folder-name prefix: a short name, or a path's last two parts."""
    short = "-".join(Path(model).parts[-2:]) if os.sep in model else model
    return re.sub(r"[^A-Za-z0-9._]+", "-", short).strip("-.")[-48:] or "model"


def export_key(settings: dict[str, Any], precision: str) -> str:
    """A short hash of everything that decides the exported file's contents."""
    described = {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "precision": precision,
        "versions": _versions(),
        **settings,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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
            f"{difference:.2e}): use --backend torch"
        )


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8: weights per output channel, activations quantized at run time.

    Only MatMuls with a constant weight are quantized (not attention's Q.K and A.V),
    and embeddings stay fp32: both keep int8 vectors at cosine > 0.99 to fp32.
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
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={
                    "MatMulConstBOnly": True,
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                },
            )
    finally:
        quiet_root.setLevel(level)


def _cached(folder: Path, what: str, build: Callable[[Path], None], info: dict[str, Any]) -> Path:
    """The model file in `folder`, building it first (atomically) when it is not there."""
    model = folder / MODEL_FILE
    if model.is_file():
        return model
    print(f"semsearch: {what} (once; cached in {folder})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        with atomic.replacing(folder) as staging:
            build(staging / MODEL_FILE)
            seconds = time.perf_counter() - started
            info = {**info, "seconds": round(seconds, 2), "created": time.time()}
            (staging / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the ONNX cache in {folder}: {exc}") from None
    print(f"semsearch: done in {seconds:.1f} s", file=sys.stderr, flush=True)
    return model


def exported_model(
    module: torch.nn.Module,
    names: Sequence[str],
    settings: dict[str, Any],
    *,
    precision: str,
    heads: int,
    hidden: int,
    label: str,
) -> Path:
    """The cached ONNX file for `module` at `precision` (fp32 or int8), exporting if needed."""
    require_onnxruntime()
    root = cache_root() / "onnx"
    info = {"settings": settings, "inputs": list(names), "versions": _versions()}
    fp32_folder = root / f"{label}-fp32-{export_key(settings, 'fp32')}"
    fp32 = _cached(
        fp32_folder,
        f"exporting {label} to ONNX",
        lambda target: _export_fp32(module, names, target, heads, hidden),
        {**info, "precision": "fp32"},
    )
    if precision == "fp32":
        return fp32
    return _cached(
        root / f"{label}-int8-{export_key(settings, 'int8')}",
        f"quantizing {label} to int8",
        lambda target: _quantize_int8(fp32, target),
        {**info, "precision": "int8"},
    )


class OnnxRunner:
    """One ONNX Runtime session: padded int64 batches in, float32 vectors out."""

    def __init__(self, path: Path, names: Sequence[str], threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(
                f"ONNX Runtime cannot load {path}: {exc}. Delete that folder to export again"
            ) from None
        self.names = list(names)

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: batch[name] for name in self.names}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)
