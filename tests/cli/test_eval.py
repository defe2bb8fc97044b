"""CLI: `semsearch eval sts|retrieval|sweep|classify` end to end, --json, and error paths."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.encoders import load_encoder
from tests.conftest import shared_data

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10", "map@100")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def run_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # one object and nothing else on stdout


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semsearch: error: "), result.stderr
    return lines[0]


@pytest.fixture()
def pairs_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        "sentence1,sentence2,score\n"
        "A man is eating food.,A man is eating a piece of bread.,4.2\n"
        "A man is eating food.,The sky is blue.,0.2\n"
        '"A cat, sitting",A cat sits.,4.8\n'
        "A woman plays guitar.,A man plays the flute.,1.4\n",
        encoding="utf-8",
    )
    return path


# -- sts ----------------------------------------------------------------------------------
def test_sts_json_and_text(pairs_csv, tiny_sbert):
    data = run_json("eval", "sts", pairs_csv, "--model", tiny_sbert)
    assert data["task"] == "sts" and data["pairs"] == 4 and data["sentences"] == 7
    assert -1 <= data["spearman"] <= 1 and -1 <= data["pearson"] <= 1
    assert data["encoder"]["model"] == str(tiny_sbert) and data["encoder"]["dim"] == 32
    text = run("eval", "sts", pairs_csv, "--model", tiny_sbert)
    assert text.exit_code == 0, text.output
    assert f"Spearman x100: {100 * data['spearman']:.2f}" in text.stdout
    assert f"Pearson  x100: {100 * data['pearson']:.2f}" in text.stdout


@pytest.mark.data
def test_sts_folder_split_limit_and_raw_bert(tiny_bert):
    data = run_json(
        "eval", "sts", shared_data("stsb"), "--split", "dev", "--limit", "30",
        "--encoder", "bert", "--model", tiny_bert, "--pooling", "cls", "--layers", "-2",
    )  # fmt: skip
    assert data["file"].endswith("sts-dev.csv") and data["pairs"] == 30
    assert data["encoder"]["pooling"] == "cls" and data["encoder"]["layers"] == [-2]


def test_sts_errors(tmp_path, pairs_csv, tiny_sbert):
    assert "STS file not found" in error_line(run("eval", "sts", tmp_path / "nope.tsv"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("g\tf\ty\ti\t5\ts1\ts2\ng\tf\ty\n", encoding="utf-8")
    assert "bad.tsv, line 2: 3 tab-separated fields" in error_line(run("eval", "sts", bad))
    line = error_line(run("eval", "sts", pairs_csv, "--model", tiny_sbert, "--pooling", "cls"))
    assert "use encoder kind bert" in line and line.endswith("(option --encoder)")
    limit = error_line(run("eval", "sts", pairs_csv, "--limit", "0"))
    assert "limit must be at least 1, got 0 (option --limit)" in limit


# -- retrieval ----------------------------------------------------------------------------
def _brute_force_ndcg10(folder, model) -> tuple[float, int]:
    """nDCG@10 computed from scratch: BEIR title+text, NumPy inner products, trec_eval ties."""
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    queries = {
        row["_id"]: row["text"]
        for row in map(json.loads, (folder / "queries.jsonl").open(encoding="utf-8"))
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        query, doc, level = line.split("\t")
        qrels.setdefault(query, {})[doc] = int(level)
    ids = np.array([doc["_id"] for doc in corpus])
    texts = [
        " ".join(p for p in (doc.get("title", ""), doc["text"]) if p.strip()) for doc in corpus
    ]
    encoder = load_encoder(model=str(model))
    documents = encoder.encode(texts)
    judged = [q for q, docs in qrels.items() if any(v > 0 for v in docs.values())]
    scores = encoder.encode([queries[q] for q in judged]) @ documents.T
    values = []
    for row, query in zip(scores, judged, strict=True):
        order = np.lexsort((-np.arange(len(ids)), -row))  # score desc (ids distinct here)
        gains = np.array([qrels[query].get(doc, 0) for doc in ids[order[:10]]], dtype=float)
        ideal = np.sort(np.array([v for v in qrels[query].values() if v > 0], float))[::-1][:10]
        discount = 1 / np.log2(np.arange(2, 12))
        values.append(float(gains @ discount[: len(gains)] / (ideal @ discount[: len(ideal)])))
    return float(np.mean(values)), len(judged)


@pytest.mark.data
def test_retrieval_covidqa_flat_equals_numpy_brute_force(tiny_sbert, tmp_path):
    folder = shared_data("covidqa_faq")
    per_query = tmp_path / "per-query.jsonl"
    data = run_json(
        "eval", "retrieval", folder, "--model", tiny_sbert, "--index-type", "flat",
        "--per-query", per_query, "--mode", "dense",
    )  # fmt: skip
    expected, judged = _brute_force_ndcg10(folder, tiny_sbert)
    assert data["mode"] == "dense"
    assert data["index_type"] == "flat" and data["corpus"] == 213 and data["queries"] == judged
    assert data["ndcg@10"] == pytest.approx(expected, abs=1e-6)
    assert all(0 <= data[name] <= 1 for name in METRICS)
    assert data["recall@1"] <= data["recall@10"] and data["mrr@10"] >= data["recall@1"]
    rows = [json.loads(line) for line in per_query.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == judged and data["per_query"] == str(per_query)
    for name in METRICS:
        assert np.mean([row[name] for row in rows]) == pytest.approx(data[name], abs=1e-5)
    first = rows[0]
    assert set(first) >= {"query_id", "query", "relevant", "hits", "first_relevant_rank"}
    assert len(first["hits"]) == 10 and first["hits"][0]["score"] >= first["hits"][1]["score"]


@pytest.mark.data
def test_retrieval_hnsw_and_text(tiny_sbert):
    result = run("eval", "retrieval", shared_data("covidqa_faq"), "--model", tiny_sbert,
                 "--index-type", "hnsw", "-k", "10")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "hnsw index of 213 documents, top 10 hits per query" in result.stdout
    for label in ("nDCG@10 x100:", "MRR@10 x100:", "Recall@1 x100:", "MAP@100 x100:"):
        assert label in result.stdout
    assert "MAP@100 only sees the top 10 hits" in result.stderr


def test_retrieval_ranks_every_document_without_dedupe(tiny_sbert, tmp_path):
    """Two documents with the same answer both count: no SearchEngine de-duplication."""
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "a", "title": "reset password", "text": "Use the link."}\n'
        '{"_id": "b", "title": "forgot password", "text": "Use the link."}\n'
        '{"_id": "c", "title": "export PDF", "text": "File > Export."}\n',
        encoding="utf-8",
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "password"}\n{"_id": "q2", "text": "unjudged"}\n', encoding="utf-8"
    )
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\ta\t1\nq1\tb\t1\nq3\tc\t0\n", encoding="utf-8"
    )
    data = run_json("eval", "retrieval", tmp_path, "--model", tiny_sbert, "-k", "3")
    assert data["recall@10"] == 1.0 and data["queries"] == 1 and data["skipped_queries"] == 1
    # q3 has no relevant document (nor a text): skipped; q2 is not judged: not evaluated


def test_retrieval_errors(tmp_path, tiny_sbert):
    line = error_line(run("eval", "retrieval", tmp_path))
    assert "is not a BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv missing" in line
    line = error_line(run("eval", "retrieval", tmp_path, "--index-type", "annoy"))
    assert "unknown index type 'annoy'" in line
    assert "k must be at least 1, got 0 (option -k)" in error_line(
        run("eval", "retrieval", tmp_path, "-k", "0")
    )


# -- sweep --------------------------------------------------------------------------------
@pytest.mark.data
def test_sweep_writes_png_whose_best_cell_matches_the_table(tiny_bert, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "sweep.png"
    args = ("eval", "sweep", shared_data("stsb"), "--limit", "40", "--model", tiny_bert)
    data = run_json(*args, "--plot", plot)
    content = plot.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 1000
    assert (
        data["plot"] == str(plot) and data["file"].endswith("sts-dev.csv") and data["pairs"] == 40
    )
    cells = {
        (row["label"], pooling): value
        for row in data["rows"]
        for pooling, value in row["spearman"].items()
        if value is not None
    }
    best_cell = max(cells, key=lambda cell: cells[cell])
    assert best_cell == (data["best"]["label"], data["best"]["pooling"])
    assert cells[best_cell] == data["best"]["spearman"]
    # the printed table marks the same cell, and only that one
    text = run(*args, "--plot", tmp_path / "again.png")
    assert text.exit_code == 0, text.output
    marked = [line for line in text.stdout.splitlines() if "*" in line and "(* = best)" not in line]
    assert len(marked) == 1 and marked[0].startswith(data["best"]["label"])
    column = data["poolings"].index(data["best"]["pooling"])
    cells_text = marked[0][len(data["best"]["label"]) :].split()
    assert cells_text[column] == f"{100 * data['best']['spearman']:.2f}*"
    assert (tmp_path / "again.png").read_bytes().startswith(PNG_SIGNATURE)


def test_sweep_without_matplotlib_names_the_extra(pairs_csv, monkeypatch, tmp_path):
    real = importlib.import_module

    def fake(name, *args):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    line = error_line(run("eval", "sweep", pairs_csv, "--plot", tmp_path / "s.png"))
    assert line.endswith("matplotlib, which is not installed: pip install 'semsearch[eval]'")


# -- classify -----------------------------------------------------------------------------
@pytest.mark.data
def test_classify_sst2_slice(tiny_sbert, tmp_path):
    pytest.importorskip("sklearn")
    folder = shared_data("sst2")
    test_file = tmp_path / "sentiment-test"
    lines = (folder / "sentiment-test").read_text(encoding="utf-8").splitlines()[:300]
    test_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = run_json("eval", "classify", folder / "sentiment-train", test_file,
                    "--model", tiny_sbert, "--limit-train", "400")  # fmt: skip
    assert data["train_size"] == 400 and data["train_total"] == 67349 and data["test_size"] == 300
    assert data["classes"] == 2 and data["seed"] == 0 and data["unseen_test_labels"] == 0
    assert 0 <= data["accuracy"] <= 1 and 0 <= data["macro_f1"] <= 1


@pytest.mark.data
def test_classify_banking77_csv_text(tiny_sbert, tmp_path):
    pytest.importorskip("sklearn")
    folder = shared_data("banking77")
    rows = (folder / "test.csv").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "test.csv"
    small.write_text("\n".join(rows[:201]) + "\n", encoding="utf-8")
    result = run("eval", "classify", folder / "train.csv", small, "--model", tiny_sbert,
                 "--limit-train", "800")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "800 of 10003, drawn at random with seed 0" in result.stdout
    assert "Accuracy x100:" in result.stdout and "Macro-F1 x100:" in result.stdout


def test_classify_errors(tmp_path, tiny_sbert):
    pytest.importorskip("sklearn")
    one_label = tmp_path / "train.tsv"
    one_label.write_text("good\t1\ngreat\t1\n", encoding="utf-8")
    line = error_line(run("eval", "classify", one_label, one_label, "--model", tiny_sbert))
    assert "a single label" in line
    assert "file not found" in error_line(run("eval", "classify", tmp_path / "x", one_label))


def test_classify_without_sklearn_names_the_extra(tmp_path, monkeypatch):
    real = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name, *a: (
            (_ for _ in ()).throw(ImportError(name))
            if name.startswith("sklearn")
            else real(name, *a)
        ),
    )
    line = error_line(run("eval", "classify", tmp_path / "a", tmp_path / "b"))
    assert "scikit-learn, which is not installed: pip install 'semsearch[eval]'" in line


def test_eval_help_lists_the_commands():
    result = run("eval", "--help")
    assert result.exit_code == 0
    for command in ("sts", "retrieval", "sweep", "classify"):
        assert command in result.stdout
