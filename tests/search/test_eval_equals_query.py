"""What `eval retrieval` measures is what `query` serves (issue 23): on the BEIR sample,
the ranked ids and scores in eval's TREC run file equal `query --json`'s for the same
questions, ranking option by ranking option. (eval encodes its questions in one batch,
`query` one a line: their vectors, and so the scores, may differ in float noise, which
min-max fusion scales up a little; the ids and their order are the same.)"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.evaluation.retrieval import BeirFolder
from tests.search.test_hybrid import tiny_cross_encoder  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
BEIR = ROOT / "examples" / "beir-sample"
K = 10
runner = CliRunner()


@pytest.fixture(scope="module")
def beir_index(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The BEIR sample as `semsearch index` builds it (eval builds the same, in a
    temporary folder), and a config that ranks every document on its own, as eval does."""
    folder = tmp_path_factory.mktemp("eval-query")
    done = runner.invoke(
        app, ["index", str(BEIR), "-o", str(folder / "index"), "--model", str(tiny_sbert)]
    )
    assert done.exit_code == 0, done.output
    (folder / "each-document.toml").write_text("[search]\ndedupe = false\n")
    return folder


def eval_run(
    tiny_sbert: Path, options: list[str], folder: Path
) -> tuple[dict[str, list[tuple[str, float]]], dict]:
    run = folder / "run.txt"
    done = runner.invoke(
        app,
        ["eval", "retrieval", str(BEIR), "--model", str(tiny_sbert), "-k", str(K),
         "--run-file", str(run), "--json", "--quiet", *options],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert payload["run_file"] == str(run)
    ranked: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for line in run.read_text().splitlines():
        query, q0, doc, rank, score, tag = line.split()
        assert q0 == "Q0" and tag == f"semsearch-{payload['mode']}"
        assert int(rank) == len(ranked[query]) + 1
        ranked[query].append((doc, float(score)))
    return ranked, payload


def query_run(index: Path, options: list[str], questions: list[str]) -> list[dict]:
    """`query --json` of the questions piped in, one JSON line each; a --config file
    stands for every encoder setting, so the model is named beside it."""
    model = json.loads((index / "index" / "manifest.json").read_text())["encoder"]["model"]
    done = runner.invoke(
        app,
        ["query", str(index / "index"), "--json", "-k", str(K), "--model", model,
         "--config", str(index / "each-document.toml"), *options],
        input="\n".join(questions) + "\n",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return [json.loads(line) for line in done.stdout.splitlines()]


OPTIONS = {
    "hybrid (default)": [],
    "dense": ["--mode", "dense"],
    "lexical": ["--mode", "lexical"],
    "rrf": ["--fusion", "rrf"],
    "dense weight 0.5": ["--dense-weight", "0.5"],
    "threshold": ["--threshold", "THRESHOLD"],
    "the index's own threshold": ["--threshold", "index"],
}


@pytest.mark.parametrize("name", OPTIONS)
def test_eval_ranks_as_query_serves(
    name: str, beir_index: Path, tiny_sbert: Path, tmp_path: Path
) -> None:
    beir = BeirFolder.open(BEIR)
    questions = [beir.queries[query] for query in beir.judged]
    options = OPTIONS[name]
    if "THRESHOLD" in options:  # one that answers about half of the questions
        found = query_run(beir_index, ["--threshold", "none"], questions)
        best = sorted(result["best_score"] for result in found)
        options = ["--threshold", f"{best[len(best) // 2]:.6f}"]
    ranked, payload = eval_run(tiny_sbert, options, tmp_path)
    # eval applies no threshold unless one is given: query says none for that
    given = options if "--threshold" in options else [*options, "--threshold", "none"]
    served = query_run(beir_index, given, questions)
    assert len(served) == len(beir.judged) == payload["queries"]
    unanswered = 0
    for query, result in zip(beir.judged, served, strict=True):
        hits = ranked.get(query, [])
        assert [doc for doc, _ in hits] == [hit["id"] for hit in result["results"]], query
        for (_, score), hit in zip(hits, result["results"], strict=True):
            assert score == pytest.approx(hit["score"], abs=1e-5)
        unanswered += not result["answered"]
    if name == "threshold":
        assert 0 < unanswered < len(served)  # the threshold did filter
    elif name != "the index's own threshold":
        assert unanswered == 0 or name == "lexical"


def test_eval_reranks_as_query_serves(
    beir_index: Path,
    tiny_sbert: Path,
    tmp_path: Path,
    tiny_cross_encoder: Path,  # noqa: F811
) -> None:
    beir = BeirFolder.open(BEIR)
    questions = [beir.queries[query] for query in beir.judged][:8]
    options = ["--rerank", str(tiny_cross_encoder)]
    ranked, _ = eval_run(tiny_sbert, options, tmp_path)
    served = query_run(beir_index, [*options, "--threshold", "none"], questions)
    for query, result in zip(beir.judged, served, strict=False):
        hits = ranked[query]
        assert [doc for doc, _ in hits] == [hit["id"] for hit in result["results"]]
        assert all("rerank" in hit["scores"] for hit in result["results"])
        for (_, score), hit in zip(hits, result["results"], strict=True):
            assert score == pytest.approx(hit["score"], abs=1e-5)
