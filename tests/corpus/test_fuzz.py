"""Fuzzing with a fixed seed (issue 11's bar): the corpus readers and the manifest loader
raise nothing but semsearch's own errors on any input, what they accept is usable later
(UTF-8 text, strict JSON), and every valid generated file reads back exactly."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from semsearch.corpus import Record, open_corpus
from semsearch.errors import SemsearchError
from semsearch.index.manifest import IndexSection, Manifest

FUZZ = settings(
    derandomize=True,  # a fixed seed: the same examples on every run
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DELIMITERS = (",", ";", "\t", "|")

# Text that can be stored: any code point but a surrogate, and not empty after strip().
chars = st.characters(exclude_categories=["Cs"])
words = st.text(chars, min_size=1, max_size=30).filter(lambda t: t.strip() != "")
any_text = st.text(chars, max_size=30)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**80), max_value=10**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
# Pieces that have broken readers before: NaN, deep nesting, huge integers, lone
# surrogate escapes, quotes across lines, a BOM, blank lines, CRs, NULs.
HAZARDS = [
    b"NaN",
    b"-Infinity",
    b'{"text": NaN}\n',
    b"[" * 3000,
    b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}\n",
    b"1" * 5000,
    b'{"id": "x", "text": ' + b"9" * 5000 + b"}\n",
    b'{"text": "\\udce9"}\n',
    b'{"text": "a", "m": {"\\ud800": 1}}\n',
    b'"\\ud83d\\ude00"',
    b'"',
    b'""',
    b'"a\nb"',
    b"\xef\xbb\xbf",
    b"\n\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b",;\t|",
    b"text,answer,id\n",
    b"{}\n",
    b"[]\n",
    b'{"text": {"nested": 1}}\n',
    b'{"id": "", "text": "t"}\n',
    b'{"id": "1", "text": "a"}\n{"id": "1", "text": "b"}\n',
]
garbage = st.lists(
    st.sampled_from(HAZARDS) | st.binary(max_size=40) | any_text.map(str.encode), max_size=12
).map(b"".join)


def usable(record: Record) -> None:
    """What a reader hands on must store and print: UTF-8 text and strict JSON metadata."""
    for value in (record.id, record.text, record.answer):
        value.encode("utf-8")
    assert record.id.strip() and record.text.strip()
    json.dumps(record.metadata, allow_nan=False, ensure_ascii=False).encode("utf-8")


def read(path: Path, **options: Any) -> list[Record]:
    """Every record, or one of semsearch's own errors; anything else fails the test."""
    try:
        records = list(open_corpus(path, **options))
    except SemsearchError:
        return []
    for record in records:
        usable(record)
    return records


# --- any bytes: only semsearch's own errors -------------------------------------------


@FUZZ
@given(
    data=garbage,
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt", "beir"]),
    strict=st.booleans(),
    header=st.booleans(),
    delimiter=st.none() | st.sampled_from([*DELIMITERS, "tab", "", "ab", '"']),
    text_field=st.none() | st.sampled_from(["text", "1", "line", "title+text", "missing"]),
)
def test_any_bytes_read_or_fail_with_our_error(
    tmp_path: Path,
    data: bytes,
    suffix: str,
    strict: bool,
    header: bool,
    delimiter: str | None,
    text_field: str | None,
) -> None:
    if suffix == "beir":
        path = tmp_path / "beir"
        path.mkdir(exist_ok=True)
        (path / "corpus.jsonl").write_bytes(data)
    else:
        path = tmp_path / f"corpus{suffix}"
        path.write_bytes(data)
    read(path, strict=strict, header=header, delimiter=delimiter, text_field=text_field)


