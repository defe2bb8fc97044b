"""Options shared by every command that encodes, declared once as Annotated types."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from semsearch import params
from semsearch.cli.feedback import quiet_notes
from semsearch.config import EncoderConfig, Settings, load_settings
from semsearch.errors import ConfigError, InputError
from semsearch.regular import MAX_FILE_BYTES, read_regular

if TYPE_CHECKING:
    from semsearch.encoders import Encoder

ENCODER_PANEL = "Encoder"
_D = EncoderConfig  # its class attributes are the defaults the help states

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML preset, e.g. configs/bert-cls.toml.", rich_help_panel=ENCODER_PANEL
    ),
]
KindOpt = Annotated[
    str | None,
    typer.Option(
        "--encoder", help="sentence-transformer (default) or bert.", rich_help_panel=ENCODER_PANEL
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=f"Short name, local folder or hub name (default {_D.model}).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
PoolingOpt = Annotated[
    str | None,
    typer.Option(
        "--pooling",
        help=f"Raw BERT: cls, pooler, mean, max, mean_max, last (default {_D.pooling}).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
LayersOpt = Annotated[
    str | None,
    typer.Option(
        "--layers",
        help="Raw BERT hidden states: -1 (default, the last), -2, 0 or -4,-3,-2,-1.",
        rich_help_panel=ENCODER_PANEL,
    ),
]
CombineOpt = Annotated[
    str | None,
    typer.Option(
        "--layer-combine",
        help=f"Join several layers: concat, sum, mean (default {_D.layer_combine}).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
SkipSpecialOpt = Annotated[
    bool | None,
    typer.Option(
        "--skip-special/--keep-special",
        help="Leave [CLS]/[SEP] out of mean/max pooling (default: keep them).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
MaxLenOpt = Annotated[
    int | None,
    typer.Option(
        "--max-seq-length",
        help="Truncate inputs to this many tokens (default: the model's limit).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (default: CUDA when present), cpu, cuda, cuda:N.",
        rich_help_panel=ENCODER_PANEL,
    ),
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        help=f"Texts per forward pass (default {_D.batch_size}).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="auto (default: onnx on CPU, torch on CUDA), torch, onnx (same vectors, faster), "
        "onnx-int8 (quantized: fastest, other vectors).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="ONNX Runtime threads (default: the cores).",
        rich_help_panel=ENCODER_PANEL,
    ),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="hybrid (default: the dense views and BM25 fused), dense (ranked by the "
        "cosine alone) or lexical (BM25 only).",
    ),
]
RerankOpt = Annotated[
    str | None,
    typer.Option(
        "--rerank",
        help="Re-score the top hits with this cross-encoder (a local folder, or a hub name "
        "with internet); off by default.",
    ),
]


def _threshold(value: str | None) -> float | str | None:
    """--threshold's value, parsed by semsearch.params (a usage error when bad)."""
    try:
        return params.parse_threshold(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


ThresholdOpt = Annotated[
    str | None,
    typer.Option(
        "--threshold",
        metavar="T|none|index",
        callback=_threshold,
        help="Minimum cosine of the top hit for an answer (default: the index's own, see "
        "`semsearch info`); none answers every question with its best hits.",
    ),
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        metavar="EXPR",
        help="Answer only from the entries whose metadata fit, e.g. "
        '"product = mobile and lang in (en, de)" (=, !=, <, <=, >, >=, in, and, or, not); '
        "repeated, every one must hold. `semsearch info` lists the fields.",
    ),
]
FusionOpt = Annotated[
    str | None,
    typer.Option(
        "--fusion",
        help="Hybrid's fusion: convex (weighted min-max scores) or rrf (reciprocal "
        "ranks); given, it replaces the index's own choice.",
    ),
]
DenseWeightOpt = Annotated[
    float | None,
    typer.Option(
        "--dense-weight",
        help="Convex fusion's share for the dense views, 0..1 (the rest is BM25's); "
        "default: the index's own choice (see `semsearch info`).",
    ),
]


