"""Corpus readers: exact records per format, field detection, and every input error."""

from __future__ import annotations

import csv
import json
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from semsearch.corpus import Fields, Record, open_corpus
from semsearch.errors import InputError
from tests.conftest import shared_data

REPO = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, content: str | bytes) -> Path:
    """Write bytes as given and text as UTF-8 with \\n line ends (no platform translation)."""
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(obj) + "\n" for obj in objects)


def raises(match: str) -> AbstractContextManager[Any]:
    """An InputError whose one-line message contains `match` literally."""
    return pytest.raises(InputError, match=re.escape(match))


# --- formats round-trip exact records -------------------------------------------------


def test_csv_records_and_detected_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faq.csv",
        "id,question,answer,category\n"
        "a1,How do I log in?,Use your email.,account\n"
        "a2,Can I export?,Yes: PDF and HTML.,files\n",
    )
    corpus = open_corpus(path)
    assert corpus.path == path
    assert corpus.fields == Fields(text="question", answer="answer", id="id", detected=True)
    assert list(corpus) == [
        Record("a1", "How do I log in?", "Use your email.", {"category": "account"}),
        Record("a2", "Can I export?", "Yes: PDF and HTML.", {"category": "files"}),
    ]
    assert corpus.skipped_empty == 0


def test_tsv_records(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.tsv", "query\treply\tlang\nhi, there\thello\ten\n")
    corpus = open_corpus(path)
    assert corpus.fields == Fields(text="query", answer="reply", id=None, detected=True)
    assert list(corpus) == [Record("1", "hi, there", "hello", {"lang": "en"})]


def test_csv_quoted_commas_newlines_and_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faq.csv",
        'id,text\n1,"one, two"\n2,"line one\nline two\n"\n1,"again ""quoted"""\n',
    )
    records: list[Record] = []
    with raises(f"{path}, line 6: duplicate id '1' (first on line 2)"):
        records.extend(open_corpus(path))
    assert records == [
        Record("1", "one, two", "one, two", {}),
        Record("2", "line one\nline two\n", "line one\nline two\n", {}),
    ]


def test_csv_crlf_line_ends_and_short_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "text,answer,tag\r\nq1,a1,t\r\nq2\r\n")
    assert list(open_corpus(path)) == [
        Record("1", "q1", "a1", {"tag": "t"}),
        Record("2", "q2", "", {"tag": ""}),
    ]


def test_csv_blank_lines_are_not_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "\ntext\n\nfirst\n\nsecond\n")
    assert [(r.id, r.text) for r in open_corpus(path)] == [("1", "first"), ("2", "second")]


def test_csv_long_field(tmp_path: Path) -> None:
    long_text = "word " * 100_000  # over csv's default 131072-character field limit
    path = write(tmp_path, "long.csv", f'text\n"{long_text}"\n')
    assert [r.text for r in open_corpus(path)] == [long_text]


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "\ufeffid,question\nx,Grüße?\n".encode())
    corpus = open_corpus(path)
    assert corpus.fields.id == "id"
    assert list(corpus) == [Record("x", "Grüße?", "Grüße?", {})]


def test_jsonl_records(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faq.jsonl",
        jsonl(
            {"id": 7, "question": "Is it free?", "answer": "Yes.", "tags": ["a"], "n": {"x": 1}},
            {"id": "8", "question": 3.5, "answer": None, "score": 0.5, "ok": True},
        )
        + "\n   \n"
        + jsonl({"id": "9", "question": "Where?", "answer": "Here.", "extra": None}),
    )
    corpus = open_corpus(path)
    assert corpus.fields == Fields(text="question", answer="answer", id="id", detected=True)
    assert list(corpus) == [
        Record("7", "Is it free?", "Yes.", {"tags": ["a"], "n": {"x": 1}}),
        Record("8", "3.5", "", {"score": 0.5, "ok": True}),
        Record("9", "Where?", "Here.", {"extra": None}),
    ]


def test_jsonl_row_number_ids_skip_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "texts.jsonl", "\n" + jsonl({"text": "a"}) + "\n" + jsonl({"text": "b"}))
    assert [r.id for r in open_corpus(path)] == ["1", "2"]


