"""Issue 24 item 15: every corpus error names its place: an empty or header-only file,
a duplicate id across two shard files (both places), a file that cannot be read, an
old-Mac (CR-only) .txt read as its lines, and UTF-16 without a BOM named as such."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.corpus import open_corpus
from semsearch.corpus.opening import refuse_empty
from semsearch.errors import InputError

runner = CliRunner()


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("empty.csv", "", "the file is empty"),
        ("header.csv", "question,answer\n", "it has a header row and no records"),
        ("blank.jsonl", "\n\n", "the file is empty"),
        ("blank.txt", "\n  \n", "every row's text ('line') is empty"),
        ("texts.csv", "question,answer\n,a\n", "every row's text ('question') is empty"),
    ],
)
def test_a_corpus_without_records_is_named_at_open(
    tmp_path: Path, name: str, content: str, why: str
) -> None:
    corpus = tmp_path / name
    corpus.write_text(content)
    opened = open_corpus(corpus)  # opening an empty file is no error; index and add refuse it
    with pytest.raises(InputError) as caught:
        refuse_empty(opened)
    assert str(caught.value) == f"{corpus} holds no records: {why}"


def test_cli_refuses_an_empty_csv_before_anything_else(tmp_path: Path) -> None:
    """No "reading ...: text from 'text'" line first, no model loaded: the one line."""
    corpus = tmp_path / "empty.csv"
    corpus.write_text("")
    done = runner.invoke(app, ["index", str(corpus), "-o", str(tmp_path / "x"), "--model", "no"])
    assert done.exit_code == 1
    assert done.output == f"semsearch: error: {corpus} holds no records: the file is empty\n"


def test_a_duplicate_id_across_shard_files_names_both_places(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.csv").write_text("id,question\nx,one\ny,two\n")
    (shards / "b.csv").write_text("id,question\nz,three\n\ny,four\n")
    with pytest.raises(InputError) as caught:
        list(open_corpus(shards))
    assert str(caught.value) == (
        f"{shards / 'b.csv'}, line 4: duplicate id 'y' (first in {shards / 'a.csv'}, line 3)"
    )


def test_a_shard_folder_of_empty_files_is_one_error(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.txt").write_text("")
    (shards / "b.txt").write_text("\n")
    with pytest.raises(InputError, match=r"shards: none of its 2 files holds a record"):
        refuse_empty(open_corpus(shards))


def test_an_unreadable_file_is_named_not_an_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "locked.csv"
    corpus.write_text("question\nq\n")
    corpus.chmod(0)
    if os.geteuid() == 0:  # root reads anything: fail the open as the kernel would

        def refuse(path: object, *args: object) -> int:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr("semsearch.regular.os.open", refuse)
    done = runner.invoke(app, ["index", str(corpus), "-o", str(tmp_path / "x")])
    assert done.exit_code == 1
    assert done.output == f"semsearch: error: cannot read {corpus}: Permission denied\n"


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"])
def test_a_txt_file_reads_one_record_a_line_whatever_its_line_ends(
    tmp_path: Path, end: str
) -> None:
    corpus = tmp_path / "mac.txt"
    corpus.write_bytes(end.join(f"line {n}" for n in range(1, 31)).encode() + end.encode())
    records = list(open_corpus(corpus))
    assert [(r.id, r.text) for r in records] == [(str(n), f"line {n}") for n in range(1, 31)]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (
            ".csv",
            "{path}: the header holds NUL bytes: the file looks like UTF-16; save it as UTF-8",
        ),
        (
            ".jsonl",
            "{path}, line 1: bad JSON: Expecting property name enclosed in double quotes "
            "(column 2) (NUL bytes: the file looks like UTF-16; save it as UTF-8)",
        ),
    ],
)
def test_utf16_without_a_bom_is_named_as_such(tmp_path: Path, suffix: str, message: str) -> None:
    corpus = tmp_path / f"u16{suffix}"
    text = "question,answer\nq,a\n" if suffix == ".csv" else '{"question": "q"}\n'
    corpus.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(InputError) as caught:
        list(open_corpus(corpus))
    assert str(caught.value) == message.format(path=corpus)
    named = tmp_path / "u16-named.csv"
    named.write_bytes("question,answer\nq,a\n".encode("utf-16-le"))
    with pytest.raises(InputError, match=r"has no column 'question'.*\(NUL bytes: the file looks"):
        open_corpus(named, text_field="question")
