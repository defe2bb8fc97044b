"""The Encoder protocol and the batching loop every encoder shares.

Subclasses only give the torch module that turns one padded batch into vectors
(`sentence_module`); the backend that runs it (torch, or ONNX Runtime fp32/int8),
tokenisation, truncation counting, length-sorted batching, order restoring,
normalisation and the progress bar live here once.
"""

from __future__ import annotations

import contextlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semsearch.config import EncoderConfig
from semsearch.errors import ConfigError, InputError
from semsearch.models import weights_sha256

FINGERPRINT_KEYS = (
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
CHUNK_TEXTS = 8192  # texts tokenised and length-sorted together; bounds memory on huge inputs
CUDA_DTYPE_NAMES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


def pick_device(name: str) -> torch.device:
    """'auto' means CUDA when present, else CPU; anything else must be a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available: use cpu")
    return device


def check_texts(texts: Sequence[str]) -> list[str]:
    """Refuse what is not a list of strings, naming the first bad item."""
    if isinstance(texts, str):
        raise InputError("encode() takes a list of texts, not one string: wrap it in a list")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(
                f"text {position} is a {type(text).__name__}, not a string: "
                "every input must be text"
            )
    return texts


def pad_arrays(rows: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad token rows into int64 arrays; attention_mask marks the real tokens."""
    width = max(len(row["input_ids"]) for row in rows)
    batch: dict[str, np.ndarray] = {}
    for key, fill in (("input_ids", pad_id), ("token_type_ids", 0), ("special_tokens_mask", 1)):
        if key in rows[0]:
            array = np.full((len(rows), width), fill, dtype=np.int64)
            for i, row in enumerate(rows):
                array[i, : len(row[key])] = row[key]
            batch[key] = array
    lengths = np.array([len(row["input_ids"]) for row in rows])
    batch["attention_mask"] = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return batch


def to_device(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors on `device`; for a GPU through pinned memory with a non-blocking copy, so
    the copy overlaps the previous batch's compute."""
    tensors = {key: torch.from_numpy(value) for key, value in batch.items()}
    if device.type == "cuda":
        tensors = {k: v.pin_memory().to(device, non_blocking=True) for k, v in tensors.items()}
    return tensors


def pad_batch(
    rows: Sequence[dict[str, list[int]]], pad_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Right-padded token rows as tensors on `device`."""
    return to_device(pad_arrays(rows, pad_id), device)


def normalized(vectors: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Rows scaled to unit length (as torch's F.normalize: norms below 1e-12 count as 1e-12)."""
    if isinstance(vectors, torch.Tensor):
        return torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def resolve_backend(name: str, device: torch.device) -> str:
    """'auto' is ONNX Runtime fp32 on CPU (same vectors, faster) and torch on a GPU."""
    if name == "auto":
        if device.type != "cpu":
            return "torch"
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return "torch"
        return "onnx"
    if name.startswith("onnx") and device.type != "cpu":
        raise ConfigError(
            f"backend {name!r} runs on the CPU: use --device cpu, or --backend torch on {device}"
        )
    return name


def _joined(outputs: list[np.ndarray | torch.Tensor]) -> np.ndarray:
    """One array from a chunk's batch outputs (a GPU's copied to the host once)."""
    tensors = [o for o in outputs if isinstance(o, torch.Tensor)]
    if tensors:
        return torch.cat(tensors).cpu().numpy()
    return np.concatenate([np.asarray(o) for o in outputs])


class TorchRunner:
    """Runs the sentence module with torch; on CUDA under autocast in the chosen dtype."""

    def __init__(
        self, module: torch.nn.Module, names: Sequence[str], device: torch.device, dtype: str
    ) -> None:
        self.module = module
        self.names = list(names)
        self.device = device
        self.dtype = getattr(torch, dtype)

    def __call__(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        tensors = to_device(batch, self.device)
        autocast: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.device.type == "cuda" and self.dtype != torch.float32:
            autocast = torch.autocast("cuda", dtype=self.dtype)
        with autocast:
            return self.module(*[tensors[name] for name in self.names]).float()


class Encoder(ABC):
    """Texts in, float32 [n, dim] out (L2-normalised unless the config says not)."""

    kind: str

    def __init__(self, config: EncoderConfig, folder: Path, tokenizer: Any, model_max: int) -> None:
        self.config = config
        self.folder = folder
        self.tokenizer = tokenizer
        onnx_on_auto = config.backend.startswith("onnx") and config.device == "auto"
        self.device = pick_device("cpu" if onnx_on_auto else config.device)
        self.backend = resolve_backend(config.backend, self.device)
        self.max_seq_length = config.max_seq_length or model_max
        if self.max_seq_length > model_max:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} exceeds the model's limit "
                f"of {model_max} tokens"
            )
        self.truncated = 0
        self.report_truncation = True
        self.prefetch = self.device.type == "cuda"  # tokenise ahead while the GPU computes
        self.normalized_by_model = False  # True where the model's last step is Normalize
        self._runner: Any = None

    # -- what subclasses provide -------------------------------------------------
    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of one sentence vector."""

    @property
    @abstractmethod
    def backbone(self) -> torch.nn.Module:
        """The underlying transformers model, for token-level vectors."""

    @property
    @abstractmethod
    def pooling_name(self) -> str:
        """How token vectors become one vector, for the fingerprint."""

    @abstractmethod
    def sentence_module(self) -> torch.nn.Module:
        """forward(*tensors named by `input_names`) -> [batch, dim], not yet normalised."""

    # -- shared ---------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """The padded-batch tensors the sentence module reads, in argument order."""
        names = ["input_ids", "attention_mask"]
        if "token_type_ids" in getattr(self.tokenizer, "model_input_names", ()):
            names.append("token_type_ids")
        if self.kind == "bert" and self.config.skip_special_tokens:
            names.append("special_tokens_mask")
        return names

    @property
    def precision(self) -> str:
        """Which numbers the vectors come from: int8 vectors are not comparable with fp32."""
        if self.backend == "onnx-int8":
            return "int8"
        if self.device.type == "cuda":
            return CUDA_DTYPE_NAMES[self.config.cuda_dtype]
        return "fp32"

    @property
    def threads(self) -> int:
        from semsearch.encoders.onnx import default_threads

        return self.config.threads or default_threads()

    def _export_settings(self) -> dict[str, Any]:
        """What decides the exported graph besides the ONNX and runtime versions."""
        fingerprint = self.fingerprint
        return {
            key: fingerprint[key]
            for key in FINGERPRINT_KEYS
            if key not in ("model", "max_seq_length", "normalize", "backend", "precision")
        } | {"inputs": self.input_names}

    def _load_runner(self) -> Any:
        """Build the backend once, at load time, so no question pays for it."""
        module = self.sentence_module()
        if self.backend == "torch":
            return TorchRunner(module, self.input_names, self.device, self.config.cuda_dtype)
        from semsearch.encoders.onnx import OnnxRunner, cache_label, exported_model

        config = self.backbone.config
        path = exported_model(
            module,
            self.input_names,
            self._export_settings(),
            precision=self.precision,
            heads=int(getattr(config, "num_attention_heads", 0)),
            hidden=int(getattr(config, "hidden_size", 0)),
            label=cache_label(self.config.model),
        )
        return OnnxRunner(path, self.input_names, self.threads)

    def prepare(self) -> Encoder:
        """Load (and on first use export) the backend now rather than at the first batch."""
        if self._runner is None:
            self._runner = self._load_runner()
        return self

    def _embed(self, batch: dict[str, np.ndarray]) -> np.ndarray | torch.Tensor:
        """One padded batch -> [batch, dim] float32 vectors (not yet normalised): a NumPy
        array from ONNX Runtime, a tensor (left on its device) from torch."""
        return self.prepare()._runner(batch)

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides the vectors; an index refuses a query encoder that differs."""
        config = self.config
        return {
            "kind": self.kind,
            "model": config.model,
            "weights_sha256": weights_sha256(self.folder),
            "pooling": self.pooling_name,
            "layers": list(config.layers) if self.kind == "bert" else [-1],
            "layer_combine": config.layer_combine if self.kind == "bert" else "concat",
            "skip_special_tokens": config.skip_special_tokens,
            "max_seq_length": self.max_seq_length,
            "normalize": config.normalize,
            "dim": self.dim,
            "backend": self.backend,
            "precision": self.precision,
        }

    def tokenize(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None
    ) -> list[dict[str, list[int]]]:
        """Word-piece ids per text (with [CLS]/[SEP]), truncated to max_seq_length.

        Sets `self.truncated` to how many inputs did not fit. A fast tokenizer is called
        through its Rust backend: the same ids, without the Python wrapper's per-call
        cost, which is a visible part of one question's time.
        """
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            return self._tokenize_fast(backend, texts, pairs)
        encoded = self.tokenizer(
            list(texts),
            list(pairs) if pairs is not None else None,
            truncation=True,
            max_length=self.max_seq_length,
            return_overflowing_tokens=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
        )
        keys = [k for k in ("input_ids", "token_type_ids", "special_tokens_mask") if k in encoded]
        rows: list[dict[str, list[int]]] = []
        overflowed: set[int] = set()
        last_sample = -1
        for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            if sample == last_sample:  # a further window of a text that did not fit
                overflowed.add(sample)
                continue
            rows.append({key: encoded[key][row] for key in keys})
            last_sample = sample
        self.truncated = len(overflowed)
        return rows

    def _tokenize_fast(
        self, backend: Any, texts: Sequence[str], pairs: Sequence[str] | None
    ) -> list[dict[str, list[int]]]:
        # The wrapper sets truncation and padding on every call of its own, so setting
        # them here does not leak into its results.
        backend.enable_truncation(self.max_seq_length, strategy="longest_first")
        backend.no_padding()
        inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = backend.encode_batch(inputs, add_special_tokens=True)
        with_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
        rows = []
        for encoding in encodings:
            row = {"input_ids": encoding.ids, "special_tokens_mask": encoding.special_tokens_mask}
            if with_types:
                row["token_type_ids"] = encoding.type_ids
            rows.append(row)
        self.truncated = sum(1 for encoding in encodings if encoding.overflowing)
        return rows

    def _tokenized_chunks(
        self, texts: list[str], chunk: int
    ) -> Iterator[tuple[int, list[dict[str, list[int]]], int]]:
        """(start, rows, truncated) per chunk of texts; with `prefetch` the next chunk is
        tokenised in a thread (fast tokenizers release the GIL) while this one runs."""
        starts = range(0, len(texts), chunk)

        def tokenized(start: int) -> tuple[int, list[dict[str, list[int]]], int]:
            rows = self.tokenize(texts[start : start + chunk])
            return start, rows, self.truncated

        if not self.prefetch:
            yield from map(tokenized, starts)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for start in starts:
                current = pending.result() if pending else tokenized(start)
                following = start + chunk
                pending = pool.submit(tokenized, following) if following < len(texts) else None
                yield current

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed `texts` in length-sorted batches and return them in input order."""
        texts = check_texts(texts)
        batch_size = batch_size or self.config.batch_size
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        self.truncated = 0
        if not texts:
            return vectors
        if show_progress is None:
            show_progress = sys.stderr.isatty() and len(texts) > batch_size
        self.prepare()
        pad_id = self.tokenizer.pad_token_id or 0
        truncated = 0
        chunk = max(CHUNK_TEXTS, batch_size)
        progress = (
            tqdm(total=len(texts), unit="text", desc="encoding", file=sys.stderr)
            if show_progress
            else None
        )
        grad_off = torch.inference_mode() if self.backend == "torch" else contextlib.nullcontext()
        with grad_off, progress or contextlib.nullcontext():
            for offset, rows, chunk_truncated in self._tokenized_chunks(texts, chunk):
                truncated += chunk_truncated
                order = np.argsort([-len(row["input_ids"]) for row in rows], kind="stable")
                outputs = []
                for start in range(0, len(rows), batch_size):
                    chosen = order[start : start + batch_size]
                    embedded = self._embed(pad_arrays([rows[i] for i in chosen], pad_id))
                    if self.config.normalize and not self.normalized_by_model:
                        embedded = normalized(embedded)
                    outputs.append(embedded)  # a tensor stays on the GPU until the chunk ends
                    if progress is not None:
                        progress.update(len(chosen))
                vectors[offset + order] = _joined(outputs)
        self.truncated = truncated
        if truncated and self.report_truncation:
            print(
                f"semsearch: {truncated} of {len(texts)} texts were longer than "
                f"{self.max_seq_length} tokens and were truncated",
                file=sys.stderr,
            )
        return vectors
