"""`eval sts|retrieval|sweep|classify`: measure an encoder on public benchmarks.

Every command reads and checks its data before loading a model, prints a readable
summary (metrics x 100) or, with --json, one JSON object with metrics as fractions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from semsearch.cli.helptext import ReflowingGroup
from semsearch.cli.options import (
    DATA_PANEL,
    DEFAULT_ENCODER_OPTIONS,
    BatchOpt,
    ConfigOpt,
    DenseWeightOpt,
    DeviceOpt,
    EncoderOptions,
    FusionOpt,
    JsonOpt,
    LimitOpt,
    MaxLenOpt,
    ModelOpt,
    QuietOpt,
    RerankOpt,
    SkipSpecialOpt,
    SplitOpt,
    StsFileArg,
    ThresholdOpt,
    WhereOpt,
    ranking_settings,
    with_encoder_options,
)
from semsearch.cli.report import (
    describe_encoder,
    emit,
    note,
    progress,
    refuse_missing_folder,
    x100,
)
from semsearch.params import MODES

eval_app = typer.Typer(
    cls=ReflowingGroup,
    help="Measure an encoder: STS correlation, BEIR retrieval, layer x pooling sweeps, "
    "classification with embeddings as features.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@eval_app.command("sts")
@with_encoder_options
def sts(
    file: StsFileArg,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Spearman and Pearson correlation of cosine similarity with gold STS scores.

    Example: semsearch eval sts ../shared/data/stsb/sts-test.csv

    Each distinct sentence is encoded once. JSON metrics are fractions; the text
    output shows them x 100 (all-MiniLM-L6-v2 on STSb test: Spearman 82.03).
    """
    from semsearch.encoders import load_encoder
    from semsearch.evaluation.data import read_sts
    from semsearch.evaluation.sts import evaluate_sts

    settings = options.settings()
    pairs = read_sts(file, split=split or "test", limit=limit)
    encoder = load_encoder(settings.encoder)
    note(f"scoring {len(pairs)} pairs of {pairs.path}", quiet or as_json)
    result = evaluate_sts(encoder, pairs, show_progress=progress(quiet))
    lines = [
        f"STS: {result.file}, {result.pairs} pairs ({result.sentences} distinct sentences)",
        f"encoder: {describe_encoder(result.encoder)}",
        f"Spearman x100: {x100(result.spearman)}",
        f"Pearson  x100: {x100(result.pearson)}",
        f"({result.seconds:.1f} s)",
    ]
    emit(result.to_json(), lines, as_json)