@FUZZ
@given(lines=st.lists(json_values.map(json.dumps) | garbage.map(bytes.hex), max_size=8))
def test_any_json_lines_read_or_fail_with_our_error(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    read(path)


# --- valid files read back exactly ----------------------------------------------------


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """A header of 2-5 distinct names (id, text, answer first) and rows of full width."""
    width = draw(st.integers(min_value=2, max_value=5))
    names = draw(st.lists(any_text, min_size=width, max_size=width, unique=True))
    ids = draw(st.lists(words, min_size=0, max_size=8, unique=True))
    rows = [
        [ident, draw(words), *draw(st.lists(any_text, min_size=width - 2, max_size=width - 2))]
        for ident in ids
    ]
    return names, rows


@FUZZ
@given(
    table=tables(),
    suffix=st.sampled_from([".csv", ".tsv"]),
    delimiter=st.sampled_from(DELIMITERS),
    give_delimiter=st.booleans(),
    header=st.booleans(),
    line_end=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
)
def test_valid_csv_reads_back_exactly(
    tmp_path: Path,
    table: tuple[list[str], list[list[str]]],
    suffix: str,
    delimiter: str,
    give_delimiter: bool,
    header: bool,
    line_end: str,
    bom: bool,
    quoting: int,
) -> None:
    names, rows = table
    if not header:
        names = [str(position) for position in range(1, len(names) + 1)]
    assume(rows or header)  # an empty header-less file has no columns to name
    if not give_delimiter:  # detection sees the first row: keep other candidates out of it
        first = names if header else rows[0]
        other = [char for char in DELIMITERS if char != delimiter]
        assume(not any(char in cell for cell in first for char in other))
    # one BOM is taken off; a second one would start the first name
    assume(not (bom and (names if header else rows[0])[0].startswith("\ufeff")))
    if any("\r" in cell for row in [names, *rows] for cell in row):
        quoting = csv.QUOTE_ALL  # csv.writer leaves a lone CR unquoted: not valid CSV
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=line_end, quoting=quoting)
    writer.writerows([names, *rows] if header else rows)
    path = tmp_path / f"corpus{suffix}"
    path.write_bytes(("\ufeff" if bom else "").encode() + out.getvalue().encode("utf-8"))
    fields = {"id_field": names[0], "text_field": names[1], "answer_field": names[2 % len(names)]}
    records = open_corpus(
        path, header=header, delimiter=delimiter if give_delimiter else None, strict=True, **fields
    )
    answer_column = 2 % len(names)
    expected = [
        Record(
            row[0],
            row[1],
            row[answer_column],
            {
                name: value
                for name, value in zip(names, row, strict=True)
                if name not in (names[:3])
            },
        )
        for row in rows
    ]
    assert list(records) == expected
    assert records.short_rows == 0 and records.skipped_empty == 0


@st.composite
def json_records(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(words | st.integers(), max_size=8, unique_by=str))
    return [
        {
            "id": ident,
            "question": draw(words),
            "answer": draw(st.none() | any_text),
            **draw(
                st.dictionaries(any_text.filter(lambda k: k not in KEYS), json_values, max_size=4)
            ),
        }
        for ident in ids
        if str(ident).strip()
    ]


KEYS = ("id", "question", "answer")


@settings(FUZZ, max_examples=60)  # the slowest to generate
@given(objects=json_records(), ascii_only=st.booleans(), blank=st.sampled_from(["", "  ", "\r"]))
def test_valid_jsonl_reads_back_exactly(
    tmp_path: Path, objects: list[dict[str, Any]], ascii_only: bool, blank: str
) -> None:
    path = tmp_path / "c.jsonl"
    lines = [json.dumps(obj, ensure_ascii=ascii_only) for obj in objects]
    path.write_text("\n".join([blank, *lines, blank]) + "\n", encoding="utf-8")
    expected = [
        Record(
            str(obj["id"]),
            obj["question"],
            obj["answer"] or "",
            {key: value for key, value in obj.items() if key not in KEYS},
        )
        for obj in objects
    ]
    assert read(path, strict=True) == expected


@FUZZ
@given(texts=st.lists(words.filter(lambda t: "\n" not in t and "\r" not in t), max_size=8))
def test_valid_txt_reads_back_exactly(tmp_path: Path, texts: list[str]) -> None:
    if texts and texts[0].startswith("\ufeff"):
        texts[0] = "x" + texts[0]
    path = tmp_path / "c.txt"
    path.write_bytes("".join(text + "\n" for text in texts).encode("utf-8"))
    expected = [Record(str(n), text, text, {}) for n, text in enumerate(texts, 1)]
    assert read(path, strict=True) == expected


# --- the manifest loader --------------------------------------------------------------

small_ints = st.integers(min_value=0, max_value=10**12)
manifests = st.builds(
    Manifest,
    semsearch_version=any_text,
    created=any_text,
    updated=any_text,
    encoder=st.dictionaries(any_text, json_values, max_size=5),
    index=st.builds(
        IndexSection,
        type=any_text,
        faiss_factory=any_text,
        count=small_ints,
        deleted=small_ints,
        params=st.dictionaries(any_text, json_values, max_size=3),
        metric=st.just("inner_product"),  # the one metric; another is refused by name
    ),
    fields=st.dictionaries(any_text, st.none() | any_text, max_size=3),
    checksums=st.dictionaries(any_text, any_text, max_size=3),
    format_version=st.integers(min_value=-5, max_value=1),
)


