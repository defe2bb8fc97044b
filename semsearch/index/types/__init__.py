"""The index types, one module each behind one interface (`IndexType`, base.py), and
the registry that maps the names a user gives (`--index-type`, `[index] type`, the
manifest's "index.type") to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from semsearch.errors import ConfigError
from semsearch.index.types.base import IndexType, VectorIndex
from semsearch.index.types.flat import FLAT
from semsearch.index.types.hnsw import HNSW
from semsearch.index.types.ivf import IVF
from semsearch.index.types.ivfpq import IVFPQ
from semsearch.index.types.sq8 import SQ8

REGISTRY: Mapping[str, IndexType] = {kind.name: kind for kind in (FLAT, HNSW, IVF, SQ8, IVFPQ)}
"""Every concrete type by name, in the order their names are listed to users."""

INDEX_TYPES = ("auto", *REGISTRY)

AUTO_HNSW_THRESHOLD = 50_000
"""`auto` picks exact `flat` search below this many vectors and `hnsw` from there: a
brute-force scan of 50,000 384-d vectors takes a few milliseconds per query, beyond
that the graph index keeps queries fast at a recall cost of a percent or two."""


def resolve_type(index_type: str, count: int) -> str:
    """The concrete type for `index_type`; `auto` depends on the number of vectors."""
    if index_type not in INDEX_TYPES:
        raise ConfigError(
            f"unknown index type {index_type!r}: choose one of {', '.join(INDEX_TYPES)}",
            setting="index_type",
        )
    if index_type == "auto":
        return HNSW.name if count >= AUTO_HNSW_THRESHOLD else FLAT.name
    return index_type


def check(index_type: str, params: dict[str, Any] | None) -> None:
    """Refuse an unknown type, or a named type's unknown or bad parameters, before any
    encoding starts (`auto`'s type, and so its valid parameters, depend on the count)."""
    resolve_type(index_type, 0)
    if index_type in REGISTRY:
        REGISTRY[index_type].check_params(params)


def get(index_type: str) -> IndexType:
    """The type of that name (`auto` is resolved by `resolve_type` first)."""
    kind = REGISTRY.get(index_type)
    if kind is None:
        raise ConfigError(
            f"unknown index type {index_type!r}: choose one of {', '.join(REGISTRY)}",
            setting="index_type",
        )
    return kind


__all__ = [
    "AUTO_HNSW_THRESHOLD",
    "INDEX_TYPES",
    "REGISTRY",
    "IndexType",
    "VectorIndex",
    "check",
    "get",
    "resolve_type",
]
