"""Evaluation: metrics against hand-computed cases and reference implementations, the
readers, and each evaluation on small data (the tiny BERT) or the real MiniLM."""

from __future__ import annotations

import importlib
import math
import random

import numpy as np
import pytest

from semsearch.encoders import load_encoder
from semsearch.errors import InputError, MissingExtraError
from semsearch.evaluation import (
    INSTALL,
    accuracy,
    average_precision_at_k,
    evaluate_rankings,
    macro_f1,
    ndcg_at_k,
    pearson,
    query_metrics,
    rankdata,
    read_labelled,
    read_qrels,
    read_sts,
    recall_at_k,
    reciprocal_rank_at_k,
    spearman,
)
from semsearch.evaluation.common import encode_unique
from semsearch.evaluation.deps import require
from semsearch.evaluation.retrieval import BeirFolder
from semsearch.evaluation.sts import evaluate_sts
from semsearch.evaluation.sweep import layer_choices, run_sweep
from tests.conftest import shared_data


# -- correlations -------------------------------------------------------------------------
def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert rankdata([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]
    assert rankdata([2.0, 1.0]).tolist() == [2.0, 1.0]


def test_spearman_with_ties_hand_computed():
    # ranks x: 1, 2.5, 2.5, 4; ranks y: 1, 3, 2, 4 -> 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9), abs=1e-12)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear


def test_pearson_hand_computed_and_constant_is_nan():
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / math.sqrt(228), abs=1e-12)
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))
    assert math.isnan(spearman([1, 1], [1, 2]))


def test_correlations_match_scipy_with_many_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 6, size=300).astype(float)  # STS-like 0..5 with heavy ties
    predicted = np.round(gold + rng.normal(0, 1.5, size=300), 1)
    assert spearman(gold, predicted) == pytest.approx(
        stats.spearmanr(gold, predicted)[0], abs=1e-12
    )
    assert pearson(gold, predicted) == pytest.approx(stats.pearsonr(gold, predicted)[0], abs=1e-12)


# -- retrieval ----------------------------------------------------------------------------
RELEVANCE = {"d1": 1, "d3": 2, "d4": 1, "d9": 0}  # d9 judged not relevant


def test_graded_ndcg_hand_computed():
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # gains 2, 1, 1
    ranking = ["d1", "d2", "d3"]  # gains 1, 0, 2
    found = 1 / math.log2(2) + 2 / math.log2(4)
    assert ndcg_at_k(ranking, RELEVANCE, 10) == pytest.approx(found / ideal)
    # the cutoff applies to both: the ideal at 2 is gains 2 and 1
    assert ndcg_at_k(ranking, RELEVANCE, 2) == pytest.approx(1 / (2 + 1 / math.log2(3)))
    assert ndcg_at_k(["d3", "d1", "d4"], RELEVANCE, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["d9", "d2"], RELEVANCE, 10) == 0.0


def test_several_relevant_documents():
    ranking = ["d2", "d1", "d5", "d3"]  # relevant at ranks 2 and 4, d4 never found
    assert reciprocal_rank_at_k(ranking, RELEVANCE, 10) == 0.5
    assert reciprocal_rank_at_k(ranking, RELEVANCE, 1) == 0.0
    assert recall_at_k(ranking, RELEVANCE, 1) == 0.0
    assert recall_at_k(ranking, RELEVANCE, 10) == pytest.approx(2 / 3)
    assert average_precision_at_k(ranking, RELEVANCE, 100) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision_at_k(ranking, RELEVANCE, 3) == pytest.approx((1 / 2) / 3)
    metrics = query_metrics(ranking, RELEVANCE)
    assert list(metrics) == ["ndcg@10", "mrr@10", "recall@1", "recall@10", "map@100"]
    ideal = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics["ndcg@10"] == pytest.approx((1 / math.log2(3) + 2 / math.log2(5)) / ideal)


def test_queries_without_relevant_documents_are_skipped():
    qrels = {"q1": {"d1": 1}, "q2": {"d7": 0}, "q3": {"d2": 1, "d3": 1}}
    rankings = {"q1": ["d1", "d2"], "q2": ["d7"]}  # q3 retrieved nothing: it scores 0
    means, per_query = evaluate_rankings(rankings, qrels)
    assert list(per_query) == ["q1", "q3"]
    assert per_query["q3"] == dict.fromkeys(per_query["q3"], 0.0)
    assert means["mrr@10"] == 0.5 and means["ndcg@10"] == 0.5 and means["recall@1"] == 0.5
    with pytest.raises(ValueError, match="no query has a relevant document"):
        evaluate_rankings(rankings, {"q2": {"d7": 0}})
    with pytest.raises(ValueError, match="more than once"):
        query_metrics(["d1", "d1"], {"d1": 1})
    with pytest.raises(ValueError, match="unknown metric"):
        query_metrics(["d1"], {"d1": 1}, ["precision@5"])


