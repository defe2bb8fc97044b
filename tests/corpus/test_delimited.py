""".csv/.tsv rows and layouts (issue 11, item 11): short rows are counted and reported (or
refused in strict mode), the delimiter is detected or given, and header-less files read
by column position; through the library and through `index`/`add`."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.corpus import Fields, Record, open_corpus
from semsearch.errors import ConfigError, InputError

runner = CliRunner()


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8"))
    return path


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "semsearch"]


# --- rows with fewer or more fields than the header ------------------------------------


def test_short_rows_are_read_as_empty_counted_and_noted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path, "faq.csv", "id,question,answer,tag\n1,q1,a1,t\n\n2,q2\n3,q3,a3,x\n4,q4,\n"
    )
    corpus = open_corpus(path)
    with caplog.at_level(logging.INFO, logger="semsearch"):
        records = list(corpus)
    assert records == [
        Record("1", "q1", "a1", {"tag": "t"}),
        Record("2", "q2", "", {"tag": ""}),
        Record("3", "q3", "a3", {"tag": "x"}),
        Record("4", "q4", "", {"tag": ""}),
    ]
    assert corpus.short_rows == 2 and corpus.skipped_empty == 0
    assert notes(caplog) == [
        f"2 rows of {path} have fewer fields than the header (first: line 4); "
        "their missing fields are empty"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="semsearch"):
        assert len(list(corpus)) == 4  # a second pass counts afresh, not on top
    assert corpus.short_rows == 2 and len(notes(caplog)) == 1


def test_one_short_row_is_worded_alone_and_whole_files_say_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    short = write(tmp_path, "s.tsv", "text\tanswer\na\tb\nc\n")
    whole = write(tmp_path, "w.csv", "text,answer\na,b\n")
    with caplog.at_level(logging.INFO, logger="semsearch"):
        assert [r.answer for r in open_corpus(short)] == ["b", ""]
        assert [r.answer for r in open_corpus(whole)] == ["b"]
    assert notes(caplog) == [
        f"1 row of {short} has fewer fields than the header (first: line 3); "
        "its missing fields are empty"
    ]


def test_a_short_row_whose_text_is_missing_is_skipped_and_counted_both_ways(
    tmp_path: Path,
) -> None:
    corpus = open_corpus(write(tmp_path, "c.csv", "id,text\n1,a\n2\n"))
    assert [r.id for r in corpus] == ["1"]
    assert (corpus.skipped_empty, corpus.short_rows) == (1, 1)


def test_strict_refuses_a_short_row_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'id,text,answer\n1,"a\nb",c\n2,d\n')
    with pytest.raises(
        InputError, match=re.escape(f"{path}, line 4: 2 fields but the header has 3 (strict mode)")
    ):
        list(open_corpus(path, strict=True))
    one = write(tmp_path, "one.csv", "text,answer\nq\n")
    with pytest.raises(InputError, match=re.escape(f"{one}, line 2: 1 field but the header has 2")):
        list(open_corpus(one, strict=True))


def test_a_row_with_more_fields_is_an_error_with_or_without_a_header(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "text,a1\nq2,a2,x\n")
    with pytest.raises(
        InputError, match=re.escape(f"{path}, line 2: 3 fields but the header has 2")
    ):
        list(open_corpus(path))
    message = f"{path}, line 2: 3 fields but the first row has 2; quote fields that contain ','"
    with pytest.raises(InputError, match=re.escape(message)):
        list(open_corpus(path, header=False))


# --- the delimiter ---------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "|", "\t", ","])
def test_the_delimiter_is_detected_from_the_header(tmp_path: Path, delimiter: str) -> None:
    d = delimiter
    content = f'\nid{d}question{d}answer\n1{d}"Hi, there?"{d}"x{d}y"\n2{d}q2{d}a2\n'
    corpus = open_corpus(write(tmp_path, "faq.csv", content))
    assert corpus.fields == Fields("question", "answer", "id", detected=True)
    assert list(corpus) == [
        Record("1", "Hi, there?", f"x{d}y", {}),
        Record("2", "q2", "a2", {}),
    ]
    how = f"fields separated by {delimiter!r} (detected)"
    assert corpus.describe() == f"{corpus.fields.describe()}; {how}"


@pytest.mark.parametrize(
    ("name", "header", "expected"),
    [
        ("a.csv", '"q;1",answer', ","),  # a delimiter inside quotes does not count
        ("a.csv", "q;1,answer", ","),  # a tie goes to the format's own
        ("a.tsv", "q,1\tanswer", "\t"),
        ("a.csv", "q;1;x|answer", ";"),  # the most frequent wins
        ("a.csv", "q|x;answer", ";"),  # a tie without the format's own: , ; tab | order
        ("a.csv", "question", ","),  # one column: nothing to detect
        ("a.tsv", "question;answer", ";"),
        ("a.csv", '"multi\nline;header",b', ","),  # quotes across lines
    ],
)
def test_detection_rules(tmp_path: Path, name: str, header: str, expected: str) -> None:
    corpus = open_corpus(write(tmp_path, name, header + "\n"), header=False)
    assert f"fields separated by {expected!r} (detected)" in corpus.describe()


def test_a_given_delimiter_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "text;x|answer\nq;1|a\n")
    assert "separated by ';' (detected)" in open_corpus(path, header=False).describe()
    given = open_corpus(path, delimiter="|", text_field="text;x")
    assert list(given) == [Record("1", "q;1", "a", {})]
    assert given.describe().endswith("fields separated by '|' (as given)")
    tabbed = write(tmp_path, "t.csv", "text\tanswer\nq\ta\n")
    for spelled in ("tab", "TAB", "\\t", "\t"):
        assert list(open_corpus(tabbed, delimiter=spelled)) == [Record("1", "q", "a", {})]


@pytest.mark.parametrize("bad", ["", ";;", '"', "\n", "comma"])
def test_a_delimiter_must_be_one_usable_character(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, "c.csv", "text\nq\n")
    with pytest.raises(ConfigError, match="a delimiter is one character") as caught:
        open_corpus(path, delimiter=bad)
    assert caught.value.setting == "delimiter"


@pytest.mark.parametrize(
    ("name", "content", "options", "setting"),
    [
        ("c.jsonl", '{"text": "a"}\n', {"delimiter": ";"}, "delimiter"),
        ("c.txt", "a\n", {"header": False}, "header"),
        ("c.jsonl", '{"text": "a"}\n', {"header": False}, "header"),
    ],
)
def test_csv_options_are_refused_for_other_formats(
    tmp_path: Path, name: str, content: str, options: dict[str, object], setting: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(
        InputError, match=re.escape(f"{path}: a {path.suffix} file has no")
    ) as caught:
        open_corpus(path, **options)  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_csv_options_are_refused_for_a_beir_folder(tmp_path: Path) -> None:
    write(tmp_path, "corpus.jsonl", '{"_id": "d", "text": "t"}\n')
    with pytest.raises(InputError, match="a BEIR folder has no delimiter"):
        open_corpus(tmp_path, delimiter=",")


# --- files without a header ------------------------------------------------------------


def test_without_a_header_the_first_row_is_data_and_columns_are_numbered(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "How do I log in?;Use your email.;account\nAnd out?;Menu\n")
    corpus = open_corpus(path, header=False)
    assert corpus.fields == Fields("1", "2", None, detected=True)
    assert list(corpus) == [
        Record("1", "How do I log in?", "Use your email.", {"3": "account"}),
        Record("2", "And out?", "Menu", {"3": ""}),
    ]
    assert corpus.short_rows == 1
    assert corpus.describe() == (
        "text from '1', answer from '2', id is the row number (auto-detected); "
        "fields separated by ';' (detected); no header: columns are numbered from 1"
    )


def test_without_a_header_named_columns_and_the_rest_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.tsv", "k1\tq1\ta1\tx\nk2\tq2\ta2\ty\n")
    by_id = open_corpus(path, header=False, id_field="1")
    assert by_id.fields == Fields("2", "3", "1", detected=True)
    assert list(by_id) == [
        Record("k1", "q1", "a1", {"4": "x"}),
        Record("k2", "q2", "a2", {"4": "y"}),
    ]
    text_2 = open_corpus(path, header=False, text_field="2")
    assert text_2.fields == Fields("2", "1", None, detected=True)
    given = open_corpus(path, header=False, text_field="3", answer_field="4", id_field="1")
    assert given.fields == Fields("3", "4", "1", detected=False)
    assert [r.id for r in given] == ["k1", "k2"]
    with pytest.raises(InputError, match=re.escape(f"{path} has no column '5'")):
        open_corpus(path, header=False, text_field="5")


def test_without_a_header_one_column_answers_with_its_text(tmp_path: Path) -> None:
    corpus = open_corpus(write(tmp_path, "q.csv", "first\nsecond\n"), header=False)
    assert corpus.fields == Fields("1", None, None, detected=True)
    assert list(corpus) == [Record("1", "first", "first", {}), Record("2", "second", "second", {})]
    assert list(open_corpus(write(tmp_path, "e.csv", ""), header=False)) == []


def test_without_a_header_every_column_taken_leaves_no_text(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "a,b\n")
    with pytest.raises(InputError, match="every column is taken") as caught:
        open_corpus(path, header=False, answer_field="1", id_field="2")
    assert caught.value.setting == "text_field"


# --- through the command line ----------------------------------------------------------


def test_index_and_add_report_short_rows(tiny_sbert: Path, tmp_path: Path) -> None:
    corpus = write(
        tmp_path,
        "faq.csv",
        "id,question,answer\na,How do I log in?,Email.\nb,Dark mode?\nc,Export?\n",
    )
    folder = tmp_path / "idx"
    built = run("index", corpus, "-o", folder, "--model", tiny_sbert, "--json", "--quiet")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["short_rows"] == 2
    assert (
        f"semsearch: 2 rows of {corpus} have fewer fields than the header (first: line 3); "
        "their missing fields are empty\n"
    ) in built.stderr
    more = write(tmp_path, "more.csv", "id|question|answer\nd|Sync?\n")
    added = run("add", folder, more, "--json", "--quiet")
    assert added.exit_code == 0, added.output
    summary = json.loads(added.stdout)
    assert (summary["added"], summary["short_rows"], summary["count"]) == (1, 1, 4)
    plain = run("add", folder, more, "--quiet")
    assert plain.exit_code == 0 and "short rows: 1" in plain.stdout


def test_index_strict_refuses_a_short_row(tiny_sbert: Path, tmp_path: Path) -> None:
    corpus = write(tmp_path, "faq.csv", "question,answer\nq1,a1\nq2\n")
    result = run(
        "index", corpus, "-o", tmp_path / "i", "--model", tiny_sbert, "--strict", "--quiet"
    )
    assert result.exit_code != 0
    message = f"{corpus}, line 3: 1 field but the header has 2 (strict mode)"
    assert result.stderr == f"semsearch: error: {message}\n"
    assert not (tmp_path / "i").exists()


def test_index_no_header_and_delimiter_options(tiny_sbert: Path, tmp_path: Path) -> None:
    corpus = write(tmp_path, "faq.csv", "k1|How do I log in?|Email.\nk2|Dark mode?|Settings.\n")
    folder = tmp_path / "idx"
    args = ("--model", tiny_sbert, "--no-header", "--delimiter", "|", "--id-field", "1")
    result = run("index", corpus, "-o", folder, *args)
    assert result.exit_code == 0, result.output
    assert (
        f"reading {corpus}: text from '2', answer from '3', id from '1' (auto-detected); "
        "fields separated by '|' (as given); no header: columns are numbered from 1"
    ) in result.stderr
    found = run("query", folder, "Dark mode?", "--json", "-k", "1")
    assert found.exit_code == 0, found.output
    hit = json.loads(found.stdout)["results"][0]
    assert (hit["id"], hit["answer"]) == ("k2", "Settings.")


@pytest.mark.parametrize(
    ("name", "args", "ending"),
    [
        ("c.jsonl", ("--delimiter", ";"), "only .csv and .tsv files take one (option --delimiter)"),
        ("c.txt", ("--no-header",), "only .csv and .tsv files do (option --no-header)"),
        ("c.csv", ("--delimiter", "ab"), "got 'ab' (option --delimiter)"),
    ],
)
def test_index_names_the_option_at_fault(
    tiny_sbert: Path, tmp_path: Path, name: str, args: tuple[str, ...], ending: str
) -> None:
    corpus = write(tmp_path, name, '{"text": "a"}\n' if name.endswith("jsonl") else "text\na\n")
    result = run("index", corpus, "-o", tmp_path / "i", "--model", tiny_sbert, *args)
    assert result.exit_code != 0
    assert result.stderr.startswith("semsearch: error: ") and result.stderr.endswith(ending + "\n")
    assert len(result.stderr.splitlines()) == 1


def test_a_carriage_return_in_an_unquoted_field_is_named(tmp_path: Path) -> None:
    """Found by the fuzz test: csv's own advice ("open the file in universal-newline
    mode") is not the user's to take."""
    path = write(tmp_path, "c.csv", "text,answer\nq,a\rb\n")
    message = (
        f"{path}, line 2: bad CSV (a carriage return inside an unquoted field); quote that field"
    )
    with pytest.raises(InputError, match=re.escape(message)):
        list(open_corpus(path))
    quoted = write(tmp_path, "q.csv", 'text,answer\nq,"a\rb"\n')
    assert [r.answer for r in open_corpus(quoted)] == ["a\rb"]


def test_a_column_named_by_an_empty_header_cell_can_be_the_id(tmp_path: Path) -> None:
    """Found by the fuzz test: an id column whose header cell is empty was ignored and the
    row numbers used instead."""
    path = write(tmp_path, "c.csv", ",text,answer\nk1,q1,a1\n")
    corpus = open_corpus(path, id_field="")
    assert corpus.fields == Fields("text", "answer", "", detected=True)
    assert "id from ''" in corpus.describe()
    assert list(corpus) == [Record("k1", "q1", "a1", {})]
