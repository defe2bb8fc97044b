"""Each index chooses its own hybrid fusion (issue 27): the pseudo-questions and their
leave-one-out views, the decision by hand, a corpus where BM25 is plainly right, the
manifest round trip, the settings overriding the choice, an old index keeping the fixed
fusion, and `info` / `eval retrieval` saying what was chosen."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.corpus import Record
from semsearch.errors import IndexFolderError
from semsearch.index import IndexStore
from semsearch.index.fusion_choice import describe_in_force
from semsearch.index.manifest import Manifest
from semsearch.index.views import Parts
from semsearch.index.writes import keep_fusion
from semsearch.search import SearchEngine, adaptive
from semsearch.search.fusion import Rule
from tests.index_writer import HashEncoder

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
BEIR = ROOT / "examples" / "beir-sample"

# Each entry's words are its own, the rest stop words: BM25 finds an entry from any of its
# sentences and scores every other entry 0, while HashEncoder's vectors are noise, so the
# dense part finds nothing.
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
WORDY = [
    Record(
        f"{w}{n}",
        f"The {w}{n} and the {w}{n}x are in it. Then the {w}{n} is at {w}{n}y by {w}{n}z.",
        f"The {w}{n} and the {w}{n}x are in it. Then the {w}{n} is at {w}{n}y by {w}{n}z.",
        {},
    )
    for n in range(5)
    for w in WORDS
]  # 40 entries, two sentences each, one view (no separate answer)
TEXT_ONLY = {"text": "text", "answer": None, "id": "id"}
FAQ = [
    Record("pw", "How do I reset my password?", "Open the sign-in page. Use the reset link.", {}),
    Record("pdf", "Can I export notes as PDF?", "Choose File then Export then PDF.", {}),
    Record("dark", "Is there a dark mode?", "Yes.", {}),
]
FAQ_FIELDS = {"text": "question", "answer": "answer", "id": "id"}


def test_pseudo_questions_leave_their_sentence_out_of_every_view_that_held_it() -> None:
    faq = Parts.choose(FAQ_FIELDS)  # text = the question, second view = question + answer
    found = adaptive.pseudo_questions(list(enumerate(FAQ)), faq, sample=10, seed=0)
    by_row = {p.rowid: p for p in found}
    assert sorted(by_row) == [0, 1]  # "Yes." is under 4 words: no pseudo-question
    pw = by_row[0]
    assert pw.question in ("Open the sign-in page.", "Use the reset link.")
    rest = "Use the reset link." if pw.question.startswith("Open") else "Open the sign-in page."
    assert pw.text is None  # the question (the indexed text) never held it
    assert pw.second == pw.lexical == f"How do I reset my password? {rest}"
    beir = Parts.choose({"text": "title+text", "answer": "text", "id": "_id"})
    title = "Wing theory in a slipstream ."
    body = "wing theory in a slipstream . The lift grows with the slipstream speed here ."
    doc = Record("d", f"{title} {body}", body, {"title": title})
    [only] = adaptive.pseudo_questions([(7, doc)], beir, sample=10, seed=0)
    # the body's first sentence repeats the title, which the title view holds: not used
    assert only.question == "The lift grows with the slipstream speed here ."
    left = "Wing theory in a slipstream . wing theory in a slipstream ."
    assert only.text == only.lexical == left
    assert only.second is None  # the title view is as indexed
    plain = Parts.choose(TEXT_ONLY)
    one = Record("o", "Only one sentence in this entry.", "Only one sentence in this entry.", {})
    assert adaptive.pseudo_questions([(1, one)], plain) == []  # nothing would be left


def test_a_tie_shares_its_places_and_every_answer_counts() -> None:
    one = np.array([0])
    assert adaptive._gain(np.array([0.9, 0.5, 0.9]), one, 1) == pytest.approx(
        (1 + 1 / np.log2(3)) / 2
    )
    assert adaptive._gain(np.array([0.2, 0.9, 0.5]), one, 1) == pytest.approx(1 / np.log2(4))
    fused = np.concatenate([np.ones(10), [0.5]])
    assert adaptive._gain(fused, np.array([10]), 1) == 0.0  # 11th: outside nDCG@10
    # two answers of one question, first and third: DCG / ideal DCG
    two = adaptive._gain(np.array([0.9, 0.8, 0.7]), np.array([0, 2]), 2)
    assert two == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert adaptive._gain(np.array([0.9, 0.8]), np.array([0]), 2) == pytest.approx(
        1 / (1 + 1 / np.log2(3))
    )  # the other answer was not among the candidates


def _grid(cell: tuple[int, int], value: np.ndarray, base: np.ndarray) -> adaptive.Scored:
    gains = np.repeat(base[:, None, None], len(adaptive.SHARES), 1).repeat(15, 2)
    for r in range(cell[0] - 1, cell[0] + 2):  # a plateau of 3 x 3 cells around `cell`
        for c in range(cell[1] - 1, cell[1] + 2):
            gains[:, r, c] = value
    return adaptive.Scored(gains, adaptive.SHARES, adaptive.WEIGHTS)


def test_the_decision_by_hand() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.5, 100)
    # +10 points on a plateau (shares 0.7-0.9, weights 0.45-0.55): the pseudo-questions
    # cannot tell its cells apart, so the one that trusts BM25 least (dense weight 0.55),
    # then the best smoothed (the middle share), is kept
    clear = adaptive.decide(_grid((8, 4), base + 0.1, base))
    assert (clear["text_share"], clear["dense_weight"], clear["origin"]) == (0.8, 0.55, "estimated")
    assert clear["gain"] == pytest.approx(0.1) and clear["standard_error"] == pytest.approx(0)
    assert clear["rule"].startswith("chosen on 100 pseudo-questions: nDCG@10 ")
    small = adaptive.decide(_grid((8, 4), base + 0.02, base))  # under 3 points: kept
    assert (small["text_share"], small["dense_weight"], small["origin"]) == (0.5, 0.8, "default")
    assert "no clear gain (best: dense views 0.55, text 0.8 of them" in small["rule"]
    noisy = base + rng.choice([-0.4, 0.5], 100)  # +5 points on average, +- 4.5 each
    noisy_choice = adaptive.decide(_grid((8, 4), noisy, base))
    assert noisy_choice["origin"] == "default"  # under 2 standard errors
    spike = _grid((2, 3), base + 0.05, base)
    spike.gains[:, 8, 12] = base + 0.08  # one cell alone is noise: the plateau wins
    assert (adaptive.decide(spike)["text_share"], adaptive.decide(spike)["dense_weight"]) == (
        0.2, 0.5)  # fmt: skip


def test_where_bm25_is_plainly_right_the_index_chooses_it(tmp_path: Path) -> None:
    store = IndexStore.build(
        tmp_path / "i", [WORDY], HashEncoder(), fields=TEXT_ONLY, choose_fusion=adaptive.choose
    )
    chosen = store.manifest.fusion
    assert chosen is not None and chosen["origin"] == "estimated"
    # one view, so no share to choose. After min-max the source entry's BM25 score is 1
    # and every other's 0, so its fused score (1 - w) + w x cos beats any other's w x cos
    # whatever the noise once 1 - w >= w (bar an exact tie): every weight up to 0.5 finds
    # every pseudo-question's entry first (nDCG@10 1), above it the noise wins some, and
    # the weight nearest the default among those that cannot be told apart is 0.5
    assert (chosen["dense_weight"], chosen["text_share"]) == (0.5, 1.0)
    assert chosen["questions"] == 40 and chosen["ndcg@10"]["candidate"] == 1.0
    assert chosen["count"] == 40
    assert Manifest.read(store.path).fusion == chosen  # written with the index
    store.close()


def test_too_few_entries_keep_the_default(tmp_path: Path) -> None:
    store = IndexStore.build(
        tmp_path / "i", [WORDY[:20]], HashEncoder(), fields=TEXT_ONLY,
        choose_fusion=adaptive.choose,
    )  # fmt: skip
    chosen = store.manifest.fusion
    assert chosen is not None
    assert (chosen["dense_weight"], chosen["origin"]) == (0.8, "default")
    assert chosen["rule"] == (
        "default kept: 20 entries give a pseudo-question, 30 are needed to choose"
    )
    store.close()


@pytest.fixture(scope="module")
def chosen_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adaptive") / "faq"
    faq = [Record(f"q{i}", f"Question {i} about {w}?", f"Answer {w} {i}.", {})
           for i, w in enumerate(WORDS * 3)]  # fmt: skip
    IndexStore.build(folder, [faq], HashEncoder(), fields=FAQ_FIELDS).close()
    keep_fusion(folder, {
        "dense_weight": 0.6, "text_share": 0.3, "normalisation": "minmax",
        "origin": "estimated", "rule": "set by the test", "count": 24,
    })  # fmt: skip
    return folder


def _hybrid(store: IndexStore, question: str, k: int, **config: object) -> list:
    engine = SearchEngine(store, HashEncoder(), SearchConfig(threshold="none", **config))  # type: ignore[arg-type]
    return engine.query(question, k).hits


def test_the_index_ranks_by_its_own_choice_and_settings_override_it(chosen_index: Path) -> None:
    store = IndexStore.open(chosen_index)
    assert Rule.of(SearchConfig(), store.manifest.fusion) == Rule("convex", 0.6, 0.3, "index")
    given = Rule.of(SearchConfig(dense_weight=0.5), store.manifest.fusion)
    assert given == Rule("convex", 0.5, None, "settings")
    assert Rule.of(SearchConfig(fusion="rrf"), store.manifest.fusion).fusion == "rrf"
    assert Rule.of(SearchConfig(), None) == Rule("convex", 0.8, None, "fixed")
    hits = _hybrid(store, "Question 3 about delta?", 24)
    for hit in hits:  # the fused score is the index's own rule over the first pool
        assert set(hit.scores) == {"dense", "joint", "lexical"}
    dense = np.array([h.scores["dense"] for h in hits])
    joint = np.array([h.scores["joint"] for h in hits])
    lexical = np.array([h.scores["lexical"] for h in hits])
    views = 0.3 * dense + 0.7 * joint
    spread = lambda v: (v - v.min()) / (v.max() - v.min())  # noqa: E731
    expected = 0.6 * spread(views) + 0.4 * spread(lexical)
    assert [h.score for h in hits] == pytest.approx(expected.tolist())
    # --dense-weight 0.8 is exactly the fixed fusion, as on an index with no choice
    old = chosen_index.parent / "old"
    if not old.exists():
        import shutil

        shutil.copytree(chosen_index, old)
        keep_fusion(old, None)
    with IndexStore.open(old) as before:
        assert before.manifest.fusion is None
        fixed = [(h.id, h.score) for h in _hybrid(before, "Question 3 about delta?", 24)]
    overridden = _hybrid(store, "Question 3 about delta?", 24, dense_weight=0.8)
    assert [(h.id, h.score) for h in overridden] == fixed
    store.close()


def test_the_top_hits_do_not_depend_on_k_under_the_index_choice(chosen_index: Path) -> None:
    with IndexStore.open(chosen_index) as store:
        engine = SearchEngine(store, HashEncoder(), SearchConfig(candidates=3))
        for question in ("Question 5 about foxtrot?", "zebra", "answer golf"):
            full = engine.query(question, 24)
            for k in (1, 2, 5, 9):
                part = engine.query(question, k)
                assert [h.id for h in part.hits] == [h.id for h in full.hits][:k]
                assert part.answered == full.answered


def test_add_and_delete_keep_the_choice(chosen_index: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(chosen_index, folder)
    with IndexStore.open(folder) as store:
        before = store.manifest.fusion
        store.add([[Record("new", "A new question?", "A new answer.", {})]], HashEncoder())
        store.delete(["q0", "q1"])
        assert store.manifest.fusion == before and store.count == 23
        shown = runner.invoke(app, ["info", str(folder)])
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.stdout.splitlines() if x.strip().startswith("fusion:"))
    assert line.split(": ", 1)[1] == (
        "dense views 0.60 (text 0.3 of them), BM25 0.40, minmax; set by the test; chosen on "
        "24 entries, kept by add/delete (`semsearch index` chooses again)"
    )


def test_an_old_manifest_keeps_the_fixed_fusion_and_info_says_so(chosen_index: Path) -> None:
    old = chosen_index.parent / "old"
    if not old.exists():
        import shutil

        shutil.copytree(chosen_index, old)
        keep_fusion(old, None)
    data = json.loads(runner.invoke(app, ["info", str(old), "--json"]).stdout)
    assert data["fusion"] is None
    shown = runner.invoke(app, ["info", str(old)]).stdout
    assert "fusion: none kept (built before each index chose its own): the fixed fusion" in shown


def test_a_malformed_fusion_is_refused_naming_the_key(chosen_index: Path) -> None:
    manifest = Manifest.read(chosen_index)
    text = manifest.to_json()
    assert Manifest.from_json(text) == manifest  # the round trip
    for bad, message in (
        ({"dense_weight": 1.5}, "fusion.dense_weight 1.5 is not in [0, 1]"),
        ({"text_share": "x"}, "fusion.text_share must be a number"),
        ({"origin": "guessed"}, "fusion.origin must be one of estimated, default"),
        ({"normalisation": "zscore"}, "fusion.normalisation must be one of minmax"),
    ):
        broken = dataclasses.replace(manifest, fusion={**(manifest.fusion or {}), **bad})
        with pytest.raises(IndexFolderError, match="malformed: " + message.replace("[", r"\[")):
            Manifest.from_json(broken.to_json())


def _tiny_beir(folder: Path) -> Path:
    docs = [("a", "reset password", "Use the link on the sign-in page."),
            ("b", "export PDF", "Choose File and then Export as PDF."),
            ("c", "dark mode", "Open the settings and pick the dark theme.")]  # fmt: skip
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))  # fmt: skip
    (folder / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "forgot my password"}\n{"_id": "q2", "text": "save as PDF"}\n'
    )
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tb\t1\n")
    return folder


def test_eval_retrieval_reports_the_choice_and_compares(tiny_sbert: Path, tmp_path: Path) -> None:
    beir = str(_tiny_beir(tmp_path))
    done = runner.invoke(
        app, ["eval", "retrieval", beir, "--model", str(tiny_sbert), "--compare", "--json",
              "--dense-weight", "0.7"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    chosen = payload["fusion"]["chosen"]
    assert (chosen["questions"], chosen["count"], chosen["origin"]) == (3, 3, "default")
    assert chosen["rule"] == (
        "default kept: 3 entries give a pseudo-question, 30 are needed to choose"
    )
    in_force = {"fusion": "convex", "dense_weight": 0.7, "text_share": None, "source": "settings"}
    assert payload["fusion"]["in_force"] == in_force
    assert set(payload["modes"]) == {
        "hybrid", "dense", "lexical", "hybrid-fixed", "hybrid-adaptive",
    }  # fmt: skip
    assert describe_in_force(payload["fusion"], 3) == (
        "convex, dense weight 0.7, from the settings (the index's own: dense views 0.80 "
        f"(text 0.5 of them), BM25 0.20, minmax; {chosen['rule']})"
    )
    payload["fusion"]["in_force"]["source"] = "index"
    assert describe_in_force(payload["fusion"], 3).startswith("dense views 0.80 (text 0.5 of them)")


@pytest.mark.real
def test_the_demo_faq_keeps_the_fixed_fusion(demo_index: Path) -> None:
    """With the packaged MiniLM, an FAQ table's pseudo-questions find no clear gain over
    the fixed fusion (its users paraphrase the entries' questions): it is kept."""
    chosen = Manifest.read(demo_index).fusion
    assert chosen is not None and chosen["origin"] == "default"
    assert (chosen["dense_weight"], chosen["text_share"]) == (0.8, 0.5)
    assert chosen["questions"] >= adaptive.MIN_QUESTIONS and chosen["count"] == 106