def test_retrieval_metrics_match_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec_eval is an optional reference")
    rng = random.Random(7)
    docs = [f"d{i:03d}" for i in range(150)]
    qrels, run = {}, {}
    for q in range(40):
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[f"q{q}"] = {doc: rng.choice([0, 1, 1, 2, 3]) for doc in judged}
        retrieved = rng.sample(docs, 120)
        run[f"q{q}"] = {doc: 1.0 - i / 1000 for i, doc in enumerate(retrieved)}  # distinct
    measures = {"ndcg_cut.10", "recall.1", "recall.10", "map_cut.100"}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: dict(list(scores.items())[:10]) for q, scores in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    _, ours = evaluate_rankings({q: list(scores) for q, scores in run.items()}, qrels)
    assert ours
    for query, metrics in ours.items():
        expected = reference[query]
        assert metrics["ndcg@10"] == pytest.approx(expected["ndcg_cut_10"], abs=1e-9)
        assert metrics["recall@1"] == pytest.approx(expected["recall_1"], abs=1e-9)
        assert metrics["recall@10"] == pytest.approx(expected["recall_10"], abs=1e-9)
        assert metrics["map@100"] == pytest.approx(expected["map_cut_100"], abs=1e-9)
        assert metrics["mrr@10"] == pytest.approx(reciprocal[query]["recip_rank"], abs=1e-9)


# -- classification -----------------------------------------------------------------------
def test_accuracy_and_macro_f1_hand_computed():
    truth, predicted = ["a", "a", "b", "c"], ["a", "b", "b", "b"]
    assert accuracy(truth, predicted) == 0.5
    # F1: a = 2*1/(2+1), b = 2*1/(1+3), c = 0
    assert macro_f1(truth, predicted) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y, p = (
        rng.integers(0, 7, 200).astype(str).tolist(),
        rng.integers(0, 8, 200).astype(str).tolist(),
    )
    assert macro_f1(y, p) == pytest.approx(metrics.f1_score(y, p, average="macro"), abs=1e-12)
    with pytest.raises(ValueError):
        accuracy([], [])


# -- readers ------------------------------------------------------------------------------
STSB = (
    "main-captions\tMSRvid\t2012test\t0001\t5.000\t"
    "A plane is taking off.\tAn air plane is taking off.\n"
    'main-news\theadlines\t2015\t0002\t1.5\tHe said "no.\tShe left.\tsource-x\tlicence-y\n'
    "main-forums\tdeft\t2014\t0003\t0.25\tA cat.\tA plane is taking off.\n"
)


def test_read_sts_benchmark_splits_on_tabs_with_extra_columns(tmp_path):
    path = tmp_path / "sts-dev.csv"
    path.write_text(STSB, encoding="utf-8")
    pairs = read_sts(path)
    assert len(pairs) == 3 and pairs.scores.tolist() == [5.0, 1.5, 0.25]
    assert pairs.sentence1[1] == 'He said "no.' and pairs.sentence2[1] == "She left."
    assert read_sts(tmp_path, split="dev").path == path  # a folder: its split file
    assert len(read_sts(path, limit=2)) == 2
    with pytest.raises(InputError, match="without a 'test' split"):
        read_sts(tmp_path)


def test_read_sts_csv_and_tsv_with_header(tmp_path):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        'score,sentence1,sentence2\n4.0,"Hi, there",Hello\n1,A cat,"A ""dog"""\n', encoding="utf-8"
    )
    pairs = read_sts(csv_file)
    assert pairs.sentence1 == ["Hi, there", "A cat"] and pairs.sentence2 == ["Hello", 'A "dog"']
    assert pairs.scores.tolist() == [4.0, 1.0]
    tsv_file = tmp_path / "pairs.tsv"
    tsv_file.write_text('sentence1\tsentence2\tscore\n"a\tb\t1\nc\td\t2\n', encoding="utf-8")
    assert read_sts(tsv_file).sentence1 == ['"a', "c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tb\tc\n", "line 1: 3 tab-separated fields"),
        (
            "g\tf\ty\ti\t5\ts1\ts2\ng\tf\ty\ti\tfive\ts1\ts2\n",
            "line 2: score 'five' is not a number",
        ),
        ("g\tf\ty\ti\t5\ts1\ts2\n", "at least 2 sentence pairs"),
        ("g\tf\ty\ti\t3\ts1\ts2\ng\tf\ty\ti\t3\ts3\ts4\n", "every gold score is 3.0"),
        ("", "is empty"),
    ],
)
def test_read_sts_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_sts(path)


