"""`query`: one question, an interactive prompt, or one question a line from a pipe."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from semsearch import params
from semsearch.cli.feedback import error_line
from semsearch.cli.options import (
    DEFAULT_ENCODER_OPTIONS,
    DenseWeightOpt,
    EncoderOptions,
    FusionOpt,
    JsonOpt,
    ModeOpt,
    RerankOpt,
    ThresholdOpt,
    WhereOpt,
    ranking_settings,
    with_encoder_options,
)
from semsearch.errors import ConfigError, SemsearchError
from semsearch.params import shown_threshold

if TYPE_CHECKING:
    from semsearch.search.engine import SearchEngine
    from semsearch.search.results import SearchResult

HELP = """commands:
  :k N          show N answers per question
  :threshold T  answer only when the top hit's cosine is at least T (:threshold none:
                off, :threshold index: the index's own)
  :help         this text
  :quit         leave (Ctrl-D works too)"""


def render(result: SearchResult) -> str:
    """A readable block: rank, cosine (and the fused score that ranked it, in hybrid
    mode), id and matched text, then the answer indented."""
    lines = [f"Q: {result.question}   (threshold {shown_threshold(result.threshold)})"]
    if not result.answered:
        best = result.best_score
        why = "no entry matches" if best is None else f"the top hit's cosine {best:.3f}"
        lines.append(f"   No confident answer ({why} is below the threshold).")
    for hit in result.confident:
        label = {"hybrid": "fused", "lexical": "bm25"}.get(result.mode or "")
        fused = f" {label} {hit.score:.3f}" if label and hit.scores else ""
        lines.append(f"{hit.rank:>3}. {hit.cosine:.3f}{fused}  [{hit.id}] {hit.text}")
        if hit.answer != hit.text:
            body = textwrap.fill(
                hit.answer, width=88, initial_indent=" " * 10, subsequent_indent=" " * 10
            )
            lines.append(body)
    return "\n".join(lines)


def _emit(result: SearchResult, as_json: bool) -> None:
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False) if as_json else render(result))


@with_encoder_options
def query(
    index_path: Annotated[Path, typer.Argument(help="Index folder built by `semsearch index`.")],
    question: Annotated[
        str | None, typer.Argument(help="The question; omit for a prompt or piped input.")
    ] = None,
    k: Annotated[
        int | None, typer.Option("-k", "--k", help="Answers per question (default 5).")
    ] = None,
    threshold: ThresholdOpt = None,
    mode: ModeOpt = None,
    rerank: RerankOpt = None,
    fusion: FusionOpt = None,
    dense_weight: DenseWeightOpt = None,
    where: WhereOpt = None,
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Answer questions from an index: ranked known answers with cosine scores.

    Example: semsearch query indexes/faq "How do I export my notes as PDF?"

    Filtered: semsearch query indexes/faq "PDF" --where "category = export"

    Without QUESTION: an interactive prompt at a terminal, or one question a line
    from piped standard input (one answer block, or JSON line, each).
    """
    search = ranking_settings(
        k=k,
        threshold=threshold,
        mode=mode,
        rerank=rerank,
        fusion=fusion,
        dense_weight=dense_weight,
    )
    engine = _open_engine(index_path, options, search)
    engine.select(where)  # a filter this index cannot run fails before any question
    if question is not None:
        _emit(engine.query(question, where=where), as_json)
    elif sys.stdin.isatty():
        _interactive(engine, where)
    else:
        _piped(engine, as_json, where)


QUIT = ("q", "quit", "exit")
COMMANDS = (*QUIT, "help", "k", "threshold")


def prompt_command(line: str) -> str | None:
    """The prompt command a line is (`:quit`, `:k 3`, ...), by name; None for a question."""
    name = line[1:].partition(" ")[0] if line.startswith(":") else ""
    return name if name in COMMANDS else None


