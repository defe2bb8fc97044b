"""semsearch: answer new questions with known answers by semantic search.

The public Python surface:

    from semsearch import open_index, SearchEngine, SearchConfig, Client

    engine = open_index("indexes/faq")              # = SearchEngine.open(...)
    result = engine.query("how do I export a PDF?", k=3)

Heavy parts (torch, transformers, FAISS) load on first use, so `semsearch --help`
and `import semsearch` stay fast: every name below is imported when first read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from semsearch.errors import (
    AuthenticationError,
    BatcherStoppedError,
    ConfigError,
    EncoderMismatchError,
    FilterError,
    IndexFolderError,
    InputError,
    MissingExtraError,
    ModelNotFoundError,
    RequestRejectedError,
    SemsearchError,
    ServerError,
    ServiceError,
    ServiceUnavailableError,
)


def _version() -> str:
    """The installed distribution's version; the source tree's when not installed. Read
    when first asked for (`__getattr__`): importing importlib.metadata costs ~27 ms, a
    tenth of a one-shot `semsearch query` that never prints the version."""
    from importlib import metadata

    try:
        return metadata.version("semsearch")
    except metadata.PackageNotFoundError:
        return "0.1.0"


_LAZY = {
    "open_index": "semsearch.search.engine",
    "SearchEngine": "semsearch.search.engine",
    "SearchConfig": "semsearch.config",
    "Client": "semsearch.client",
    "Hit": "semsearch.search.results",
    "SearchResult": "semsearch.search.results",
    "EncoderConfig": "semsearch.config",
    "Encoder": "semsearch.encoders",
    "load_encoder": "semsearch.encoders",
    "IndexStore": "semsearch.index",
}

if TYPE_CHECKING:
    __version__: str
    from semsearch.client import Client
    from semsearch.config import EncoderConfig, SearchConfig
    from semsearch.encoders import Encoder, load_encoder
    from semsearch.index import IndexStore
    from semsearch.search.engine import SearchEngine, open_index
    from semsearch.search.results import Hit, SearchResult

__all__ = [
    "AuthenticationError",
    "BatcherStoppedError",
    "Client",
    "ConfigError",
    "Encoder",
    "EncoderConfig",
    "EncoderMismatchError",
    "FilterError",
    "Hit",
    "IndexFolderError",
    "IndexStore",
    "InputError",
    "MissingExtraError",
    "ModelNotFoundError",
    "RequestRejectedError",
    "SearchConfig",
    "SearchEngine",
    "SearchResult",
    "SemsearchError",
    "ServerError",
    "ServiceError",
    "ServiceUnavailableError",
    "__version__",
    "load_encoder",
    "open_index",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = version = _version()
        return version
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")
