"""ivfpq's HNSW coarse quantizer (issue 25): the default from HNSW_QUANTIZER_NLIST lists,
forced here at a small size with `hnsw_quantizer`; trained as a flat build, it finds
about what the flat quantizer finds, saves and opens; an index written before it
existed (flat quantizer, no `hnsw_quantizer` in its manifest) answers as it did."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
from faiss.contrib.inspect_tools import get_invlist

from semsearch.index import IndexStore
from semsearch.index.layout import MANIFEST
from semsearch.index.manifest import Manifest
from semsearch.index.types import coarse, ivfpq
from tests.index_writer import HashEncoder, make_records

COUNT = 3000
PARAMS = {"nlist": 64, "M": 8, "nbits": 6, "nprobe": 8, "rerank": 50}
# 64 lists (47 vectors each to train on) build in a second. A graph of 32 links a
# centroid would link each of them to nearly every other, and any walk would be exact:
# with 4 links and a walk of 16 it misses some, as a walk of 64 does at 4,096 lists.
LINKS, WALK = 4, 16


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, IndexStore]]:
    """The same vectors built with a flat quantizer (0) and an HNSW one (LINKS)."""
    folder = tmp_path_factory.mktemp("quantizers")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(coarse, "ASSIGN_EF", WALK)
        stores = {
            links: IndexStore.build(
                folder / str(links),
                [make_records(COUNT)],
                HashEncoder(),
                index_type="ivfpq",
                params={**PARAMS, "hnsw_quantizer": links},
            )
            for links in (0, LINKS)
        }
        yield stores
    for store in stores.values():
        store.close()


def lists_of(index: faiss.Index) -> dict[int, int]:
    """Which list holds each id."""
    ivf = faiss.extract_index_ivf(index)
    return {
        int(i): number for number in range(ivf.nlist) for i in get_invlist(ivf.invlists, number)[0]
    }


def recall_at_10(store: IndexStore, queries: np.ndarray) -> float:
    vectors = store.vectors
    full = np.asarray(vectors.full, dtype=np.float32)
    exact = vectors.ids[np.argsort(-(queries @ full.T), axis=1, kind="stable")[:, :10]]
    _, found = vectors.search(queries, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found, strict=True)]))


def test_an_hnsw_quantizer_finds_what_the_flat_one_finds(builds: dict[int, IndexStore]) -> None:
    flat, graph = builds[0].vectors, builds[LINKS].vectors
    assert builds[LINKS].manifest.index.faiss_factory == "IVF64_HNSW4,PQ8x6"
    assert builds[LINKS].manifest.index.params["hnsw_quantizer"] == LINKS
    assert builds[0].manifest.index.faiss_factory == "IVF64,PQ8x6"
    quantizer = coarse.hnsw_quantizer(graph.index)  # as opened from the folder
    assert quantizer is not None and coarse.hnsw_quantizer(flat.index) is None
    assert quantizer.hnsw.efSearch == coarse.probe_ef(8) == WALK  # at least nprobe
    centroids = faiss.extract_index_ivf(flat.index).quantizer.reconstruct_n(0, 64)
    assert np.array_equal(quantizer.storage.reconstruct_n(0, 64), centroids)  # trained alike
    ours, theirs = lists_of(graph.index), lists_of(flat.index)
    assert sorted(ours) == sorted(theirs) == list(range(1, COUNT + 1))
    assert 0.98 < np.mean([ours[i] == theirs[i] for i in ours]) < 1  # 99.4%: a walk
    queries = HashEncoder().encode([f"question {i}" for i in range(100)])
    recalls = recall_at_10(builds[LINKS], queries), recall_at_10(builds[0], queries)
    assert recalls[1] > 0.5 and abs(recalls[0] - recalls[1]) <= 0.02, recalls


def test_a_restricted_search_widens_the_walk_with_nprobe(builds: dict[int, IndexStore]) -> None:
    graph = builds[LINKS].vectors
    params = graph.selected_params(faiss.IDSelectorRange(0, 10), 4.0, 5)
    assert params.nprobe == 32 and params.quantizer_params is not None  # efSearch 32
    selected = np.arange(1, COUNT + 1, 3, dtype=np.int64)  # above the exact share: a walk
    queries = HashEncoder().encode(["question 1", "question 2"])
    _, found = graph.search_within(queries, 10, selected)
    assert np.isin(found, selected).all()


def test_an_index_written_before_the_hnsw_quantizer_answers_the_same(tmp_path: Path) -> None:
    params = {"nlist": 8, "M": 8, "nbits": 4, "nprobe": 8}
    store = IndexStore.build(
        tmp_path / "pq", [make_records(1000)], HashEncoder(), index_type="ivfpq", params=params
    )
    queries = HashEncoder().encode(["text r5", "text r999", "anything"])
    before = [[(r.id, s) for r, s in hits] for hits in store.search(queries, 5)]
    store.close()
    manifest = Manifest.read(tmp_path / "pq")  # as the code before it wrote it
    old = {k: v for k, v in manifest.index.params.items() if k != "hnsw_quantizer"}
    section = dataclasses.replace(manifest.index, params=old)
    (tmp_path / "pq" / MANIFEST).write_text(dataclasses.replace(manifest, index=section).to_json())
    with IndexStore.open(tmp_path / "pq") as opened:
        assert opened.manifest.index.params == {**old, "hnsw_quantizer": 0}
        assert opened.vectors.factory == "IVF8,PQ8x4"
        assert coarse.hnsw_quantizer(opened.vectors.index) is None
        assert [[(r.id, s) for r, s in hits] for hits in opened.search(queries, 5)] == before


def test_the_default_follows_the_lists() -> None:
    below = coarse.HNSW_QUANTIZER_NLIST - 1
    assert ivfpq.IVFPQ.resolve_params({"nlist": below}, 10**6, 384)["hnsw_quantizer"] == 0
    at = ivfpq.IVFPQ.resolve_params({"nlist": coarse.HNSW_QUANTIZER_NLIST}, 10**6, 384)
    assert at["hnsw_quantizer"] == coarse.QUANTIZER_M == 32
    assert ivfpq.IVFPQ.resolve_params({}, 1_000_000, 384)["hnsw_quantizer"] == 0  # 4,000 lists
    assert ivfpq.IVFPQ.resolve_params({}, 1_100_000, 384)["hnsw_quantizer"] == 32  # 4,195
    forced = ivfpq.IVFPQ.resolve_params({"hnsw_quantizer": 16}, 1000, 32)
    assert ivfpq.IVFPQ.factory(forced) == "IVF25_HNSW16,PQ4x8"
