"""`finetune`: adapt the encoder to a corpus (and labelled questions) and write a new
sentence-transformers folder that every command takes as --model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from semsearch.cli.index import AnswerFieldOpt, CorpusArg, IdFieldOpt, TextFieldOpt
from semsearch.cli.options import JsonOpt, QuietOpt
from semsearch.finetune.settings import FinetuneSettings

TRAIN_PANEL = "Training"
_D = FinetuneSettings  # its class attributes are the defaults (a light module)


def _x100(metrics: dict[str, float] | None, key: str) -> str:
    return "n/a" if metrics is None else f"{100 * metrics[key]:.2f}"


def finetune(
    corpus: CorpusArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="New model folder to write, e.g. models/faq.")
    ],
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="Labelled questions: .csv/.tsv/.jsonl with question and id (the entry that "
            "answers it; several rows per id allowed), or a BEIR folder (queries.jsonl and "
            "qrels/train.tsv).",
        ),
    ] = None,
    base: Annotated[
        str,
        typer.Option(
            "--base", help="Model to start from: name or folder.", rich_help_panel=TRAIN_PANEL
        ),
    ] = _D.base,
    epochs: Annotated[
        int, typer.Option("--epochs", help="Passes over the pairs.", rich_help_panel=TRAIN_PANEL)
    ] = _D.epochs,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="Pairs per step (each one's answer is a negative of the others).",
            rich_help_panel=TRAIN_PANEL,
        ),
    ] = _D.batch_size,
    lr: Annotated[
        float, typer.Option("--lr", help="Learning rate.", rich_help_panel=TRAIN_PANEL)
    ] = _D.lr,
    hard_negatives: Annotated[
        int,
        typer.Option(
            "--hard-negatives",
            help="Per question, the N entries the base model ranks highest that do not answer "
            "it, as extra negatives (default 0).",
            rich_help_panel=TRAIN_PANEL,
        ),
    ] = 0,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Same seed, same weights (on one machine).", rich_help_panel=TRAIN_PANEL
        ),
    ] = 0,
    eval_split: Annotated[
        float,
        typer.Option(
            "--eval-split",
            help="Share of the labelled questions (or, without --pairs, of the entries' "
            "questions) held back to measure before and after; 0: none.",
            rich_help_panel=TRAIN_PANEL,
        ),
    ] = _D.eval_split,
    max_seq_length: Annotated[
        int | None,
        typer.Option(
            "--max-seq-length",
            help="Tokens per text while training (the model keeps its own limit).",
            rich_help_panel=TRAIN_PANEL,
        ),
    ] = _D.max_seq_length,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Refuse labelled questions whose id is not in the corpus."),
    ] = False,
    text_field: TextFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    id_field: IdFieldOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a sentence-transformer on your FAQ (and real questions).

    Example: semsearch finetune examples/faq.csv --pairs examples/faq-logs.csv -o models/faq

    Pairs: each entry's question -> its question and answer, and each labelled
    question -> its entry's question and answer. Loss: in-batch negatives
    (MultipleNegativesRankingLoss); pairs of one answer never share a batch.
    Prints nDCG@10 and acc@1 of held-out questions before and after. Then:
    semsearch index examples/faq.csv -o indexes/faq --model models/faq
    """
    from semsearch.errors import SemsearchError
    from semsearch.finetune.train import finetune as run

    def note(message: str) -> None:
        typer.echo(f"semsearch: {message}", err=True)

    settings = FinetuneSettings(
        base=base, epochs=epochs, batch_size=batch_size, lr=lr, hard_negatives=hard_negatives,
        seed=seed, eval_split=eval_split, strict=strict, max_seq_length=max_seq_length,
    )  # fmt: skip
    fields = {"text_field": text_field, "answer_field": answer_field, "id_field": id_field}
    try:
        result = run(
            corpus, output, labels_path=pairs, settings=settings, fields=fields,
            show_progress=False if quiet else None, note=note,
        )  # fmt: skip
    except SemsearchError as exc:
        if exc.setting == "model":  # the model here is the base
            exc.setting = "base"
        raise
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    counts = result["pairs"]
    before, after = result["before"], result["after"]
    lines = [
        f"fine-tuned {base} on {counts['training']} pairs ({counts['training_corpus']} from "
        f"the corpus, {counts['training_labelled']} labelled) in "
        f"{result['seconds']['train']:.1f} s",
        f"held out: {counts['held_out']} questions ({result['held_out_from']})"
        if counts["held_out"]
        else "held out: none (nothing measured)",
    ]
    if before is not None:
        lines += [
            f"   nDCG@10 x100: {_x100(before, 'ndcg@10')} -> {_x100(after, 'ndcg@10')}",
            f"     acc@1 x100: {_x100(before, 'acc@1')} -> {_x100(after, 'acc@1')}",
        ]
    lines.append(f"model: {output}  (use it: semsearch index {corpus} -o INDEX --model {output})")
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
