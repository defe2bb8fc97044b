"""ivfpq: IVF lists of product-quantised codes in an on-disk FAISS index, for corpora
whose float32 vectors would not fit in RAM.

Per dense view (`vectors.faiss`, and `second.faiss` where the index has a second view;
file names in semsearch.index.layout) the folder holds:

- `STEM.faiss`: the coarse centroids, PQ codebooks and OPQ rotation (small, loaded);
- `STEM.ivfdata`: the inverted lists (ids + PQ codes), memory-mapped by FAISS's
  `OnDiskInvertedLists`; the .faiss file names it by its bare file name and is read with
  IO_FLAG_ONDISK_SAME_DIR, so the folder answers from wherever it is moved;
- `STEM.f16.npy` and `STEM.ids.npy`: every vector in float16 in id order, memory-mapped,
  to re-rank the PQ search's best `rerank` candidates by exact cosine (PQ codes alone
  gave recall@10 of about 0.64 against flat on WordNet glosses) and to give fusion the
  real score of any entry.

Building trains an empty index on a sample, fills copies of it shard by shard in
parallel threads (FAISS releases the GIL), writes each shard into the folder being
written and merges them with `faiss.contrib.ondisk.merge_ondisk`; the shard files are
removed. The lists are written once: entries are not added or deleted in place.

Where nlist is large the coarse quantizer is an HNSW graph of the centroids
(semsearch.index.types.coarse).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from semsearch.errors import ConfigError, IndexFolderError
from semsearch.index import layout
from semsearch.index.types.base import IndexType, VectorIndex, as_matrix, read_faiss
from semsearch.index.types.coarse import (
    HNSW_QUANTIZER_NLIST,
    default_quantizer,
    fill,
    graph_quantizer,
    hnsw_quantizer,
    probe_ef,
)
from semsearch.index.types.ivf import IVFVectors, default_nlist
from semsearch.quiet import silenced

SHARD_VECTORS = 100_000
"""Vectors per shard: each shard is filled by its own thread and written as one file."""
TRAIN_PER_LIST = 40
"""Training sample: this many vectors per IVF list (FAISS's k-means warns below 39), and
at least 64 per PQ centroid; never more than the corpus."""
_READ_FLAGS = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
# IO_FLAG_MMAP on top made FAISS 1.15 crash on the first search of an on-disk index; the
# inverted lists, the large part, are memory-mapped by OnDiskInvertedLists either way.


def default_params(count: int, dim: int) -> dict[str, int]:
    """Parameters from the corpus size: ~4*sqrt(n) lists (capped so that each has 39
    training vectors), dim/8 sub-quantisers of 8 bits (48 bytes a 384-d vector), a
    fifth of the lists probed (at least 32), OPQ off, the best 200 re-ranked exactly,
    and an HNSW coarse quantizer from HNSW_QUANTIZER_NLIST lists (`hnsw_quantizer`:
    its links per centroid; 0, a flat quantizer).

    Measured with MiniLM on 117,659 WordNet glosses (nlist 1372), recall@10 against flat
    for 200 questions: nprobe 85 (a sixteenth) 0.878, 171 (an eighth) 0.924, 256 0.943
    with 200 re-ranked (100: 0.866, 0.904, 0.923), at 5-6 ms a question. At 100M
    vectors a fifth of 40,000 lists scans 20M codes a question: set nprobe there."""
    nlist = default_nlist(count)
    return {
        "nlist": nlist,
        "M": _sub_quantisers(dim),
        "nbits": 8,
        "nprobe": min(nlist, max(32, nlist // 5)),
        "opq": 0,
        "rerank": 200,
        "hnsw_quantizer": default_quantizer(nlist),
    }


def _sub_quantisers(dim: int) -> int:
    """The largest divisor of `dim` no bigger than dim/8 (FAISS needs M to divide dim)."""
    return next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)


def _refuse_edit(what: str) -> None:
    raise IndexFolderError(
        f"an ivfpq index cannot {what} entries (its on-disk lists are written once): "
        "rebuild it with `semsearch index` from the changed corpus"
    )


class OnDiskVectors(IVFVectors):
    """An ivfpq view: PQ search over memory-mapped lists, then exact re-ranking of the
    best `rerank` candidates from the memory-mapped float16 vectors.

    Built in memory (`create`, `add`: filled shards), written by `save`; or opened
    from a folder (`load`), read-only."""

    def __init__(self, index: faiss.Index, kind: IndexType, params: dict[str, int]) -> None:
        super().__init__(index, kind, params)
        self.shards: list[Any] = []  # filled, not yet saved
        self.ids = np.zeros(0, dtype=np.int64)  # sorted
        self.full: np.ndarray = np.zeros((0, int(index.d)), dtype=np.float16)  # by id
        self.source: Path | None = None  # the .faiss file it was opened from

    def apply_params(self) -> None:
        """nprobe, and the HNSW quantizer's efSearch for it (where there is one)."""
        super().apply_params()
        quantizer = hnsw_quantizer(self.index)
        if quantizer is not None:
            quantizer.hnsw.efSearch = probe_ef(self.params["nprobe"])

    def selected_params(self, selector: Any, scale: float, k: int) -> Any:
        params = super().selected_params(selector, scale, k)
        if hnsw_quantizer(self.index) is not None:  # its walk wide enough for the lists
            walk: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            walk.efSearch = probe_ef(params.nprobe)
            params.quantizer_params = walk
        return params

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Fill copies of the trained index with shards of `vectors`, in parallel."""
        if self.source is not None:
            _refuse_edit("add")
        matrix = as_matrix(vectors, self.dim, "vectors")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        starts = range(0, len(matrix), SHARD_VECTORS)

        def shard(start: int) -> Any:
            stop = start + SHARD_VECTORS
            return fill(self.index, [(matrix[start:stop], ids[start:stop])])

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            self.shards.extend(pool.map(shard, starts))
        order = np.argsort(np.concatenate([self.ids, ids]), kind="stable")
        self.ids = np.concatenate([self.ids, ids])[order]
        self.full = np.concatenate([self.full, matrix.astype(np.float16)])[order]

    def _candidates(
        self, matrix: np.ndarray, depth: int, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.source is not None or not self.shards:
            return self._faiss_search(matrix, depth, params)
        found = [shard.search(matrix, depth, params=params) for shard in self.shards]
        scores = np.concatenate([s for s, _ in found], axis=1)
        ids = np.concatenate([i for _, i in found], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        return np.take_along_axis(scores, best, 1), np.take_along_axis(ids, best, 1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The PQ search's best max(k, rerank) candidates, re-scored exactly, best first."""
        matrix = as_matrix(queries, self.dim, "query vectors")
        if self.ntotal == 0:
            shape = (len(matrix), k)
            return np.zeros(shape, dtype=np.float32), np.full(shape, -1, dtype=np.int64)
        return self._walk(matrix, k, None)

    def _walk(self, matrix: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """The PQ search (under `params`, an ID selector, where given), re-ranked."""
        shape = (len(matrix), k)
        depth = min(max(k, self.params["rerank"]), self.ntotal)
        scores, ids = self._candidates(matrix, depth, params)
        if self.params["rerank"]:
            exact = np.einsum("qd,qkd->qk", matrix, self._rows(ids.clip(min=0)))
            scores = np.where(ids >= 0, exact, -np.inf).astype(np.float32)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores = np.zeros(shape, dtype=np.float32)
        top_ids = np.full(shape, -1, dtype=np.int64)
        top_scores[:, : best.shape[1]] = np.take_along_axis(scores, best, 1)
        top_ids[:, : best.shape[1]] = np.take_along_axis(ids, best, 1)
        top_scores[top_ids < 0] = 0.0
        return top_scores, top_ids

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """The float16 vectors of `ids` (any shape) as float32, read from the map."""
        flat = ids.ravel()
        positions = np.searchsorted(self.ids, flat).clip(max=max(0, self.ntotal - 1))
        rows = np.asarray(self.full[positions], dtype=np.float32)
        return rows.reshape(*ids.shape, self.dim)

    def exact_scores(self, matrix: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.asarray(matrix @ self._rows(ids).T, dtype=np.float32)

    def scores_of(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact inner products from the kept float16 vectors (PQ cannot reconstruct)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        query = as_matrix(query.reshape(1, -1), self.dim, "query vector")
        if not len(ids):
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._rows(ids) @ query[0], dtype=np.float32)

    def remove(self, ids: np.ndarray) -> int:
        _refuse_edit("delete")
        raise AssertionError("unreachable")

    def without(self, dead: Collection[int]) -> VectorIndex:
        _refuse_edit("delete")
        raise AssertionError("unreachable")

    def save(self, path: Path) -> None:
        """Write STEM.faiss and its data files; an opened index links (or copies) its
        files, a built one merges its shards through files in the same folder."""
        if self.source is not None:
            for suffix in (layout.FAISS, *layout.IVFPQ_SUFFIXES):
                _link_or_copy(_beside(self.source, suffix), _beside(path, suffix))
            return
        shard_files = [layout.shard_file(path, i) for i in range(len(self.shards))]
        try:
            for shard, name in zip(self.shards, shard_files, strict=True):
                faiss.write_index(shard, str(name))
            merge_lists(self.index, shard_files, path)
        finally:
            for name in shard_files:
                name.unlink(missing_ok=True)
        np.save(_beside(path, layout.FULL_VECTORS), self.full)
        np.save(_beside(path, layout.VECTOR_IDS), self.ids)


def merge_lists(trained: faiss.Index, shard_files: Sequence[Path], path: Path) -> None:
    """Write STEM.faiss at `path` and its inverted lists, STEM.ivfdata, merged on disk
    from the filled copies of `trained` saved in `shard_files` (in their order)."""
    from faiss.contrib.ondisk import merge_ondisk

    merged = faiss.clone_index(trained)
    lists_file = _beside(path, layout.IVFDATA)
    with silenced(1):
        merge_ondisk(merged, [str(n) for n in shard_files], str(lists_file))
    ivf: Any = faiss.extract_index_ivf(merged)
    lists: Any = faiss.downcast_InvertedLists(ivf.invlists)
    lists.filename = lists_file.name  # found beside the .faiss on read
    faiss.write_index(merged, str(path))


def training_sample(count: int, params: dict[str, int]) -> np.ndarray | None:
    """Which of `count` vectors train an index (sorted positions), None for all of them."""
    size = max(TRAIN_PER_LIST * params["nlist"], 64 * 2 ** params["nbits"])
    if count <= size:
        return None
    return np.sort(np.random.default_rng(0).choice(count, size, replace=False))


class IVFPQType(IndexType):
    name = "ivfpq"
    # None: derived from the corpus size and dimension by default_params.
    defaults: ClassVar[dict[str, int | None]] = dict.fromkeys(
        ("nlist", "M", "nbits", "nprobe", "opq", "rerank", "hnsw_quantizer")
    )
    # 0: no OPQ rotation, no exact re-ranking, a flat coarse quantizer
    zero_allowed = frozenset({"opq", "rerank", "hnsw_quantizer"})
    added_params: ClassVar[dict[str, int]] = {"hnsw_quantizer": 0}  # flat before it
    removes = False
    view_class = OnDiskVectors

    def derive(self, given: dict[str, Any], count: int, dim: int) -> dict[str, Any]:
        """Defaults filled in where `given` has None, then checked against the corpus."""
        resolved = {
            key: value if given.get(key) is None else given[key]
            for key, value in default_params(count, dim).items()
        }
        if given.get("hnsw_quantizer") is None:  # by the lists asked for
            resolved["hnsw_quantizer"] = default_quantizer(resolved["nlist"])
        problems = []
        if dim % resolved["M"]:
            problems.append(f"M={resolved['M']} must divide the vectors' dimension {dim}")
        if not 1 <= resolved["nbits"] <= 16:
            problems.append(f"nbits must be between 1 and 16, got {resolved['nbits']}")
        elif count < 2 ** resolved["nbits"]:  # FAISS trains 2**nbits centroids per codebook
            fits = f" or nbits={count.bit_length() - 1} under [index.params]" if count > 1 else ""
            problems.append(
                f"nbits={resolved['nbits']} needs at least {2 ** resolved['nbits']} vectors to "
                f"train its codebooks; the corpus has {count}: use index type flat (ivfpq is "
                f"for corpora too large for memory){fits}"
            )
        if resolved["opq"] not in (0, 1):
            problems.append(f"opq must be 0 (off) or 1 (on), got {resolved['opq']}")
        if resolved["hnsw_quantizer"] == 1:
            problems.append(
                "hnsw_quantizer must be 0 (a flat coarse quantizer) or the HNSW graph's "
                "links per centroid, 2 or more (32 by default from "
                f"{HNSW_QUANTIZER_NLIST} lists), got 1"
            )
        if resolved["nlist"] > count:
            problems.append(
                f"nlist={resolved['nlist']} needs at least that many vectors to train; "
                f"the corpus has {count}: lower nlist or use index type flat"
            )
        if problems:
            raise ConfigError(f"ivfpq: {'; '.join(problems)}", setting="index_type")
        resolved["nprobe"] = min(resolved["nprobe"], resolved["nlist"])
        return resolved

    def factory(self, params: dict[str, int]) -> str:
        opq = f"OPQ{params['M']}," if params["opq"] else ""
        links = params["hnsw_quantizer"]
        quantizer = f"_HNSW{links}" if links else ""
        return f"{opq}IVF{params['nlist']}{quantizer},PQ{params['M']}x{params['nbits']}"

    def create(
        self, dim: int, params: dict[str, int], training: np.ndarray | None = None
    ) -> VectorIndex:
        """An empty index trained on a sample of `training`."""
        if training is None:
            raise ValueError("an ivfpq index must be trained on vectors")
        # Trained with a flat quantizer whatever the one it searches with: the centroids
        # and codebooks of a flat build of the same vectors (an HNSW quantizer would
        # assign the codebooks' training residuals approximately).
        flat = {**params, "hnsw_quantizer": 0}
        index = faiss.index_factory(dim, self.factory(flat), faiss.METRIC_INNER_PRODUCT)
        # Polysemous training (on by default) reorders PQ codes for Hamming-distance
        # filtering, which this search never uses; it took 75 of 86 s of training at 50k.
        ivfpq: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivfpq.do_polysemous_training = False
        matrix = as_matrix(training, dim, "training vectors")
        chosen = training_sample(len(matrix), params)
        index.train(matrix if chosen is None else matrix[chosen])
        if params["hnsw_quantizer"]:
            graph_quantizer(index, params["hnsw_quantizer"])
        return OnDiskVectors(index, self, params)

    def load(self, path: Path, params: dict[str, int]) -> VectorIndex:
        """Open a view read-only: its lists and float16 vectors stay on disk, mapped."""
        with silenced(1):
            index = read_faiss(path, _READ_FLAGS)
        opened = OnDiskVectors(index, self, params)
        opened.source = path
        full = _beside(path, layout.FULL_VECTORS)
        try:
            opened.full = _mapped(full)
            opened.ids = _mapped(_beside(path, layout.VECTOR_IDS))
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"{full} cannot be read ({exc}): rebuild the index") from None
        return opened

    def data_files(self, views: Sequence[str]) -> tuple[str, ...]:
        return tuple(
            layout.beside(view, suffix) for view in views for suffix in layout.IVFPQ_SUFFIXES
        )

    def check_editable(self, what: str) -> None:
        """Its on-disk lists are written once: no add or delete."""
        _refuse_edit(what)


IVFPQ = IVFPQType()


def full_vectors_file(view: Path) -> Path:
    """STEM.f16.npy: every vector in float16, in id order."""
    return _beside(view, layout.FULL_VECTORS)


def ids_file(view: Path) -> Path:
    """STEM.ids.npy: the ids of STEM.f16.npy's rows, sorted."""
    return _beside(view, layout.VECTOR_IDS)


def _beside(view: Path, suffix: str) -> Path:
    return view.with_name(layout.beside(view.name, suffix))


def _mapped(path: Path) -> np.ndarray:
    """A memory-mapped .npy read row by row: no read-ahead of neighbouring rows, which
    otherwise paged the whole float16 file in after a few dozen questions."""
    array = np.load(path, mmap_mode="r")
    with contextlib.suppress(AttributeError, OSError, ValueError):
        array._mmap.madvise(mmap.MADV_RANDOM)
    return array


def _link_or_copy(source: Path, target: Path) -> None:
    """Files are never changed in place, so a new version of the folder may share them."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
