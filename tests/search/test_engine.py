"""SearchEngine: ranking equals brute force, dedupe of shared answers, threshold, Python API."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from semsearch import SearchEngine
from semsearch.config import SearchConfig
from semsearch.corpus import open_corpus
from semsearch.encoders import load_encoder
from semsearch.errors import EncoderMismatchError, InputError
from semsearch.index import IndexStore

FAQ = [
    ("pw", "How do I reset my password?", "Use the reset link on the sign-in page."),
    ("pw-2", "I forgot my password", "Use the reset link on the sign-in page."),
    ("pw-3", "Can't log in, lost password", "Use the reset link on the sign-in page."),
    ("pdf", "Can I export notes as PDF?", "File > Export > PDF."),
    ("offline", "Does it work without internet?", "Yes, offline mode keeps working."),
    ("price", "How much does Plus cost?", "Plus costs 4 euros a month."),
    ("student", "Is there a student discount?", "Students get 50% off."),
]


@pytest.fixture(scope="module")
def faq_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("faq") / "faq.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "answer"])
        writer.writerows(FAQ)
    return path


@pytest.fixture(scope="module")
def engine(tiny_sbert, faq_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx") / "faq"
    encoder = load_encoder(model=str(tiny_sbert))
    IndexStore.build(folder, open_corpus(faq_csv).chunks(3), encoder, index_type="flat")
    # the ranking itself: no threshold (a random model's own would hide most hits)
    return SearchEngine.open(folder, config=SearchConfig(threshold="none"))


def brute_force(engine, question):
    texts = [question for _, question, _ in FAQ]
    vectors = engine.encoder.encode(texts)
    scores = vectors @ engine.encoder.encode([question])[0]
    return scores


def test_scores_are_cosines_and_answers_come_once(engine):
    result = engine.query("I forgot my password", k=10, mode="dense")
    answers = [hit.answer for hit in result.hits]
    assert len(answers) == len(set(answers)) == 5  # 7 entries, 5 distinct answers
    assert [hit.rank for hit in result.hits] == [1, 2, 3, 4, 5]
    encoder = engine.encoder
    question = encoder.encode(["I forgot my password"])[0]
    by_id = {fid: encoder.encode([q])[0] @ question for fid, q, _ in FAQ}
    for hit in result.hits:
        assert hit.score == pytest.approx(float(by_id[hit.id]), abs=1e-5) and hit.scores is None
    # the shared answer appears at the best score of its three paraphrases
    best_pw = max(by_id[f] for f in ("pw", "pw-2", "pw-3"))
    pw_hit = next(hit for hit in result.hits if hit.answer.startswith("Use the reset"))
    assert pw_hit.score == pytest.approx(float(best_pw), abs=1e-5)
    assert result.hits[0].id == "pw-2" and result.hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_without_dedupe_every_entry_is_a_hit(engine):
    plain = SearchEngine(engine.store, engine.encoder, SearchConfig(dedupe=False, threshold="none"))
    assert len(plain.search("password", k=7)) == 7


def test_threshold_gives_no_answer_instead_of_a_wrong_one(engine):
    result = engine.query("I forgot my password", k=3, threshold=0.999)
    assert result.answered and [hit.id for hit in result.confident] == ["pw-2"]
    none = engine.query("I forgot my password!", k=3, threshold=1.0)
    assert not none.answered and none.confident == none.hits == []
    assert none.best_score is not None and none.best_score < 1.0
    assert engine.search("I forgot my password!", threshold=1.0) == []
    configured = SearchEngine(engine.store, engine.encoder, SearchConfig(threshold=1.0))
    assert configured.search_batch(["I forgot my password!"]) == [[]]


def test_batch_equals_single(engine):
    questions = ["password", "pdf export", "price of plus"]
    batch = engine.search_batch(questions, k=3)
    single = [engine.search(q, k=3) for q in questions]
    assert [[h.id for h in hits] for hits in batch] == [[h.id for h in hits] for hits in single]
    for many, one in zip(batch, single, strict=True):
        np.testing.assert_allclose([h.score for h in many], [h.score for h in one], atol=1e-5)


def test_bad_questions(engine):
    with pytest.raises(InputError, match="non-empty string"):
        engine.search("   ")
    with pytest.raises(InputError):
        engine.search_batch(["ok", 5])
    assert engine.search_batch([]) == []


def test_query_encoder_must_match_the_index(engine, tiny_bert):
    other = load_encoder(kind="bert", model=str(tiny_bert), pooling="cls")
    with pytest.raises(EncoderMismatchError, match=r"pooling='mean'.*pooling='cls'"):
        SearchEngine(engine.store, other)


@pytest.mark.real
def test_demo_faq_answers_real_questions(demo_index):
    engine = SearchEngine.open(demo_index)  # examples/faq.csv with the default model
    expectations = {
        "how can I get my notes out as PDF": "export-pdf",
        "I forgot my password": "reset-password",
        "is there a student discount": "student-discount",
        "can I use it without internet": "offline-mode",
    }
    for question, expected in expectations.items():
        top = engine.search(question, k=1)[0]
        assert top.id.startswith(expected), (question, top)
    assert engine.query("What is the boiling point of mercury?", threshold=0.5).answered is False


def test_dedupe_reads_past_a_page_of_one_shared_answer(tmp_path):
    from semsearch.corpus import Record
    from tests.index_writer import HashEncoder

    # five entries with the same text and answer score 1.0 for that text: the first
    # page of k=3 candidates holds one answer, so the next page must be read
    same = [Record(f"same-{i}", "same question", "one answer", {}) for i in range(5)]
    others = [Record(f"other-{i}", f"another question {i}", f"answer {i}", {}) for i in range(6)]
    encoder = HashEncoder()
    IndexStore.build(tmp_path / "index", [same + others], encoder, index_type="flat")
    engine = SearchEngine(
        IndexStore.open(tmp_path / "index"), encoder, SearchConfig(threshold="none")
    )
    hits = engine.query("same question", k=3).hits
    assert [hit.rank for hit in hits] == [1, 2, 3]
    assert hits[0].answer == "one answer" and hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert len({hit.answer for hit in hits}) == 3
    assert all(hit.id.startswith("other-") for hit in hits[1:])
