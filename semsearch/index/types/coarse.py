"""The coarse quantizer of an ivfpq index: which list a vector goes to, which lists a
question probes. From HNSW_QUANTIZER_NLIST lists on it is an HNSW graph of the k-means
centroids (FAISS's `IVF{nlist}_HNSW{M}`), as FAISS users do for large indexes: the
centroids are trained as with a flat quantizer, but a vector meets a few hundred of
them instead of every one when the lists are filled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import faiss
import numpy as np

HNSW_QUANTIZER_NLIST = 4096
"""Lists from which the coarse quantizer is an HNSW graph by default (FAISS's
IVF{nlist}_HNSW32): a flat quantizer compares each vector with every centroid (nlist x
dim flops a vector), a walk of the graph with a few hundred, nearly independent of
nlist. Measured with MiniLM vectors of WordNet glosses and k-means centroids of them,
one thread, walk of ASSIGN_EF: 50,000 vectors to 2,048 lists 2.88 s against flat's
2.69 s (no gain), to 4,096 lists 3.65 s against 5.67 s (1.55x, 99.92% in flat's list),
all 164,878 to 16,384 lists (3 k-means rounds) 24.1 s against 100.8 s (4.2x,
99.72%). The default nlist reaches 4,096 at about a million vectors."""
QUANTIZER_M = 32
"""Links per centroid in the HNSW coarse quantizer (FAISS's IVF..._HNSW32)."""
ASSIGN_EF = 64
"""The HNSW quantizer's efSearch while the lists are filled: each vector goes to the
list its walk finds nearest. At 4,096 lists (above) 64 put 99.92% of the vectors in
flat's list (32: 99.60%, 2x faster; 128: 99.99%, no faster than flat), and an ivfpq
index of 150,000 glosses found as much of the exact top 10 for 500 other glosses as
with a flat quantizer: recall@10 0.922 / 0.972 / 0.994 at nprobe 32 / 128 / 819
(flat: 0.924 / 0.972 / 0.994)."""


def default_quantizer(nlist: int) -> int:
    """The `hnsw_quantizer` of an index of `nlist` lists: QUANTIZER_M from
    HNSW_QUANTIZER_NLIST lists, else 0 (flat)."""
    return QUANTIZER_M if nlist >= HNSW_QUANTIZER_NLIST else 0


def hnsw_quantizer(index: faiss.Index) -> Any | None:
    """The HNSW coarse quantizer of an ivfpq FAISS index; None where it is flat (every
    index written before the HNSW one existed)."""
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    return quantizer if isinstance(quantizer, faiss.IndexHNSW) else None


def probe_ef(nprobe: int) -> int:
    """The HNSW quantizer's efSearch for a search of `nprobe` lists: the walk keeps
    efSearch candidates and returns the best nprobe of them, so it needs at least
    nprobe; ASSIGN_EF where that is more. At 4,096 lists it found 99.3-99.9% of the
    flat quantizer's nprobe lists (nprobe 64 to 819, glosses as questions); a walk is
    slower than flat's scan when nprobe is a large share of nlist (0.82 against 0.36
    ms at 819 of 4,096), faster for the few hundred lists a huge index probes."""
    return max(nprobe, ASSIGN_EF)


def fill(trained: faiss.Index, blocks: Iterable[tuple[np.ndarray, np.ndarray]]) -> Any:
    """A copy of the `trained` index holding `blocks` of (vectors, ids), each vector in
    the list of its nearest centroid (through the HNSW quantizer at ASSIGN_EF, where the
    index has one): how a local build's threads and a Ray build's tasks fill lists."""
    filled: Any = faiss.clone_index(trained)
    quantizer = hnsw_quantizer(filled)
    with _assigning(quantizer):
        for vectors, ids in blocks:
            filled.add_with_ids(vectors, ids)
    return filled


@contextlib.contextmanager
def _assigning(quantizer: Any | None) -> Iterator[None]:
    """The HNSW quantizer (where there is one) at ASSIGN_EF, its search effort after."""
    if quantizer is None:
        yield
        return
    probing = quantizer.hnsw.efSearch
    quantizer.hnsw.efSearch = ASSIGN_EF
    try:
        yield
    finally:
        quantizer.hnsw.efSearch = probing


def graph_quantizer(index: faiss.Index, links: int) -> None:
    """Replace the trained index's flat coarse quantizer by an HNSW graph of the same
    centroids (FAISS's IVF{nlist}_HNSW{links}), built on one thread: a parallel build
    inserts in a varying order, and the graph, hence the lists, would change with each
    build of the same vectors."""
    ivf: Any = faiss.extract_index_ivf(index)
    flat: Any = ivf.quantizer
    graph: Any = faiss.IndexHNSWFlat(int(index.d), links, faiss.METRIC_INNER_PRODUCT)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        graph.add(flat.reconstruct_n(0, ivf.nlist))
    finally:
        faiss.omp_set_num_threads(threads)
    ivf.quantizer = graph  # owned by the index from here (own_fields, as the factory sets)
    graph.thisown = False
    flat.thisown = True  # no longer the index's: freed with this name
