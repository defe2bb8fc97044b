"""[serve] settings: where to listen, request limits, micro-batching and hot reload.

Kept apart from `semsearch.config` so that the HTTP service can grow its knobs without
touching the core; `load_serve_config` reads the same TOML files (section `[serve]`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semsearch.config import read_toml
from semsearch.errors import ConfigError

API_KEY_ENV = "SEMSEARCH_API_KEY"


@dataclass(frozen=True)
class ServeConfig:
    """Everything `semsearch serve` can be told; the limits protect one shared model."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = dataclasses.field(default=None, repr=False)  # never printed
    max_k: int = 100
    max_texts: int = 256
    max_text_chars: int = 10_000
    max_body_bytes: int = 4 * 1024 * 1024
    batching: bool = True
    batch_wait_ms: float = 0.0  # greedy: a batch is whatever queued while the last one ran
    max_batch: int = 64
    max_batch_tokens: int = 256  # estimated; bounds how long one batch holds the model
    piece_share: float = 0.25  # of the model's work for big requests while others wait
    workers: int = 0  # batch worker threads, each on its share of the cores; 0: one per core
    reload_interval: float = 0.5
    graceful_timeout: float = 30.0
    access_log: bool = True
    keep_alive_timeout: int = 5  # seconds an idle keep-alive connection stays open
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    body_timeout: float = 60.0  # seconds for a request's body to arrive, once headers are in
    max_connections: int = 512  # requests in flight before 503 (and idle sockets kept)
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not in 0..65535")
        for name in (
            "max_k",
            "max_texts",
            "max_text_chars",
            "max_body_bytes",
            "max_batch",
            "max_batch_tokens",
            "keep_alive_timeout",
            "max_connections",
            "max_header_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"[serve] {name} must be at least 1", setting=name)
        if not 0 < self.piece_share <= 1:
            raise ConfigError(
                "[serve] piece_share must be a fraction in (0, 1]", setting="piece_share"
            )
        if self.workers < 0:
            raise ConfigError("[serve] workers must be 0 (one per core) or more", setting="workers")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError("[serve] batch_wait_ms must be between 0 and 1000 milliseconds")
        if self.reload_interval <= 0:
            raise ConfigError("[serve] reload_interval must be a positive number of seconds")
        for name in ("graceful_timeout", "header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"[serve] {name} must be a positive number of seconds", setting=name
                )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError(
                "the API key is empty: give a non-empty api_key or unset it", setting="api_key"
            )


def _serve_table(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    table = data.get("serve", {})
    if not isinstance(table, dict):
        raise ConfigError("[serve] must be a table")
    return table


def load_serve_config(path: str | Path | None = None, **overrides: Any) -> ServeConfig:
    """[serve] from a TOML file (or the defaults) with the given options laid over it."""
    values: dict[str, Any] = dict(_serve_table(Path(path))) if path is not None else {}
    known = {f.name for f in dataclasses.fields(ServeConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [serve]: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return ServeConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"bad [serve] settings: {exc}") from None
