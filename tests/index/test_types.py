"""The index types behind one interface (semsearch.index.types) and the folder's file
names (semsearch.index.layout): every registered type builds, searches, saves, opens,
scores and takes (or refuses) edits through the same calls; flat equals NumPy's brute
force exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semsearch.corpus import Record
from semsearch.errors import ConfigError, IndexFolderError
from semsearch.index import IndexStore, layout, types
from semsearch.index.types import IndexType, VectorIndex
from semsearch.index.views import Parts
from tests.index_writer import HashEncoder, make_records

DIM, COUNT = 32, 1200
# Small enough for FAISS to train without warnings on COUNT vectors.
PARAMS: dict[str, dict[str, int]] = {
    "ivf": {"nlist": 8, "nprobe": 8},
    "ivfpq": {"nlist": 8, "M": 8, "nbits": 4, "nprobe": 8, "rerank": COUNT},
}


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors, their ids (not 0..n-1: rowids start at 1 and have gaps) and queries."""
    ids = np.arange(1, 2 * COUNT + 1, 2, dtype=np.int64)
    return unit_vectors(COUNT, 0), ids, unit_vectors(20, 1)


def built(name: str, vectors: np.ndarray, ids: np.ndarray) -> VectorIndex:
    kind = types.get(name)
    params = kind.resolve_params(PARAMS.get(name), len(vectors), DIM)
    index = kind.create(DIM, params, training=vectors)
    index.add(vectors, ids)
    return index


def test_the_registry_names_every_type_once_in_the_order_users_see() -> None:
    assert types.INDEX_TYPES == ("auto", "flat", "hnsw", "ivf", "sq8", "ivfpq")
    assert all(types.get(name).name == name for name in types.REGISTRY)
    assert all(isinstance(kind, IndexType) for kind in types.REGISTRY.values())
    with pytest.raises(ConfigError, match="unknown index type 'auto': choose one of flat, hnsw"):
        types.get("auto")  # resolved by resolve_type first
    with pytest.raises(ConfigError, match="unknown index type 'hnws': choose one of auto, flat"):
        types.check("hnws", None)
    types.check("auto", {"anything": 1})  # auto's parameters depend on the type it picks
    with pytest.raises(ConfigError, match="unknown hnsw index parameter"):
        types.check("hnsw", {"nlist": 4})


def test_each_type_knows_its_parameters_and_factory() -> None:
    expected = {
        "flat": ({}, "IDMap2,Flat"),
        "hnsw": ({"M": 32, "efConstruction": 200, "efSearch": 64}, "IDMap2,HNSW32"),
        "ivf": ({"nlist": 138, "nprobe": 34}, "IVF138,Flat"),
        "sq8": ({}, "IDMap2,SQ8"),
        "ivfpq": (
            {
                "nlist": 138,
                "M": 48,
                "nbits": 8,
                "nprobe": 32,
                "opq": 0,
                "rerank": 200,
                "hnsw_quantizer": 0,
            },
            "IVF138,PQ48x8",
        ),
    }
    for name, (params, factory) in expected.items():
        kind = types.get(name)
        resolved = kind.resolve_params({}, 5400, 384)  # 4 * sqrt(5400) = 294, 5400 // 39 = 138
        assert (resolved, kind.factory(resolved)) == (params, factory), name
        assert list(resolved) == list(kind.defaults)  # the manifest lists them in this order


@pytest.mark.parametrize("name", list(types.REGISTRY))
def test_every_type_round_trips_through_the_interface(
    name: str, data: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    vectors, ids, queries = data
    kind = types.get(name)
    index = built(name, vectors, ids)
    assert (index.kind, index.type, index.dim, index.ntotal) == (kind, name, DIM, COUNT)
    assert index.factory == kind.factory(index.params)

    scores, found = index.search(vectors[:50], 1)  # each stored vector finds itself
    assert (found[:, 0] == ids[:50]).all()
    assert scores[:, 0] == pytest.approx(1.0, abs=0.02)

    chosen = ids[[3, 500, 1199]]
    exact = vectors[[3, 500, 1199]] @ queries[0]
    assert index.scores_of(queries[0], chosen) == pytest.approx(exact, abs=0.02)

    before = index.search(queries, 10)
    path = tmp_path / layout.VECTORS
    index.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        (layout.VECTORS, *kind.data_files([layout.VECTORS]))
    )
    opened = kind.load(path, index.params)
    assert opened.ntotal == COUNT and opened.params == index.params
    after = opened.search(queries, 10)
    assert np.array_equal(after[1], before[1])
    assert np.allclose(after[0], before[0], atol=1e-6)


