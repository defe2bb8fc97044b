"""`tokens`, `similarity` and `embed`: every step from text to vectors, visible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from semsearch.cli.options import (
    DEFAULT_ENCODER_OPTIONS,
    ConfigOpt,
    EncoderOptions,
    JsonOpt,
    MaxLenOpt,
    ModelOpt,
    QuietOpt,
    read_lines,
    with_encoder_options,
)
from semsearch.errors import InputError

if TYPE_CHECKING:
    from semsearch.encoders.words import Pieces

WORD_MERGES = ("first", "last", "mean", "sum")


def tokens(
    text: Annotated[str, typer.Argument(help="The text to tokenise.")],
    text2: Annotated[
        str | None, typer.Argument(help="Optional second text: a sentence pair.")
    ] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    max_seq_length: MaxLenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the word-pieces, ids, attention mask and segment ids BERT sees.

    Example: semsearch tokens "Here is the sentence I want embeddings for."
    """
    from semsearch.encoders.tokenizer import word_pieces
    from semsearch.models import resolve_model

    settings = EncoderOptions(config=config, model=model, max_seq_length=max_seq_length).settings()
    folder = resolve_model(settings.encoder.model)
    data = word_pieces(folder, text, text2, settings.encoder.max_seq_length)
    pieces, segments = data["tokens"], data["token_type_ids"]
    data["count"] = len(pieces)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    width = max(len(piece) for piece in pieces)
    typer.echo(f"{'#':>4}  {'token':<{width}}  {'id':>6}  mask  segment")
    for i, piece in enumerate(pieces):
        mask, segment = data["attention_mask"][i], segments[i]
        typer.echo(f"{i:>4}  {piece:<{width}}  {data['input_ids'][i]:>6}  {mask:>4}  {segment:>7}")
    typer.echo(f"{len(pieces)} tokens")


@with_encoder_options
def similarity(
    texts: Annotated[list[str], typer.Argument(help="Two or more texts to compare.")],
    metric: Annotated[str, typer.Option("--metric", help="cosine or euclidean.")] = "cosine",
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Print the similarity matrix of the texts' sentence vectors.

    Example: semsearch similarity "A man is eating food." "A man is eating a piece of bread."
    """
    if len(texts) < 2:
        raise InputError("similarity needs at least two texts")
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"unknown metric {metric!r}: choose cosine or euclidean")
    encoder = options.encoder()
    vectors = encoder.encode(texts).astype(np.float64)
    if metric == "cosine":
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        matrix = unit @ unit.T
    else:
        matrix = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=-1)
    if as_json:
        payload = {"metric": metric, "texts": texts, "matrix": np.round(matrix, 6).tolist()}
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    for i, text in enumerate(texts, start=1):
        typer.echo(f"[{i}] {text}")
    typer.echo(f"\n{metric} " + "".join(f"{f'[{i}]':>9}" for i in range(1, len(texts) + 1)))
    for i, row in enumerate(matrix, start=1):
        typer.echo(f"{f'[{i}]':<{len(metric)}} " + "".join(f"{value:>9.4f}" for value in row))


@with_encoder_options
def embed(
    source: Annotated[str, typer.Argument(help="Text file, one text a line, or - for stdin.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write (.npy, or .npz with --tokens/--words)."
        ),
    ],
    per_token: Annotated[
        bool, typer.Option("--tokens", help="Per word-piece vectors instead of one per text.")
    ] = False,
    per_word: Annotated[
        bool, typer.Option("--words", help="Per word vectors (word-pieces merged).")
    ] = False,
    merge: Annotated[
        str, typer.Option("--merge", help=f"With --words: {', '.join(WORD_MERGES)}.")
    ] = "mean",
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write sentence vectors to a .npy file, or token/word vectors to a .npz file.

    Example: semsearch embed questions.txt -o questions.npy

    The .npz of --tokens/--words holds, for text i: text_i_vectors (n x dim),
    text_i_units (the tokens or words) and text_i_spans (character offsets); it loads
    with numpy.load(path) and no pickle.
    """
    if per_token and per_word:
        raise InputError("choose one of --tokens and --words")
    texts = read_lines(source)
    encoder = options.encoder()
    output.parent.mkdir(parents=True, exist_ok=True)
    if per_token or per_word:
        # only here: token vectors need torch, sentence vectors from ONNX do not
        from semsearch.encoders.words import token_vectors, word_vectors

        pieces = (
            word_vectors(encoder, texts, merge=merge) if per_word else token_vectors(encoder, texts)
        )
        path = output if output.suffix == ".npz" else output.with_name(output.name + ".npz")
        _save_pieces(path, texts, pieces)
        summary = {
            "output": str(path),
            "texts": len(texts),
            "dim": int(pieces[0].vectors.shape[1]) if pieces else encoder.dim,
        }
    else:
        vectors = encoder.encode(texts, show_progress=None if not quiet else False)
        path = output if output.suffix == ".npy" else output.with_name(output.name + ".npy")
        np.save(path, vectors)
        summary = {
            "output": str(path),
            "texts": len(texts),
            "dim": encoder.dim,
            "truncated": encoder.truncated,
        }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"wrote {summary['texts']} x {summary['dim']} to {path}", err=True)


def _save_pieces(path: Path, texts: list[str], pieces: list[Pieces]) -> None:
    arrays: dict[str, np.ndarray] = {"texts": np.array(texts, dtype=str)}
    for i, item in enumerate(pieces):
        arrays[f"text_{i}_vectors"] = item.vectors
        arrays[f"text_{i}_units"] = np.array(item.units, dtype=str)
        arrays[f"text_{i}_spans"] = np.array(item.spans, dtype=np.int64).reshape(-1, 2)
    np.savez(path, allow_pickle=False, **arrays)


def register(app: typer.Typer) -> None:
    app.command()(tokens)
    app.command()(similarity)
    app.command()(embed)