@eval_app.command("retrieval")
@with_encoder_options
def retrieval(
    folder: Annotated[
        Path,
        typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."),
    ],
    split: Annotated[
        str, typer.Option("--split", help="Qrels split to evaluate.", rich_help_panel=DATA_PANEL)
    ] = "test",
    index_type: Annotated[
        str | None,
        typer.Option(
            "--index-type",
            help="auto (default), flat, hnsw, ivf, sq8 or ivfpq: compare ANN to flat.",
        ),
    ] = None,
    text_field: Annotated[
        str | None,
        typer.Option(
            "--text-field",
            help="Corpus field to embed (default: title and text joined, as BEIR).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("-k", "--k", help="Hits retrieved per query (MAP@100 needs 100).")
    ] = 100,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="hybrid (default), dense, lexical, or all: every mode on one index.",
        ),
    ] = None,
    threshold: ThresholdOpt = None,
    rerank: RerankOpt = None,
    fusion: FusionOpt = None,
    dense_weight: DenseWeightOpt = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Also rank by dense, lexical, the fixed fusion and the index's own "
            "choice, side by side on the same index.",
        ),
    ] = False,
    where: WhereOpt = None,
    per_query: Annotated[
        Path | None,
        typer.Option("--per-query", help="Write one JSON line per query (metrics, top hits)."),
    ] = None,
    run_file: Annotated[
        Path | None,
        typer.Option(
            "--run-file",
            help="Write every query's ranking as a TREC run file (trec_eval, ranx).",
        ),
    ] = None,
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, MRR@10, Recall@1, Recall@10 and MAP@100 on a BEIR folder.

    Example: semsearch eval retrieval ../shared/data/covidqa_faq --index-type hnsw

    The corpus is indexed as `semsearch index` would (in a temporary folder) and every
    judged query is asked as `semsearch query` asks it, with the same ranking options;
    each document is ranked on its own (no answer de-duplication) and no threshold
    applies unless given. Queries without a relevant document are skipped, as BEIR does.
    With --where every query is answered from the entries the filter selects only.
    """
    from semsearch.encoders import load_encoder
    from semsearch.evaluation.retrieval import (
        BeirFolder,
        evaluate_retrieval,
        write_per_query,
        write_run,
    )
    from semsearch.filters import parse_where
    from semsearch.index.fusion_choice import describe_in_force
    from semsearch.index.types import resolve_type
    from semsearch.params import parse_k

    parse_k(k)
    parse_where(where)  # its syntax fails before any reading; its fields once indexed
    for path, option in ((per_query, "--per-query"), (run_file, "--run-file")):
        if path:
            refuse_missing_folder(path, option)
    every = mode == "all"
    search = ranking_settings(
        threshold=threshold,
        mode=None if every else mode,
        rerank=rerank,
        fusion=fusion,
        dense_weight=dense_weight,
    )
    settings = options.settings(index={"type": index_type}, search=search)
    resolve_type(settings.index.type, 0)  # an unknown type fails before any reading
    beir = BeirFolder.open(folder, split)
    if k < 100:
        note(f"note: -k {k} < 100, so MAP@100 only sees the top {k} hits", quiet or as_json)
    encoder = load_encoder(settings.encoder)
    result = evaluate_retrieval(
        beir,
        encoder,
        index=settings.index,
        search=settings.search,
        also=MODES if every else (),
        compare=compare,
        text_field=text_field,
        k=k,
        where=where,
        show_progress=progress(quiet),
        log=None if quiet or as_json else lambda message: typer.echo(message, err=True),
    )
    written = write_per_query(result, beir, per_query) if per_query else None
    run = write_run(result, run_file) if run_file else None
    names = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@1": "Recall@1"}
    names |= {"recall@10": "Recall@10", "map@100": "MAP@100"}
    lines = [
        f"retrieval: {result.folder} (split {result.split}), {result.index_type} index of "
        f"{result.corpus} documents, top {result.k} hits per query",
        f"queries: {result.queries} evaluated, {result.skipped_queries} without a relevant "
        "document skipped",
        f"encoder: {describe_encoder(result.encoder)}",
        f"mode: {result.mode}",
        f"fusion: {describe_in_force(result.fusion, result.corpus)}",
        *(f"{label:>10} x100: {x100(result.metrics[key])}" for key, label in names.items()),
        *(
            f"{name:>10}: " + ", ".join(f"{names[k]} {x100(v)}" for k, v in metrics.items())
            for name, metrics in result.by_mode.items()
            if every or compare
        ),
        f"({result.seconds['index']:.1f} s indexing, {result.seconds['search']:.1f} s searching)",
    ]
    payload = result.to_json()
    if written:
        payload["per_query"] = str(written)
        lines.append(f"per-query results: {written}")
    if run:
        payload["run_file"] = str(run)
        lines.append(f"TREC run file: {run}")
    emit(payload, lines, as_json)


@eval_app.command("sweep")
def sweep(
    file: StsFileArg,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    plot: Annotated[
        Path, typer.Option("--plot", help="PNG heatmap to write (layers x pooling).")
    ] = Path("sweep.png"),
    config: ConfigOpt = None,
    model: ModelOpt = None,
    skip_special: SkipSpecialOpt = None,
    max_seq_length: MaxLenOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Every pooling x every layer of a raw BERT, scored by STS Spearman, as a table and a PNG.

    Example: semsearch eval sweep ../shared/data/stsb --limit 500 --plot sweep.png

    The model (default: the packaged all-MiniLM-L6-v2) is loaded as a raw BERT. Rows
    are hidden states 0 (embeddings) .. L and the last four summed / concatenated
    (layer L-1 is bert-as-service's -2); columns are cls, pooler, mean, max, mean_max,
    last. A folder means its dev split, so choices are not tuned on test.
    """
    from semsearch.encoders import load_encoder
    from semsearch.evaluation.data import read_sts
    from semsearch.evaluation.deps import require
    from semsearch.evaluation.sweep import plot_sweep, run_sweep

    require("matplotlib", "eval sweep's heatmap")
    refuse_missing_folder(plot, "--plot")
    settings = EncoderOptions(
        config=config, model=model, skip_special=skip_special,
        max_seq_length=max_seq_length, device=device, batch_size=batch_size,
    ).settings()  # fmt: skip
    pairs = read_sts(file, split=split or "dev", limit=limit)
    raw = dataclasses.replace(
        settings.encoder,
        kind="bert",
        pooling="mean",
        layers=(-1,),
        layer_combine="concat",
        backend="torch",  # the sweep reads every hidden state from the torch model
    )
    encoder = load_encoder(raw)
    layers = getattr(encoder.torch_model, "num_layers", "?")
    note(f"sweeping {layers} layers on {len(pairs)} pairs of {pairs.path}", quiet)
    result = run_sweep(encoder, pairs, show_progress=progress(quiet))
    written = plot_sweep(result, plot)
    row, column = result.best
    lines = [
        f"sweep: {result.model} as raw BERT on {result.file}, {result.pairs} pairs",
        "STS Spearman x100 of cosine similarity (* = best):",
        result.render(),
        f"best: layers {result.rows[row].label}, pooling {result.poolings[column]}: "
        f"{x100(result.table[row, column])}",
        f"heatmap: {written}  ({result.seconds:.1f} s)",
    ]
    payload = result.to_json()
    payload["plot"] = str(written)
    emit(payload, lines, as_json)


