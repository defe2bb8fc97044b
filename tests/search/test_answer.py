"""The answer decision, once, independent of k (issue 23): on a hybrid index, 200
questions get the same `answered` and `best_score` at k = 1, 3, 10 and 50, from Python,
the CLI (in-process, and once as a subprocess) and a real HTTP server; and the ranking
at a small k is the start of the ranking at a large one."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.index.threshold import generic_questions
from semsearch.search.engine import SearchEngine
from semsearch.search.results import SearchResult

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "examples" / "faq.csv"
KS = (1, 3, 10, 50)
runner = CliRunner()


def questions(count: int = 200, seed: int = 23) -> list[str]:
    """The demo FAQ's questions, perturbed (a word dropped, two swapped, lower case,
    a typo), and everyday questions it cannot answer: three in four from the FAQ."""
    rng = random.Random(seed)
    with FAQ.open(encoding="utf-8") as handle:
        known = [row["question"] for row in csv.DictReader(handle)]
    unrelated = generic_questions()
    made = []
    while len(made) < count:
        if rng.random() < 0.25:
            made.append(rng.choice(unrelated))
            continue
        words = rng.choice(known).rstrip("?.").split()
        change = rng.randrange(4)
        if change == 0 and len(words) > 2:
            del words[rng.randrange(len(words))]
        elif change == 1 and len(words) > 1:
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
        elif change == 2:
            words = [word.lower() for word in words]
        else:
            i = rng.randrange(len(words))
            word = words[i]
            if len(word) > 3:
                cut = rng.randrange(1, len(word) - 1)
                words[i] = word[:cut] + word[cut + 1 :]
        made.append(" ".join(words) + rng.choice(["?", "", " please"]))
    return made


QUESTIONS = questions()


@pytest.fixture(scope="module")
def demo_index(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo FAQ as `semsearch index` builds it: hybrid (two dense views and BM25)."""
    folder = tmp_path_factory.mktemp("answer") / "demo"
    done = runner.invoke(app, ["index", str(FAQ), "-o", str(folder), "--model", str(tiny_sbert)])
    assert done.exit_code == 0, done.output
    return folder


@pytest.fixture(scope="module")
def engine(demo_index: Path) -> Iterator[SearchEngine]:
    opened = SearchEngine.open(demo_index, config=SearchConfig(threshold="none"))
    yield opened
    opened.store.close()


