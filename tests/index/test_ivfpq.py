"""The compressed on-disk index type `ivfpq` (issue 15): build and query round trips, a
moved or copied folder, a fresh process, add/delete refused, hybrid search, info, the
parameters' checks, crash safety and recall against flat with the real MiniLM."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.corpus import Record
from semsearch.errors import ConfigError, IndexFolderError
from semsearch.index import IndexStore
from semsearch.index.types import ivfpq
from semsearch.search import SearchEngine
from tests.index_writer import HashEncoder, make_records

runner = CliRunner()
# Small enough for FAISS to train without warnings on 1,000 vectors: 8 lists need 312
# training points, 4-bit codebooks 624.
SMALL = {"nlist": 8, "M": 8, "nbits": 4, "nprobe": 8}
FILES = {
    "manifest.json",
    "records.sqlite",
    "vectors.faiss",
    "vectors.ivfdata",
    "vectors.f16.npy",
    "vectors.ids.npy",
    "generic.npy",
    "lexical.json",
    "lexical.npz",
}


def hits(store: IndexStore, queries: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    return [[(record.id, score) for record, score in found] for found in store.search(queries, k)]


@pytest.fixture
def shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several shards from 1,000 vectors, so the parallel fill and the merge are exercised."""
    monkeypatch.setattr(ivfpq, "SHARD_VECTORS", 300)


def build(path: Path, count: int = 1000, **params: int) -> IndexStore:
    return IndexStore.build(
        path, [make_records(count)], HashEncoder(), index_type="ivfpq", params={**SMALL, **params}
    )


def test_exhaustive_reranking_gives_flat_search_exactly(tmp_path: Path, shards: None) -> None:
    store = build(tmp_path / "pq", rerank=1000)
    flat = IndexStore.build(
        tmp_path / "flat", [make_records(1000)], HashEncoder(), index_type="flat"
    )
    queries = HashEncoder().encode([f"question {i}" for i in range(20)] + ["text r5"])
    got, expected = hits(store, queries), hits(flat, queries)
    assert [[i for i, _ in row] for row in got] == [[i for i, _ in row] for row in expected]
    assert np.allclose(
        [[s for _, s in r] for r in got], [[s for _, s in r] for r in expected], atol=2e-3
    )
    assert got[-1][0][0] == "r5"
    assert store.manifest.index.faiss_factory == "IVF8,PQ8x4"
    assert store.manifest.index.params == {**SMALL, "opq": 0, "rerank": 1000, "hnsw_quantizer": 0}
    assert {p.name for p in store.path.iterdir()} == FILES  # no shard file is left
    assert set(store.manifest.checksums) == FILES - {"manifest.json"}


def test_a_moved_or_copied_folder_answers_the_same(tmp_path: Path, shards: None) -> None:
    store = build(tmp_path / "pq")
    queries = HashEncoder().encode(["text r5", "text r999", "anything"])
    before = hits(store, queries)
    store.close()
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(tmp_path / "pq", moved)
    copied = tmp_path / "copy"
    shutil.copytree(moved, copied)
    shutil.rmtree(moved)  # the copy must not read the original's lists
    with IndexStore.open(copied) as reopened:
        assert hits(reopened, queries) == before
        assert before[0][0][0] == "r5" and before[1][0][0] == "r999"


