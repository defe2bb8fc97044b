"""CLI `--where`: `query` (one-shot, piped, repeated options), `eval retrieval` and
`info`; a bad filter is one line on stderr and exit 1, before any question is asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.search.engine import SearchEngine

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

ENTRIES = [
    ("pw", "How do I reset my password?", "Use the reset link.", "account", "en", 0),
    ("pw-de", "Wie setze ich mein Passwort zurück?", "Nutze den Link.", "account", "de", 0),
    ("pdf", "Can I export notes as PDF?", "File > Export > PDF.", "export", "en", 0),
    ("plus", "How much does Plus cost?", "Plus costs 4 euros a month.", "billing", "en", 4),
    ("team", "How much is the team plan?", "Team costs 8 euros a seat.", "billing", "en", 8),
    ("offline", "Does it work offline?", "Yes, offline mode keeps working.", "sync", "en", 0),
]


def write_corpus(folder: Path) -> Path:
    """The entries as .jsonl: category and lang as text, price as a number."""
    corpus = folder / "faq.jsonl"
    lines = [
        json.dumps({"id": i, "question": q, "answer": a, "category": c, "lang": lang, "price": p})
        for i, q, a, c, lang, p in ENTRIES
    ]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus


def build(folder: Path, tiny_sbert: Path) -> Path:
    out = folder / "faq"
    done = runner.invoke(
        app, ["index", str(write_corpus(folder)), "-o", str(out), "--model", str(tiny_sbert), "-q"]
    )
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def index(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("where"), tiny_sbert)


def query(index: Path, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(
        app, ["query", str(index), *args, "--threshold", "none", "--json"], input=stdin
    )


def test_query_where_is_the_python_answer_and_repeats_are_anded(index: Path) -> None:
    engine = SearchEngine.open(index, config=SearchConfig(threshold="none"))
    where = "category = billing and price < 5"
    expected = engine.query("how much", where=where).to_json()
    engine.store.close()
    one = query(index, "how much", "--where", where)
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout) == expected
    assert [hit["id"] for hit in expected["results"]] == ["plus"]
    two = query(index, "how much", "--where", "category = billing", "--where", "price < 5")
    assert json.loads(two.stdout) == expected
    piped = query(index, "--where", where, stdin="how much\nwhat does it cost\n")
    lines = [json.loads(line) for line in piped.stdout.splitlines()]
    assert piped.exit_code == 0 and lines[0] == expected
    assert [hit["id"] for line in lines for hit in line["results"]] == ["plus", "plus"]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            "category = ",
            "bad filter at position 12: expected a value after category =, got the end",
        ),
        (
            "product = app",
            "unknown filter field 'product': the filterable fields are category, lang, price",
        ),
        (
            "price = four",
            "filter field 'price' holds numbers, not text: compare it with a number, not 'four'",
        ),
    ],
)
def test_a_bad_filter_is_one_stderr_line_and_exit_1(index: Path, where: str, message: str) -> None:
    done = query(index, "how much", "--where", where, stdin="a question\n")
    assert done.exit_code == 1 and done.stdout == ""
    assert done.stderr == f"semsearch: error: {message} (option --where)\n"
    piped = query(index, "--where", where, stdin="a question\nanother\n")
    assert piped.exit_code == 1 and piped.stdout == "" and piped.stderr.count("\n") == 1


def test_info_lists_the_filterable_fields(index: Path) -> None:
    shown = runner.invoke(app, ["info", str(index)])
    fields = "category (text, 4 values), lang (text, 2 values), price (number, 3 values)"
    assert f"   filters: {fields}\n" in shown.stdout
    data = json.loads(runner.invoke(app, ["info", str(index), "--json"]).stdout)
    assert data["filters"] == {
        "category": {"kinds": ["text"], "values": 4},
        "lang": {"kinds": ["text"], "values": 2},
        "price": {"kinds": ["number"], "values": 3},
    }


def test_eval_retrieval_where(tiny_sbert: Path, tmp_path: Path) -> None:
    titles = "title in ('Checking tyre pressure', 'Fixing a flat tyre')"
    run_file = tmp_path / "run.txt"
    done = runner.invoke(
        app,
        ["eval", "retrieval", str(ROOT / "examples" / "beir-sample"), "--model", str(tiny_sbert),
         "-k", "5", "--where", titles, "--run-file", str(run_file), "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    ranked = [line.split() for line in run_file.read_text().splitlines()]
    assert {row[2] for row in ranked} == {"bike-tyre-pressure", "bike-puncture"}
    assert len(ranked) == 2 * json.loads(done.stdout)["queries"]  # every query: both, only
    bad = runner.invoke(
        app,
        ["eval", "retrieval", str(ROOT / "examples" / "beir-sample"), "--model", str(tiny_sbert),
         "--where", "title = "],
    )  # fmt: skip
    assert bad.exit_code == 1
    assert bad.stderr == (
        "semsearch: error: bad filter at position 9: expected a value after title =, got the "
        "end (option --where)\n"
    )
