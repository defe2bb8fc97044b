"""Issue 13: an index's own "no answer" threshold, --threshold none, and calibrate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semsearch.calibration import Target, choose, curve
from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.corpus import open_corpus
from semsearch.encoders import load_encoder
from semsearch.index import IndexStore
from semsearch.index.threshold import MARGIN, QUANTILE, generic_questions, generic_vectors
from semsearch.search import SearchEngine
from tests.conftest import shared_data
from tests.index_writer import HashEncoder, make_records

runner = CliRunner()

FAQ = [
    ("pw", "How do I reset my password?", "Use the reset link."),
    ("pdf", "Can I export notes as PDF?", "File > Export > PDF."),
    ("offline", "Does it work without internet?", "Yes, offline mode keeps working."),
    ("price", "How much does Plus cost?", "Plus costs 4 euros a month."),
]


def hand_threshold(store: IndexStore, encoder) -> float:
    """The rule computed by hand: no floor or ceiling for a model not measured."""
    generic = encoder.encode(generic_questions())
    live = store.records.live()
    vectors = encoder.encode([record.text for _, record in live])
    top = (generic @ vectors.T).max(axis=1)
    return round(float(np.quantile(top, QUANTILE)) + MARGIN, 6)


@pytest.fixture
def tiny_index(tiny_sbert: Path, tmp_path: Path) -> Path:
    path = tmp_path / "faq.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("id", "question", "answer"), *FAQ])
    folder = tmp_path / "index"
    encoder = load_encoder(model=str(tiny_sbert))
    IndexStore.build(folder, open_corpus(path).chunks(10), encoder, index_type="flat")
    return folder


def test_estimated_on_a_tiny_random_model(tiny_index: Path, tiny_sbert: Path) -> None:
    store = IndexStore.open(tiny_index)
    encoder = load_encoder(model=str(tiny_sbert))
    stored = store.manifest.threshold
    assert stored is not None and stored["origin"] == "estimated"
    assert stored["value"] == pytest.approx(hand_threshold(store, encoder), abs=1e-5)
    assert stored["floor"] is None and "not measured" in stored["rule"]
    assert stored["questions"] == len(generic_questions())
    assert (tiny_index / "generic.npy").is_file()
    assert "generic.npy" in json.loads((tiny_index / "manifest.json").read_text())["checksums"]
    shown = runner.invoke(app, ["info", str(tiny_index)])
    assert shown.exit_code == 0 and f"threshold: {stored['value']} (estimated" in shown.stdout


def test_kept_in_step_after_add_and_delete(tmp_path: Path) -> None:
    encoder = HashEncoder()
    store = IndexStore.build(tmp_path / "i", [make_records(30)], encoder, index_type="hnsw")
    before = store.manifest.threshold["value"]
    assert before == pytest.approx(hand_threshold(store, encoder), abs=1e-5)
    store.add([make_records(40, "b")], encoder)
    assert store.manifest.threshold["value"] == pytest.approx(
        hand_threshold(store, encoder), abs=1e-5
    )
    assert store.manifest.threshold["value"] != before
    store.delete([f"b{i}" for i in range(40)] + ["r0", "r1", "r2"])  # tombstones (hnsw)
    assert store.manifest.threshold["value"] == pytest.approx(
        hand_threshold(store, encoder), abs=1e-5
    )
    # a calibrated threshold is kept as it is, with the count it was chosen on
    from semsearch.index.threshold import calibrated

    store.set_threshold(calibrated(0.5, "by hand", store.count))
    store.add([make_records(5, "c")], encoder)
    kept = IndexStore.open(store.path).manifest.threshold
    assert kept["value"] == 0.5 and kept["origin"] == "calibrated"
    assert kept["calibrated_count"] == store.count - 5


def test_override_and_none_in_python_and_cli(tiny_index: Path) -> None:
    engine = SearchEngine.open(tiny_index)
    own = engine.store.manifest.threshold["value"]
    assert engine.threshold() == own and engine.threshold("none") is None
    result = engine.query("How do I reset my password?")
    assert result.threshold == own and all(hit.cosine >= own for hit in result.hits)
    off = engine.query("How do I reset my password?", threshold="none")
    assert off.threshold is None and off.answered and len(off.hits) == 4
    nothing = engine.query("password reset?", threshold=1.0)
    assert not nothing.answered and nothing.hits == [] and nothing.best_score is not None
    configured = SearchEngine(engine.store, engine.encoder, SearchConfig(threshold="none"))
    assert configured.threshold() is None and configured.threshold(0.3) == 0.3
    shown = runner.invoke(app, ["query", str(tiny_index), "price", "--json", "--threshold", "1"])
    data = json.loads(shown.stdout)
    assert data["answered"] is False and data["results"] == [] and data["threshold"] == 1.0
    assert isinstance(data["best_score"], float) and data["best_score"] < 1.0
    shown = runner.invoke(app, ["query", str(tiny_index), "price", "--json", "-k", "4",
                                "--threshold", "none"])  # fmt: skip
    data = json.loads(shown.stdout)
    assert data["threshold"] is None and data["answered"] and len(data["results"]) == 4
    text = runner.invoke(app, ["query", str(tiny_index), "price", "--threshold", "1"]).stdout
    assert text.startswith("Q: price   (threshold 1.0)\n   No confident answer (the top hit's")
    assert text.rstrip().endswith("is below the threshold).")
    bad = runner.invoke(
        app, ["query", str(tiny_index), "price", "--threshold", "high"], prog_name="semsearch"
    )
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "semsearch: error: Invalid value for '--threshold': 'high' is not a cosine in [-1, 1], "
        "none or index (see 'semsearch query --help')"
    ]


def test_json_lists_only_hits_at_or_above_the_threshold(tiny_index: Path) -> None:
    engine = SearchEngine.open(tiny_index)
    every = engine.query("Can I export notes?", k=4, threshold="none", mode="dense")
    cut = sorted(hit.cosine for hit in every.hits)[1]  # two of the four clear it
    kept = engine.query("Can I export notes?", k=4, threshold=cut, mode="dense")
    data = kept.to_json()
    assert [hit["id"] for hit in data["results"]] == [hit.id for hit in every.hits[:3]]
    assert all(hit.cosine >= cut for hit in kept.hits) and data["answered"] is True
    assert [hit["rank"] for hit in data["results"]] == [1, 2, 3]
    assert data["best_score"] == round(every.hits[0].cosine, 6)


# -- HTTP -----------------------------------------------------------------------------


def test_http_threshold_none_and_default(tiny_index: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from semsearch.service.config import ServeConfig
    from semsearch.service.server import build_service

    service = build_service(tiny_index, ServeConfig(), SearchConfig(), device="cpu")
    own = IndexStore.open(tiny_index).manifest.threshold["value"]
    with TestClient(service.app) as client:
        default = client.post("/search", json={"query": "price"}).json()
        assert default["threshold"] == pytest.approx(own)
        off = client.post("/search", json={"query": "price", "threshold": "none"}).json()
        assert off["threshold"] is None and off["answered"] and len(off["results"]) == 4
        high = client.post("/search", json={"query": "price", "threshold": 1.0}).json()
        assert high["answered"] is False and high["results"] == [] and high["best_score"] < 1
        batch = client.post("/search", json={"queries": ["price", "pdf"], "threshold": 1}).json()
        assert batch["results"] == [[], []] and len(batch["best_score"]) == 2
        same = client.post("/search", json={"query": "price", "threshold": "off"}).json()
        assert same == off  # the CLI's words too: one parser (semsearch.params)
        own_again = client.post("/search", json={"query": "price", "threshold": "index"})
        assert own_again.json() == default
        bad = client.post("/search", json={"query": "price", "threshold": "high"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "threshold"
        assert "'high' is not a cosine in [-1, 1], none or index" in bad.json()["detail"]


# -- calibrate ------------------------------------------------------------------------


def test_curve_and_choice_by_hand() -> None:
    cosines = [0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, False, True, False]
    ids = ["a", "b", "c", "d", None]
    points = curve(cosines, correct, ids)
    assert [p.threshold for p in points] == [-1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    at = {p.threshold: p for p in points}
    assert at[0.6].precision == 0.75 and at[0.6].coverage == 1.0 and at[0.6].out_of_scope == 0
    assert at[0.5].precision == 0.6 and at[0.5].out_of_scope == 1.0
    assert choose(points, Target.of(0.9, None)).threshold == 0.8
    assert choose(points, Target.of(0.7, None)).threshold == 0.6
    assert choose(points, Target.of(None, 0.0)).threshold == 0.6


def test_calibrate_picks_what_a_hand_computation_picks(tiny_index: Path, tmp_path: Path) -> None:
    engine = SearchEngine.open(tiny_index, config=SearchConfig(threshold="none"))
    labelled = [
        ("How do I reset my password?", "pw"),
        ("export as PDF", "pdf"),
        ("Does it work offline?", "offline"),
        ("How much is Plus?", "price"),
        ("what is the capital of France", ""),
        ("who wrote Hamlet", ""),
    ]
    path = tmp_path / "labelled.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("question", "id"), *labelled])
    results = engine.query_batch([q for q, _ in labelled], k=1)
    cosines = [r.hits[0].cosine for r in results]
    correct = [r.hits[0].id == i for r, (_, i) in zip(results, labelled, strict=True)]
    expected = choose(curve(cosines, correct, [i or None for _, i in labelled]), Target(0.6))
    manifest = (tiny_index / "manifest.json").read_bytes()
    dry = runner.invoke(
        app, ["calibrate", str(tiny_index), str(path), "--target-precision", "0.6", "--dry-run",
              "--json", "--plot", str(tmp_path / "curve.png")],
    )  # fmt: skip
    assert dry.exit_code == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["threshold"] == expected.threshold and report["stored"] is False
    assert report["counts"] == {"questions": 6, "in_scope": 4, "out_of_scope": 2}
    assert (tiny_index / "manifest.json").read_bytes() == manifest  # nothing written
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = runner.invoke(
        app, ["calibrate", str(tiny_index), str(path), "--target-precision", "0.6"]
    )
    assert done.exit_code == 0 and "<- chosen" in done.stdout
    stored = IndexStore.open(tiny_index).manifest.threshold
    assert stored["origin"] == "calibrated"
    assert stored["value"] == pytest.approx(expected.threshold, abs=1e-6)
    assert "calibrated" in runner.invoke(app, ["info", str(tiny_index)]).stdout


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("question,id\nreset,nope\n", [], "id(s) not in the index: 'nope'"),
        ("question,id\n", [], "holds no labelled questions"),
        ("text,label\nreset,pw\n", [], "has no question and no id column"),
        ("question,id\nreset,pw\n", ["--target-precision", "1.5"], "is not in (0, 1]"),
        ("question,id\nreset,pw\n", ["--target-precision", "0.9", "--max-out-of-scope", "0.1"],
         "not both"),
    ],
)  # fmt: skip
def test_bad_labelled_files(
    tiny_index: Path, tmp_path: Path, content: str, extra: list[str], message: str
) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text(content, encoding="utf-8")
    manifest = (tiny_index / "manifest.json").read_bytes()
    result = runner.invoke(app, ["calibrate", str(tiny_index), str(path), *extra])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semsearch: error: ") and message in lines[0]
    assert (tiny_index / "manifest.json").read_bytes() == manifest


# -- the packaged model on real data ----------------------------------------------------


@pytest.mark.real
@pytest.mark.data
def test_packaged_model_on_covidqa(tmp_path: Path) -> None:
    """covidqa_faq indexed by title alone (as `index` of an FAQ table): the estimate is
    the measured 0.45 (bench/results/no_answer.txt), and it answers >= 93% of the judged
    questions and <= 3% of banking77's."""
    from semsearch.evaluation.retrieval import BeirFolder

    folder = shared_data("covidqa_faq")
    banking = shared_data("banking77") / "test.csv"
    encoder = load_encoder()
    chunks = open_corpus(folder, text_field="title").chunks(512)
    store = IndexStore.build(tmp_path / "covid", chunks, encoder)
    assert store.manifest.threshold["value"] == 0.45
    engine = SearchEngine(store, encoder)
    beir = BeirFolder.open(folder)
    inside = [beir.queries[query] for query in beir.judged]
    with banking.open(encoding="utf-8", newline="") as handle:
        outside = [row["text"] for row in csv.DictReader(handle) if row["text"].strip()]
    rate = lambda qs: np.mean([r.answered for r in engine.query_batch(qs)])  # noqa: E731
    assert rate(inside) >= 0.93
    assert rate(outside) <= 0.03


