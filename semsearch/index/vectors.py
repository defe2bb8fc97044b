"""vectors.faiss: the FAISS index that ranks vectors by inner product, and the choice of
index type.

The encoder L2-normalises every vector, so inner product equals cosine similarity.
Ids are the int64 SQLite rowids of the records, so a hit maps straight to its row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from semsearch.errors import ConfigError, IndexFolderError, InputError

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "sq8", "ivfpq")

AUTO_HNSW_THRESHOLD = 50_000
# FAISS parallelises over queries; below this many an OpenMP team only wakes threads
# that fight the encoder's (ONNX Runtime's) threads for the cores, which made one
# question's search several times slower on 2 cores.
PARALLEL_QUERIES = 8
"""`auto` picks exact `flat` search below this many vectors and `hnsw` from there: a
brute-force scan of 50,000 384-d vectors takes a few milliseconds per query, beyond
that the graph index keeps queries fast at a recall cost of a percent or two."""

DEFAULT_PARAMS: dict[str, dict[str, int | None]] = {
    "flat": {},
    "hnsw": {"M": 32, "efConstruction": 200, "efSearch": 64},
    # None: derived from the corpus size by _default_nlist and _default_nprobe.
    "ivf": {"nlist": None, "nprobe": None},
    "sq8": {},
    # None: derived from the corpus size and dimension by ondisk.default_params.
    "ivfpq": dict.fromkeys(("nlist", "M", "nbits", "nprobe", "opq", "rerank")),
}
ZERO_ALLOWED = frozenset({"opq", "rerank"})
"""Parameters where 0 means off (OPQ rotation, exact re-ranking)."""

NATIVE_REMOVE = frozenset({"flat", "ivf", "sq8"})
"""Types whose FAISS index removes vectors by id; hnsw cannot, so its store tombstones."""


def resolve_type(index_type: str, count: int) -> str:
    """The concrete type for `index_type`; `auto` depends on the number of vectors."""
    if index_type not in INDEX_TYPES:
        raise ConfigError(
            f"unknown index type {index_type!r}: choose one of {', '.join(INDEX_TYPES)}",
            setting="index_type",
        )
    if index_type == "auto":
        return "hnsw" if count >= AUTO_HNSW_THRESHOLD else "flat"
    return index_type


def _default_nlist(count: int) -> int:
    """~4*sqrt(n) lists, capped so that k-means has >= 39 training vectors per list."""
    return max(1, min(round(4 * math.sqrt(count)), count // 39))


def _default_nprobe(nlist: int) -> int:
    """Lists searched per query: 32, or a quarter of them for big indexes. Measured with
    MiniLM on WordNet glosses, recall@10 against flat: 0.97 at 5,000 vectors (nprobe
    32; a fixed 16 gives 0.92); at 164,878 (nlist 1624) an eighth of the lists gives
    0.914 and a quarter 0.957, at about 2 ms per question."""
    return min(nlist, max(32, nlist // 4))


def check_params(index_type: str, params: dict[str, Any] | None) -> None:
    """Refuse unknown names and non-positive values before any encoding starts."""
    defaults = DEFAULT_PARAMS[index_type]
    given = params or {}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ConfigError(
            f"unknown {index_type} index parameter(s) {', '.join(unknown)}: valid ones are {valid}"
        )
    for key, value in given.items():
        least = 0 if key in ZERO_ALLOWED else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "a whole number of 0 or more" if least == 0 else "a positive integer"
            raise ConfigError(f"{index_type} parameter {key} must be {kind}, got {value!r}")


def resolve_params(
    index_type: str, params: dict[str, Any] | None, count: int, dim: int = 0
) -> dict[str, int]:
    """Defaults filled in and values checked, so the manifest records what was used
    (ivfpq's defaults depend on the vectors' dimension `dim` too)."""
    check_params(index_type, params)
    if index_type == "ivfpq":
        from semsearch.index import ondisk  # it builds on this module

        return ondisk.resolve(params or {}, count, dim)
    resolved = {**DEFAULT_PARAMS[index_type], **(params or {})}
    if index_type == "ivf":
        resolved["nlist"] = resolved["nlist"] or _default_nlist(count)
        resolved["nprobe"] = resolved["nprobe"] or _default_nprobe(resolved["nlist"])
        if resolved["nlist"] > count:
            raise ConfigError(
                f"ivf nlist={resolved['nlist']} needs at least that many vectors to train; "
                f"the corpus has {count}: lower nlist or use index type flat",
                setting="index_type",
            )
    return {key: int(value) for key, value in resolved.items()}


def factory_string(index_type: str, params: dict[str, int]) -> str:
    """The faiss.index_factory description; IDMap2 keeps our ids and allows reconstruct."""
    if index_type == "flat":
        return "IDMap2,Flat"
    if index_type == "hnsw":
        return f"IDMap2,HNSW{params['M']}"
    if index_type == "ivf":
        return f"IVF{params['nlist']},Flat"  # IVF stores ids itself
    if index_type == "sq8":
        return "IDMap2,SQ8"
    if index_type == "ivfpq":
        opq = f"OPQ{params['M']}," if params["opq"] else ""
        return f"{opq}IVF{params['nlist']},PQ{params['M']}x{params['nbits']}"
    raise ConfigError(f"unknown index type {index_type!r}")


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

    def __init__(self, index: faiss.Index, index_type: str, params: dict[str, int]) -> None:
        # Any: faiss patches its numpy-taking methods in at runtime, beyond its stubs.
        self.index: Any = index
        self.type = index_type
        self.params = params
        self._apply_params()

    @classmethod
    def create(
        cls,
        index_type: str,
        dim: int,
        params: dict[str, int],
        training: np.ndarray | None = None,
    ) -> VectorIndex:
        """An empty index, trained on `training` where the type needs it (ivf, sq8,
        ivfpq: on a sample)."""
        if index_type == "ivfpq":
            from semsearch.index.ondisk import OnDiskVectors

            if training is None:
                raise ValueError("an ivfpq index must be trained on vectors")
            return OnDiskVectors.create_trained(dim, params, training)
        factory = factory_string(index_type, params)
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            if training is None:
                raise ValueError(f"a {index_type} index must be trained on vectors")
            index.train(as_matrix(training, dim, "training vectors"))
        return cls(index, index_type, params)

    @classmethod
    def load(cls, path: Path, index_type: str, params: dict[str, int]) -> VectorIndex:
        """Read a view's index; ivfpq's lists stay on disk, memory-mapped."""
        if index_type == "ivfpq":
            from semsearch.index.ondisk import OnDiskVectors

            return OnDiskVectors.open(path, params)
        return cls(read_faiss(path), index_type, params)

    def _apply_params(self) -> None:
        if self.type == "hnsw":
            hnsw = faiss.downcast_index(self.index.index).hnsw  # type: ignore[attr-defined]
            hnsw.efConstruction = self.params["efConstruction"]
            hnsw.efSearch = self.params["efSearch"]
        elif self.type in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(self.index).nprobe = self.params["nprobe"]

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def factory(self) -> str:
        return factory_string(self.type, self.params)

    @property
    def can_remove(self) -> bool:
        return self.type in NATIVE_REMOVE

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        matrix = as_matrix(vectors, self.dim, "vectors")
        self.index.add_with_ids(matrix, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Drop vectors by id; only for types in NATIVE_REMOVE."""
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores [q, k] and ids [q, k], best first; id -1 where fewer than k were found."""
        matrix = as_matrix(queries, self.dim, "query vectors")
        if self.ntotal == 0:
            shape = (len(matrix), k)
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        if len(matrix) >= PARALLEL_QUERIES:
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
        score of a candidate that this index did not list. sq8 gives its own decoded
        vectors' scores, as its search does."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        query = as_matrix(query.reshape(1, -1), self.dim, "query vector")
        if not len(ids):
            return np.zeros(0, dtype=np.float32)
        if self.type != "ivf":  # IDMap2 types reconstruct by id
            return np.asarray(self.index.reconstruct_batch(ids) @ query[0], dtype=np.float32)
        selector = faiss.IDSelectorBatch(ids)  # a name: it must live through the search
        params: Any = faiss.SearchParametersIVF()  # every list, only these ids
        params.sel, params.nprobe = selector, self.params["nlist"]
        scores, found = self.index.search(query, len(ids), params=params)
        by_id = dict(zip(found[0].tolist(), scores[0].tolist(), strict=True))
        return np.array([by_id[i] for i in ids.tolist()], dtype=np.float32)

    def without(self, dead: Collection[int]) -> VectorIndex:
        """A fresh index of the same type holding every vector whose id is not in `dead`.

        Reconstructs vectors from storage, so it needs an IDMap2 type (used for hnsw)."""
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        keep = ~np.isin(ids, np.fromiter(dead, dtype=np.int64, count=len(dead)))
        fresh = VectorIndex.create(self.type, self.dim, self.params)
        if keep.any():
            fresh.add(self.index.index.reconstruct_n(0, self.ntotal)[keep], ids[keep])
        return fresh

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))
