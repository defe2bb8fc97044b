"""hnsw: a navigable small-world graph, fast approximate search on large corpora.

FAISS's HNSW cannot remove vectors: a deleted entry is tombstoned in records.sqlite and
the store rebuilds the graph from its live vectors once there are too many."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import faiss

from semsearch.index.types.base import IndexType, VectorIndex


class HNSWVectors(VectorIndex):
    def apply_params(self) -> None:
        graph: Any = faiss.downcast_index(self.index.index)
        hnsw = graph.hnsw
        hnsw.efConstruction = self.params["efConstruction"]
        hnsw.efSearch = self.params["efSearch"]

    def selected_params(self, selector: Any, scale: float, k: int) -> Any:
        params: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.sel = selector
        params.efSearch = max(k, math.ceil(self.params["efSearch"] * scale))
        return params


class HNSWType(IndexType):
    name = "hnsw"
    defaults: ClassVar[dict[str, int | None]] = {"M": 32, "efConstruction": 200, "efSearch": 64}
    removes = False
    view_class = HNSWVectors

    def factory(self, params: dict[str, int]) -> str:
        return f"IDMap2,HNSW{params['M']}"


HNSW = HNSWType()
