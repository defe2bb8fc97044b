"""Issue 11, item 7: every message says what is wrong and what to do, in one style.

Usage errors (a bad option value, an unknown option) are one `semsearch: error:` line
like every other error, a damaged manifest names the key at fault, and `--help` states
the defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.errors import IndexFolderError, InputError
from semsearch.evaluation.data import read_labelled
from semsearch.index import AUTO_HNSW_THRESHOLD, Manifest
from semsearch.index.manifest import canonical_sha256
from semsearch.search import SearchEngine

runner = CliRunner()


def semsearch(*args: object, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "semsearch", *map(str, args)],
        input=stdin.decode(),
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def built(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("messages") / "idx"
    corpus = folder.parent / "faq.csv"
    corpus.write_text("id,question,answer\na,How do I reset my password?,A\nb,Q2,B\n")
    done = runner.invoke(app, ["index", str(corpus), "-o", str(folder), "--model", str(tiny_sbert)])
    assert done.exit_code == 0, done.output
    return folder


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["query", "IDX", "x", "--threshold", "abc"],
            "semsearch: error: Invalid value for '--threshold': 'abc' is not a cosine in [-1, 1], "
            "none or index "
            "(see 'semsearch query --help')",
        ),
        (
            ["query", "IDX", "x", "--bogus"],
            "semsearch: error: No such option: --bogus (see 'semsearch query --help')",
        ),
        (
            ["querry", "IDX"],
            "semsearch: error: No such command 'querry'. Did you mean 'query'? "
            "(see 'semsearch --help')",
        ),
    ],
)
def test_usage_errors_are_one_line_in_the_common_style(
    built: Path, args: list[str], expected: str
) -> None:
    done = semsearch(*[built if a == "IDX" else a for a in args])
    assert (done.returncode, done.stdout, done.stderr) == (2, "", expected + "\n")
    in_process = runner.invoke(
        app, [str(built) if a == "IDX" else a for a in args], prog_name="semsearch"
    )
    assert in_process.exit_code == 2 and in_process.output == expected + "\n"


def test_a_reader_that_goes_away_is_not_an_error(built: Path) -> None:
    """`semsearch query ... | head -1`: the closed pipe ends the command quietly."""
    pipeline = subprocess.run(
        f"{sys.executable} -m semsearch query {built} 'x' -k 2 | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert pipeline.stdout == "Q" and pipeline.stderr == ""


def _manifest(built: Path) -> dict:
    return json.loads((built / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("encoder"), "is malformed: the key encoder is missing"),
        (lambda m: m["index"].pop("count"), "is malformed: the key index.count is missing"),
        (lambda m: m["index"].update(count="2"), "index.count must be a whole number of 0 or"),
        (lambda m: m["index"].update(shards=2), "is malformed: index has unknown key(s) shards"),
        (lambda m: m.update(checksums=[]), "is malformed: checksums must be an object, got []"),
        (lambda m: m.update(created=None), "is malformed: created must be a string, got null"),
    ],
)
def test_a_damaged_manifest_names_the_key_at_fault(built: Path, change, message: str) -> None:
    data = _manifest(built)
    change(data)
    with pytest.raises(IndexFolderError) as caught:
        Manifest.from_json(json.dumps(data), source="m.json")
    assert str(caught.value).startswith("m.json") and message in str(caught.value)


def test_an_index_type_message_says_which_part_is_wrong(built: Path, tmp_path: Path) -> None:
    import shutil

    for index, message in [
        (
            {"type": "hnsw", "params": {}},
            "a hnsw index needs the parameters M, efConstruction, efSearch, "
            "the manifest gives none: rebuild the index",
        ),
        ({"type": "annoy"}, "names an unknown index type 'annoy' (this semsearch knows flat,"),
    ]:
        copy = tmp_path / index["type"]
        shutil.copytree(built, copy)
        data = _manifest(copy)
        data["index"].update(index)
        data["manifest_sha256"] = canonical_sha256(data)  # a consistent manifest
        (copy / "manifest.json").write_text(json.dumps(data))
        with pytest.raises(IndexFolderError) as caught:
            SearchEngine.open(copy)
        assert message in str(caught.value)


def test_a_header_cell_spanning_two_lines_is_quoted_in_the_message(tmp_path: Path) -> None:
    corpus = tmp_path / "two.csv"
    corpus.write_text('"ques\ntion",answer\nq1,a1\n', encoding="utf-8")
    done = runner.invoke(
        app, ["index", str(corpus), "-o", str(tmp_path / "x"), "--text-field", "q"]
    )
    assert done.exit_code == 1
    assert done.output == (
        f"semsearch: error: {corpus} has no column 'q'; columns found: 'ques\\ntion', answer\n"
    )
    labelled = tmp_path / "l.csv"
    labelled.write_text('"te\nxt",topic\nhi,x\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"no text column among 'te\\nxt', topic"):
        read_labelled(labelled)


def test_eval_names_the_option_for_a_missing_label_column(tmp_path: Path) -> None:
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("text,topic\nhi,x\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_labelled(unlabelled)
    assert caught.value.setting == "label_field"
    done = runner.invoke(app, ["eval", "classify", str(unlabelled), str(unlabelled)])
    assert done.exit_code == 1
    assert done.output.strip().endswith("name the label field (option --label-field)")


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("index", "--index-type", f"auto (default: flat, hnsw from {AUTO_HNSW_THRESHOLD:,}"),
        ("index", "--batch-size", "(default 32)"),
        ("index", "--max-seq-length", "(default: the model's limit)"),
        ("index", "--model", "(default all-MiniLM-L6-v2)"),
        ("index", "--text-field", "(default: the first of question, query, text,"),
        ("query", "--threshold", "(default: the index's own, see `semsearch info`)"),
        ("query", "-k", "(default 5)"),
        ("eval retrieval", "-k", "[default: 100]"),
        ("eval sts", "--limit", "(default: all)"),
    ],
)
def test_help_states_the_defaults(command: str, option: str, default: str) -> None:
    done = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "400"})
    line = next(line for line in done.output.splitlines() if f" {option} " in line)
    assert default in line and "<bool>" not in done.output
