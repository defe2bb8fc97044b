"""`semsearch index --engine ray` on a local Ray (2 CPUs), and corpora split over files.

A Ray build must write the same index as a local one: records, vectors (to float
noise), BM25 arrays, manifest and fingerprint, also when a file is cut into parts; a
bad row or an id in two parts is refused as a local read refuses it; a killed driver
leaves the previous index; a killed worker is restarted and its part written again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.corpus import open_corpus
from semsearch.encoders import load_encoder
from semsearch.errors import InputError
from semsearch.index import IndexStore
from semsearch.index.types.coarse import hnsw_quantizer

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'semsearch[ray]')")

runner = CliRunner()
WORDS = [
    "account",
    "password",
    "reset",
    "export",
    "note",
    "sync",
    "offline",
    "phone",
    "share",
    "folder",
    "team",
    "invoice",
    "plan",
    "upgrade",
    "cancel",
    "refund",
    "login",
    "email",
    "backup",
    "restore",
    "tag",
    "search",
    "print",
    "import",
    "calendar",
    "reminder",
    "attach",
    "photo",
    "scan",
    "dark",
    "mode",
    "font",
    "language",
    "delete",
    "archive",
]


def run(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def faq_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Question/answer pairs of varied length (so batches pad differently)."""
    pick = random.Random(seed)
    return [
        {
            "id": f"e{n}",
            "question": " ".join(pick.choices(WORDS, k=pick.randint(3, 40))) + "?",
            "answer": " ".join(pick.choices(WORDS, k=pick.randint(2, 12))),
            "topic": pick.choice(WORDS),
        }
        for n in range(count)
    ]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = ["id,question,answer,topic"]
    lines += [f"{r['id']},{r['question']},{r['answer']},{r['topic']}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def local_ray(onnx_cache: Path, tiny_bert: Path) -> Iterator[Any]:
    """One local Ray for the module (started after the ONNX cache is set, so the
    workers inherit it); `semsearch index --engine ray` in this process joins it.

    One torch thread in each process, as `make test` runs it (tests/conftest.py): two
    OpenMP threads per process beside Ray's own on two cores make a 2-second torch
    build take twenty."""
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the Ray workers inherit it
    torch.set_num_threads(1)
    # the tiny BERT's ONNX export made here, once, where torch is loaded already: else
    # the first actors of an onnx build each import torch and export it (~10 s of CPU;
    # test_two_nodes.py's actors do, as each node of a new cluster does)
    load_encoder(kind="bert", model=str(tiny_bert), backend="onnx").prepare()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
    torch.set_num_threads(threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


@pytest.fixture(scope="module")
def ray_address(local_ray: Any) -> str:
    """The module's local Ray as a cluster that another process joins (`--address`)."""
    return str(local_ray.get_runtime_context().gcs_address)


ROWS = 2000  # in chunks of CHUNK: four chunks of a build, handed to the workers in turn
CHUNK = 500


@pytest.fixture(scope="module")
def corpus2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("corpus") / "faq.csv", faq_rows(ROWS))


@pytest.fixture(scope="module")
def small_chunks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --config preset that cuts the corpus into chunks of CHUNK rows."""
    config = tmp_path_factory.mktemp("config") / "chunks.toml"
    config.write_text(f"[index]\nchunk_size = {CHUNK}\n")
    return config


def tiny(tiny_bert: Path, backend: str) -> list[str]:
    return ["--encoder", "bert", "--model", str(tiny_bert), "--backend", backend]


def vectors_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ids and vectors a flat index holds, in the order they were added."""
    index = faiss.read_index(str(path))
    inner = faiss.downcast_index(index.index)
    return faiss.vector_to_array(index.id_map), inner.reconstruct_n(0, inner.ntotal)


def rows_of(folder: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(folder / "records.sqlite") as connection:
        return connection.execute(
            "SELECT rowid, id, text, answer, metadata, deleted FROM records ORDER BY rowid"
        ).fetchall()


def manifest_of(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_text())
    # times, float noise in the vectors, and the manifest's own checksum over both
    for key in ("created", "updated", "checksums", "manifest_sha256"):
        manifest.pop(key)
    # A Ray build keeps the fixed fusion (README, Past one machine): here the local
    # build's choice is that fusion too ("default"), so both rank alike.
    fusion = manifest.pop("fusion", None)
    assert fusion is None or fusion["origin"] == "default", fusion
    return manifest


@pytest.mark.parametrize("backend", ["torch"])  # onnx: the .jsonl tests below
def test_ray_build_writes_the_local_build(
    local_ray: Any,
    tiny_bert: Path,
    corpus2k: Path,
    small_chunks: Path,
    tmp_path: Path,
    backend: str,
) -> None:
    built = {}
    for engine in ("local", "ray"):
        workers = "1" if backend == "torch" else "2"  # each torch worker imports torch: slow
        extra = ["--workers", workers] if engine == "ray" else []
        folder = tmp_path / engine
        done = run(
            "index",
            corpus2k,
            "-o",
            folder,
            *tiny(tiny_bert, backend),
            "--config",
            small_chunks,
            "--index-type",
            "flat",
            "--engine",
            engine,
            *extra,
            "--json",
            "-q",
        )
        assert done.exit_code == 0, done.output
        built[engine] = folder
        summary = json.loads(done.stdout)
        assert (summary["count"], summary["index_type"]) == (ROWS, "flat")
    local, distributed = built["local"], built["ray"]
    assert rows_of(local) == rows_of(distributed)
    assert manifest_of(local) == manifest_of(distributed)
    for name in ("vectors.faiss", "second.faiss"):  # the second view: question + answer
        ids, matrix = vectors_of(local / name)
        other_ids, other = vectors_of(distributed / name)
        np.testing.assert_array_equal(ids, other_ids)
        assert matrix.shape == (ROWS, 32) and np.abs(matrix - other).max() < 1e-6
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend=backend)
    queries = encoder.encode([row["question"] for row in faq_rows(30, seed=1)])
    with IndexStore.open(local) as one, IndexStore.open(distributed) as two:
        assert one.manifest.encoder == two.manifest.encoder == encoder.fingerprint
        first, second = one.search(queries, 10), two.search(queries, 10)
    assert [[r.id for r, _ in hits] for hits in first] == [
        [r.id for r, _ in hits] for hits in second
    ]


def test_folder_glob_and_parquet_corpora(local_ray: Any, tiny_bert: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = faq_rows(900, seed=2)
    whole = write_csv(tmp_path / "whole.csv", rows)
    shards = tmp_path / "shards"
    shards.mkdir()
    for n, start in enumerate(range(0, 900, 300)):  # names sort as 0, 1, 2
        part = rows[start : start + 300]
        write_csv(shards / f"part-{n}.csv", part)
        pq.write_table(pa.Table.from_pylist(part), shards / f"part-{n}.parquet")
    (shards / "_SUCCESS").write_text("")  # markers and hidden files are not corpus files
    (shards / ".part-0.csv.crc").write_text("x")
    expected = list(open_corpus(whole))
    assert list(open_corpus(tmp_path / "shards" / "*.csv")) == expected
    assert list(open_corpus(tmp_path / "shards" / "part-?.parquet")) == expected
    folder = tmp_path / "idx"
    done = run(
        "index",
        tmp_path / "shards" / "*.parquet",
        "-o",
        folder,
        *tiny(tiny_bert, "onnx"),
        "--engine",
        "ray",
        "--workers",
        "2",
    )
    assert done.exit_code == 0, done.output
    assert "reading" in done.stderr and "3 files (part-0.parquet ... part-2.parquet)" in (
        done.stderr
    )
    assert "encoding on 2 Ray workers, 1 CPU each" in done.stderr
    with IndexStore.open(folder) as store:
        assert store.get(["e0", "e899"])["e899"].answer == rows[899]["answer"]
        assert store.count == 900 and store.manifest.fields["text"] == "question"


def test_row_number_ids_run_through_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": ""}\n{"text": "three"}\n')
    (tmp_path / "b.jsonl").write_text('{"text": "four"}\n\n{"text": "five"}\n')
    corpus = open_corpus(tmp_path)
    assert [(r.id, r.text) for r in corpus] == [
        ("1", "one"),
        ("3", "three"),
        ("4", "four"),
        ("5", "five"),
    ]
    assert corpus.skipped_empty == 1


def test_multi_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"the pattern .*nothing\*\.csv matches nothing$"):
        open_corpus(tmp_path / "nothing*.csv")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(InputError, match=r"the pattern .*\*\.md matches no corpus files"):
        open_corpus(tmp_path / "*.md")
    with pytest.raises(InputError, match=r"holds no corpus files \(.csv, .tsv, .jsonl, .txt, "):
        open_corpus(tmp_path)
    (tmp_path / "a.csv").write_text("question,answer\nq,a\n")
    (tmp_path / "b.jsonl").write_text('{"title": "q", "body": "a"}\n')
    with pytest.raises(InputError, match=r"b.jsonl is read with other fields than .*a.csv"):
        open_corpus(tmp_path)


def test_an_id_in_two_files_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    rows = faq_rows(4, seed=3)
    write_csv(tmp_path / "a.csv", rows[:2])
    write_csv(tmp_path / "b.csv", [rows[1], rows[3]])
    done = run("index", tmp_path, "-o", tmp_path / "idx", *tiny(tiny_bert, "onnx"))
    assert done.exit_code == 1
    assert (  # both places (issue 24 item 15)
        f"{tmp_path / 'b.csv'}, line 2: duplicate id 'e1' (first in {tmp_path / 'a.csv'}, line 3)"
    ) in done.stderr
    assert not (tmp_path / "idx").exists()


def test_engine_options_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_csv(tmp_path / "faq.csv", faq_rows(3))
    done = run("index", corpus, "-o", tmp_path / "idx", "--workers", "2", "--address", "auto")
    assert done.exit_code == 2
    assert "--address, --workers apply to --engine ray only" in done.stderr
    done = run("index", corpus, "-o", tmp_path / "idx", "--engine", "spark")
    assert done.exit_code == 2 and "unknown engine 'spark': choose local or ray" in done.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    done = run("index", corpus, "-o", tmp_path / "idx", "--engine", "ray")
    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [
        "semsearch: error: the ray engine needs Ray, which is not installed: "
        "pip install 'semsearch[ray]'"
    ]
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_cluster_is_one_line(tmp_path: Path, address: str) -> None:
    corpus = write_csv(tmp_path / "faq.csv", faq_rows(3))
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "semsearch",
            "index",
            str(corpus),
            "-o",
            str(tmp_path / "idx"),
            "--engine",
            "ray",
            "--address",
            address,
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"semsearch: error: cannot reach the Ray cluster at {address}: Connection refused "
        "(option --address)"
    ]
    assert time.monotonic() - started < 30 and not (tmp_path / "idx").exists()


