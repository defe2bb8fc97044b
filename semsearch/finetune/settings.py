"""What a fine-tuning run is asked to do, checked before anything is read or loaded."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass
from typing import Any

from semsearch.config import EncoderConfig
from semsearch.errors import ConfigError, MissingExtraError, install_line

EXTRA = "finetune"
PACKAGES = {"datasets": "datasets", "accelerate": "accelerate"}


@dataclass(frozen=True)
class FinetuneSettings:
    """The training settings (defaults measured in bench/finetune.py)."""

    base: str = EncoderConfig.model
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    hard_negatives: int = 0
    seed: int = 0
    eval_split: float = 0.2
    strict: bool = False
    max_seq_length: int | None = 128  # tokens per text while training (None: the model's)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}", setting="epochs")
        if self.batch_size < 2:
            raise ConfigError(
                f"batch size must be at least 2 (in-batch negatives), got {self.batch_size}",
                setting="batch_size",
            )
        if not (math.isfinite(self.lr) and 0 < self.lr < 1):
            raise ConfigError(f"learning rate must be in (0, 1), got {self.lr}", setting="lr")
        if self.hard_negatives < 0:
            raise ConfigError(
                f"hard negatives must be 0 or more, got {self.hard_negatives}",
                setting="hard_negatives",
            )
        if not 0 <= self.eval_split < 1:
            raise ConfigError(
                f"eval split must be in [0, 1), got {self.eval_split}", setting="eval_split"
            )

        if self.max_seq_length is not None and self.max_seq_length < 8:
            raise ConfigError(
                f"max sequence length must be at least 8, got {self.max_seq_length}",
                setting="max_seq_length",
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def require_extras() -> None:
    """Training needs datasets and accelerate (the `finetune` extra): one clear line if not."""
    missing = [package for module, package in PACKAGES.items() if not _installed(module)]
    if missing:
        raise MissingExtraError(
            f"fine-tuning needs {' and '.join(missing)}, not installed: {install_line(EXTRA)}"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