def well_formed(manifest: Manifest) -> None:
    """A manifest the loader returns has the types the rest of semsearch relies on."""
    for text in (manifest.semsearch_version, manifest.created, manifest.updated):
        assert isinstance(text, str)
    for mapping in (manifest.encoder, manifest.fields, manifest.checksums):
        assert isinstance(mapping, dict) and all(isinstance(k, str) for k in mapping)
    assert all(isinstance(value, str) for value in manifest.checksums.values())
    section = manifest.index
    assert isinstance(section.type, str) and isinstance(section.faiss_factory, str)
    assert isinstance(section.metric, str) and isinstance(section.params, dict)
    for count in (section.count, section.deleted, manifest.format_version):
        assert isinstance(count, int) and not isinstance(count, bool)
    json.loads(manifest.to_json(), parse_constant=refuse)  # strict JSON: no NaN
    manifest.to_json().encode("utf-8")  # no lone surrogate: the next write must succeed


def refuse(name: str) -> None:
    raise AssertionError(f"{name} in a loaded manifest")


def load(text: str | bytes, folder: Path) -> Manifest | None:
    (folder / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        manifest = Manifest.read(folder)
    except SemsearchError:
        return None
    well_formed(manifest)
    return manifest


@FUZZ
@given(manifest=manifests)
def test_valid_manifests_read_back_exactly(tmp_path: Path, manifest: Manifest) -> None:
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert load(manifest.to_json(), tmp_path) == manifest


def _mutate(data: Any, path: list[str | int], value: Any) -> None:
    """Set (or, with a `...` value, delete) one entry of a nested manifest dict."""
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value


MUTABLE = [["semsearch_version"], ["created"], ["updated"], ["encoder"], ["index"], ["fields"]]
MUTABLE += [["checksums"], ["format_version"], *([["index", k] for k in ("type", "count")])]
MUTABLE += [["index", k] for k in ("faiss_factory", "deleted", "params", "metric")]


# Each kind of value as likely as the others (json_values mostly nests), `...` deletes.
mutation_values = st.one_of(
    st.just(...),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    any_text,
    json_values,
)


@FUZZ
@given(
    manifest=manifests,
    mutations=st.lists(st.tuples(st.sampled_from(MUTABLE), mutation_values), max_size=3),
    extra=st.dictionaries(any_text, json_values, max_size=2),
)
def test_mutated_manifests_load_well_formed_or_fail_with_our_error(
    tmp_path: Path,
    manifest: Manifest,
    mutations: list[tuple[list[str], Any]],
    extra: dict[str, Any],
) -> None:
    data = json.loads(manifest.to_json())
    for path, value in mutations:
        try:
            _mutate(data, path, value)
        except (KeyError, TypeError):
            continue  # the parent was mutated away first
    if isinstance(data.get("index"), dict):
        data["index"].update(extra)
    load(json.dumps(data), tmp_path)


@FUZZ
@given(data=json_values | st.floats(), raw=garbage)
def test_any_manifest_content_fails_with_our_error(tmp_path: Path, data: Any, raw: bytes) -> None:
    assert load(json.dumps(data), tmp_path) is None or isinstance(data, dict)
    load(raw, tmp_path)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_a_manifest_is_refused(constant: str) -> None:
    """Found by the fuzz test: NaN loaded, and `info --json` printed it, which is not JSON."""
    text = json.dumps(_manifest_data()).replace('"count": 1', f'"count": {constant}')
    with pytest.raises(SemsearchError) as caught:
        Manifest.from_json(text, source="m.json")
    message = f"m.json cannot be read ({constant} is not a JSON value): rebuild the index"
    assert str(caught.value) == message


def _manifest_data() -> dict[str, Any]:
    section = IndexSection("flat", "Flat", 1)
    data: dict[str, Any] = json.loads(Manifest("v", "c", "u", {}, section).to_json())
    return data


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (["index", "count"], "3", 'index.count must be a whole number of 0 or more, got "3"'),
        (["index", "count"], True, "index.count must be a whole number of 0 or more, got true"),
        (["index", "deleted"], -1, "index.deleted must be a whole number of 0 or more, got -1"),
        (["encoder"], [], "encoder must be an object, got []"),
        (["created"], None, "created must be a string, got null"),
        (["index", "type"], ..., "the key index.type is missing"),
        (["checksums"], ..., "the key checksums is missing"),
        (["index", "hnsw_m"], 16, "index has unknown key(s) hnsw_m"),
        (["checksums", "vectors.faiss"], 5, "checksums must map file names to strings"),
        (["encoder", "model"], "\udce9", "\\udce9, a lone surrogate"),
    ],
)
def test_a_misshapen_manifest_is_refused_naming_the_key(
    tmp_path: Path, path: list[str], value: Any, problem: str
) -> None:
    """Found by the fuzz test: such manifests loaded, and failed later as unexpected errors."""
    data = _manifest_data()
    _mutate(data, path, value)
    with pytest.raises(SemsearchError) as caught:
        Manifest.from_json(json.dumps(data), source="m.json")
    assert str(caught.value) == f"m.json is malformed: {problem}: rebuild the index"
