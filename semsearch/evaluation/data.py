"""Readers for evaluation files: STS pairs, BEIR queries and qrels, labelled texts.

Every reader names the file and the 1-based line of a bad row. STS Benchmark files are
tab-separated without quoting (some sentences hold a lone double quote), so they are split
on tabs, never parsed as CSV.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semsearch.errors import InputError
from semsearch.regular import bounded_lines, open_regular
from semsearch.text import shown

STSB_COLUMNS = 7  # genre, file, year, id, score, sentence1, sentence2 (+ licence columns)
STS_HEADER = ("sentence1", "sentence2", "score")
TEXT_NAMES = ("text", "sentence", "question", "query", "utterance")
LABEL_NAMES = ("label", "category", "intent", "class")


def _error(path: Path, line: int, message: str) -> InputError:
    return InputError(f"{path}, line {line}: {message}")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break), decoded line by line as UTF-8."""
    with open_regular(path) as handle:
        for number, raw in bounded_lines(handle, path):
            data = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
            try:
                yield number, data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise _error(path, number, "not valid UTF-8; save the file as UTF-8") from None


def _number(path: Path, line: int, value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _error(path, line, f"{what} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise _error(path, line, f"{what} {value!r} is not a finite number")
    return number


# -- STS ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StsPairs:
    """Sentence pairs with gold similarity scores."""

    path: Path
    sentence1: list[str]
    sentence2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.sentence1)


def sts_file(path: str | Path, split: str) -> Path:
    """`path` itself, or for a folder (such as ../shared/data/stsb) its `split` file."""
    path = Path(path)
    if not path.is_dir():
        if not path.exists():
            raise InputError(f"STS file not found: {path}")
        return path
    candidates = [path / f"sts-{split}.csv", path / f"{split}.tsv", path / f"{split}.csv"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{path} is a folder without a {split!r} split: expected one of "
        f"{', '.join(c.name for c in candidates)}"
    )


def _header_columns(first: str) -> tuple[str, dict[str, int]] | None:
    """The delimiter and column positions when the first line is a sentence1/sentence2/score
    header, else None."""
    for delimiter in ("\t", ","):
        names = [name.strip().lower() for name in next(csv.reader([first], delimiter=delimiter))]
        if all(name in names for name in STS_HEADER):
            return delimiter, {name: names.index(name) for name in STS_HEADER}
    return None


def read_sts(path: str | Path, *, split: str = "test", limit: int | None = None) -> StsPairs:
    """Read an STS Benchmark file (7+ tab-separated columns, no header) or a CSV/TSV with a
    sentence1, sentence2, score header. A folder means its `split` file."""
    path = sts_file(path, split)
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}", setting="limit")
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    every = list(_lines(path))
    lines = [(n, text) for n, text in every if text.strip()]
    if not lines:
        raise InputError(f"{path} is empty: no sentence pairs")
    header = _header_columns(lines[0][1])
    if header is None:
        for number, text in lines:
            fields = text.split("\t")
            if len(fields) < STSB_COLUMNS:
                raise _error(
                    path,
                    number,
                    f"{len(fields)} tab-separated fields; an STS Benchmark row has 7 "
                    "(genre, file, year, id, score, sentence1, sentence2), or give a CSV/TSV "
                    "with a sentence1,sentence2,score header",
                )
            scores.append(_number(path, number, fields[4], "score"))
            first.append(fields[5])
            second.append(fields[6])
            if limit is not None and len(scores) == limit:
                break
    else:
        delimiter, columns = header
        width = max(columns.values()) + 1
        if delimiter == "\t":  # TSV: split on tabs, no quoting (as the STS Benchmark)
            rows: Iterator[tuple[int, list[str]]] = (
                (number, text.split("\t")) for number, text in lines[1:]
            )
        else:
            rows = _csv_rows(path, every[every.index(lines[0]) + 1 :])
        for number, fields in rows:
            if len(fields) < width:
                raise _error(path, number, f"{len(fields)} fields, the header names {width}")
            scores.append(_number(path, number, fields[columns["score"]], "score"))
            first.append(fields[columns["sentence1"]])
            second.append(fields[columns["sentence2"]])
            if limit is not None and len(scores) == limit:
                break
    if len(scores) < 2:
        raise InputError(f"{path}: a correlation needs at least 2 sentence pairs")
    gold = np.array(scores, dtype=np.float64)
    if np.all(gold == gold[0]):
        raise InputError(f"{path}: every gold score is {gold[0]}; a correlation needs variation")
    return StsPairs(path, first, second, gold)