def test_an_address_joins_a_running_cluster(
    ray_address: str, tiny_bert: Path, tmp_path: Path
) -> None:
    corpus = write_csv(tmp_path / "faq.csv", faq_rows(50))
    done = subprocess.run(  # a process of its own: the cluster is another process's
        [sys.executable, "-m", "semsearch", "index", str(corpus), "-o",
         str(tmp_path / "idx"), *tiny(tiny_bert, "onnx"), "--engine", "ray",
         "--address", ray_address, "--workers", "2", "--json"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["count"] == 50
    assert done.stderr.splitlines()[1:] == ["encoding on 2 Ray workers, 1 CPU each"]


def test_an_address_that_is_not_ray_gives_up_in_seconds(tmp_path: Path) -> None:
    corpus = write_csv(tmp_path / "faq.csv", faq_rows(3))
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never speaks Ray
        address = f"127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "semsearch", "index", str(corpus), "-o",
             str(tmp_path / "idx"), "--engine", "ray", "--address", address, "-q"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        took = time.monotonic() - started
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"semsearch: error: cannot reach the Ray cluster at {address}: no Ray cluster "
        "answered there within 5 seconds (option --address)"
    ]
    assert took < 60 and not (tmp_path / "idx").exists()


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


EQUAL_ROWS = 5000
"""The .jsonl corpus that a Ray flat build must assemble exactly as the local engine
builds it (issue 25: "a flat build of 5k entries answers exactly as the local engine
does")."""


@pytest.fixture(scope="module")
def jsonl5k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EQUAL_ROWS rows as .jsonl: cut into byte ranges, a part per worker and more."""
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "faq.jsonl", faq_rows(EQUAL_ROWS))


@pytest.fixture(scope="module")
def local_flat(tiny_bert: Path, jsonl5k: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("local") / "flat"
    done = run(
        "index", jsonl5k, "-o", folder, *tiny(tiny_bert, "onnx"), "--index-type", "flat", "-q"
    )
    assert done.exit_code == 0, done.output
    return folder


def lexical_of(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "lexical.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


def top10(folder: Path, queries: np.ndarray) -> list[list[str]]:
    with IndexStore.open(folder) as store:
        return [[record.id for record, _ in hits] for hits in store.search(queries, 10)]


def test_shards_of_a_cut_file_assemble_the_local_build(
    local_ray: Any, tiny_bert: Path, jsonl5k: Path, local_flat: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ray"
    done = run("index", jsonl5k, "-o", folder, *tiny(tiny_bert, "onnx"), "--index-type", "flat",
               "--engine", "ray", "--workers", "2", "-q", "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert rows_of(folder) == rows_of(local_flat)
    assert manifest_of(folder) == manifest_of(local_flat)
    for name in ("vectors.faiss", "second.faiss"):
        ids, matrix = vectors_of(local_flat / name)
        other_ids, other = vectors_of(folder / name)
        np.testing.assert_array_equal(ids, other_ids)
        assert np.abs(matrix - other).max() < 1e-6
    ours, theirs = lexical_of(folder), lexical_of(local_flat)  # BM25: the same scores
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx")
    queries = encoder.encode([row["question"] for row in faq_rows(30, seed=1)])
    assert top10(folder, queries) == top10(local_flat, queries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ray"]  # no staging left


def test_an_ivfpq_build_on_ray_finds_what_a_local_one_finds(
    local_ray: Any, tiny_bert: Path, tmp_path: Path
) -> None:
    """With the HNSW coarse quantizer (a default from 4,096 lists, asked for here): the
    Ray tasks fill the lists through it as a local build's threads do."""
    corpus = write_jsonl(tmp_path / "faq.jsonl", faq_rows(600, seed=6))
    config = tmp_path / "hnsw.toml"
    config.write_text('[index]\ntype = "ivfpq"\nparams = { hnsw_quantizer = 32 }\n')
    encoder = load_encoder(kind="bert", model=str(tiny_bert), backend="onnx")
    queries = encoder.encode([row["question"] for row in faq_rows(40, seed=7)])
    found = {}
    for engine in ("local", "ray"):
        folder = tmp_path / engine
        extra = ["--workers", "2"] if engine == "ray" else []
        done = run("index", corpus, "-o", folder, *tiny(tiny_bert, "onnx"), "--config",
                   config, "--engine", engine, *extra, "-q")  # fmt: skip
        assert done.exit_code == 0, done.output
        found[engine] = top10(folder, queries)
        with IndexStore.open(folder) as store:
            assert store.manifest.index.faiss_factory == "IVF15_HNSW32,PQ4x8"
            assert hnsw_quantizer(store.vectors.index) is not None
    assert rows_of(tmp_path / "ray") == rows_of(tmp_path / "local")
    with IndexStore.open(tmp_path / "local") as store:  # exact: every kept vector scanned
        full, ids = np.asarray(store.vectors.full, dtype=np.float32), store.vectors.ids
        best = ids[np.argsort(-(queries @ full.T), axis=1, kind="stable")[:, :10]]
        exact = [{record.id for record in store.records_for(row.tolist()).values()} for row in best]
    recall = {
        engine: float(
            np.mean([len(want & set(got)) / 10 for want, got in zip(exact, hits, strict=True)])
        )
        for engine, hits in found.items()
    }
    assert recall["local"] > 0.5 and abs(recall["ray"] - recall["local"]) <= 0.02, recall
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir()
    )  # no shard or assembly file left in the folder


