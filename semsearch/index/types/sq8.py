"""sq8: every vector scalar-quantised to one byte a dimension (a quarter of flat's
memory), scanned exhaustively; trained on the corpus for each dimension's range."""

from __future__ import annotations

from semsearch.index.types.base import IndexType


class SQ8Type(IndexType):
    name = "sq8"

    def factory(self, params: dict[str, int]) -> str:
        return "IDMap2,SQ8"


SQ8 = SQ8Type()