def test_jsonl_missing_key_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.jsonl", jsonl({"text": "a", "id": "1"}, {"id": "2", "other": 1}))
    corpus = open_corpus(path)
    assert [r.id for r in corpus] == ["1"]
    assert corpus.skipped_empty == 1


def test_txt_records(tmp_path: Path) -> None:
    path = write(tmp_path, "texts.txt", "first text\r\n\n  \nsecond, text \n")
    corpus = open_corpus(path)
    assert corpus.fields == Fields(text="line", answer=None, id=None, detected=True)
    assert list(corpus) == [
        Record("1", "first text", "first text", {}),
        Record("4", "second, text ", "second, text ", {}),
    ]
    assert corpus.skipped_empty == 2


@pytest.mark.parametrize("option", ["text_field", "answer_field", "id_field"])
def test_txt_refuses_field_options(tmp_path: Path, option: str) -> None:
    path = write(tmp_path, "texts.txt", "a\n")
    options: dict[str, Any] = {option: "text"}
    with raises("a .txt corpus is one text per line and has no columns"):
        open_corpus(path, **options)


# --- BEIR folders ------------------------------------------------------------------------


def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    folder.mkdir()
    write(
        folder,
        "corpus.jsonl",
        jsonl(
            {"_id": "d1", "title": "Reset", "text": "Click the link.", "metadata": {"url": "u1"}},
            {"_id": "d2", "title": "", "text": "No title here."},
            {"_id": "d3", "title": "Title only", "text": "", "metadata": {}},
        ),
    )
    return folder


def test_beir_default_joins_title_and_text(tmp_path: Path) -> None:
    corpus = open_corpus(beir(tmp_path))
    assert corpus.fields == Fields(text="title+text", answer="text", id="_id", detected=True)
    assert list(corpus) == [
        Record("d1", "Reset Click the link.", "Click the link.", {"title": "Reset", "url": "u1"}),
        Record("d2", "No title here.", "No title here.", {"title": ""}),
        Record("d3", "Title only", "", {"title": "Title only"}),
    ]


def test_beir_explicit_fields(tmp_path: Path) -> None:
    corpus = open_corpus(beir(tmp_path), text_field="title")
    assert corpus.fields == Fields(text="title", answer="text", id="_id", detected=True)
    assert list(corpus) == [
        Record("d1", "Reset", "Click the link.", {"url": "u1"}),
        Record("d3", "Title only", "", {}),
    ]
    assert corpus.skipped_empty == 1


def test_beir_fields_from_a_manifest_are_accepted(tmp_path: Path) -> None:
    corpus = open_corpus(
        beir(tmp_path), text_field="title+text", answer_field="text", id_field="_id"
    )
    assert corpus.fields == Fields(text="title+text", answer="text", id="_id", detected=False)
    assert [r.text for r in corpus] == ["Reset Click the link.", "No title here.", "Title only"]


def test_beir_unknown_field_lists_columns(tmp_path: Path) -> None:
    with raises("has no column 'body'; columns found: _id, title, text, metadata, title+text"):
        open_corpus(beir(tmp_path), text_field="body")


def test_beir_error_names_corpus_file(tmp_path: Path) -> None:
    folder = beir(tmp_path)
    with (folder / "corpus.jsonl").open("a") as handle:
        handle.write("{oops\n")
    with raises(f"{folder / 'corpus.jsonl'}, line 4: bad JSON"):
        list(open_corpus(folder))


# --- field detection and explicit fields ------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ID,Question,Answer", Fields("Question", "Answer", "ID", True)),
        ("text,query,doc_id", Fields("query", "text", "doc_id", True)),
        ("title,text", Fields("text", None, None, True)),
        ("body,title,response,qid", Fields("title", "response", "qid", True)),
        (" Sentence , _id", Fields(" Sentence ", None, " _id", True)),
    ],
)
def test_detection_order_and_actual_names(tmp_path: Path, header: str, expected: Fields) -> None:
    path = write(tmp_path, "c.csv", header + "\n")
    assert open_corpus(path).fields == expected