def test_row_number_ids_run_through_the_parts_of_a_txt_file(
    local_ray: Any, tiny_bert: Path, tmp_path: Path
) -> None:
    pick = random.Random(10)
    lines = [" ".join(pick.choices(WORDS, k=pick.randint(0, 12))) for _ in range(300)]
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(lines) + "\n")
    built = {}
    for engine in ("local", "ray"):
        extra = ["--engine", "ray", "--workers", "2"] if engine == "ray" else []
        done = run("index", corpus, "-o", tmp_path / engine, *tiny(tiny_bert, "onnx"),
                   "--index-type", "flat", *extra, "-q", "--json")  # fmt: skip
        assert done.exit_code == 0, done.output
        built[engine] = json.loads(done.stdout)
    assert rows_of(tmp_path / "ray") == rows_of(tmp_path / "local")  # ids: line numbers
    assert built["ray"]["skipped"] == built["local"]["skipped"] == lines.count("")


def test_an_id_in_two_parts_names_both_lines(
    local_ray: Any, tiny_bert: Path, tmp_path: Path
) -> None:
    rows = faq_rows(400, seed=8)
    rows[350]["id"] = rows[20]["id"]  # far apart: in two parts of the file
    corpus = write_jsonl(tmp_path / "faq.jsonl", rows)
    done = run("index", corpus, "-o", tmp_path / "idx", *tiny(tiny_bert, "onnx"),
               "--engine", "ray", "--workers", "2", "-q")  # fmt: skip
    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [
        f"semsearch: error: {corpus}, line 351: duplicate id 'e20' (first on line 21)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq.jsonl"]  # nothing swapped in


