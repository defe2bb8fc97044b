"""Cutting a corpus into parts that workers read alone (no Ray needed): the parts read
together give exactly the records of the whole corpus, ids by row number and the line
numbers in errors run on through the file, and shards' BM25 counts merge into the
scores of a one-process build."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from semsearch.corpus import Record, open_corpus
from semsearch.distributed.parts import Reading, count, needs_counts, numbered, plan, records_of
from semsearch.errors import InputError
from semsearch.index.lexical import LexicalIndex
from semsearch.index.lexical_counts import TermCounts, merged

WORDS = [
    "the",
    "account",
    "password",
    "reset",
    "export",
    "note",
    "sync",
    "offline",
    "of",
    "a",
    "phone",
    "share",
    "folder",
]


def read_parts(path: Path, workers: int = 3) -> list[Record]:
    corpus = open_corpus(path)
    reading = Reading(corpus.fields)
    parts = plan(corpus, workers)
    if needs_counts(parts, corpus.fields.id is None):
        parts = numbered(parts, [count(part, reading) for part in parts])
    return [record for part in parts for record in records_of(part, reading)]


def test_jsonl_parts_read_as_the_whole_file(tmp_path: Path) -> None:
    pick = random.Random(0)
    lines = []
    for n in range(300):
        lines.append(json.dumps({"text": " ".join(pick.choices(WORDS, k=pick.randint(0, 9)))}))
        lines += [""] * (n % 7 == 0)  # blank lines are not rows
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    corpus = open_corpus(path)
    parts = plan(corpus, 3)
    assert len(parts) == 12 and all(part.cut for part in parts[1:])
    assert read_parts(path) == list(corpus)  # ids are row numbers, through every part


def test_txt_parts_count_lone_carriage_returns_as_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"".join(b"line %d\r old mac %d\n" % (n, n) for n in range(200)))
    assert read_parts(path, 4) == list(open_corpus(path))


def test_a_bad_row_in_a_later_part_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [json.dumps({"id": f"e{n}", "text": f"text {n}"}) for n in range(200)]
    rows[150] = '{"id": "e150", "text": '
    path.write_text("\n".join(rows) + "\n")
    corpus = open_corpus(path)
    reading = Reading(corpus.fields)
    parts = plan(corpus, 2)
    parts = numbered(parts, [count(part, reading) for part in parts])
    with pytest.raises(InputError) as whole:
        list(corpus)
    with pytest.raises(InputError) as split:
        for part in parts:
            list(records_of(part, reading))
    assert str(split.value) == str(whole.value)
    assert str(split.value).startswith(f"{path}, line 151: bad JSON")


def test_parquet_row_groups_are_parts(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    table = pa.Table.from_pylist([{"text": f"entry {n}", "topic": n % 3} for n in range(250)])
    pq.write_table(table, path, row_group_size=100)
    parts = plan(open_corpus(path), 2)
    assert [part.span.row_group for part in parts] == [0, 1, 2]
    assert read_parts(path) == list(open_corpus(path))


def test_a_folder_of_files_numbers_rows_through_them(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": ""}\n{"text": "three"}\n')
    (tmp_path / "b.csv").write_text('text\nfour\n"five\nand more"\n')
    (tmp_path / "c.jsonl").write_text("\n".join(f'{{"text": "six {n}"}}' for n in range(50)))
    assert read_parts(tmp_path) == list(open_corpus(tmp_path))


def test_bm25_from_shard_counts_equals_one_build(tmp_path: Path) -> None:
    pick = random.Random(1)
    texts = [" ".join(pick.choices(WORDS, k=pick.randint(0, 25))) for _ in range(500)]
    texts.append("the of a")  # stop words only: no terms, still counted in N and length
    local = LexicalIndex.build(texts, np.arange(1, len(texts) + 1))
    shards = []
    for number, (start, stop) in enumerate([(0, 1), (1, 200), (200, 200), (200, len(texts))]):
        path = tmp_path / f"{number}.npz"
        TermCounts.of(texts[start:stop]).save(path)
        shards.append(path)
    built = merged(shards, tmp_path)
    for key in ("vocab", "data", "indices", "indptr", "rowids"):
        np.testing.assert_array_equal(np.asarray(getattr(built, key)), getattr(local, key))
    assert built.top("reset the password", 10)[0] == local.top("reset the password", 10)[0]
