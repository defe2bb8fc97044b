"""The index folder: exact search, recall of the approximate types, persistence, updates,
crash safety and the errors a user sees for a broken or foreign folder."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semsearch import atomic
from semsearch.cache import sha256_of as sha256_file
from semsearch.corpus import Record
from semsearch.encoders import Encoder, load_encoder
from semsearch.errors import ConfigError, EncoderMismatchError, IndexFolderError, InputError
from semsearch.fingerprint import check as check_encoder
from semsearch.index import (
    AUTO_HNSW_THRESHOLD,
    FORMAT_VERSION,
    IndexStore,
    Manifest,
)
from semsearch.index.types import resolve_type
from tests.index_writer import HashEncoder, make_records

TYPES = ["flat", "hnsw", "ivf", "sq8"]


def results(store: IndexStore, queries: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    return [[(record.id, score) for record, score in hits] for hits in store.search(queries, k)]


def leftovers(path: Path) -> list[str]:
    def lock(name: str) -> bool:  # write locks stay beside their folders, empty
        return name.startswith(".") and name.endswith(".lock")

    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name and not lock(p.name))


@pytest.fixture
def encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture
def built(tmp_path: Path, encoder: HashEncoder) -> IndexStore:
    return IndexStore.build(
        tmp_path / "faq", [make_records(150), make_records(150, start=150)], encoder
    )


@pytest.fixture(scope="module")
def tiny_encoder(tiny_sbert: Path) -> Encoder:
    return load_encoder(model=str(tiny_sbert))


# -- exact search -------------------------------------------------------------------


def test_flat_search_is_brute_force_cosine(tmp_path: Path, encoder: HashEncoder) -> None:
    records = make_records(500)
    store = IndexStore.build(
        tmp_path / "faq", [records[:200], records[200:]], encoder, index_type="flat"
    )
    corpus = encoder.encode([r.text for r in records])
    queries = encoder.encode([f"question {i}" for i in range(20)])
    scores = queries @ corpus.T
    for row, hits in zip(scores, store.search(queries, 10), strict=True):
        expected = np.argsort(-row)[:10]
        assert [record.id for record, _ in hits] == [records[i].id for i in expected]
        np.testing.assert_allclose([score for _, score in hits], row[expected], atol=1e-5)
    hit = store.search(queries[:1], 1)[0][0][0]
    assert hit == records[int(np.argmax(scores[0]))]  # text, answer and metadata come back


def test_auto_is_flat_below_the_threshold_then_hnsw() -> None:
    assert resolve_type("auto", AUTO_HNSW_THRESHOLD - 1) == "flat"
    assert resolve_type("auto", AUTO_HNSW_THRESHOLD) == "hnsw"
    with pytest.raises(ConfigError, match="unknown index type 'annoy': choose one of auto, flat"):
        resolve_type("annoy", 10)


def test_small_build_with_auto_is_flat_and_records_its_settings(built: IndexStore) -> None:
    manifest = json.loads((built.path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["index"] == {
        "type": "flat",
        "faiss_factory": "IDMap2,Flat",
        "metric": "inner_product",
        "count": 300,
        "deleted": 0,
        "params": {},
    }
    assert manifest["encoder"] == HashEncoder().fingerprint
    assert set(manifest["checksums"]) == {
        "vectors.faiss",
        "records.sqlite",
        "lexical.npz",
        "lexical.json",
        "generic.npy",
    }
    assert manifest["parts"] == {"second": None, "field": None, "lexical": True, "generic": True}
    assert built.stats is not None and built.stats.count == 300
    info = built.info()
    assert info["count"] == 300 and info["index"]["type"] == "flat"
    assert all(size > 0 for size in info["files"].values())


def test_params_are_recorded_and_reapplied_on_open(tmp_path: Path, encoder: HashEncoder) -> None:
    params = {"M": 16, "efSearch": 40}
    IndexStore.build(
        tmp_path / "faq", [make_records(100)], encoder, index_type="hnsw", params=params
    )
    store = IndexStore.open(tmp_path / "faq")
    assert store.manifest.index.params == {"M": 16, "efConstruction": 200, "efSearch": 40}
    assert store.manifest.index.faiss_factory == "IDMap2,HNSW16"
    import faiss

    assert faiss.downcast_index(store.vectors.index.index).hnsw.efSearch == 40
    with pytest.raises(
        ConfigError, match=r"unknown ivf index parameter.*nprob.*valid ones are nlist, nprobe"
    ):
        IndexStore.build(
            tmp_path / "x", [make_records(100)], encoder, index_type="ivf", params={"nprob": 4}
        )


# -- persistence, add, delete, update -------------------------------------------------


@pytest.mark.parametrize("index_type", TYPES)
def test_reopen_gives_the_same_results(
    index_type: str, tmp_path: Path, tiny_encoder: Encoder
) -> None:
    records = make_records(300)
    store = IndexStore.build(
        tmp_path / "faq", [records[:100], records[100:]], tiny_encoder, index_type=index_type
    )
    queries = tiny_encoder.encode(["text r7", "answer for nothing", "r250"])
    before = results(store, queries)
    store.close()
    reopened = IndexStore.open(tmp_path / "faq")
    assert reopened.manifest.index.type == index_type
    assert results(reopened, queries) == before
    assert leftovers(tmp_path / "faq") == []


@pytest.mark.parametrize("index_type", TYPES)
def test_add_then_delete_then_reopen(
    index_type: str, tmp_path: Path, tiny_encoder: Encoder
) -> None:
    path = tmp_path / "faq"
    store = IndexStore.build(path, [make_records(200)], tiny_encoder, index_type=index_type)
    version = store.version
    stats = store.add([make_records(30, "new")], tiny_encoder)
    assert (stats.added, stats.updated, stats.count) == (30, 0, 230)
    assert store.version != version
    assert IndexStore.current_version(path) == store.version
    assert store.delete(["r0", "r1", "new5"]) == 3
    reopened = IndexStore.open(path)
    assert reopened.count == 227
    assert reopened.get(["r0", "new5", "new6", "r2"]).keys() == {"new6", "r2"}
    queries = tiny_encoder.encode(["text new6", "text r0"])
    top = results(reopened, queries, k=reopened.count)
    assert top[0][0][0] == "new6"
    assert not {"r0", "r1", "new5"} & {ident for hits in top for ident, _ in hits}
    assert leftovers(path) == []


@pytest.mark.parametrize("index_type", TYPES)
def test_adding_an_existing_id_replaces_text_answer_and_vector(
    index_type: str, tmp_path: Path, tiny_encoder: Encoder
) -> None:
    # an exhaustive k=100 search below needs hnsw to explore more than its default
    params = {"efSearch": 256} if index_type == "hnsw" else None
    store = IndexStore.build(
        tmp_path / "faq", [make_records(100)], tiny_encoder, index_type=index_type, params=params
    )
    replacement = Record("r3", "how do I reset my password", "use the reset link", {"v": 2})
    stats = store.add([[replacement]], tiny_encoder)
    assert (stats.added, stats.updated, stats.count) == (0, 1, 100)
    store = IndexStore.open(tmp_path / "faq")
    assert store.get(["r3"]) == {"r3": replacement}
    new_query, old_query = tiny_encoder.encode([replacement.text, "text r3"])
    record, score = store.search(new_query[None, :], 1)[0][0]
    assert record == replacement and score == pytest.approx(1.0, abs=0.02)
    old_hits = store.search(old_query[None, :], 100)[0]
    assert [r.id for r, _ in old_hits].count("r3") == 1  # only the new vector
    assert old_hits[0][0].id != "r3"


def test_hnsw_tombstones_are_skipped_then_compacted(tmp_path: Path, encoder: HashEncoder) -> None:
    store = IndexStore.build(tmp_path / "faq", [make_records(100)], encoder, index_type="hnsw")
    query = encoder.encode(["text r10"])
    nearest = [ident for ident, _ in results(store, query, k=10)[0]]
    store.delete(nearest[:8])  # the 8 best hits of this query become tombstones
    assert (store.count, store.deleted, store.vectors.ntotal) == (92, 8, 100)
    hits = results(store, query, k=10)[0]
    assert len(hits) == 10 and not set(nearest[:8]) & {ident for ident, _ in hits}
    assert [ident for ident, _ in hits][:2] == nearest[8:10]
    store.delete([f"r{i}" for i in range(50, 65)])  # 23 of 100 vectors dead: rebuild
    assert (store.count, store.deleted, store.vectors.ntotal) == (77, 0, 77)
    assert results(IndexStore.open(tmp_path / "faq"), query, k=10) == results(store, query, k=10)


def test_deleting_every_record_leaves_an_empty_index(built: IndexStore) -> None:
    built.delete([f"r{i}" for i in range(300)])
    store = IndexStore.open(built.path)
    assert store.count == 0 and store.search(HashEncoder().encode(["x"]), 3) == [[]]


# -- crash safety ----------------------------------------------------------------------


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_a_failed_add_or_build_leaves_the_previous_index(
    interrupt: type[BaseException], built: IndexStore
) -> None:
    queries = HashEncoder().encode(["text r1", "something else"])
    before = results(built, queries)
    version = built.version
    chunks = [make_records(10, "new"), make_records(10, "more")]
    with pytest.raises(interrupt):
        built.add(chunks, HashEncoder(fail_on_call=2, fail_with=interrupt))
    with pytest.raises(interrupt):
        IndexStore.build(built.path, chunks, HashEncoder(fail_on_call=2, fail_with=interrupt))
    store = IndexStore.open(built.path)
    assert store.version == version == built.version
    assert results(store, queries) == results(built, queries) == before
    assert leftovers(built.path) == []


def test_sigkill_mid_add_leaves_the_previous_index(built: IndexStore) -> None:
    queries = HashEncoder().encode(["text r1", "something else"])
    before = results(built, queries)
    writer = Path(__file__).parents[1] / "index_writer.py"
    root = str(writer.parents[1])  # semsearch itself, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, str(writer), str(built.path)], env=env, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"writing\n"
        deadline = time.monotonic() + 60
        while not any(".tmp-" in name for name in leftovers(built.path)):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(1.0)  # well into the chunks
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert any(".tmp-" in name for name in leftovers(built.path))  # the killed writer's copy
    store = IndexStore.open(built.path)
    assert store.version == built.version and results(store, queries) == before
    store.add([make_records(1, "after")], HashEncoder())  # the next write cleans up
    assert leftovers(built.path) == []


def test_rename_fallback_swaps_and_recovers(
    built: IndexStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(atomic, "exchange", lambda first, second: False)
    built.add([make_records(5, "new")], HashEncoder())
    assert built.count == 305 and leftovers(built.path) == []
    # a writer killed between its two renames leaves only the previous version aside
    aside = built.path.with_name(f"{built.path.name}.old-99999999-abc")
    built.path.rename(aside)
    store = IndexStore.open(built.path)  # reads it where it lies: opening never writes
    assert store.count == 305 and aside.exists() and not built.path.exists()
    assert "reading the previous version from faq.old-99999999-abc" in caplog.text
    store.delete(["r0"])  # the next write puts it back first
    assert IndexStore.open(built.path).count == 304 and leftovers(built.path) == []


def test_build_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(IndexFolderError, match="docs exists and is not a semsearch index folder"):
        IndexStore.build(tmp_path / "docs", [make_records(3)], HashEncoder())
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"


# -- errors ----------------------------------------------------------------------------


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["vectors.faiss", "records.sqlite"])
def test_a_corrupt_file_is_named(name: str, built: IndexStore) -> None:
    _flip_byte(built.path / name)
    with pytest.raises(
        IndexFolderError, match=rf"{name} in .*faq is corrupt: its checksum does not match"
    ):
        IndexStore.open(built.path)


@pytest.mark.parametrize("name", ["manifest.json", "vectors.faiss", "records.sqlite"])
def test_a_missing_file_is_named(name: str, built: IndexStore) -> None:
    (built.path / name).unlink()
    message = rf"{name} is missing from the index folder .*faq: run `semsearch index` to build it"
    with pytest.raises(IndexFolderError, match=message):
        IndexStore.open(built.path)


def test_a_missing_folder_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(
        IndexFolderError, match=r"no index folder at .*nowhere: run `semsearch index`"
    ):
        IndexStore.open(tmp_path / "nowhere")


def test_a_newer_format_asks_for_an_upgrade(built: IndexStore) -> None:
    manifest = built.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format_version": 1', '"format_version": 2'))
    with pytest.raises(
        IndexFolderError,
        match=r"index format 2 is newer than this semsearch supports \(1\): upgrade semsearch",
    ):
        IndexStore.open(built.path)


def test_an_unreadable_faiss_file_is_a_clear_error(built: IndexStore) -> None:
    vectors, manifest_file = built.path / "vectors.faiss", built.path / "manifest.json"
    vectors.write_bytes(b"not a faiss index")
    manifest = Manifest.from_json(manifest_file.read_text())
    checksums = {**manifest.checksums, "vectors.faiss": sha256_file(vectors)}
    manifest_file.write_text(dataclasses.replace(manifest, checksums=checksums).to_json())
    message = r"vectors.faiss cannot be read as a FAISS index \(Index type .* not recognized\)"
    with pytest.raises(IndexFolderError, match=message):
        IndexStore.open(built.path)


def test_check_encoder_names_each_differing_setting() -> None:
    built = {
        "kind": "bert",
        "model": "bert-base",
        "weights_sha256": "a" * 64,
        "pooling": "mean",
        "dim": 768,
    }
    check_encoder(built, {**built, "model": "/models/bert-base"})  # same weights, other name
    with pytest.raises(EncoderMismatchError) as error:
        check_encoder(built, {**built, "pooling": "cls", "dim": 384})
    message = str(error.value)
    assert "the index was built with pooling='mean', this encoder uses pooling='cls'" in message
    assert "the index was built with dim=768, this encoder uses dim=384" in message
    with pytest.raises(EncoderMismatchError, match=r"weights_sha256='b+' \(model 'other'\)"):
        check_encoder(built, {**built, "model": "other", "weights_sha256": "b" * 64})


def test_add_with_another_encoder_is_refused_and_changes_nothing(built: IndexStore) -> None:
    other = HashEncoder(dim=16)
    with pytest.raises(EncoderMismatchError, match="built with dim=32, this encoder uses dim=16"):
        built.add([make_records(3, "new")], other)
    assert IndexStore.current_version(built.path) == built.version


def test_deleting_unknown_ids_lists_them_and_changes_nothing(built: IndexStore) -> None:
    with pytest.raises(InputError, match=r"unknown id\(s\) 'nope', 'gone': nothing was deleted"):
        built.delete(["r1", "nope", "gone"])
    assert IndexStore.open(built.path).count == 300


def test_input_errors(tmp_path: Path, encoder: HashEncoder) -> None:
    with pytest.raises(InputError, match="no texts to index"):
        IndexStore.build(tmp_path / "empty", [[], []], encoder)
    with pytest.raises(InputError, match="id 'r0' appears more than once"):
        IndexStore.build(tmp_path / "dup", [make_records(3), make_records(3)], encoder)
    assert leftovers(tmp_path / "empty") == []


def test_a_write_over_a_changed_folder_is_refused(built: IndexStore) -> None:
    IndexStore.open(built.path).add([make_records(1, "elsewhere")], HashEncoder())
    with pytest.raises(IndexFolderError, match="changed on disk since it was opened"):
        built.delete(["r1"])


def test_a_second_writer_waits_for_the_first_and_loses_nothing(built: IndexStore) -> None:
    import threading

    first, second = IndexStore.open(built.path), IndexStore.open(built.path)
    slow = HashEncoder(delay=0.5)  # holds the write lock while it encodes
    errors: list[BaseException] = []

    def add_slowly() -> None:
        try:
            first.add([make_records(3, prefix="new")], slow)
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=add_slowly)
    writer.start()
    while slow.calls == 0:  # the first writer holds the lock and is encoding
        time.sleep(0.01)
    # without the lock this delete would pass the version check, swap in first and be
    # overwritten by the first writer's swap a moment later
    with pytest.raises(IndexFolderError, match="changed on disk since it was opened"):
        second.delete(["r0"])
    writer.join()
    assert not errors
    reopened = IndexStore.open(built.path)
    assert set(reopened.get(["new0", "new1", "new2", "r0"])) == {"new0", "new1", "new2", "r0"}
