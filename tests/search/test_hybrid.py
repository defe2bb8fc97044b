"""Hybrid search (issue 12): the lexical part against bm25s itself, the fusion arithmetic
by hand, an index's parts kept in step by add and delete, old indexes in dense mode,
and the optional cross-encoder re-ranking."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.corpus import Record
from semsearch.errors import ConfigError
from semsearch.index import IndexStore
from semsearch.index.lexical import LexicalIndex
from semsearch.index.views import Parts
from semsearch.search import SearchEngine
from semsearch.search.fusion import convex, minmax, ranks, rrf
from tests.index_writer import HashEncoder

runner = CliRunner()

DOCS = [
    "How do I reset my password?",
    "Reset the router to factory settings",
    "Export my notes as PDF files",
    "The password must have twelve characters",
    "the of and",  # stop words only
    "Printing notes: choose File then Print",
]
FAQ = [
    Record("pw", "How do I reset my password?", "Use the reset link on the sign-in page.", {}),
    Record("pdf", "Can I export notes as PDF?", "Choose File > Export > PDF.", {}),
    Record("print", "How do I print a note?", "Choose File > Print.", {}),
    Record("dark", "Is there a dark mode?", "Yes: Settings > Appearance > Dark.", {}),
    Record("sync", "Why do my notes not sync?", "Check that you are signed in.", {}),
    Record("same", "Where are my files?", "Where are my files?", {}),
]
FIELDS = {"text": "question", "answer": "answer", "id": "id"}


def bm25s_scores(docs: list[str], question: str) -> np.ndarray:
    """The reference: bm25s with its own tokenizer, stop words and PyStemmer."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    model = bm25s.BM25()
    model.index(bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False))
    tokens = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, return_ids=False)[0]
    known = [token for token in tokens if token in model.vocab_dict]
    return model.get_scores(known) if known else np.zeros(len(docs))


@pytest.mark.parametrize(
    "question",
    ["reset password", "resetting passwords", "notes notes PDF", "the of", "zebra", ""],
)
def test_lexical_scores_equal_bm25s(question: str, tmp_path: Path) -> None:
    rowids = np.array([10, 3, 7, 1, 22, 5])
    built = LexicalIndex.build(DOCS, rowids)
    built.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    reference = bm25s_scores(DOCS, question)
    by_rowid = dict(zip(rowids.tolist(), reference.tolist(), strict=True))
    for index in (built, loaded):
        top, found = index.top(question, 3)
        assert index.scores_of(found, rowids).tolist() == pytest.approx(
            reference.tolist(), abs=1e-6
        )
        by_position = [by_rowid[r] for r in sorted(by_rowid)]  # entries are kept by rowid
        assert index.scores(question).tolist() == pytest.approx(by_position, abs=1e-6)
        expected = sorted((r for r, s in by_rowid.items() if s > 0), key=lambda r: -by_rowid[r])
        assert [rowid for rowid, _ in top] == expected[:3]
        assert [score for _, score in top] == pytest.approx([by_rowid[r] for r in expected[:3]])
        assert index.scores_of(found, np.array([999, 0])).tolist() == [0.0, 0.0]


def test_a_corpus_of_stop_words_has_an_empty_lexical_index(tmp_path: Path) -> None:
    index = LexicalIndex.build(["the of", "and a"], np.array([1, 2]))
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.scores("the password").tolist() == [0.0, 0.0]
    assert loaded.top("password", 5)[0] == []


def test_fusion_arithmetic_by_hand() -> None:
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]  # no information
    dense = np.array([1.2, 1.6, 1.0])  # sums of two cosines
    lexical = np.array([0.0, 2.0, 8.0])
    # 0.8 x minmax(dense) + 0.2 x minmax(lexical)
    expected = [0.8 * 1 / 3 + 0.2 * 0.0, 0.8 * 1.0 + 0.2 * 0.25, 0.8 * 0.0 + 0.2 * 1.0]
    assert convex(dense, lexical, 0.8).tolist() == pytest.approx(expected)
    assert ranks(np.array([0.5, 0.9, 0.5])).tolist() == [2, 1, 3]
    fused = rrf([np.array([0.5, 0.9]), np.array([3.0, 1.0])], 60)
    assert fused.tolist() == pytest.approx([1 / 62 + 1 / 61, 1 / 61 + 1 / 62])


