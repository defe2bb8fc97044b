"""semsearch: answer new questions with known answers by semantic search.

Heavy parts (torch, transformers, FAISS) load on first use, so `semsearch --help`
and `import semsearch` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EncoderConfig": "semsearch.config",
    "Encoder": "semsearch.encoders",
    "load_encoder": "semsearch.encoders",
    "SearchEngine": "semsearch.search",
    "Hit": "semsearch.results",
    "SearchResult": "semsearch.results",
    "IndexStore": "semsearch.index",
}

__all__ = [
    "Encoder",
    "EncoderConfig",
    "Hit",
    "IndexStore",
    "SearchEngine",
    "SearchResult",
    "__version__",
    "load_encoder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")
