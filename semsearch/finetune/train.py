"""One fine-tuning run: read the pairs, measure, train with sentence-transformers' trainer
and MultipleNegativesRankingLoss, measure again, and write the new model folder.

The folder is written beside its final place and renamed in only when complete (see
`semsearch.atomic`), so a failure or Ctrl-C leaves nothing half-written; an existing
folder is never written over. The same seed on the same machine gives the same weights.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semsearch import __version__
from semsearch.atomic import replacing, write_blocker
from semsearch.errors import InputError
from semsearch.finetune.pairs import (
    Corpus,
    Labels,
    Pair,
    data_files,
    files_sha256,
    read_corpus,
    read_labels,
    split_held_out,
)
from semsearch.finetune.settings import FinetuneSettings, require_extras

log = logging.getLogger("semsearch")
INFO_FILE = "semsearch.json"


@dataclass(frozen=True)
class Plan:
    """The pairs a run trains on and the questions it holds back to measure."""

    corpus: Corpus
    labels: Labels | None
    self_pairs: int
    train: list[Pair]
    held_out: list[Pair]


def check_output(output: Path) -> None:
    """Refuse an existing path or one this user cannot create, before any work."""
    if output.exists() or output.is_symlink():
        raise InputError(
            f"{output} already exists: fine-tuning writes a new model folder and never "
            "replaces one; choose another name or remove it",
            setting="output",
        )
    blocker = write_blocker(output)
    if blocker:
        raise InputError(blocker, setting="output")


def plan(
    corpus_path: Path,
    labels_path: Path | None,
    settings: FinetuneSettings,
    fields: dict[str, str | None] | None = None,
    note: Callable[[str], None] = log.info,
) -> Plan:
    """Read and check everything the run needs, before any model is loaded."""
    corpus = read_corpus(corpus_path, **(fields or {}))
    self_pairs = corpus.self_pairs()
    labels = read_labels(labels_path, corpus) if labels_path is not None else None
    if labels is not None:
        _check_labels(labels, settings.strict, note)
        train, held_out = split_held_out(labels.pairs, settings.eval_split, settings.seed)
        train = self_pairs + train
    else:
        if not self_pairs:
            raise InputError(
                f"{corpus_path}: its entries have no question apart from the text they are "
                "found by, so the corpus alone gives no training pairs; give labelled questions",
                setting="pairs",
            )
        train, held_out = split_held_out(self_pairs, settings.eval_split, settings.seed)
    if len(train) < settings.batch_size:
        raise InputError(
            f"too few pairs for one batch: {len(train)} training pairs for a batch size of "
            f"{settings.batch_size}; lower the batch size or add labelled questions",
            setting="batch_size",
        )
    return Plan(corpus, labels, len(self_pairs), train, held_out)


def _check_labels(labels: Labels, strict: bool, note: Callable[[str], None]) -> None:
    if labels.unknown_rows:
        shown = ", ".join(repr(ident) for ident in labels.unknown[:3])
        message = (
            f"{labels.path}: {labels.unknown_rows} labelled question(s) name an id that is "
            f"not in the corpus ({len(labels.unknown)} distinct: {shown}"
            f"{', ...' if len(labels.unknown) > 3 else ''})"
        )
        if strict:
            raise InputError(f"{message}; refused in strict mode", setting="strict")
        note(f"{message}; left out")
    if labels.without_id:
        note(f"{labels.path}: {labels.without_id} question(s) without an id left out")
    if not labels.pairs:
        raise InputError(
            f"{labels.path}: no labelled question names an entry of the corpus", setting="pairs"
        )


def finetune(
    corpus_path: str | Path,
    output: str | Path,
    *,
    labels_path: str | Path | None = None,
    settings: FinetuneSettings | None = None,
    fields: dict[str, str | None] | None = None,
    show_progress: bool | None = None,
    note: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Fine-tune `settings.base` on `corpus_path` (and labelled questions), write the model
    folder `output`; returns what semsearch.json records, with the output path."""
    started = time.perf_counter()
    settings = settings or FinetuneSettings()
    corpus_path, output = Path(corpus_path), Path(output)
    labels_file = Path(labels_path) if labels_path is not None else None
    check_output(output)
    require_extras()
    work = plan(corpus_path, labels_file, settings, fields, note)

    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    from semsearch.finetune.measure import score
    from semsearch.finetune.model import load_base, mine_negatives
    from semsearch.models import resolve_model, weights_sha256

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # loading and saving bars: ours is the training one
    folder = resolve_model(settings.base)
    set_seed(settings.seed)
    model, wrapped = load_base(folder)
    if wrapped:
        note(f"{folder} is not a sentence-transformers model: wrapped with mean pooling")
    train = work.train
    groups = len({entry.group for entry in work.corpus.entries.values()})
    negatives = min(settings.hard_negatives, groups - 1)
    if negatives:
        train = mine_negatives(model, train, work.corpus, negatives)
    before = score(model, work.held_out, work.corpus)
    training = time.perf_counter()
    _train(model, train, work.corpus, settings, show_progress)
    seconds = {"train": round(time.perf_counter() - training, 3)}
    after = score(model, work.held_out, work.corpus)
    from_corpus = work.self_pairs if work.labels else len(train)
    info = {
        "semsearch_version": __version__,
        "base": {
            "model": settings.base,
            "weights_sha256": weights_sha256(folder),
            "wrapped": wrapped,
        },
        "data": {
            "corpus": str(corpus_path),
            "pairs": None if labels_file is None else str(labels_file),
            "sha256": files_sha256(data_files(corpus_path, labels_file)),
        },
        "settings": settings.to_json() | {"hard_negatives_used": negatives},
        "pairs": {
            "corpus": work.self_pairs,
            "labelled": len(work.labels.pairs) if work.labels else 0,
            "unknown_ids": work.labels.unknown_rows if work.labels else 0,
            "training": len(train),
            # its two parts (the held-out pairs come out of one of them), which add up
            "training_corpus": from_corpus,
            "training_labelled": len(train) - from_corpus,
            "held_out": len({pair.question for pair in work.held_out}),
        },
        "held_out_from": "labelled" if work.labels else "corpus",
        "before": before,
        "after": after,
        "seconds": seconds,
    }
    _save(model, output, info)
    seconds["total"] = round(time.perf_counter() - started, 3)
    return {"output": str(output), **info}


