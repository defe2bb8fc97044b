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

import contextlib
import re
from collections.abc import Collection, Iterator, Sequence
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


EXACT_SHARE = 0.1
EXACT_FLOOR = 1024
"""A search restricted to selected entries (a `where` filter) scores every selected
vector exactly when they are at most EXACT_FLOOR or EXACT_SHARE of the index: an HNSW
walk or the IVF lists probed would hold too few of them to find the best. Above that,
the type's own search runs with FAISS's ID selector, its effort (efSearch, nprobe)
multiplied by index size / selected (at most 1 / EXACT_SHARE), so it meets about as
many selected entries as an unrestricted search meets entries."""


def exact_within(selected: int, total: int) -> bool:
    """Whether a search restricted to `selected` of `total` vectors scores them all."""
    return selected <= max(EXACT_FLOOR, EXACT_SHARE * total)


def top_of(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k of `scores` [q, n] (columns: `ids`) per row, best first, equal scores
    by id; padded with id -1 (score 0) to k columns, like a FAISS search."""
    rows, n = scores.shape
    out_scores = np.zeros((rows, k), dtype=np.float32)
    out_ids = np.full((rows, k), -1, dtype=np.int64)
    take = min(k, n)
    for row in range(rows):
        values = scores[row]
        best = np.argpartition(-values, take - 1)[:take] if take < n else np.arange(n)
        if take < n:  # every entry tied with the k-th, so ties go by id
            best = np.flatnonzero(values >= values[best].min())
        best = best[np.lexsort((ids[best], -values[best]))][:take]
        out_scores[row, :take] = values[best]
        out_ids[row, :take] = ids[best]
    return out_scores, out_ids


@contextlib.contextmanager
def _threads_for(work: int) -> Iterator[None]:
    """FAISS's OpenMP threads for `work` query-entry pairs: one below PARALLEL_WORK (per
    calling thread: the service's workers are unaffected)."""
    if work >= PARALLEL_WORK:
        yield
        return
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


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
        return self._faiss_search(matrix, k)

    def _faiss_search(
        self, matrix: np.ndarray, k: int, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's own search (with search parameters, where given); one OpenMP thread
        for a few questions."""
        with _threads_for(len(matrix) * self.ntotal):
            scores, ids = self.index.search(matrix, k, params=params)
        return scores, ids

    def search_within(
        self, queries: np.ndarray, k: int, ids: np.ndarray, selector: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`search` restricted to the stored vectors `ids` (ascending, unique): scored
        exactly when they are few (`exact_within`), else the type's own search with an
        ID selector (`selector`, FAISS's of `ids`, where one is kept) and
        proportionally more effort."""
        matrix = as_matrix(queries, self.dim, "query vectors")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            shape = (len(matrix), k)
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        if exact_within(len(ids), self.ntotal):
            with _threads_for(len(matrix) * len(ids)):  # FAISS reconstructs in parallel otherwise
                scores = self.exact_scores(matrix, ids)
            return top_of(scores, ids, k)
        if selector is None:  # a name: it must live through the search
            selector = faiss.IDSelectorBatch(ids)
        scale = min(1.0 / EXACT_SHARE, self.ntotal / len(ids))
        return self._walk(matrix, k, self.selected_params(selector, scale, k))

    def _walk(self, matrix: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """The type's search under `params` (an ID selector)."""
        return self._faiss_search(matrix, k, params)

    def exact_scores(self, matrix: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The inner products [q, len(ids)] of query vectors with the stored `ids`."""
        return np.asarray(matrix @ self.index.reconstruct_batch(ids).T, dtype=np.float32)

    def selected_params(self, selector: Any, scale: float, k: int) -> Any:
        """FAISS search parameters that keep to `selector`, with the type's effort
        multiplied by `scale`."""
        params: Any = faiss.SearchParameters()
        params.sel = selector
        return params

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
    added_params: ClassVar[dict[str, int]] = {}
    """Parameters added after indexes of the type were first written, each with the
    value such an index has: a manifest without one opens as that."""
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
