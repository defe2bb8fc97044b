"""flat: exact search, every vector scanned for every question."""

from __future__ import annotations

from semsearch.index.types.base import IndexType


class FlatType(IndexType):
    name = "flat"

    def factory(self, params: dict[str, int]) -> str:
        return "IDMap2,Flat"


FLAT = FlatType()