def test_opening_from_many_threads_leaves_stdout_working(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Opening hides FAISS's printf output by swapping file descriptor 1; concurrent
    opens (a server's threads) must each put it back."""
    from concurrent.futures import ThreadPoolExecutor

    build(tmp_path / "pq").close()

    def open_and_search(_: int) -> str:
        with IndexStore.open(tmp_path / "pq") as store:
            return hits(store, HashEncoder().encode(["text r7"]))[0][0][0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(open_and_search, range(32))) == {"r7"}
    capfd.readouterr()
    os.write(1, b"still here\n")
    assert capfd.readouterr().out == "still here\n"


def test_add_and_delete_refuse_and_say_to_rebuild(tmp_path: Path) -> None:
    store = build(tmp_path / "pq")
    version = store.version
    message = "rebuild it with `semsearch index` from the changed corpus"
    with pytest.raises(IndexFolderError, match=f"cannot add entries .*{re.escape(message)}"):
        store.add([make_records(3, "new")], HashEncoder())
    with pytest.raises(IndexFolderError, match=f"cannot delete entries .*{re.escape(message)}"):
        store.delete(["r1"])
    assert IndexStore.current_version(store.path) == version and store.count == 1000


def test_a_calibrated_threshold_is_stored_and_the_lists_shared(tmp_path: Path) -> None:
    from semsearch.index.threshold import calibrated

    store = build(tmp_path / "pq")
    queries = HashEncoder().encode(["text r5", "anything"])
    before = hits(store, queries)
    store.set_threshold(calibrated(0.5, "by hand", store.count))
    assert store.manifest.threshold is not None and store.manifest.threshold["value"] == 0.5
    assert hits(store, queries) == before
    with IndexStore.open(store.path) as reopened:
        assert hits(reopened, queries) == before
    assert {p.name for p in store.path.iterdir()} == FILES


def test_a_failed_rebuild_leaves_the_previous_index(tmp_path: Path) -> None:
    store = build(tmp_path / "pq")
    queries = HashEncoder().encode(["text r7"])
    before = hits(store, queries)
    with pytest.raises(RuntimeError, match="encoder failed"):
        IndexStore.build(
            store.path,
            [make_records(500), make_records(500, "s")],
            HashEncoder(fail_on_call=2),
            index_type="ivfpq",
            params=SMALL,
        )
    with IndexStore.open(store.path) as reopened:
        assert hits(reopened, queries) == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["pq"]


def test_a_corrupt_list_file_is_refused(tmp_path: Path) -> None:
    path = build(tmp_path / "pq").path
    data = bytearray((path / "vectors.ivfdata").read_bytes())
    data[100] ^= 0xFF
    (path / "vectors.ivfdata").write_bytes(bytes(data))
    with pytest.raises(IndexFolderError, match=r"vectors\.ivfdata in .* is corrupt"):
        IndexStore.open(path)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nprob": 4}, "unknown ivfpq index parameter(s) nprob: valid ones are nlist, M, nbits"),
        ({"M": 5}, "ivfpq: M=5 must divide the vectors' dimension 32"),
        ({"opq": 2}, "opq must be 0 (off) or 1 (on), got 2"),
        ({"nbits": 17}, "nbits must be between 1 and 16, got 17"),
        ({"rerank": -1}, "ivfpq parameter rerank must be a whole number of 0 or more, got -1"),
        ({"nlist": 5000}, "nlist=5000 needs at least that many vectors to train"),
        ({"hnsw_quantizer": 1}, "hnsw_quantizer must be 0 (a flat coarse quantizer) or the"),
    ],
)
def test_bad_parameters_are_named(tmp_path: Path, params: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        build(tmp_path / "pq", 100, **params)
    assert message in str(failure.value)
    assert not (tmp_path / "pq").exists()


def test_default_parameters_follow_the_corpus_size() -> None:
    assert ivfpq.IVFPQ.resolve_params({}, 50_000, 384) == {
        "nlist": 894,
        "M": 48,
        "nbits": 8,
        "nprobe": 178,
        "opq": 0,
        "rerank": 200,
        "hnsw_quantizer": 0,
    }
    with_opq = ivfpq.IVFPQ.resolve_params({"opq": 1, "rerank": 0}, 1000, 768)
    assert ivfpq.IVFPQ.factory(with_opq) == "OPQ96,IVF25,PQ96x8"
    huge = ivfpq.IVFPQ.resolve_params({}, 100_000_000, 384)
    assert (huge["nlist"], huge["hnsw_quantizer"]) == (40_000, 32)
    assert ivfpq.IVFPQ.factory(huge) == "IVF40000_HNSW32,PQ48x8"


FAQ = [
    Record("pw", "How do I reset my password?", "Use the reset link on the sign-in page.", {}),
    Record("pdf", "Can I export notes as PDF?", "Choose File > Export > PDF.", {}),
    Record("print", "How do I print a note?", "Choose File > Print.", {}),
]
FIELDS = {"text": "question", "answer": "answer", "id": "id"}


def test_hybrid_search_on_ivfpq_scores_every_candidate_exactly(tmp_path: Path) -> None:
    corpus = [*FAQ, *make_records(997)]
    stores = {
        kind: IndexStore.build(
            tmp_path / kind,
            [corpus],
            HashEncoder(),
            index_type=kind,
            params=SMALL if kind == "ivfpq" else None,
            fields=FIELDS,
        )
        for kind in ("ivfpq", "flat")
    }
    assert (tmp_path / "ivfpq" / "second.ivfdata").is_file()
    config = SearchConfig(threshold="none", dedupe=False)
    results = {
        kind: SearchEngine(store, HashEncoder(), config).query("How do I print my notes?", k=10)
        for kind, store in stores.items()
    }
    got, expected = results["ivfpq"].hits, results["flat"].hits
    assert results["ivfpq"].mode == "hybrid"
    assert [h.id for h in got[:3]] == [h.id for h in expected[:3]]
    for mine, theirs in zip(got, expected, strict=True):
        if mine.id == theirs.id:
            assert mine.scores == pytest.approx(theirs.scores, abs=2e-3)
    # a candidate the dense search did not list is scored from the kept vectors
    vectors, q = stores["ivfpq"].vectors, HashEncoder().encode(["x"])[0]
    exact = HashEncoder().encode([r.text for r in corpus[:10]]) @ q
    assert vectors.scores_of(q, np.arange(1, 11)) == pytest.approx(exact, abs=2e-3)


def _cli_index(tmp_path: Path, tiny_bert: Path) -> Path:
    corpus = tmp_path / "faq.csv"
    rows = ["id,question,answer"] + [
        f"q{i},question number {i} about topic {i % 37},a{i}" for i in range(1000)
    ]
    corpus.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "ivfpq.toml"
    params = ", ".join(f"{k} = {v}" for k, v in SMALL.items())
    config.write_text(f'[index]\ntype = "ivfpq"\nparams = {{ {params} }}\n', encoding="utf-8")
    out = tmp_path / "idx"
    done = runner.invoke(
        app,
        [
            "index",
            str(corpus),
            "-o",
            str(out),
            "--config",
            str(config),
            "--encoder",
            "bert",
            "--model",
            str(tiny_bert),
            "--pooling",
            "mean",
            "-q",
        ],
    )
    assert done.exit_code == 0, done.output
    return out


def test_cli_build_query_in_a_fresh_process_info_and_refusals(
    tmp_path: Path, tiny_bert: Path
) -> None:
    out = _cli_index(tmp_path, tiny_bert)
    moved = tmp_path / "moved"
    out.rename(moved)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "semsearch",
            "query",
            str(moved),
            "question number 12 about topic 12",
            "--json",
            "-k",
            "3",
            "--threshold",
            "none",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)  # FAISS's progress lines stay off stdout
    assert answer["results"][0]["id"] == "q12" and len(answer["results"]) == 3
    info = runner.invoke(app, ["info", str(moved), "--json"])
    assert info.exit_code == 0, info.output
    shown = json.loads(info.stdout)
    assert shown["index"]["type"] == "ivfpq"
    assert shown["files"]["vectors.ivfdata"] == (moved / "vectors.ivfdata").stat().st_size > 0
    assert shown["files"]["second.f16.npy"] == (moved / "second.f16.npy").stat().st_size
    human = runner.invoke(app, ["info", str(moved)])
    assert "ivfpq (IVF8,PQ8x4)" in human.output
    for args in (
        ["delete", str(moved), "q1"],
        ["add", str(moved), str(tmp_path / "faq.csv"), "-q"],
    ):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 1
        assert refused.stderr.strip().count("\n") == 0
        assert "rebuild it with `semsearch index`" in refused.stderr