def _piped(engine: SearchEngine, as_json: bool, where: list[str] | None = None) -> None:
    """One answer per input line; with --json exactly one JSON line per input line (an
    error object for a blank or bad one), so output line N answers input line N. A bad
    line does not stop the rest; the exit code is 1 when any line failed.

    Lines are questions. A session pasted from the prompt works as a user expects:
    `:quit` (`:q`, `:exit`) ends the input there, and the prompt's other commands are
    an error on their line (options set -k and the threshold here), not a question."""
    failed = []
    number = 0
    for number, raw in enumerate(sys.stdin.buffer, 1):
        line = raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff").strip()
        if not line and not as_json:
            continue
        command = prompt_command(line)
        if command in QUIT:
            number -= 1  # that line is no question
            break
        try:
            if command is not None:
                raise ConfigError(
                    f"{line.split()[0]} is a command of the interactive prompt; piped input is "
                    "one question a line (give -k and --threshold as options)"
                )
            _emit(engine.query(line, where=where), as_json)
        except SemsearchError as exc:
            failed.append(number)
            message = error_line(exc)
            if as_json:
                shown = line.encode("utf-8", "replace").decode("utf-8")
                error = {"question": shown, "error": message, "answered": False, "results": []}
                typer.echo(json.dumps(error, ensure_ascii=False))
            else:
                typer.echo(f"semsearch: error: line {number}: {message}", err=True)
        sys.stdout.flush()
    if failed:
        shown = ", ".join(map(str, failed[:10])) + (" ..." if len(failed) > 10 else "")
        lines = "line" if number == 1 else "lines"
        which = "line" if len(failed) == 1 else "lines"
        typer.echo(
            f"semsearch: error: {len(failed)} of {number} {lines} got no answer ({which} {shown})",
            err=True,
        )
        raise typer.Exit(code=1)


def _open_engine(
    index_path: Path, options: EncoderOptions, search_options: dict[str, Any]
) -> SearchEngine:
    """The index's own encoder, with the options given laid over it (refused if its
    vectors would differ); a --config file's encoder section counts as given in full."""
    import dataclasses

    from semsearch.search.engine import SearchEngine

    settings = options.settings(search=search_options)
    given = dataclasses.asdict(settings.encoder) if options.config else options.given()
    return SearchEngine.open(index_path, overrides=given, config=settings.search)


def _interactive(engine: SearchEngine, where: list[str] | None = None) -> None:
    import readline  # noqa: F401 - line editing and history for input()

    typer.echo(
        f"semsearch: {engine.store.count} entries in {engine.path}, threshold "
        f"{shown_threshold(engine.threshold())}. :help for commands, :quit to leave."
    )
    while True:
        try:
            line = input("? ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo()
            return
        if not line:
            continue
        if line.startswith(":"):
            if _command(engine, line) == "quit":
                return
            continue
        try:
            typer.echo(render(engine.query(line, where=where)))
        except SemsearchError as exc:
            typer.echo(f"semsearch: error: {error_line(exc)}", err=True)


def _command(engine: SearchEngine, line: str) -> str | None:
    name, _, argument = line[1:].partition(" ")
    argument = argument.strip()
    try:
        if name in QUIT:
            return "quit"
        if name == "help":
            typer.echo(HELP)
        elif name == "k":
            engine.config = _replace(engine, k=_value(params.parse_k, argument, ":k 3"))
            typer.echo(f"k = {engine.config.k}")
        elif name == "threshold":
            value = _value(params.parse_threshold, argument or "index", ":threshold 0.4")
            engine.config = _replace(engine, threshold=value)
            typer.echo(f"threshold = {shown_threshold(engine.threshold())}")
        else:
            typer.echo(f"unknown command :{name}; :help lists them", err=True)
    except ConfigError as exc:
        typer.echo(f"semsearch: error: bad value for :{name}: {exc}", err=True)
    return None


def _value(parse: Any, argument: str, example: str) -> Any:
    """The prompt command's value, parsed as the option's, or an error that shows the
    form it takes."""
    try:
        return parse(argument)
    except ConfigError as exc:
        raise ConfigError(f"{exc}, e.g. {example}", setting=exc.setting) from None


def _replace(engine: SearchEngine, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(engine.config, **changes)


def register(app: typer.Typer) -> None:
    app.command()(query)
