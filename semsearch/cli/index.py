"""`index`, `add`, `delete` and `info`: build and maintain an index folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from semsearch.cli.engine import AddressOpt, EngineOpt, GpusOpt, WorkersOpt, ray_settings_of
from semsearch.cli.options import (
    DEFAULT_ENCODER_OPTIONS,
    DeviceOpt,
    EncoderOptions,
    JsonOpt,
    QuietOpt,
    with_encoder_options,
)
from semsearch.corpus.base import ANSWER_NAMES, ID_NAMES, TEXT_NAMES

FIELDS_PANEL = "Corpus fields"
IndexArg = Annotated[Path, typer.Argument(help="Index folder, e.g. indexes/faq.")]
CorpusArg = Annotated[
    Path,
    typer.Argument(
        help=".csv, .tsv, .jsonl, .txt, .parquet, a BEIR folder, or a folder or quoted glob "
        "of corpus files (read in name order)."
    ),
]
TextFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--text-field",
        help=f"Column to embed (default: the first of {', '.join(TEXT_NAMES)}).",
        rich_help_panel=FIELDS_PANEL,
    ),
]
AnswerFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--answer-field",
        help=f"Column to return (default: the first of {', '.join(ANSWER_NAMES)}; where "
        "--text-field is given and one other column is left, that one; else the text itself).",
        rich_help_panel=FIELDS_PANEL,
    ),
]
IdFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--id-field",
        help=f"Column of unique ids (default: the first of {', '.join(ID_NAMES)}; "
        "else the row number).",
        rich_help_panel=FIELDS_PANEL,
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse empty texts and rows with fewer fields than the header "
        "instead of skipping or counting them.",
        rich_help_panel=FIELDS_PANEL,
    ),
]
DelimiterOpt = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help=".csv/.tsv: one character or 'tab' (default: detected from the first row "
        "among , ; tab |).",
        rich_help_panel=FIELDS_PANEL,
    ),
]
NoHeaderOpt = Annotated[
    bool,
    typer.Option(
        "--no-header",
        help=".csv/.tsv without a header row: columns are 1, 2, ...; the text is column 1 "
        "and the answer column 2 unless named (e.g. --text-field 2).",
        rich_help_panel=FIELDS_PANEL,
    ),
]
IndexTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--index-type",
        help="auto (default: flat, hnsw from 50,000 vectors), flat, hnsw, ivf, sq8 (compressed) "
        "or ivfpq (compressed, on disk; at least 256 entries).",
    ),
]


def _progress(quiet: bool) -> bool | None:
    return False if quiet else None  # None: a bar when stderr is a terminal


def _print_stats(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        shown = f"{value:.1f}" if isinstance(value, float) else value
        typer.echo(f"{key.replace('_', ' '):>12}: {shown}")


@with_encoder_options
def index(
    corpus: CorpusArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Index folder to write.")],
    index_type: IndexTypeOpt = None,
    text_field: TextFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    id_field: IdFieldOpt = None,
    strict: StrictOpt = False,
    delimiter: DelimiterOpt = None,
    no_header: NoHeaderOpt = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = None,
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed a corpus and write an index folder (replacing any index there atomically).

    Example: semsearch index examples/faq.csv -o indexes/faq

    With --engine ray, Ray workers (on this machine, or on the cluster at --address) read
    the corpus in parts, encode them and write shards beside the output, from which the
    index is assembled; it answers as a local build's does.
    """
    from semsearch.encoders import load_encoder
    from semsearch.index import IndexStore
    from semsearch.index.guards import check_writable, refuse_foreign
    from semsearch.index.types import resolve_type
    from semsearch.search.adaptive import choose

    ray_settings = ray_settings_of(engine, address, workers, gpus_per_worker)
    settings = options.settings(index={"type": index_type})
    resolve_type(settings.index.type, 0)  # an unknown type fails before any reading
    refuse_foreign(output)  # and a folder it may not write, before the model loads
    check_writable(output)
    source = _open_source(corpus, text_field, answer_field, id_field, strict, delimiter, no_header)
    if not quiet:
        typer.echo(f"reading {corpus}: {source.describe()}", err=True)
    fields = {"text": source.fields.text, "answer": source.fields.answer, "id": source.fields.id}
    if ray_settings is None:
        store = IndexStore.build(
            output,
            source.chunks(settings.index.chunk_size),
            load_encoder(settings.encoder),
            index_type=settings.index.type,
            params=settings.index.params,
            fields=fields,
            show_progress=_progress(quiet),
            choose_fusion=choose,
        )
        skipped, short_rows = source.skipped_empty, source.short_rows
    else:
        from semsearch.distributed.parts import Reading
        from semsearch.distributed.ray_engine import shard_pool

        with shard_pool(settings.encoder, ray_settings, _progress(quiet)) as pool:
            if not quiet:
                typer.echo(
                    f"encoding on {pool.workers} Ray worker{'s' * (pool.workers != 1)}, "
                    f"{pool.threads} CPU{'s' * (pool.threads != 1)} each",
                    err=True,
                )
            store = pool.build(
                output,
                source,
                Reading(source.fields, strict, delimiter, not no_header),
                index_type=settings.index.type,
                params=settings.index.params,
                fields=fields,
                chunk_size=settings.index.chunk_size,
            )
        skipped, short_rows = pool.skipped_empty, pool.short_rows
    stats = store.stats
    assert stats is not None  # build always records what it did
    _print_stats(
        {
            "index": str(output),
            "count": store.count,
            "skipped": skipped,
            "short_rows": short_rows,
            "truncated": stats.truncated,
            "dim": store.dim,
            "index_type": store.manifest.index.type,
            "seconds": round(stats.seconds, 3),
        },
        as_json,
    )