@eval_app.command("classify")
@with_encoder_options
def classify(
    train: Annotated[
        Path, typer.Argument(help="Training file: sentence<TAB>label, or CSV text,category.")
    ],
    test: Annotated[Path, typer.Argument(help="Test file, same format.")],
    limit_train: Annotated[
        int | None,
        typer.Option(
            "--limit-train",
            help="Train on N texts drawn at random (seeded) for speed (default: all).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of --limit-train's draw.", rich_help_panel=DATA_PANEL),
    ] = 0,
    text_field: Annotated[
        str | None,
        typer.Option(
            "--text-field",
            help="Text column (CSV; default: text, sentence, ... as found).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    label_field: Annotated[
        str | None,
        typer.Option(
            "--label-field",
            help="Label column (CSV; default: label, category, ... as found).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Sentence embeddings as features of a logistic-regression classifier: accuracy, macro-F1.

    Example: semsearch eval classify data/train.csv data/test.csv --limit-train 5000

    Files: `sentence<TAB>label` lines (SST-2), or a CSV with a header such as text,category
    (BANKING77).
    """
    from semsearch.encoders import load_encoder
    from semsearch.evaluation.classify import evaluate_classification
    from semsearch.evaluation.data import read_labelled
    from semsearch.evaluation.deps import require

    require("sklearn", "eval classify")
    settings = options.settings()
    train_set = read_labelled(train, text_field=text_field, label_field=label_field)
    test_set = read_labelled(test, text_field=text_field, label_field=label_field)
    encoder = load_encoder(settings.encoder)
    result = evaluate_classification(
        encoder, train_set, test_set, limit_train=limit_train, seed=seed,
        show_progress=progress(quiet),
    )  # fmt: skip
    sampled = (
        f"{result.train_size} of {result.train_total}, drawn at random with seed {result.seed}"
        if result.train_size < result.train_total
        else f"{result.train_size}"
    )
    lines = [
        f"classify: train {result.train} ({sampled}), test {result.test} ({result.test_size})",
        f"{result.classes} classes; encoder: {describe_encoder(result.encoder)}",
        f"Accuracy x100: {x100(result.accuracy)}",
        f"Macro-F1 x100: {x100(result.macro_f1)}",
        f"({result.seconds['encode']:.1f} s encoding, {result.seconds['fit']:.1f} s fitting)",
    ]
    if result.unseen_test_labels:
        lines.insert(
            2, f"note: {result.unseen_test_labels} test texts carry a label unseen in training"
        )
    emit(result.to_json(), lines, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
