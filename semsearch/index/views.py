"""The texts each part of an index is built from, and the parts an index folder holds.

Every index embeds each entry's text (today's dense view, `vectors.faiss`). When the
entries have a question and an answer, a second dense view is kept beside it, so fusion
can score an entry by its question alone and by question and answer together:

- an FAQ table (text = the question, a separate answer column): the second view is
  "question + answer" (`joint`);
- a BEIR folder (text = title and text joined): the second view is the title alone
  (`question`).

The lexical (BM25) part always reads question and answer together. What an index holds
is written in its manifest (`parts`), so `add` keeps every part in step and an older
index without them opens in dense mode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from semsearch.corpus import BEIR_TEXT, Record
from semsearch.index import layout
from semsearch.index.types import IndexType

SECOND_VIEWS = ("question", "joint")


@dataclass(frozen=True)
class Parts:
    """Which parts beside `vectors.faiss` an index folder holds, and what they read."""

    second: str | None = None  # "question", "joint" or None (one dense view)
    field: str | None = None  # for "question": the metadata key that holds it
    lexical: bool = False
    generic: bool = False  # the generic questions' vectors (semsearch.index.threshold)

    @classmethod
    def choose(cls, fields: dict[str, Any] | None) -> Parts:
        """The parts for a corpus read with `fields` ({"text", "answer", "id"})."""
        fields = fields or {}
        text, answer = fields.get("text"), fields.get("answer")
        if text == BEIR_TEXT:
            return cls("question", "title", lexical=True)
        if answer and answer != text:
            return cls("joint", lexical=True)
        return cls(lexical=True)

    def second_text(self, record: Record) -> str:
        """The entry's second view; the text itself where the entry has no separate part."""
        if self.second == "question":
            title = record.metadata.get(self.field or "")
            return title.strip() if isinstance(title, str) and title.strip() else record.text
        return self.lexical_text(record)

    def lexical_text(self, record: Record) -> str:
        """Question and answer together (once, where the answer is the text itself)."""
        if self.second == "joint" and record.answer.strip() and record.answer != record.text:
            return f"{record.text}\n{record.answer}"
        return record.text

    @property
    def files(self) -> tuple[str, ...]:
        """The files these parts add to the folder."""
        return (
            (layout.SECOND,) * bool(self.second)
            + layout.LEXICAL * self.lexical
            + (layout.GENERIC,) * self.generic
        )

    @property
    def views(self) -> tuple[str, ...]:
        """The dense views' FAISS files: vectors.faiss, and the second view's."""
        return layout.view_files(bool(self.second))

    def data_files(self, kind: IndexType) -> tuple[str, ...]:
        """Every file of a folder with these parts and an index of type `kind` but its
        manifest, which checksums them all."""
        return (*layout.REQUIRED, *self.files, *kind.data_files(self.views))

    def to_json(self) -> dict[str, Any]:
        return {
            "second": self.second,
            "field": self.field,
            "lexical": self.lexical,
            "generic": self.generic,
        }

    @classmethod
    def from_json(cls, data: Any) -> Parts:  # checked by `problem` when the manifest is read
        """From a manifest; an index from before hybrid search has none (dense only)."""
        if not isinstance(data, dict):
            return cls()
        second = data.get("second") if data.get("second") in SECOND_VIEWS else None
        field = data.get("field") if isinstance(data.get("field"), str) else None
        return cls(second, field, data.get("lexical") is True, data.get("generic") is True)


_PARTS_KEYS = ("second", "field", "lexical", "generic")


def problem(data: Any) -> str:
    """What is wrong with a manifest's "parts" object, naming the key; "" when nothing is.
    An index from before hybrid search has none, or fewer keys (each then means "no")."""
    if not isinstance(data, dict):
        return "parts must be an object"
    unknown = sorted(set(data) - set(_PARTS_KEYS))
    if unknown:
        return f"parts has unknown key(s) {', '.join(unknown)}"
    second = data.get("second")
    if second is not None and second not in SECOND_VIEWS:
        return (
            f"parts.second {json.dumps(second)[:40]} is not one of "
            f"{', '.join(SECOND_VIEWS)} or null"
        )
    if data.get("field") is not None and not isinstance(data["field"], str):
        return "parts.field must be a string or null"
    for key in ("lexical", "generic"):
        if not isinstance(data.get(key, False), bool):
            return f"parts.{key} must be true or false"
    return ""