@pytest.fixture(scope="module")
def threshold(engine: SearchEngine) -> float:
    """A threshold that answers about half of the questions (the tiny random model's
    cosines sit high and close together, so the index's own would answer nearly all)."""
    best = sorted(r.best_score or 0.0 for r in engine.query_batch(QUESTIONS, k=1))
    return round(best[len(best) // 2], 4)


def decisions(results: list[SearchResult]) -> list[tuple[bool, float | None]]:
    """What must not depend on k: answered, and best_score as JSON gives it."""
    return [(r.answered, None if r.best_score is None else round(r.best_score, 6)) for r in results]


def same_across_faces(
    got: list[tuple[bool, float | None]], python: list[tuple[bool, float | None]], t: float
) -> None:
    """Another face encodes the questions in other batches (one at a time, or in the
    server's pieces), so a cosine may differ in float noise: equal within 1e-5, and the
    same decision unless the cosine sits within that noise of the threshold."""
    assert len(got) == len(python)
    for (answered, best), (expected, reference) in zip(got, python, strict=True):
        assert best is not None and reference is not None
        assert best == pytest.approx(reference, abs=1e-5)
        if abs(reference - t) > 1e-5:
            assert answered == expected


def test_the_questions_are_a_fair_test(engine: SearchEngine, threshold: float) -> None:
    """Hybrid's top hit is often not the best cosine among more hits: under the old rule
    ("any of the k hits", "the best cosine among them") these would change with k."""
    assert len(QUESTIONS) == 200 and len(set(QUESTIONS)) > 150
    deep = engine.query_batch(QUESTIONS, k=50)
    assert all(r.mode == "hybrid" for r in deep)
    not_top = [r for r in deep if max(h.cosine for h in r.hits) > r.hits[0].cosine]
    assert len(not_top) >= 20
    answered = sum(r.answered for r in engine.query_batch(QUESTIONS, 1, threshold))
    assert 50 <= answered <= 150


def test_python_answers_alike_at_every_k(engine: SearchEngine, threshold: float) -> None:
    by_k = {k: engine.query_batch(QUESTIONS, k, threshold) for k in KS}
    reference = decisions(by_k[1])
    for k in KS:
        assert decisions(by_k[k]) == reference, k
    for one, many in zip(by_k[1], by_k[50], strict=True):
        assert one.best_score == many.best_score  # exactly, before any rounding
        assert one.hits == many.hits[:1]  # the one hit shown is the first of fifty
    # with no threshold, the ranking at k is the start of the ranking at 50
    ranked = {k: engine.query_batch(QUESTIONS, k) for k in KS}
    for k in KS:
        for short, deep in zip(ranked[k], ranked[50], strict=True):
            assert short.hits == deep.hits[:k]
            assert short.best_score == deep.hits[0].cosine


@pytest.mark.parametrize("config", [{"candidates": 4}, {"fusion": "rrf", "candidates": 4}])
def test_fetching_past_the_first_pool_only_appends(demo_index: Path, config: dict) -> None:
    """With a pool of 4 per part, k = 50 reads many pools: the first hits stay put."""
    engine = SearchEngine.open(
        demo_index, config=SearchConfig(threshold="none", dedupe=False, **config)
    )
    try:
        deep = engine.query_batch(QUESTIONS[:40], k=50)
        for k in (1, 3, 10):
            for short, long in zip(engine.query_batch(QUESTIONS[:40], k), deep, strict=True):
                assert short.hits == long.hits[:k]
        assert all(len(result.hits) == 50 for result in deep)
        ids = [hit.id for hit in deep[0].hits]
        assert len(set(ids)) == 50  # no entry twice across pools
    finally:
        engine.store.close()


def test_batch_equals_single(engine: SearchEngine, threshold: float) -> None:
    batch = engine.query_batch(QUESTIONS[:30], 3, threshold)
    single = [engine.query(q, 3, threshold) for q in QUESTIONS[:30]]
    same_across_faces(decisions(single), decisions(batch), threshold)


def _cli(index: Path, k: int, threshold: float) -> list[tuple[bool, float | None]]:
    done = runner.invoke(
        app,
        ["query", str(index), "--json", "-k", str(k), "--threshold", str(threshold)],
        input="\n".join(QUESTIONS) + "\n",
    )
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == len(QUESTIONS)
    return [(row["answered"], row["best_score"]) for row in rows]


def test_cli_answers_alike_at_every_k(
    demo_index: Path, engine: SearchEngine, threshold: float
) -> None:
    by_k = {k: _cli(demo_index, k, threshold) for k in KS}
    for k in KS:
        assert by_k[k] == by_k[1], k  # exactly
    same_across_faces(by_k[1], decisions(engine.query_batch(QUESTIONS, 1, threshold)), threshold)


def test_a_cli_process_answers_alike_at_one_and_fifty(
    demo_index: Path, engine: SearchEngine, threshold: float
) -> None:
    asked = QUESTIONS[:25]
    reference = _cli(demo_index, 1, threshold)[:25]  # one question at a time, as here
    for k in (1, 50):
        done = subprocess.run(
            [sys.executable, "-m", "semsearch", "query", str(demo_index), "--json",
             "-k", str(k), "--threshold", str(threshold)],
            input="\n".join(asked) + "\n", capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        assert [(row["answered"], row["best_score"]) for row in rows] == reference


def test_http_answers_alike_at_every_k(
    demo_index: Path, engine: SearchEngine, threshold: float
) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from semsearch.client import Client
    from semsearch.service.config import ServeConfig
    from semsearch.service.server import build_service, serve_in_thread
    from tests.service.test_server import call

    python = decisions(engine.query_batch(QUESTIONS, 1, threshold))
    config = ServeConfig(port=0)
    service = build_service(demo_index, config, SearchConfig())
    with serve_in_thread(service, config) as url:
        by_k = {}
        for k in KS:
            body = {"queries": QUESTIONS, "k": k, "threshold": threshold}
            status, data, _ = call(url, "POST", "/search", body)
            assert status == 200, data
            by_k[k] = list(zip(data["answered"], data["best_score"], strict=True))
            assert by_k[k] == by_k[1], k  # exactly
        same_across_faces(by_k[1], python, threshold)
        singles = []
        for question in QUESTIONS[:20]:
            asked = [
                call(url, "POST", "/search", {"query": question, "k": k, "threshold": threshold})
                for k in (1, 50)
            ]
            one, fifty = ((body["answered"], body["best_score"]) for _, body, _ in asked)
            assert one == fifty
            singles.append(one)
        same_across_faces(singles, python[:20], threshold)
        client = Client(url)
        for k in KS:
            assert decisions(client.query_batch(QUESTIONS, k, threshold)) == by_k[1]