def ranking_settings(
    *,
    k: int | None = None,
    threshold: float | str | None = None,
    mode: str | None = None,
    rerank: str | None = None,
    fusion: str | None = None,
    dense_weight: float | None = None,
) -> dict[str, object]:
    """The [search] settings that ranking options gave (`query`, `serve`, `eval
    retrieval`): laid over a --config file's, and checked by SearchConfig."""
    given = {
        "k": k,
        "threshold": threshold,
        "mode": mode,
        "rerank": rerank,
        "fusion": fusion,
        "dense_weight": dense_weight,
    }
    return {name: value for name, value in given.items() if value is not None}


def help_safe(text: str) -> str:
    """Text for a --help string, with what rich would read as markup escaped: typer
    renders help through rich, which took `[ray]` in `semsearch[ray]` for a style tag."""
    from rich.markup import escape

    return escape(text)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No progress bar or progress notes; only warnings about the data and errors.",
        callback=quiet_notes,
    ),
]


@dataclasses.dataclass(frozen=True)
class EncoderOptions:
    """The encoder options of one command line (None: not given)."""

    config: Path | None = None
    kind: str | None = None
    model: str | None = None
    pooling: str | None = None
    layers: str | None = None
    layer_combine: str | None = None
    skip_special: bool | None = None
    max_seq_length: int | None = None
    device: str | None = None
    batch_size: int | None = None
    backend: str | None = None
    threads: int | None = None

    def given(self) -> dict[str, Any]:
        """EncoderConfig fields that were set on the command line."""
        values = dataclasses.asdict(self)
        values.pop("config")
        values["skip_special_tokens"] = values.pop("skip_special")
        return {key: value for key, value in values.items() if value is not None}

    def settings(
        self, index: dict[str, object] | None = None, search: dict[str, object] | None = None
    ) -> Settings:
        return load_settings(self.config, index=index, search=search, **self.given())

    def encoder(self) -> Encoder:
        from semsearch.encoders import load_encoder

        return load_encoder(self.settings().encoder)


DEFAULT_ENCODER_OPTIONS = EncoderOptions()

_ENCODER_OPTION_TYPES: dict[str, Any] = {
    "config": ConfigOpt,
    "kind": KindOpt,
    "model": ModelOpt,
    "pooling": PoolingOpt,
    "layers": LayersOpt,
    "layer_combine": CombineOpt,
    "skip_special": SkipSpecialOpt,
    "max_seq_length": MaxLenOpt,
    "device": DeviceOpt,
    "batch_size": BatchOpt,
    "backend": BackendOpt,
    "threads": ThreadsOpt,
}


def with_encoder_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command every encoder option, declared once here; the command takes them
    as one `options: EncoderOptions` parameter."""
    own = [
        parameter
        for parameter in inspect.signature(command, eval_str=True).parameters.values()
        if parameter.name != "options"
    ]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in _ENCODER_OPTION_TYPES.items()
    ]

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        chosen = {name: values.pop(name) for name in _ENCODER_OPTION_TYPES}
        command(**values, options=EncoderOptions(**chosen))

    del wrapper.__wrapped__  # typer must read the signature below, not the command's own
    parameters = own + added
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return wrapper


def read_lines(source: str) -> list[str]:
    """One text a line from a UTF-8 file, or from stdin when `source` is '-'."""
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "standard input"
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"input file not found: {path}")
        data = read_regular(path, MAX_FILE_BYTES)
        name = str(path)
    lines = data.splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                f"{name}, line {number}: not valid UTF-8; save the file as UTF-8"
            ) from None
    return [
        line.decode("utf-8").removeprefix("\ufeff") if i == 0 else line.decode("utf-8")
        for i, line in enumerate(lines)
    ]


# Data options of the `eval` commands
DATA_PANEL = "Data"
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="With a folder: the split to read (sts: test; sweep: dev).",
        rich_help_panel=DATA_PANEL,
    ),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit", help="Only the first N pairs (default: all).", rich_help_panel=DATA_PANEL
    ),
]
StsFileArg = Annotated[
    Path,
    typer.Argument(
        help="STS Benchmark file (tab-separated, 7 columns), a CSV/TSV with "
        "sentence1,sentence2,score columns, or a folder such as ../shared/data/stsb."
    ),
]