def test_read_sts_refuses_bad_utf8_and_missing_file(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"g\tf\ty\ti\t5\ts1\ts2\ng\tf\ty\ti\t4\t\xff\ts2\n")
    with pytest.raises(InputError, match="line 2: not valid UTF-8"):
        read_sts(path)
    with pytest.raises(InputError, match="not found"):
        read_sts(tmp_path / "nope.tsv")


def test_read_labelled_tab_and_csv(tmp_path):
    sst = tmp_path / "sentiment-train"
    sst.write_text("a fine film \t1\nawful , just awful\t0\n\n", encoding="utf-8")
    data = read_labelled(sst)
    assert data.texts == ["a fine film", "awful , just awful"] and data.labels == ["1", "0"]
    banking = tmp_path / "train.csv"
    banking.write_text(
        'text,category\n"Where is my card, please?",card_arrival\n"two\nlines",top_up\n',
        encoding="utf-8",
    )
    data = read_labelled(banking)
    assert data.texts == ["Where is my card, please?", "two\nlines"]
    assert data.labels == ["card_arrival", "top_up"]
    other = tmp_path / "other.csv"
    other.write_text("utterance,intent,extra\nhi,greet,x\n", encoding="utf-8")
    assert read_labelled(other).labels == ["greet"]
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("text,topic\nhi,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="no label column among text, topic; name the label field"):
        read_labelled(unlabelled)
    bad = tmp_path / "bad.tsv"
    bad.write_text("no label here\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: expected sentence<TAB>label"):
        read_labelled(bad)
    with pytest.raises(InputError, match="has no column 'topic'"):
        read_labelled(banking, label_field="topic")


def test_beir_folder_checks(tmp_path):
    with pytest.raises(InputError, match=r"corpus\.jsonl, queries\.jsonl, qrels/test\.tsv missing"):
        BeirFolder.open(tmp_path)
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "x?"}\n', encoding="utf-8")
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td1\t1\n")
    with pytest.raises(InputError, match=r"qrels/test.tsv missing \(qrels splits here: dev\)"):
        BeirFolder.open(tmp_path)
    with pytest.raises(InputError, match=r"1 query id\(s\) missing from queries\.jsonl"):
        BeirFolder.open(tmp_path, "dev")
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t2\nq1\td2\t0\n")
    assert read_qrels(tmp_path / "qrels" / "test.tsv") == {"q1": {"d1": 2, "d2": 0}}
    assert BeirFolder.open(tmp_path).judged == ["q1"]