def test_parts_follow_the_corpus_fields() -> None:
    faq = Parts.choose(FIELDS)
    assert (faq.second, faq.lexical, faq.files) == (
        "joint",
        True,
        ("second.faiss", "lexical.npz", "lexical.json"),
    )
    record = FAQ[0]
    assert faq.second_text(record) == faq.lexical_text(record) == f"{record.text}\n{record.answer}"
    assert faq.second_text(FAQ[5]) == "Where are my files?"  # the answer is the text itself
    beir = Parts.choose({"text": "title+text", "answer": "text", "id": "_id"})
    doc = Record("d", "Title here Body text", "Body text", {"title": "Title here"})
    assert (beir.second, beir.second_text(doc), beir.lexical_text(doc)) == (
        "question",
        "Title here",
        "Title here Body text",
    )
    untitled = Record("e", "Body only", "Body only", {"title": ""})
    assert beir.second_text(untitled) == "Body only"
    plain = Parts.choose({"text": "text", "answer": None, "id": None})
    assert (plain.second, plain.files) == (None, ("lexical.npz", "lexical.json"))
    assert Parts.from_json(faq.to_json()) == faq
    assert Parts.from_json(None) == Parts()  # an index from before hybrid search


@pytest.fixture()
def faq_index(tmp_path: Path) -> IndexStore:
    return IndexStore.build(tmp_path / "faq", [FAQ], HashEncoder(), fields=FIELDS)


def _engine(store: IndexStore, **config: object) -> SearchEngine:
    config.setdefault("threshold", "none")  # the ranking itself, every hit listed
    return SearchEngine(store, HashEncoder(), SearchConfig(**config))  # type: ignore[arg-type]


def test_every_score_of_a_hybrid_hit_is_real_and_the_fusion_is_as_computed(
    faq_index: IndexStore,
) -> None:
    encoder = HashEncoder()
    question = "How do I print my notes?"
    q = encoder.encode([question])[0]
    texts = [r.text for r in FAQ]
    joints = [Parts.choose(FIELDS).second_text(r) for r in FAQ]
    dense = encoder.encode(texts) @ q
    joint = encoder.encode(joints) @ q
    lexical = bm25s_scores(joints, question)
    fused = 0.8 * minmax(dense + joint) + 0.2 * minmax(lexical)
    order = np.argsort(-fused, kind="stable")
    result = _engine(faq_index, dedupe=False).query(question, k=6)
    assert result.mode == "hybrid"
    assert [hit.id for hit in result.hits] == [FAQ[i].id for i in order]
    for hit, i in zip(result.hits, order, strict=True):
        assert hit.score == pytest.approx(fused[i], abs=1e-6)
        assert hit.scores == pytest.approx(
            {"dense": dense[i], "joint": joint[i], "lexical": lexical[i]}, abs=1e-5
        )
    # dense mode is the plain cosine ranking, as before hybrid search
    plain = _engine(faq_index, dedupe=False).query(question, k=6, mode="dense")
    assert [h.id for h in plain.hits] == [FAQ[i].id for i in np.argsort(-dense, kind="stable")]
    assert [h.score for h in plain.hits] == pytest.approx(sorted(dense, reverse=True), abs=1e-6)
    assert all(h.scores is None for h in plain.hits)
    # lexical mode ranks by BM25 and lists only entries with a word in common
    words = _engine(faq_index).query(question, k=6, mode="lexical")
    assert [h.id for h in words.hits] == [FAQ[i].id for i in np.argsort(-lexical) if lexical[i]]
    rrf_result = _engine(faq_index, dedupe=False, fusion="rrf").query(question, k=6)
    expected = rrf([dense, joint, lexical], 60)
    assert [h.score for h in rrf_result.hits] == pytest.approx(sorted(expected, reverse=True))


def test_no_word_in_common_or_only_stop_words_still_answers(faq_index: IndexStore) -> None:
    engine = _engine(faq_index)
    for question in ("zzyzx qwrtp", "what is the"):
        result = engine.query(question, k=3)
        assert len(result.hits) == 3 and result.answered
        assert all(hit.scores and hit.scores["lexical"] == 0.0 for hit in result.hits)
        assert engine.query(question, k=3, mode="lexical").hits == []


def test_add_and_delete_keep_every_part_in_step(faq_index: IndexStore) -> None:
    engine = _engine(faq_index)
    new = Record("kb", "Keyboard shortcuts list", "Press Ctrl+/ to see them.", {})
    faq_index.add([[new]], HashEncoder())
    assert engine.query("keyboard shortcuts", k=1, mode="lexical").hits[0].id == "kb"
    assert faq_index.lexical is not None and faq_index.lexical.count == 7
    assert faq_index.second is not None and faq_index.second.ntotal == 7
    faq_index.delete(["kb", "pw"])
    assert engine.query("keyboard shortcuts", k=1, mode="lexical").hits == []
    reopened = IndexStore.open(faq_index.path)
    assert (reopened.count, reopened.lexical.count, reopened.second.ntotal) == (5, 5, 5)
    reopened.close()


