"""The Encoder: texts in, float32 [n, dim] vectors out, through one batching loop.

Tokenisation, truncation counting, length-sorted batching, order restoring,
normalisation and the progress bar live here once. What runs the model (torch, or ONNX
Runtime fp32/int8) is a `Runner`; what the model is (its pooling, width, token limit,
inputs) is a `ModelSpec`. Neither needs torch when the runner is ONNX Runtime, so a
question answered from a cached export never imports it; the torch model is loaded only
when something asks for it (`torch_model`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semsearch import fingerprint
from semsearch.config import EncoderConfig
from semsearch.encoders.runners import Runner, default_threads, joined, normalized
from semsearch.encoders.tokenizer import Rows, Tokenizer
from semsearch.errors import ConfigError, InputError
from semsearch.models import weights_sha256
from semsearch.text import not_utf8

if TYPE_CHECKING:
    from semsearch.encoders.torch_model import TorchModel

log = logging.getLogger("semsearch")

CHUNK_TEXTS = 8192  # texts tokenised and length-sorted together; bounds memory on huge inputs
CUDA_DTYPE_NAMES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


@dataclass(frozen=True)
class ModelSpec:
    """What the batching loop and the fingerprint need to know about a model; stored
    beside an ONNX export, so a cached export runs without loading the model."""

    kind: str
    pooling: str
    dim: int
    model_max: int
    input_names: tuple[str, ...]
    pad_id: int
    normalized_by_model: bool  # the model's last step is Normalize: vectors are unit already

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "input_names": list(self.input_names)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**{**data, "input_names": tuple(data["input_names"])})


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
        problem = not_utf8(text)
        if problem:
            raise InputError(f"text {position} holds {problem}: give the text as UTF-8")
    return texts


def pad_arrays(rows: Rows, pad_id: int) -> dict[str, np.ndarray]:
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


class Encoder:
    """Texts in, float32 [n, dim] out (L2-normalised unless the config says not)."""

    def __init__(
        self,
        config: EncoderConfig,
        folder: Path,
        spec: ModelSpec,
        tokenizer: Tokenizer,
        *,
        backend: str,
        device: str,
        runner: Callable[[Encoder], Runner],
        torch_model: Callable[[], TorchModel],
    ) -> None:
        self.config = config
        self.folder = folder
        self.spec = spec
        self.tokenizer = tokenizer
        self.backend = backend
        self.device = device
        self.max_seq_length = config.max_seq_length or spec.model_max
        if self.max_seq_length > spec.model_max:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} exceeds the model's limit "
                f"of {spec.model_max} tokens",
                setting="max_seq_length",
            )
        self.truncated = 0
        self.report_truncation = True
        self.prefetch = device.startswith("cuda")  # tokenise ahead while the GPU computes
        self._make_runner = runner
        self._load_torch_model = torch_model
        self._runner: Runner | None = None
        self._torch_model: TorchModel | None = None
        self._fingerprint: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def dim(self) -> int:
        """Length of one sentence vector."""
        return self.spec.dim

    @property
    def precision(self) -> str:
        """Which numbers the vectors come from: int8 vectors are not comparable with fp32."""
        if self.backend == "onnx-int8":
            return "int8"
        if self.device.startswith("cuda"):
            return CUDA_DTYPE_NAMES[self.config.cuda_dtype]
        return "fp32"

    @property
    def threads(self) -> int:
        return self.config.threads or default_threads()

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides the vectors; an index refuses a query encoder that differs."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint.build(
                self.config,
                weights_sha256=weights_sha256(self.folder),
                pooling=self.spec.pooling,
                dim=self.spec.dim,
                max_seq_length=self.max_seq_length,
                backend=self.backend,
                precision=self.precision,
            )
        return dict(self._fingerprint)

    @property
    def torch_model(self) -> TorchModel:
        """The model in torch (loaded on first use: token vectors, layer sweeps)."""
        if self._torch_model is None:
            self._torch_model = self._load_torch_model()
        return self._torch_model

    def prepare(self) -> Encoder:
        """Load (and on first use export) the backend now rather than at the first batch."""
        if self._runner is None:
            self._runner = self._make_runner(self)
        return self

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Rows:
        """Word-piece ids per text (with [CLS]/[SEP]), truncated to max_seq_length.
        Sets `self.truncated` to how many inputs did not fit."""
        rows, self.truncated = self.tokenizer.rows(texts, pairs, self.max_seq_length)
        return rows

    def _tokenized_chunks(self, texts: list[str], chunk: int) -> Iterator[tuple[int, Rows, int]]:
        """(start, rows, truncated) per chunk of texts; with `prefetch` the next chunk is
        tokenised in a thread (fast tokenizers release the GIL) while this one runs."""
        starts = range(0, len(texts), chunk)

        def tokenized(start: int) -> tuple[int, Rows, int]:
            rows, truncated = self.tokenizer.rows(
                texts[start : start + chunk], None, self.max_seq_length
            )
            return start, rows, truncated

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
        runner = self.prepare()._runner
        assert runner is not None
        normalize = self.config.normalize and not self.spec.normalized_by_model
        pad_id = self.tokenizer.pad_id
        truncated = 0
        chunk = max(CHUNK_TEXTS, batch_size)
        progress: Any = contextlib.nullcontext()
        if show_progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(texts), unit="text", desc="encoding", file=sys.stderr)
        with progress:
            for offset, rows, chunk_truncated in self._tokenized_chunks(texts, chunk):
                truncated += chunk_truncated
                order = np.argsort([-len(row["input_ids"]) for row in rows], kind="stable")
                outputs = []
                for start in range(0, len(rows), batch_size):
                    chosen = order[start : start + batch_size]
                    embedded = runner(pad_arrays([rows[i] for i in chosen], pad_id))
                    outputs.append(normalized(embedded) if normalize else embedded)
                    if show_progress:
                        progress.update(len(chosen))
                vectors[offset + order] = joined(outputs)
        self.truncated = truncated
        if truncated and self.report_truncation:
            log.warning(
                "%d of %d texts were longer than %d tokens and were truncated",
                truncated,
                len(texts),
                self.max_seq_length,
            )
        return vectors
