"""Issue 24 item 11: a JSON number that overflows a float (1e999) is refused at read
time with its file and line, as NaN is, wherever it stands (id, text, metadata); and
nothing that is not strict JSON can reach the records store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.corpus import Record, open_corpus
from semsearch.errors import InputError
from semsearch.index.records import RecordStore

runner = CliRunner()


@pytest.mark.parametrize(
    "line",
    [
        '{"id": 1e999, "question": "q", "answer": "a"}',
        '{"id": "n", "question": "q", "answer": "a", "x": 1e999}',
        '{"id": "n", "question": "q", "answer": "a", "x": {"y": [-1E+400]}}',
        '{"id": "n", "question": 2.5e308, "answer": "a"}',
    ],
    ids=["id", "metadata", "nested-negative", "text"],
)
def test_an_overflowing_number_names_its_file_and_line(tmp_path: Path, line: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "ok", "question": "fine", "answer": "a"}\n' + line + "\n")
    with pytest.raises(InputError, match=r"c\.jsonl, line 2: the number .* too large"):
        list(open_corpus(corpus))


def test_large_but_finite_numbers_still_read(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": 17, "question": "q", "x": 1.5e308, "y": 1' + "0" * 400 + "}\n")
    (record,) = list(open_corpus(corpus))
    assert record.id == "17" and record.metadata["x"] == 1.5e308
    assert record.metadata["y"] == 10**400


def test_cli_index_refuses_it_in_one_line_and_leaves_no_folder(
    tiny_sbert: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "question": "q", "meta": 1e999}\n')
    folder = tmp_path / "idx"
    result = runner.invoke(
        app, ["index", str(corpus), "-o", str(folder), "--model", str(tiny_sbert)]
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"semsearch: error: {corpus}, line 1: the number 1e999 is too large for a float: "
        "write it as a string"
    ]
    assert not folder.exists()
    assert not list(tmp_path.glob("idx*"))


def test_the_records_store_refuses_non_finite_metadata(tmp_path: Path) -> None:
    """The last line of defence (a Parquet float column, a Python caller): no Infinity
    in the stored JSON, which `query --json` and POST /search would echo."""
    store = RecordStore.create(tmp_path / "r.sqlite")
    with pytest.raises(InputError, match=r"record 'x' cannot be stored as JSON"):
        store.insert([Record("x", "t", "a", {"score": float("inf")})])
