"""One parser and validator per request value: k, threshold, mode, fusion and its weight.

The CLI (options and the interactive prompt), the HTTP request models, the config files
(`SearchConfig`) and the Python API all call these, so a value is accepted or refused
the same way, with the same message, wherever it comes from. Each raises `ConfigError`
naming its `setting`; the CLI and HTTP edges turn that into their own words.

Standard library only: the HTTP client imports this without numpy, FAISS or torch.
"""

from __future__ import annotations

import math

from semsearch.errors import ConfigError
from semsearch.text import echoed

OFF = "none"
"""The threshold that turns the "no answer" decision off."""
INDEX = "index"
"""The threshold that names the index's own (skipping a configured default)."""
MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("convex", "rrf")

_OFF_WORDS = ("none", "off")
_INDEX_WORDS = ("index", "default")


def parse_k(value: object, *, most: int | None = None, setting: str = "k") -> int:
    """Hits per question: a whole number >= 1 (and <= `most` where a server caps it);
    a string of digits is read as one."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{echoed(value)} is not a whole number", setting=setting) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{setting} must be a whole number, got {echoed(value)}", setting=setting)
    if value < 1:
        raise ConfigError(f"{setting} must be at least 1, got {value}", setting=setting)
    if most is not None and value > most:
        raise ConfigError(f"{setting} must be at most {most}, got {value}", setting=setting)
    return value


def shown_threshold(value: float | None) -> str:
    """A threshold in force as every face says it and the CLI takes it: the number, or
    "none" (every question is answered by its best hit)."""
    return OFF if value is None else str(value)


def parse_threshold(value: object) -> float | str | None:
    """A threshold as given: None (not given: the next default applies), OFF ("none"
    or "off": no threshold), INDEX ("index" or "default": the index's own) or a cosine
    in [-1, 1], as a number or its text."""
    if value is None:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _OFF_WORDS:
            return OFF
        if word in _INDEX_WORDS:
            return INDEX
        try:
            number = float(word)
        except ValueError:
            number = math.nan
        if not -1.0 <= number <= 1.0:  # NaN too
            raise ConfigError(
                f"{echoed(value)} is not a cosine in [-1, 1], none or index", setting="threshold"
            )
        return number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"threshold {echoed(value)} is neither a number nor {OFF!r}", setting="threshold"
        )
    if not -1.0 <= value <= 1.0:  # NaN too
        raise ConfigError(f"threshold {value} is not a cosine in [-1, 1]", setting="threshold")
    return float(value)


def parse_mode(value: object) -> str | None:
    """hybrid, dense or lexical; None: not given."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in MODES:
        raise ConfigError(
            f"unknown mode {echoed(value)}: choose one of {', '.join(MODES)}", setting="mode"
        )
    return value


def parse_fusion(value: object) -> str | None:
    """convex or rrf; None: not given."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in FUSIONS:
        raise ConfigError(
            f"unknown fusion {echoed(value)}: choose one of {', '.join(FUSIONS)}", setting="fusion"
        )
    return value


def parse_weight(value: object, *, setting: str = "dense_weight") -> float | None:
    """Hybrid's share for the dense views, in [0, 1] (the rest is BM25's); None: not given."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(
                f"{setting} {echoed(value)} is not a number", setting=setting
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{setting} must be a number, got {echoed(value)}", setting=setting)
    if not 0.0 <= value <= 1.0:  # NaN too
        raise ConfigError(f"{setting} {value} is not in [0, 1]", setting=setting)
    return float(value)


def parse_count(value: object, *, name: str) -> int:
    """Any other whole-number search setting that must be >= 1 (`[search] candidates`,
    `rrf_k`, `rerank_depth`), named as the config file names it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {echoed(value)}")
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value