def add(
    index_path: IndexArg,
    corpus: CorpusArg,
    text_field: TextFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    id_field: IdFieldOpt = None,
    strict: StrictOpt = False,
    delimiter: DelimiterOpt = None,
    no_header: NoHeaderOpt = False,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add records to an index; a record whose id is already there replaces it.

    The encoder is the one that built the index. Example: semsearch add indexes/faq new.csv

    A file without an id column (ids are row numbers) is appended with new numbers after
    the largest one in the index: it never replaces an entry.
    """
    from semsearch.config import IndexConfig
    from semsearch.index.guards import check_writable
    from semsearch.search.engine import SearchEngine

    if index_path.exists():  # a folder it may not write fails before the model loads
        check_writable(index_path)
    engine = SearchEngine.open(index_path, device=device)
    source = _open_source(corpus, text_field, answer_field, id_field, strict, delimiter, no_header)
    if not quiet:
        typer.echo(f"reading {corpus}: {source.describe()}", err=True)
    stats = engine.store.add(
        source.chunks(IndexConfig().chunk_size),
        engine.encoder,
        show_progress=_progress(quiet),
        new_ids=source.fields.id is None,
    )
    _print_stats(
        {
            "index": str(index_path),
            "added": stats.added,
            "updated": stats.updated,
            "skipped": source.skipped_empty,
            "short_rows": source.short_rows,
            "truncated": stats.truncated,
            "count": stats.count,
            "seconds": round(stats.seconds, 3),
        },
        as_json,
    )


def delete(
    index_path: IndexArg,
    ids: Annotated[list[str], typer.Argument(help="Ids of the records to remove.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove records by id; unknown ids are an error and change nothing.

    Example: semsearch delete indexes/faq reset-password-3
    """
    from semsearch.index import IndexStore

    store = IndexStore.open(index_path)
    removed = store.delete(ids)
    _print_stats({"index": str(index_path), "deleted": removed, "count": store.count}, as_json)


def info(index_path: IndexArg, as_json: JsonOpt = False) -> None:
    """Describe an index: counts, encoder, index type, sizes.

    Example: semsearch info indexes/faq --json
    """
    from semsearch.index import IndexStore
    from semsearch.index.fusion_choice import describe as describe_fusion
    from semsearch.index.summary import describe_filters, describe_parts
    from semsearch.index.threshold import describe

    details = IndexStore.open(index_path).info()
    if as_json:
        typer.echo(json.dumps(details))
        return
    encoder, section = details["encoder"], details["index"]
    lines = [
        ("index", details["path"]),
        ("records", details["count"]),
        ("deleted", f"{details['deleted']} (marked, filtered from results)"),
        ("encoder", f"{encoder.get('kind')} {encoder.get('model')}"),
        (  # .get: an encoder given through the Python API may not have every key
            "pooling",
            f"{encoder.get('pooling')}, layers {encoder.get('layers')} "
            f"({encoder.get('layer_combine')})",
        ),
        ("dim", encoder.get("dim")),
        ("max tokens", encoder.get("max_seq_length")),
        ("index type", f"{section['type']} ({section['faiss_factory']}) {section['params']}"),
        ("parts", describe_parts(details["parts"])),
        ("filters", describe_filters(details["filters"])),
        ("threshold", describe(details["threshold"], details["count"])),
        ("fusion", describe_fusion(details["fusion"], details["count"])),
        ("sizes", ", ".join(f"{name} {size:,} B" for name, size in details["files"].items())),
        ("created", details["created"]),
        ("updated", details["updated"]),
    ]
    shown = [f"{name} ({size:,} B)" for name, size in details["leftovers"].items()]
    shown += [f"{details['stale_lock']} (a lock nobody holds)"] * bool(details["stale_lock"])
    if shown:
        why = "from killed writes; the next index/add/delete removes them"
        lines.append(("leftovers", f"{', '.join(shown)}: {why}"))
    for key, value in lines:
        typer.echo(f"{key:>10}: {value}")


def _open_source(
    corpus: Path,
    text_field: str | None,
    answer_field: str | None,
    id_field: str | None,
    strict: bool,
    delimiter: str | None,
    no_header: bool,
) -> Any:
    """The corpus as `index` and `add` read it, from their shared corpus options."""
    from semsearch.corpus import open_corpus
    from semsearch.corpus.opening import refuse_empty

    source = open_corpus(
        corpus,
        text_field=text_field,
        answer_field=answer_field,
        id_field=id_field,
        strict=strict,
        delimiter=delimiter,
        header=not no_header,
    )
    refuse_empty(source)  # named, before "reading ..." and before any model loads
    return source


def register(app: typer.Typer) -> None:
    app.command()(index)
    app.command()(add)
    app.command()(delete)
    app.command()(info)