def _csv_rows(path: Path, lines: list[tuple[int, str]]) -> Iterator[tuple[int, list[str]]]:
    """Non-empty CSV rows (quoted fields may span lines) with the line each starts on."""
    numbers = [number for number, _ in lines]
    reader = csv.reader((text + "\n" for _, text in lines), strict=True)
    consumed = 0
    while consumed < len(numbers):
        start = numbers[consumed]
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _error(path, start, f"bad CSV ({exc}); check the quotes") from None
        consumed = reader.line_num
        if row:
            yield start, row


# -- BEIR ---------------------------------------------------------------------------------
def read_queries(path: Path) -> dict[str, str]:
    """queries.jsonl: one {"_id": ..., "text": ...} object a line."""
    queries: dict[str, str] = {}
    for number, text in _lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _error(path, number, f"bad JSON: {exc.msg}") from None
        if not isinstance(row, dict) or "_id" not in row or not isinstance(row.get("text"), str):
            raise _error(path, number, 'expected an object with "_id" and a string "text"')
        queries[str(row["_id"])] = row["text"]
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """qrels/<split>.tsv: query-id, corpus-id, score (an integer), with or without a header."""
    qrels: dict[str, dict[str, int]] = {}
    for number, text in _lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) < 3:
            raise _error(path, number, "expected query-id<TAB>corpus-id<TAB>score")
        query, doc, level = fields[0].strip(), fields[1].strip(), fields[2].strip()
        try:
            relevance = int(float(level))
        except ValueError:
            if number == 1 or not qrels:  # the header line: query-id corpus-id score
                continue
            raise _error(path, number, f"score {level!r} is not an integer") from None
        qrels.setdefault(query, {})[doc] = relevance
    return qrels


# -- labelled texts -------------------------------------------------------------------------
@dataclass(frozen=True)
class Labelled:
    """Texts with one label each (labels kept as strings)."""

    path: Path
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _pick(
    names: list[str], given: str | None, known: tuple[str, ...], what: str, path: Path
) -> int:
    lowered = [name.strip().lower() for name in names]
    if given is not None:
        if given.strip().lower() not in lowered:
            raise InputError(
                f"{path} has no column {given!r}; columns: {shown(names)}",
                setting=f"{what}_field",
            )
        return lowered.index(given.strip().lower())
    for name in known:
        if name in lowered:
            return lowered.index(name)
    raise InputError(
        f"{path}: no {what} column among {shown(names)}; name the {what} field",
        setting=f"{what}_field",
    )


def read_labelled(
    path: str | Path, *, text_field: str | None = None, label_field: str | None = None
) -> Labelled:
    """A .csv with a header (text,category as BANKING77; columns detected or named), or a
    tab-separated file `sentence<TAB>label` without header (SST-2), or with a header."""
    path = Path(path)
    texts: list[str] = []
    labels: list[str] = []
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path, list(_lines(path)))
        _, names = next(rows, (0, []))
        if not names:
            raise InputError(f"{path} is empty")
        text_at = _pick(names, text_field, TEXT_NAMES, "text", path)
        label_at = _pick(names, label_field, LABEL_NAMES, "label", path)
        for number, row in rows:
            if len(row) <= max(text_at, label_at):
                raise _error(path, number, f"{len(row)} fields, the header has {len(names)}")
            texts.append(row[text_at].strip())
            labels.append(row[label_at].strip())
    else:
        lines = [(n, t) for n, t in _lines(path) if t.strip()]
        if not lines:
            raise InputError(f"{path} is empty")
        names = lines[0][1].split("\t")
        lowered = {name.strip().lower() for name in names}
        has_header = bool(lowered & set(TEXT_NAMES)) and bool(lowered & set(LABEL_NAMES))
        if has_header or text_field or label_field:
            text_at = _pick(names, text_field, TEXT_NAMES, "text", path)
            label_at = _pick(names, label_field, LABEL_NAMES, "label", path)
            lines = lines[1:]
        else:
            text_at, label_at = 0, -1
        for number, text in lines:
            fields = text.split("\t")
            if len(fields) < 2:
                raise _error(path, number, "expected sentence<TAB>label")
            if text_at == 0 and label_at == -1:
                sentence, label = "\t".join(fields[:-1]), fields[-1]
            else:
                sentence, label = fields[text_at], fields[label_at]
            texts.append(sentence.strip())
            labels.append(label.strip())
    if not texts:
        raise InputError(f"{path} holds no labelled texts")
    empty = [i for i, label in enumerate(labels) if not label]
    if empty:
        raise InputError(f"{path}: text {empty[0] + 1} has an empty label")
    return Labelled(path, texts, labels)