# -- evaluations --------------------------------------------------------------------------
class CountingEncoder:
    """A deterministic fake: a text's vector comes from its length and vowels."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.truncated = 0
        self.fingerprint = {"kind": "fake", "model": "counting", "pooling": "none", "dim": 2}

    def encode(self, texts, batch_size=None, show_progress=None):
        self.seen.extend(texts)
        return np.array([[len(t) + 1.0, sum(c in "aeiou" for c in t) + 0.5] for t in texts])


def test_sts_encodes_each_distinct_sentence_once(tmp_path):
    path = tmp_path / "sts.tsv"
    path.write_text(STSB, encoding="utf-8")
    encoder = CountingEncoder()
    result = evaluate_sts(encoder, read_sts(path))  # type: ignore[arg-type]
    assert sorted(encoder.seen) == sorted(set(encoder.seen)) and len(encoder.seen) == 5
    vectors = encoder.encode(["A plane is taking off.", "An air plane is taking off."])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert result.similarities[0] == pytest.approx(float(unit[0] @ unit[1]))
    assert result.pairs == 3 and result.sentences == 5
    data = result.to_json()
    assert data["spearman"] == pytest.approx(spearman([5.0, 1.5, 0.25], result.similarities))


def test_encode_unique_maps_rows_back():
    encoder = CountingEncoder()
    vectors, rows, _ = encode_unique(encoder, ["b", "a", "b", "c", "a"])  # type: ignore[arg-type]
    assert encoder.seen == ["b", "a", "c"] and rows.tolist() == [0, 1, 0, 2, 1]
    assert vectors.shape == (3, 2)


def test_require_names_the_extra(monkeypatch):
    real = importlib.import_module

    def fake(name, *args):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingExtraError) as caught:
        require("sklearn", "eval classify")
    assert (
        str(caught.value) == f"eval classify needs scikit-learn, which is not installed: {INSTALL}"
    )
    assert "\n" not in str(caught.value)


def test_layer_choices_cover_every_layer_and_the_usual_combinations():
    rows = layer_choices(6)
    assert [r.layers for r in rows[:7]] == [(i,) for i in range(7)]
    assert rows[0].label == "0 (embeddings)" and rows[5].label == "5 (-2, bert-as-service)"
    assert rows[6].label == "6 (-1, last)"
    assert (rows[7].layers, rows[7].combine) == ((-4, -3, -2, -1), "sum")
    assert (rows[8].layers, rows[8].combine) == ((-4, -3, -2, -1), "concat")
    assert [r.label for r in layer_choices(2)[3:]] == ["last 2 summed", "last 2 concat"]


@pytest.mark.data
def test_sweep_cells_equal_the_encoder_with_that_setting(tiny_bert):
    pairs = read_sts(shared_data("stsb"), split="dev", limit=60)
    encoder = load_encoder(kind="bert", model=str(tiny_bert))
    result = run_sweep(encoder, pairs, show_progress=False)  # type: ignore[arg-type]
    labels = [row.label for row in result.rows]
    assert labels == ["0 (embeddings)", "1 (-2, bert-as-service)", "2 (-1, last)",
                      "last 2 summed", "last 2 concat"]  # fmt: skip
    assert result.poolings == ["cls", "pooler", "mean", "max", "mean_max", "last"]
    assert math.isnan(result.table[0, 0])  # layer 0's [CLS] is one vector for every text
    assert np.isnan(result.table[:, 1]).sum() == len(labels) - 1  # pooler: last layer only
    for row, column, settings in [
        (2, 2, {"pooling": "mean"}),
        (1, 0, {"pooling": "cls", "layers": "-2"}),
        (2, 1, {"pooling": "pooler"}),
        (0, 3, {"pooling": "max", "layers": "0"}),
        (4, 4, {"pooling": "mean_max", "layers": "-2,-1", "layer_combine": "concat"}),
        (3, 5, {"pooling": "last", "layers": "-2,-1", "layer_combine": "sum"}),
    ]:
        single = evaluate_sts(load_encoder(kind="bert", model=str(tiny_bert), **settings), pairs)
        assert result.table[row, column] == pytest.approx(single.spearman, abs=1e-6), settings
    data = result.to_json()
    best_row, best_column = result.best
    assert data["best"]["pooling"] == result.poolings[best_column]
    assert data["best"]["spearman"] == np.nanmax(result.table)
    assert data["rows"][best_row]["spearman"][data["best"]["pooling"]] == data["best"]["spearman"]


@pytest.fixture()
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads contend with other jobs
    and run several times slower; results do not depend on it beyond float noise."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.real
@pytest.mark.data
def test_sts_dev_matches_sentence_transformers(minilm_folder, stsb_dev_minilm, one_thread):
    """Our pipeline and sentence-transformers' own encode + scipy give the same Spearman."""
    stats = pytest.importorskip("scipy.stats")
    from sentence_transformers import SentenceTransformer

    pairs = read_sts(shared_data("stsb"), split="dev")
    ours = stsb_dev_minilm  # evaluate_sts(load_encoder(), pairs), shared by the run
    assert ours.encoder["backend"] == "onnx" and ours.file == str(pairs.path)
    model = SentenceTransformer(str(minilm_folder), device="cpu")
    unique = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))
    vectors = dict(
        zip(unique, model.encode(unique, batch_size=64, convert_to_numpy=True), strict=True)
    )
    cosine = [
        float(
            np.dot(vectors[a], vectors[b])
            / (np.linalg.norm(vectors[a]) * np.linalg.norm(vectors[b]))
        )
        for a, b in zip(pairs.sentence1, pairs.sentence2, strict=True)
    ]
    assert ours.pairs == 1500
    assert ours.spearman == pytest.approx(stats.spearmanr(pairs.scores, cosine)[0], abs=1e-4)
    assert ours.pearson == pytest.approx(stats.pearsonr(pairs.scores, cosine)[0], abs=1e-4)