def test_generic_vectors_are_made_once_per_encoder_and_machine(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second build with the same encoder reads the generic questions' vectors from the
    cache ($SEMSEARCH_CACHE/generic/); another encoder gets its own file; a damaged file is
    made again; an encoder that is not semsearch's own is asked every time."""
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    mean = load_encoder(kind="bert", model=str(tiny_bert), backend="torch")
    made = generic_vectors(mean)
    np.testing.assert_allclose(made, mean.encode(generic_questions()), atol=1e-6)
    (stored,) = (tmp_path / "cache" / "generic").iterdir()
    asked: list[int] = []
    monkeypatch.setattr(mean, "encode", lambda texts, **_: asked.append(len(texts)))
    np.testing.assert_array_equal(generic_vectors(mean), made)
    assert asked == []  # read, not encoded
    cls = load_encoder(kind="bert", model=str(tiny_bert), backend="torch", pooling="cls")
    assert not np.allclose(generic_vectors(cls), made)
    assert len(list(stored.parent.iterdir())) == 2
    stored.write_bytes(b"not an array")
    monkeypatch.undo()
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    np.testing.assert_array_equal(generic_vectors(mean), made)  # made again, and kept
    np.testing.assert_array_equal(np.load(stored), made)
    other = HashEncoder()
    generic_vectors(other), generic_vectors(other)
    assert other.calls == 2 and len(list(stored.parent.iterdir())) == 2


def test_a_build_with_an_unwritable_cache_still_estimates(
    tiny_sbert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SEMSEARCH_CACHE", str(blocker))
    encoder = load_encoder(model=str(tiny_sbert), backend="torch")
    store = IndexStore.build(tmp_path / "idx", [make_records(5)], encoder, index_type="flat")
    assert store.manifest.threshold["origin"] == "estimated"