def test_explicit_fields_override_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,question,answer,key\n1,q,a,k1\n")
    corpus = open_corpus(path, text_field="answer", answer_field="Question", id_field="key")
    assert corpus.fields == Fields("answer", "question", "key", detected=False)
    assert list(corpus) == [Record("k1", "a", "q", {"id": "1"})]


def test_given_field_is_not_reused_by_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,question,text,answer\n")
    fields = open_corpus(path, id_field="question").fields
    assert fields == Fields(text="text", answer="answer", id="question", detected=True)
    with raises("no text column found; columns found: id, question"):
        open_corpus(write(tmp_path, "d.csv", "id,question\n"), id_field="question")


def test_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "a,b,c\n1,2,3\n")
    with raises(f"{path} has no column 'X'; columns found: a, b, c"):
        open_corpus(path, text_field="a", id_field="X")


def test_no_text_column(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", jsonl({"key": 1, "value": "v"}))
    with pytest.raises(
        InputError, match=r"no text column found; columns found: key, value;.*text field"
    ):
        open_corpus(path)


def test_describe() -> None:
    assert (
        Fields("question", "answer", "id", True).describe()
        == "text from 'question', answer from 'answer', id from 'id' (auto-detected)"
    )
    assert (
        Fields("text", None, None, False).describe()
        == "text from 'text', answer is the text, id is the row number (as given)"
    )


# --- errors --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with raises(f"corpus not found: {tmp_path / 'nope.csv'}"):
        open_corpus(tmp_path / "nope.csv")


def test_unsupported_format(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.json", "[]")
    with raises(f"{path}: unsupported corpus format; semsearch reads .csv, .tsv, .jsonl and .txt"):
        open_corpus(path)


def test_folder_that_is_not_beir(tmp_path: Path) -> None:
    with raises(f"{tmp_path} is a folder without corpus.jsonl, so not a BEIR folder"):
        open_corpus(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.csv", b"text\nok\n\xff bad\n"),
        ("c.tsv", b'text\n"multi\nline"\nbad \xc3(\n'),
        ("c.jsonl", b'{"text": "ok"}\n\n{"text": "\xe9t\xe9"}\n'),
        ("c.txt", b"ok\nok\n\x80\n"),
    ],
)
def test_bad_utf8_names_the_line(tmp_path: Path, name: str, content: bytes) -> None:
    path = write(tmp_path, name, content)
    corpus = open_corpus(path)
    last_line = len(content.splitlines())
    with raises(f"{path}, line {last_line}: not valid UTF-8"):
        list(corpus)
    with raises("the file must be UTF-8"):
        list(corpus)


def test_bad_utf8_in_header(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"t\xffext\nok\n")
    with raises(f"{path}, line 1: not valid UTF-8 (byte 0xff at byte 2 of the line)"):
        open_corpus(path)


def test_bad_json_names_line_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", jsonl({"text": "a"}) + '{"text": "b",}\n')
    with raises(f"{path}, line 2: bad JSON: Expecting property name enclosed in double quotes"):
        list(open_corpus(path))


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "an array"), ('"text"', "a string")])
def test_jsonl_line_not_an_object(tmp_path: Path, line: str, kind: str) -> None:
    path = write(tmp_path, "c.jsonl", jsonl({"text": "a"}) + "\n" + line + "\n")
    with raises(f"{path}, line 3: expected a JSON object {{...}}, got {kind}"):
        list(open_corpus(path))


def test_jsonl_text_must_be_string_or_number(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", jsonl({"text": "a"}, {"text": {"nested": 1}}))
    with raises(f"{path}, line 2: 'text' must be a string or a number, got an object"):
        list(open_corpus(path))


def test_csv_row_with_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'id,text\n1,"a\nb"\n2,b,c\n')
    with raises(f"{path}, line 4: 3 fields but the header has 2; quote fields that contain ','"):
        list(open_corpus(path))


def test_csv_unclosed_quote(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'id,text\n1,a\n2,"open\n3,c\n')
    with raises(f"{path}, line 3: bad CSV (unexpected end of data); check the quotes"):
        list(open_corpus(path))


