"""The model side of fine-tuning: the base model, encoding for mining and measuring, and
the progress bar the trainer drives."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from semsearch.finetune.pairs import Corpus, Pair

log = logging.getLogger("semsearch")
ENCODE_BATCH = 64


def load_base(folder: Path, device: str | None = None) -> tuple[SentenceTransformer, bool]:
    """The base model, and whether it had to be wrapped: a raw transformer folder (no
    modules.json) becomes Transformer -> mean Pooling -> Normalize, as the project's raw
    BERT default pools."""
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    if (folder / "modules.json").is_file():
        return SentenceTransformer(str(folder), device=device, local_files_only=True), False
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )

    transformer = Transformer(str(folder))
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)
    return model, True


def encode(model: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """Unit-length float32 vectors, in eval mode (no dropout)."""
    vectors = model.encode(
        list(texts),
        batch_size=ENCODE_BATCH,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def mine_negatives(
    model: SentenceTransformer, pairs: Sequence[Pair], corpus: Corpus, count: int
) -> list[Pair]:
    """Each pair with the `count` entries the base model ranks highest for its question,
    skipping its own answer's entries and taking one entry per answer."""
    entries = list(corpus.entries.values())
    documents = encode(model, [entry.document for entry in entries])
    questions = encode(model, [pair.question for pair in pairs])
    mined = []
    for pair, vector in zip(pairs, questions, strict=True):
        seen = {corpus.entries[pair.entry].group}
        negatives: list[str] = []
        for row in np.argsort(-(documents @ vector), kind="stable"):
            entry = entries[int(row)]
            if entry.group not in seen:
                seen.add(entry.group)
                negatives.append(entry.id)
                if len(negatives) == count:
                    break
        mined.append(Pair(pair.question, pair.entry, tuple(negatives)))
    return mined


class Progress(TrainerCallback):
    """One bar for the run: steps, the latest loss, elapsed and ETA (tqdm's)."""

    def __init__(self, show: bool | None) -> None:
        self.show = show
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        disable = None if self.show is None else not self.show  # None: only on a terminal
        self.bar = tqdm(
            total=state.max_steps, unit="step", desc="training", file=sys.stderr, disable=disable
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