def test_a_bad_row_in_a_later_part_names_its_file_and_line(
    local_ray: Any, tiny_bert: Path, tmp_path: Path
) -> None:
    lines = [json.dumps(row) for row in faq_rows(400, seed=9)]
    lines[300] = lines[300][:-5]
    corpus = tmp_path / "faq.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    done = run("index", corpus, "-o", tmp_path / "idx", *tiny(tiny_bert, "onnx"),
               "--engine", "ray", "--workers", "2", "-q")  # fmt: skip
    assert done.exit_code == 1
    assert done.stderr.startswith(f"semsearch: error: {corpus}, line 301: bad JSON")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq.jsonl"]


def test_a_killed_worker_is_restarted_and_its_part_written_again(
    local_ray: Any, tiny_bert: Path, jsonl5k: Path, local_flat: Path, tmp_path: Path
) -> None:
    from semsearch.config import EncoderConfig
    from semsearch.distributed.cluster import RaySettings
    from semsearch.distributed.parts import Reading
    from semsearch.distributed.ray_engine import shard_pool

    config = EncoderConfig(kind="bert", model=str(tiny_bert), backend="onnx")
    corpus = open_corpus(jsonl5k)
    folder = tmp_path / "idx"
    killed: list[int] = []

    def kill_a_writer() -> None:  # the first worker seen writing a part dies at once
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for partial in tmp_path.glob("idx.tmp-*/shards/part-*.partial-*"):
                pid = int(partial.name.rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_a_writer)
    with shard_pool(config, RaySettings(workers=1), show_progress=False) as pool:
        watcher.start()
        store = pool.build(folder, corpus, Reading(corpus.fields), index_type="flat",
                           fields={"text": "question", "answer": "answer", "id": "id"},
                           chunk_size=CHUNK)  # fmt: skip
        store.close()
    watcher.join()
    assert killed and killed[0] in pool.pids
    assert rows_of(folder) == rows_of(local_flat)
    ids, matrix = vectors_of(local_flat / "vectors.faiss")
    other_ids, other = vectors_of(folder / "vectors.faiss")
    np.testing.assert_array_equal(ids, other_ids)
    assert np.abs(matrix - other).max() < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_killing_the_driver_leaves_the_previous_index(
    ray_address: str, tiny_bert: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "idx"
    model = tiny(tiny_bert, "onnx")
    small = write_csv(tmp_path / "small.csv", faq_rows(20, seed=4))
    done = run("index", small, "-o", folder, *model, "-q")
    assert done.exit_code == 0, done.output
    before = (folder / "manifest.json").read_text()
    big = write_csv(tmp_path / "big.csv", faq_rows(20000, seed=5))  # seconds on one worker
    driver = subprocess.Popen(
        [sys.executable, "-m", "semsearch", "index", str(big), "-o", str(folder), *model,
         "--engine", "ray", "--address", ray_address, "--workers", "1"],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert driver.stderr is not None
        for line in driver.stderr:  # the actors are up: encoding starts now
            if line.startswith("encoding on 1 Ray worker"):
                break
        else:
            raise AssertionError(f"the driver ended first ({driver.wait()})")
        deadline = time.monotonic() + 60
        staging: list[Path] = []
        while not staging and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the build's staging folder, a worker writing a shard in it
            staging = [s for s in tmp_path.glob("idx.tmp-*") if list(s.glob("shards/part-*"))]
        assert driver.poll() is None
        assert len(list(tmp_path.glob("idx.tmp-*"))) == 1 and len(staging) == 1
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
        with contextlib.suppress(ProcessLookupError):  # anything else the driver started
            os.killpg(driver.pid, signal.SIGKILL)
    assert (folder / "manifest.json").read_text() == before
    done = run("query", folder, rows_of(folder)[0][2], "--json", "-k", "1", "--threshold", "none")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["results"][0]["id"] == "e0"
    rebuilt = run("index", small, "-o", folder, *model, "-q")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert list(tmp_path.glob("idx.tmp-*")) == []  # the dead writer's folder is removed


def test_the_cli_and_the_library_never_import_ray_unless_asked() -> None:
    script = (
        "import sys, semsearch, semsearch.cli.main, semsearch.index, semsearch.corpus; "
        "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