def test_flat_search_is_numpy_brute_force_exactly(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vectors, ids, queries = data
    index = built("flat", vectors, ids)
    scores, found = index.search(queries, 10)
    similarity = queries @ vectors.T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :10]
    assert np.array_equal(found, ids[order])
    assert np.allclose(scores, np.take_along_axis(similarity, order, 1), atol=1e-6)
    assert np.allclose(index.scores_of(queries[0], ids[::7]), similarity[0, ::7], atol=1e-6)
    # a batch big enough for FAISS's threads gives the same answer
    many, _ = index.search(np.repeat(queries, 3, axis=0), 10)
    assert np.allclose(many[::3], scores, atol=1e-6)


@pytest.mark.parametrize("name", list(types.REGISTRY))
def test_deleting_removes_tombstones_or_refuses_by_type(
    name: str, data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    vectors, ids, _ = data
    kind = types.get(name)
    index = built(name, vectors, ids)
    dead = ids[:100]
    if name == "ivfpq":
        assert not kind.removes and not index.can_remove
        for what in ("add", "delete"):
            with pytest.raises(IndexFolderError, match=f"an ivfpq index cannot {what} entries"):
                kind.check_editable(what)
        with pytest.raises(IndexFolderError, match="cannot delete entries"):
            index.without(set(dead.tolist()))
        return
    kind.check_editable("add")
    kind.check_editable("delete")
    if kind.removes:
        assert index.can_remove
        assert index.remove(dead) == 100
        remaining = index
    else:  # hnsw: the store tombstones, then rebuilds without the dead vectors
        assert name == "hnsw" and not index.can_remove
        remaining = index.without(set(dead.tolist()))
        assert remaining.kind is kind and remaining.params == index.params
    assert remaining.ntotal == COUNT - 100
    _, found = remaining.search(vectors[:120], 1)
    assert not np.isin(found, dead).any()
    assert (found[100:, 0] == ids[100:120]).all()


def test_an_opened_ivfpq_view_refuses_to_take_entries(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    vectors, ids, _ = data
    index = built("ivfpq", vectors, ids)
    index.save(tmp_path / layout.VECTORS)
    opened = types.get("ivfpq").load(tmp_path / layout.VECTORS, index.params)
    with pytest.raises(IndexFolderError, match="cannot add entries"):
        opened.add(vectors[:2], np.array([5000, 5001]))


def test_only_ivfpq_keeps_files_beside_its_views() -> None:
    views = layout.view_files(second=True)
    assert views == ("vectors.faiss", "second.faiss")
    assert types.get("ivfpq").data_files(views) == (
        "vectors.ivfdata",
        "vectors.f16.npy",
        "vectors.ids.npy",
        "second.ivfdata",
        "second.f16.npy",
        "second.ids.npy",
    )
    assert all(types.get(n).data_files(views) == () for n in ("flat", "hnsw", "ivf", "sq8"))


FAQ = [Record(str(i), f"question {i} about topic {i % 7}", f"answer {i}", {}) for i in range(400)]


@pytest.mark.parametrize("name", ["flat", "ivfpq"])
def test_a_built_folder_holds_exactly_the_files_layout_names(name: str, tmp_path: Path) -> None:
    """What the manifest checksums, `info` sizes and `open` checks is one list: the
    required files, the parts' and the type's; nothing else is left in the folder."""
    params = {"nlist": 8, "M": 8, "nbits": 4, "nprobe": 8} if name == "ivfpq" else None
    fields = {"text": "question", "answer": "answer", "id": "id"}
    store = IndexStore.build(
        tmp_path / "idx", [FAQ], HashEncoder(), index_type=name, params=params, fields=fields
    )
    parts = Parts.from_json(store.manifest.parts)
    files = parts.data_files(types.get(name))
    assert parts.second == "joint" and parts.lexical and parts.generic
    assert {p.name for p in store.path.iterdir()} == {layout.MANIFEST, *files}
    manifest = json.loads((store.path / layout.MANIFEST).read_text(encoding="utf-8"))
    assert list(manifest["checksums"]) == list(files)
    assert list(store.info()["files"]) == [layout.MANIFEST, *files]
    assert files[:2] == layout.REQUIRED and layout.SECOND in files
    if name == "ivfpq":
        assert "second.ivfdata" in files and "vectors.f16.npy" in files


def test_the_store_asks_the_type_whether_it_removes(tmp_path: Path) -> None:
    """hnsw tombstones a deleted entry, flat removes it: the same `delete` call."""
    counts = {}
    for name in ("flat", "hnsw"):
        with IndexStore.build(
            tmp_path / name, [make_records(50)], HashEncoder(), index_type=name
        ) as store:
            store.delete(["r1", "r2"])
            counts[name] = (store.count, store.deleted, store.vectors.ntotal)
    assert counts == {"flat": (48, 0, 48), "hnsw": (48, 2, 50)}