def _train(
    model: Any, train: list[Pair], corpus: Corpus, settings: FinetuneSettings, show: bool | None
) -> None:
    """sentence-transformers' trainer, MultipleNegativesRankingLoss and our batch sampler."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import PrinterCallback, ProgressCallback

    from semsearch.finetune.model import Progress
    from semsearch.finetune.sampler import entry_sampler

    class _Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """No model card is written, so none is prepared (it draws a progress bar)."""

    limit = model.max_seq_length
    if settings.max_seq_length is not None:
        model.max_seq_length = min(limit, settings.max_seq_length)
    columns = {
        "anchor": [pair.question for pair in train],
        "positive": [corpus.entries[pair.entry].document for pair in train],
    }
    for i in range(len(train[0].negatives)):
        columns[f"negative_{i + 1}"] = [corpus.entries[p.negatives[i]].document for p in train]
    keys = [corpus.groups((pair.entry, *pair.negatives)) for pair in train]
    with tempfile.TemporaryDirectory(prefix="semsearch-finetune-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.lr,
            seed=settings.seed,
            data_seed=settings.seed,
            batch_sampler=entry_sampler(keys),
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            disable_tqdm=True,
            dataloader_pin_memory=False,
        )
        trainer = _Trainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(columns),
            loss=MultipleNegativesRankingLoss(model),
            callbacks=[Progress(show)],
        )
        for callback in (PrinterCallback, ProgressCallback):  # ours draws the bar
            trainer.remove_callback(callback)
        try:
            trainer.train()
        finally:
            model.max_seq_length = limit  # the saved model reads as far as before
    model.eval()


def _save(model: Any, output: Path, info: dict[str, Any]) -> None:
    """Write the folder beside `output` and rename it in when complete."""
    check_output(output)  # it may have appeared while training
    with replacing(output) as staging:
        model.save(str(staging), create_model_card=False)
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
