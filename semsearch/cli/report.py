"""How the `eval` commands report: progress bars, notes on stderr, metrics x 100, and
one JSON object or readable lines on stdout."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer


def progress(quiet: bool) -> bool | None:
    return False if quiet else None  # None: a bar when stderr is a terminal


def refuse_missing_folder(path: Path, option: str) -> None:
    """Write only into a folder that exists: a typo must not create folders."""
    from semsearch.errors import InputError

    if not path.parent.is_dir():
        raise InputError(
            f"{option} {path}: the folder {path.parent} does not exist; create it first"
        )


def note(message: str, quiet: bool) -> None:
    if not quiet:
        typer.echo(message, err=True)


def x100(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def describe_encoder(encoder: dict[str, Any]) -> str:
    """One line on what encoded: kind, model, pooling and layers, dimension."""
    text = f"{encoder['kind']} {encoder['model']}, pooling {encoder['pooling']}"
    if encoder["kind"] == "bert":
        layers = ",".join(str(layer) for layer in encoder["layers"])
        text += f", layers {layers}"
        if len(encoder["layers"]) > 1:
            text += f" ({encoder['layer_combine']})"
    return f"{text}, {encoder['dim']} dims"


def emit(payload: dict[str, Any], lines: list[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload, ensure_ascii=False))
    else:
        typer.echo("\n".join(lines))
