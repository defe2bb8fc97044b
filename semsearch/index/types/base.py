"""The interface every index type implements (`IndexType`), and the FAISS index that a
built or opened view of any type is (`VectorIndex`).

The encoder L2-normalises every vector, so inner product equals cosine similarity.
Ids are the int64 SQLite rowids of the records, so a hit maps straight to its row.

An `IndexType` is what the shared code asks about a type: its parameters and their
defaults, its FAISS factory string, how an index is created (and trained) or opened,
the files it keeps beside each view, and how it takes edits. A `VectorIndex` is one
view's index; types whose FAISS index behaves differently subclass it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from semsearch.errors import ConfigError, IndexFolderError, InputError

PARALLEL_WORK = 4_000_000
# FAISS parallelises over queries; below this many query-entry pairs (queries x stored
# vectors) an OpenMP team only wakes threads that fight the encoder's (ONNX Runtime's)
# threads for the cores: one question's search was several times slower on 2 cores,
# and batches of 32 questions on a 106-entry index took 1.8 ms more CPU a question
# with the team than without (query_batch, 4.5 against 2.7 ms with the int8 encoder).


def as_matrix(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim:
        raise InputError(f"{what} must have shape [n, {dim}], got {list(array.shape)}")
    return array


def read_faiss(path: Path, flags: int = 0) -> faiss.Index:
    """faiss.read_index, its failure as one line that says to rebuild."""
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        reason = re.sub(r"^Error in .*? at \S+:\d+: ", "", str(exc).strip())  # C++ location
        raise IndexFolderError(
            f"{path} cannot be read as a FAISS index ({reason}): rebuild the index"
        ) from None


class VectorIndex:
    """One FAISS index with its type and parameters; params are re-applied after load
    because FAISS does not persist efSearch or nprobe for every type."""

    def __init__(self, index: faiss.Index, kind: IndexType, params: dict[str, int]) -> None:
        # Any: faiss patches its numpy-taking methods in at runtime, beyond its stubs.
        self.index: Any = index
        self.kind = kind
        self.params = params
        self.apply_params()

    def apply_params(self) -> None:
        """Set the search-time parameters FAISS does not keep in the file."""

    @property
    def type(self) -> str:
        return self.kind.name

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def factory(self) -> str:
        return self.kind.factory(self.params)

    @property
    def can_remove(self) -> bool:
        return self.kind.removes

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        matrix = as_matrix(vectors, self.dim, "vectors")
        self.index.add_with_ids(matrix, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Drop vectors by id; only where `can_remove`."""
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores [q, k] and ids [q, k], best first; id -1 where fewer than k were found."""
        matrix = as_matrix(queries, self.dim, "query vectors")
        if self.ntotal == 0:
            shape = (len(matrix), k)
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        if len(matrix) * self.ntotal >= PARALLEL_WORK:
            scores, ids = self.index.search(matrix, k)
            return scores, ids
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # per calling thread: the service's workers are unaffected
        try:
            scores, ids = self.index.search(matrix, k)
        finally:
            faiss.omp_set_num_threads(threads)
        return scores, ids

    def scores_of(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The inner products of one query vector with the stored vectors of `ids` (all
        stored), exactly rather than by the approximate search: fusion needs the real
        score of a candidate that this index did not list. IDMap2 types reconstruct by
        id; sq8 gives its own decoded vectors' scores, as its search does."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        query = as_matrix(query.reshape(1, -1), self.dim, "query vector")
        if not len(ids):
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.index.reconstruct_batch(ids) @ query[0], dtype=np.float32)

    def without(self, dead: Collection[int]) -> VectorIndex:
        """A fresh index of the same type holding every vector whose id is not in `dead`.

        Reconstructs vectors from storage, so it needs an IDMap2 type (used for hnsw)."""
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        keep = ~np.isin(ids, np.fromiter(dead, dtype=np.int64, count=len(dead)))
        fresh = self.kind.create(self.dim, self.params)
        if keep.any():
            fresh.add(self.index.index.reconstruct_n(0, self.ntotal)[keep], ids[keep])
        return fresh

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))


class IndexType:
    """One kind of vector index. Subclasses set the class attributes and `factory`, and
    override what their FAISS index does differently."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, int | None]] = {}
    """Every parameter the type takes; None: derived from the corpus in `resolve_params`."""
    zero_allowed: ClassVar[frozenset[str]] = frozenset()
    """Parameters where 0 means off."""
    removes: ClassVar[bool] = True
    """Whether its FAISS index removes vectors by id; if not, the store tombstones them."""
    view_class: ClassVar[type[VectorIndex]] = VectorIndex
    """The class of one built or opened view."""

    def check_params(self, params: dict[str, Any] | None) -> None:
        """Refuse unknown names and non-positive values before any encoding starts."""
        given = params or {}
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            valid = ", ".join(self.defaults) or "none"
            raise ConfigError(
                f"unknown {self.name} index parameter(s) {', '.join(unknown)}: "
                f"valid ones are {valid}"
            )
        for key, value in given.items():
            least = 0 if key in self.zero_allowed else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                kind = "a whole number of 0 or more" if least == 0 else "a positive integer"
                raise ConfigError(f"{self.name} parameter {key} must be {kind}, got {value!r}")

    def resolve_params(
        self, params: dict[str, Any] | None, count: int, dim: int = 0
    ) -> dict[str, int]:
        """Defaults filled in and values checked against a corpus of `count` vectors of
        dimension `dim`, so the manifest records what was used."""
        self.check_params(params)
        resolved = self.derive({**self.defaults, **(params or {})}, count, dim)
        return {key: int(value) for key, value in resolved.items()}

    def derive(self, given: dict[str, Any], count: int, dim: int) -> dict[str, Any]:
        """The parameters left None in `given` derived from the corpus, and checked."""
        return given

    def factory(self, params: dict[str, int]) -> str:
        """The faiss.index_factory description; IDMap2 keeps our ids and allows reconstruct."""
        raise NotImplementedError

    def create(
        self, dim: int, params: dict[str, int], training: np.ndarray | None = None
    ) -> VectorIndex:
        """An empty index, trained on `training` where the type needs it."""
        index = faiss.index_factory(dim, self.factory(params), faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            if training is None:
                raise ValueError(f"a {self.name} index must be trained on vectors")
            index.train(as_matrix(training, dim, "training vectors"))
        return self.view_class(index, self, params)

    def load(self, path: Path, params: dict[str, int]) -> VectorIndex:
        """Read a view's index from its .faiss file."""
        return self.view_class(read_faiss(path), self, params)

    def data_files(self, views: Sequence[str]) -> tuple[str, ...]:
        """The files kept beside the views' .faiss files (`views`), all checksummed."""
        return ()

    def check_editable(self, what: str) -> None:
        """Refuse to `what` ("add", "delete") entries where the type cannot."""

    def __repr__(self) -> str:
        return f"<index type {self.name}>"