def test_hnsw_tombstones_stay_out_of_every_part(tmp_path: Path) -> None:
    store = IndexStore.build(tmp_path / "h", [FAQ], HashEncoder(), index_type="hnsw", fields=FIELDS)
    store.delete(["print"])
    engine = _engine(store, dedupe=False)
    for mode in ("hybrid", "lexical", "dense"):
        ids = [hit.id for hit in engine.query("How do I print a note?", k=6, mode=mode).hits]
        assert "print" not in ids and ids


def test_an_index_from_before_hybrid_answers_in_dense_mode(
    faq_index: IndexStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old"
    shutil.copytree(faq_index.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["parts"], manifest["manifest_sha256"]  # as written before either existed
    for name in ("second.faiss", "lexical.npz", "lexical.json"):
        del manifest["checksums"][name]
        (old / name).unlink()
    (old / "manifest.json").write_text(json.dumps(manifest))
    store = IndexStore.open(old)
    engine = _engine(store)
    with caplog.at_level(logging.WARNING, logger="semsearch"):
        first = engine.query("print a note", k=2)
        engine.query("print a note", k=2)
    assert first.mode == "dense" and first.hits[0].scores is None
    notices = [r.getMessage() for r in caplog.records]
    assert notices == [
        f"{old} was built before hybrid search: answering in dense mode; "
        "`semsearch index` rebuilds it for hybrid"
    ]
    with pytest.raises(ConfigError, match="has no lexical part") as caught:
        engine.query("print", mode="lexical")
    assert caught.value.setting == "mode"


def test_the_cli_names_the_valid_modes(faq_index: IndexStore) -> None:
    done = runner.invoke(app, ["query", str(faq_index.path), "print", "--mode", "fuzzy"])
    assert done.exit_code == 1
    assert done.output.strip() == (
        "semsearch: error: unknown mode 'fuzzy': choose one of hybrid, dense, lexical "
        "(option --mode)"
    )


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_folder: Path) -> Path:
    """A random 2-layer BERT with one output: a cross-encoder, made here (no weights
    can be downloaded); it tests the plumbing, not quality."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_rerank_orders_by_the_cross_encoder(
    faq_index: IndexStore, tiny_cross_encoder: Path
) -> None:
    from sentence_transformers import CrossEncoder

    engine = _engine(faq_index, dedupe=False, rerank=str(tiny_cross_encoder), rerank_depth=4)
    result = engine.query("How do I print my notes?", k=3)
    reference = CrossEncoder(str(tiny_cross_encoder))
    joints = {r.id: Parts.choose(FIELDS).lexical_text(r) for r in FAQ}
    # the cross-encoder read the top 4 fused candidates; the best 3 of those come back
    fused = _engine(faq_index, dedupe=False).query("How do I print my notes?", k=4).hits
    expected = {
        h.id: float(reference.predict([("How do I print my notes?", joints[h.id])])[0])
        for h in fused
    }
    best = sorted(expected, key=lambda ident: -expected[ident])[:3]
    assert [hit.id for hit in result.hits] == best
    for hit in result.hits:
        assert hit.score == pytest.approx(expected[hit.id], abs=1e-5)
        assert hit.scores is not None and hit.scores["rerank"] == hit.score
        assert set(hit.scores) == {"dense", "joint", "lexical", "rerank"}


def test_http_and_the_client_take_a_mode(tiny_sbert: Path, tmp_path: Path) -> None:
    from semsearch.client import Client
    from tests.service.test_server import build_index, call, server

    folder = build_index(tmp_path, tiny_sbert)
    engine = SearchEngine.open(folder, config=SearchConfig(threshold="none"))
    with server(folder) as (url, _):
        for mode in ("hybrid", "dense", "lexical"):
            status, body, _ = call(
                url, "POST", "/search", {"query": "reset password", "mode": mode}
            )
            expected = engine.query("reset password", k=5, mode=mode).to_json()
            assert status == 200 and body["mode"] == mode
            assert [h["id"] for h in body["results"]] == [h["id"] for h in expected["results"]]
            assert [h.get("scores") for h in body["results"]] == [
                h.get("scores") for h in expected["results"]
            ]
        default = call(url, "POST", "/search", {"queries": ["reset password"]})[1]
        assert default["mode"] == "hybrid" and "scores" in default["results"][0][0]
        status, body, _ = call(url, "POST", "/search", {"query": "x", "mode": "fuzzy"})
        assert status == 422 and [e["field"] for e in body["errors"]] == ["mode"]
        client = Client(url)
        dense = client.query("reset password", mode="dense")
        assert dense.mode == "dense" and all(hit.scores is None for hit in dense.hits)
        assert client.query_batch(["reset password"], mode="lexical")[0].mode == "lexical"
    engine.store.close()
