"""The Encoder protocol and the batching loop every encoder shares.

Subclasses only say how one padded batch becomes vectors (`_embed`); tokenisation,
truncation counting, length-sorted batching, order restoring, normalisation and the
progress bar live here once.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
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
)


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


def pad_batch(
    rows: Sequence[dict[str, list[int]]], pad_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Right-pad token rows into tensors; attention_mask marks the real tokens."""
    width = max(len(row["input_ids"]) for row in rows)
    batch: dict[str, torch.Tensor] = {}
    for key, fill in (("input_ids", pad_id), ("token_type_ids", 0), ("special_tokens_mask", 1)):
        if key in rows[0]:
            padded = [row[key] + [fill] * (width - len(row[key])) for row in rows]
            batch[key] = torch.tensor(padded, dtype=torch.long, device=device)
    lengths = torch.tensor([len(row["input_ids"]) for row in rows], device=device)
    batch["attention_mask"] = (
        torch.arange(width, device=device)[None, :] < lengths[:, None]
    ).long()
    return batch


class Encoder(ABC):
    """Texts in, float32 [n, dim] out (L2-normalised unless the config says not)."""

    kind: str

    def __init__(self, config: EncoderConfig, folder: Path, tokenizer: Any, model_max: int) -> None:
        self.config = config
        self.folder = folder
        self.tokenizer = tokenizer
        self.device = pick_device(config.device)
        self.max_seq_length = config.max_seq_length or model_max
        if self.max_seq_length > model_max:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} exceeds the model's limit "
                f"of {model_max} tokens"
            )
        self.truncated = 0
        self.report_truncation = True

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
    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One padded batch -> [batch, dim] vectors (not yet normalised)."""

    # -- shared ---------------------------------------------------------------------
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
        }

    def tokenize(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None
    ) -> list[dict[str, list[int]]]:
        """Word-piece ids per text (with [CLS]/[SEP]), truncated to max_seq_length.

        Sets `self.truncated` to how many inputs did not fit.
        """
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
        if not texts:
            self.truncated = 0
            return vectors
        rows = self.tokenize(texts)
        if self.truncated and self.report_truncation:
            print(
                f"semsearch: {self.truncated} of {len(texts)} texts were longer than "
                f"{self.max_seq_length} tokens and were truncated",
                file=sys.stderr,
            )
        order = np.argsort([-len(row["input_ids"]) for row in rows], kind="stable")
        if show_progress is None:
            show_progress = sys.stderr.isatty() and len(texts) > batch_size
        pad_id = self.tokenizer.pad_token_id or 0
        with (
            torch.inference_mode(),
            tqdm(
                total=len(texts),
                disable=not show_progress,
                unit="text",
                desc="encoding",
                file=sys.stderr,
            ) as progress,
        ):
            for start in range(0, len(texts), batch_size):
                chosen = order[start : start + batch_size]
                batch = pad_batch([rows[i] for i in chosen], pad_id, self.device)
                embedded = self._embed(batch).float()
                if self.config.normalize:
                    embedded = torch.nn.functional.normalize(embedded, p=2, dim=1)
                vectors[chosen] = embedded.cpu().numpy()
                progress.update(len(chosen))
        return vectors