def test_csv_repeated_header_column(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "\ntext,id,text\n")
    with raises(f"{path}, line 2: the header repeats column(s) text"):
        open_corpus(path)


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.jsonl",
        jsonl({"id": 1, "text": "a"}, {"id": "2", "text": "b"})
        + "\n"
        + jsonl({"id": "1", "text": "c"}),
    )
    with raises(f"{path}, line 4: duplicate id '1' (first on line 1)"):
        list(open_corpus(path))


def test_empty_id_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,text\n1,a\n  ,b\n")
    with raises(f"{path}, line 3: empty id in 'id'"):
        list(open_corpus(path))


def test_empty_texts_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,text\n1,a\n2,\n3,  \t\n4,d\n")
    corpus = open_corpus(path)
    assert [r.id for r in corpus] == ["1", "4"]
    assert corpus.skipped_empty == 2


def test_empty_text_in_strict_mode(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,text\n1,a\n2, \n")
    with raises(f"{path}, line 3: empty text in 'text' (strict mode)"):
        list(open_corpus(path, strict=True))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.csv", ""),
        ("h.csv", "id,question\n"),
        ("e.tsv", "\n"),
        ("e.jsonl", "\n\n"),
        ("e.txt", ""),
    ],
)
def test_empty_files_yield_nothing(tmp_path: Path, name: str, content: str) -> None:
    corpus = open_corpus(write(tmp_path, name, content), strict=True)
    assert list(corpus) == []
    assert list(corpus.chunks(3)) == []


def test_empty_file_accepts_any_fields(tmp_path: Path) -> None:
    corpus = open_corpus(write(tmp_path, "e.jsonl", ""), text_field="q", id_field="k")
    assert corpus.fields == Fields("q", None, "k", detected=True)
    assert list(corpus) == []


def test_empty_beir_corpus(tmp_path: Path) -> None:
    write(tmp_path, "corpus.jsonl", "")
    corpus = open_corpus(tmp_path)
    assert corpus.fields == Fields("title+text", "text", "_id", detected=True)
    assert list(corpus) == []


# --- streaming -------------------------------------------------------------------------------


def test_errors_surface_while_streaming(tmp_path: Path) -> None:
    """Opening reads only the first record, so the good rows before a bad one are yielded."""
    path = write(tmp_path, "c.jsonl", jsonl({"text": "a"}, {"text": "b"}) + "{bad\n")
    corpus = open_corpus(path)
    seen: list[str] = []
    with raises("line 3: bad JSON"):
        seen.extend(r.text for r in corpus)
    assert seen == ["a", "b"]


def test_iterating_twice_gives_the_same_records(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,text\n1,a\n2,\n3,c\n")
    corpus = open_corpus(path)
    first = list(corpus)
    assert list(corpus) == first
    assert corpus.skipped_empty == 1


def test_chunks(tmp_path: Path) -> None:
    path = write(tmp_path, "c.txt", "".join(f"text {i}\n" for i in range(1, 8)))
    corpus = open_corpus(path)
    chunks = list(corpus.chunks(3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert [r for chunk in chunks for r in chunk] == list(corpus)
    assert [len(chunk) for chunk in corpus.chunks(7)] == [7]
    assert [len(chunk) for chunk in corpus.chunks(100)] == [7]
    with pytest.raises(ValueError, match="at least 1"):
        next(corpus.chunks(0))


# --- real data --------------------------------------------------------------------------------


def test_example_faq_csv() -> None:
    path = REPO / "examples" / "faq.csv"
    corpus = open_corpus(path)
    assert corpus.fields == Fields(text="question", answer="answer", id="id", detected=True)
    records = list(corpus)
    with path.open(encoding="utf-8", newline="") as handle:
        data_rows = sum(1 for _ in csv.reader(handle)) - 1
    assert len(records) == data_rows
    assert corpus.skipped_empty == 0
    assert all(set(r.metadata) == {"category"} for r in records)


@pytest.mark.data
def test_stackfaq_beir_folder() -> None:
    corpus = open_corpus(shared_data("stackfaq"))
    records = list(corpus)
    assert len(records) == 719
    assert len({r.id for r in records}) == 719
    assert corpus.fields.text == "title+text"
