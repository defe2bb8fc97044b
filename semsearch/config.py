"""Settings as dataclasses, loaded from TOML presets and overridden by CLI options.

One place validates every encoder setting, so a bad pooling name or layer combination
is refused with the valid choices before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semsearch.errors import ConfigError
from semsearch.params import (
    parse_count,
    parse_fusion,
    parse_k,
    parse_mode,
    parse_threshold,
    parse_weight,
)
from semsearch.regular import read_settings
from semsearch.text import echoed

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

ENCODER_KINDS = ("sentence-transformer", "bert")
POOLING_MODES = ("cls", "pooler", "mean", "max", "mean_max", "last")
LAYER_COMBINES = ("concat", "sum", "mean")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
CUDA_DTYPES = ("float16", "bfloat16", "float32")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DENSE_WEIGHT = 0.8
"""Hybrid's share for the dense views (the rest is BM25's) where an index keeps no fusion
of its own (built before semsearch.search.adaptive): chosen on the shared FAQ sets, see
the README's retrieval table. It is also the prior each index's own choice starts from."""


def _choice(name: str, value: str, valid: tuple[str, ...], setting: str | None) -> str:
    if value not in valid:
        raise ConfigError(
            f"unknown {name} {echoed(value)}: choose one of {', '.join(valid)}", setting=setting
        )
    return value


def parse_layers(value: str | int | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """Accept -1, "-2", "-4,-3,-2,-1" or a list; hidden_states indexing (0 = embeddings)."""
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            layers = tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError(
                f"bad layers {echoed(value)}: give integers like -1, -2 or -4,-3,-2,-1",
                setting="layers",
            ) from None
    else:
        layers = tuple(int(v) for v in value)
    if not layers:
        raise ConfigError("layers is empty: give at least one layer, e.g. -1", setting="layers")
    return layers


@dataclass(frozen=True)
class EncoderConfig:
    """What builds sentence vectors: `kind` picks the encoder; pooling and layers are raw BERT's.

    `backend` picks what runs the model: torch, onnx (ONNX Runtime fp32, the same vectors)
    or onnx-int8 (quantized, other vectors); auto is onnx on CPU and torch on CUDA, where
    the forward pass runs under autocast in `cuda_dtype`. `threads` defaults to the cores.
    """

    kind: str = "sentence-transformer"
    model: str = DEFAULT_MODEL
    pooling: str = "mean"
    layers: tuple[int, ...] = (-1,)
    layer_combine: str = "concat"
    skip_special_tokens: bool = False
    max_seq_length: int | None = None
    normalize: bool = True
    device: str = "auto"
    batch_size: int = 32
    backend: str = "auto"
    threads: int | None = None
    cuda_dtype: str = "float16"

    def __post_init__(self) -> None:
        _choice("encoder", self.kind, ENCODER_KINDS, "kind")
        _choice("backend", self.backend, BACKENDS, "backend")
        _choice("cuda_dtype", self.cuda_dtype, CUDA_DTYPES, "cuda_dtype")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be at least 1", setting="threads")
        _choice("pooling", self.pooling, POOLING_MODES, "pooling")
        _choice("layer combination", self.layer_combine, LAYER_COMBINES, "layer_combine")
        object.__setattr__(self, "layers", parse_layers(self.layers))
        if self.max_seq_length is not None and self.max_seq_length < 2:
            raise ConfigError(
                "max_seq_length must be at least 2 (room for [CLS] and [SEP])",
                setting="max_seq_length",
            )
        if self.batch_size < 1:
            raise ConfigError("batch_size must be at least 1", setting="batch_size")
        if self.pooling == "pooler" and self.layers != (-1,):
            raise ConfigError(
                "pooling 'pooler' reads the pooler output of the last layer; drop the layers",
                setting="layers",
            )


@dataclass(frozen=True)
class IndexConfig:
    """How vectors are stored: FAISS index type, its parameters, records per streamed chunk."""

    type: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ConfigError("[index] chunk_size must be at least 1")


@dataclass(frozen=True)
class SearchConfig:
    """How questions are answered: hits per question, the "no answer" threshold, and how
    the index's parts are ranked (`mode`; the fusion and its weights, see semsearch.search.fusion).

    `fusion` and `dense_weight` left as None use the index's own choice (made at build
    time from its corpus, semsearch.search.adaptive); either one given replaces that
    choice with today's fixed convex fusion at the given values (or rrf).

    The threshold is a cosine similarity: None (not given) or "index" uses the index's
    own (see semsearch.index.threshold), "none" answers with the best hit whatever its
    score, a number in [-1, 1] is used as given. Every value is checked by
    semsearch.params, as the CLI and HTTP check theirs.
    """

    k: int = 5
    threshold: float | str | None = None
    dedupe: bool = True
    mode: str = "hybrid"
    fusion: str | None = None  # None: the index's own (convex); given: overrides it
    dense_weight: float | None = None  # None: the index's own, else DENSE_WEIGHT
    rrf_k: int = 60
    candidates: int = 100
    rerank: str | None = None  # a cross-encoder (folder or hub name) re-scores the top hits
    rerank_depth: int = 20

    def __post_init__(self) -> None:
        parse_k(self.k)
        parse_mode(self.mode)
        parse_fusion(self.fusion)
        parse_weight(self.dense_weight)
        for name in ("rrf_k", "candidates", "rerank_depth"):
            parse_count(getattr(self, name), name=f"[search] {name}")
        object.__setattr__(self, "threshold", parse_threshold(self.threshold))


@dataclass(frozen=True)
class Settings:
    """All sections of a config file."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


def _section(data: dict[str, Any], name: str, cls: type) -> dict[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{name}]: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return section


def _build(cls: type, name: str, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"bad [{name}] settings: {exc}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict: the one reader of config files (tomllib, or tomli on
    Python 3.10), with one message for a missing or malformed file."""
    path = Path(path)
    try:
        return tomllib.loads(read_settings(path))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(
    path: str | Path | None = None,
    *,
    index: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
    **encoder_overrides: Any,
) -> Settings:
    """Read a TOML file (or the defaults) and lay the CLI options that were given over it."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_toml(path)
        unknown = sorted(set(data) - {"encoder", "index", "search", "serve"})
        if unknown:
            raise ConfigError(f"unknown section(s) in {path}: {', '.join(unknown)}")
    sections = []
    for name, cls, overrides in (
        ("encoder", EncoderConfig, encoder_overrides),
        ("index", IndexConfig, index or {}),
        ("search", SearchConfig, search or {}),
    ):
        values = dict(_section(data, name, cls))
        values.update({k: v for k, v in overrides.items() if v is not None})
        sections.append(_build(cls, name, values))
    return Settings(*sections)
