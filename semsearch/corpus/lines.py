""".jsonl files, BEIR folders and .txt files: formats read one physical line at a time,
a JSON object or a text per line."""

from __future__ import annotations

import json
import math
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

from semsearch.corpus.base import (
    BEIR_TEXT,
    UTF16_HINT,
    Fields,
    Rows,
    Table,
    input_error,
    json_kind,
    read_lines,
)
from semsearch.errors import InputError
from semsearch.text import not_utf8


def json_object(path: Path, line: int, text: str) -> dict[str, Any]:
    """One JSON object, or an error naming the line: no NaN/Infinity (nor a number such as
    1e999 that overflows to it), no lone surrogate
    (only a \\u escape gives one), and limits on depth and number size."""

    def refuse_constant(name: str) -> Any:
        message = f"{name} is not a JSON value: give a number, a string or null"
        raise input_error(path, line, message)

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):  # 1e999: Python reads it as Infinity
            shown = number if len(number) <= 40 else f"{number[:37]}..."
            message = f"the number {shown} is too large for a float: write it as a string"
            raise input_error(path, line, message)
        return value

    try:
        value = json.loads(text, parse_constant=refuse_constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        hint = f" ({UTF16_HINT})" if "\x00" in text else ""
        message = f"bad JSON: {exc.msg} (column {exc.colno}){hint}"
        raise input_error(path, line, message) from None
    except (RecursionError, ValueError) as exc:  # too deep; an integer of 4,300+ digits
        detail = "nested too deeply to read" if isinstance(exc, RecursionError) else str(exc)
        raise input_error(path, line, f"bad JSON: {detail}") from None
    if not isinstance(value, dict):
        raise input_error(path, line, f"expected a JSON object {{...}}, got {json_kind(value)}")
    problem = "\\u" in text and not_utf8(json.dumps(value, ensure_ascii=False), from_json=True)
    if problem:
        raise input_error(path, line, f"holds {problem}, which is not text: fix that escape")
    return value


class JsonlTable(Table):
    """One JSON object per line; the columns are the keys of the first object."""

    def _read_columns(self) -> list[str]:
        with closing(self.rows()) as rows:
            _, first = next(rows, (0, {}))
        return list(first)

    def rows(self) -> Rows:
        with closing(read_lines(self.path, self.span)) as lines:
            for line, text in lines:
                if text.strip():
                    yield line, json_object(self.path, line, text)

    def count_rows(self) -> int:
        with closing(read_lines(self.path, self.span)) as lines:
            return sum(1 for _, text in lines if text.strip())


class BeirTable(JsonlTable):
    """A BEIR corpus.jsonl; the default text is title and text joined, as BEIR's models do."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "corpus.jsonl")

    def _read_columns(self) -> list[str]:
        columns = super()._read_columns()
        return [*columns, BEIR_TEXT] if columns else columns

    def fields(
        self, text_field: str | None, answer_field: str | None, id_field: str | None
    ) -> Fields:
        chosen = super().fields(text_field or BEIR_TEXT, answer_field or "text", id_field or "_id")
        return replace(chosen, detected=None in (text_field, answer_field, id_field))

    def value(self, line: int, row: dict[str, Any], column: str) -> str:
        if column != BEIR_TEXT:
            return super().value(line, row, column)
        parts = (super().value(line, row, "title"), super().value(line, row, "text"))
        return " ".join(part for part in parts if part.strip())

    def metadata(self, row: dict[str, Any], used: set[str | None]) -> dict[str, Any]:
        """Other top-level keys (the title, by default), then the entries of `metadata`."""
        meta = super().metadata(row, used)
        if isinstance(meta.get("metadata"), dict):
            meta.update(meta.pop("metadata"))
        return meta


class TxtTable(Table):
    """One text per line, no columns: the id is the line number and the answer the text.
    A line ends at a line feed, a CR LF, or a lone CR (an old Mac file's line end)."""

    def _read_columns(self) -> list[str]:
        return ["line"]

    def rows(self) -> Rows:
        number = self.span.first_row - 1  # a lone CR ends a line too: rows, not lines
        with closing(read_lines(self.path, self.span)) as lines:
            for _, text in lines:
                for piece in text.rstrip("\r\n").split("\r"):
                    number += 1
                    yield number, {"line": piece}

    def count_rows(self) -> int:
        with closing(read_lines(self.path, self.span)) as lines:
            return sum(text.rstrip("\r\n").count("\r") + 1 for _, text in lines)

    def fields(
        self, text_field: str | None, answer_field: str | None, id_field: str | None
    ) -> Fields:
        if (text_field, answer_field, id_field) != (None, None, None):
            raise InputError(
                f"{self.path}: a .txt corpus is one text per line and has no columns; "
                "give no text, answer or id field, or use .csv or .jsonl",
                setting="text_field",
            )
        return Fields("line", None, None, detected=True)
