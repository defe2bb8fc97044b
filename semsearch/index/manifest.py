"""manifest.json: what built an index folder, so that opening it can refuse what would
silently give wrong answers (a newer format, a corrupt file; a different encoder is
judged by `semsearch.fingerprint`).

The manifest holds the checksums of the other files and one of itself: `manifest_sha256`,
the SHA-256 of its canonical content (every other key, sorted, compact JSON). An index
written before that key existed opens without it; a manifest whose content no longer
matches it was edited or damaged after it was written, and is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from semsearch.errors import IndexFolderError
from semsearch.index.fusion_choice import problem as fusion_problem
from semsearch.index.layout import MANIFEST
from semsearch.index.threshold import problem as threshold_problem
from semsearch.index.views import problem as parts_problem
from semsearch.regular import MAX_SETTINGS_BYTES, read_regular
from semsearch.text import not_utf8

FORMAT_VERSION = 1


def utc_now() -> str:
    """ISO 8601 UTC timestamp, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class IndexSection:
    """The manifest's "index" object: how vectors.faiss is organised and what it holds."""

    type: str
    faiss_factory: str
    count: int
    deleted: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    metric: str = "inner_product"


# Each key the loader reads: its type, and whether it may be left out.
_SCHEMA: dict[str, tuple[type, bool]] = {
    "semsearch_version": (str, False),
    "created": (str, False),
    "updated": (str, False),
    "encoder": (dict, False),
    "index": (dict, False),
    "fields": (dict, True),
    "checksums": (dict, False),
    "parts": (dict, True),
    "threshold": (dict, True),
    "fusion": (dict, True),
    "manifest_sha256": (str, True),
}
_INDEX_SCHEMA: dict[str, tuple[type, bool]] = {
    "type": (str, False),
    "faiss_factory": (str, False),
    "count": (int, False),
    "deleted": (int, True),
    "params": (dict, True),
    "metric": (str, True),
}
_KINDS = {str: "a string", dict: "an object", int: "a whole number of 0 or more"}
SELF_CHECKSUM = "manifest_sha256"
METRICS = ("inner_product",)


def canonical_sha256(data: dict[str, Any]) -> str:
    """The manifest's own checksum: its content less this checksum, in one canonical form."""
    content = {key: value for key, value in data.items() if key != SELF_CHECKSUM}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unknown_values(data: dict[str, Any]) -> str:
    """A value the code would not know what to do with, named; "" when there is none."""
    metric = data["index"].get("metric", METRICS[0])
    if metric not in METRICS:
        return f"index.metric {json.dumps(metric)[:40]} is not one of {', '.join(METRICS)}"
    for key, value in data.get("fields", {}).items():
        if key in ("text", "answer", "id") and not (value is None or isinstance(value, str)):
            return f"fields.{key} must be a column name or null, got {json.dumps(value)[:40]}"
    if "threshold" in data:
        found = threshold_problem(data["threshold"])
        if found:
            return found
    if "fusion" in data:
        found = fusion_problem(data["fusion"])
        if found:
            return found
    return parts_problem(data.get("parts", {}))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _misshapen(data: dict[str, Any], schema: dict[str, tuple[type, bool]], where: str) -> str:
    """What is wrong with one object of the manifest, naming the key; "" when nothing is."""
    for key, (kind, optional) in schema.items():
        if key not in data:
            if optional:
                continue
            return f"the key {where}{key} is missing"
        value = data[key]
        if kind is int:
            fits = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            fits = isinstance(value, kind)
        if not fits:
            return f"{where}{key} must be {_KINDS[kind]}, got {json.dumps(value)[:40]}"
    unknown = sorted(set(data) - set(schema)) if where else []
    return f"{where.rstrip('.')} has unknown key(s) {', '.join(unknown)}" if unknown else ""


@dataclass(frozen=True)
class Manifest:
    """The whole manifest.json; `to_json`/`from_json` round-trip it exactly."""

    semsearch_version: str
    created: str
    updated: str
    encoder: dict[str, Any]
    index: IndexSection
    fields: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    parts: dict[str, Any] = field(default_factory=dict)  # semsearch.index.views.Parts
    threshold: dict[str, Any] | None = None  # semsearch.index.threshold; None: none kept
    fusion: dict[str, Any] | None = None  # semsearch.index.fusion_choice; None: none kept

    @property
    def version(self) -> str:
        """A short token that changes with every write: when and what was written."""
        stamp = json.dumps([self.updated, self.checksums], sort_keys=True)
        return hashlib.sha256(stamp.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> str:
        data = {
            "format_version": self.format_version,
            "semsearch_version": self.semsearch_version,
            "created": self.created,
            "updated": self.updated,
            "encoder": self.encoder,
            "index": dataclasses.asdict(self.index),
            "fields": self.fields,
            "checksums": self.checksums,
            "parts": self.parts,
        }
        if self.threshold is not None:
            data["threshold"] = self.threshold
        if self.fusion is not None:
            data["fusion"] = self.fusion
        data[SELF_CHECKSUM] = canonical_sha256(data)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = MANIFEST) -> Manifest:
        """Parse and validate; `source` names the file in error messages."""
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise IndexFolderError(
                f"{source} is not valid JSON ({exc}): rebuild the index"
            ) from None
        except (RecursionError, ValueError) as exc:  # nested too deep, a huge integer, NaN
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise IndexFolderError(
                f"{source} cannot be read ({reason}): rebuild the index"
            ) from None
        if not isinstance(data, dict):
            raise IndexFolderError(f"{source} is not a JSON object: rebuild the index")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise IndexFolderError(f"{source} has no format_version: it is not a semsearch index")
        if version > FORMAT_VERSION:
            raise IndexFolderError(
                f"index format {version} is newer than this semsearch supports "
                f"({FORMAT_VERSION}): upgrade semsearch"
            )
        problem = _misshapen(data, _SCHEMA, "")
        problem = problem or _misshapen(data["index"], _INDEX_SCHEMA, "index.")
        if not problem and not all(isinstance(v, str) for v in data["checksums"].values()):
            problem = "checksums must map file names to strings"
        problem = problem or _unknown_values(data)
        if not problem and "\\u" in text:  # only an escape gives a lone surrogate
            problem = not_utf8(json.dumps(data, ensure_ascii=False), from_json=True) or ""
        if problem:
            raise IndexFolderError(f"{source} is malformed: {problem}: rebuild the index")
        stored = data.get(SELF_CHECKSUM)
        if stored is not None and stored != canonical_sha256(data):
            raise IndexFolderError(
                f"{source} was changed after it was written (its {SELF_CHECKSUM} does not "
                "match its content): rebuild the index with `semsearch index`"
            )
        return cls(
            semsearch_version=data["semsearch_version"],
            created=data["created"],
            updated=data["updated"],
            encoder=data["encoder"],
            index=IndexSection(**data["index"]),
            fields=data.get("fields", {}),
            checksums=data["checksums"],
            format_version=version,
            parts=data.get("parts", {}),
            threshold=data.get("threshold"),
            fusion=data.get("fusion"),
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.exists():
            raise IndexFolderError(
                f"{MANIFEST} is missing from the index folder {folder}: "
                "run `semsearch index` to build it"
            )
        try:  # a regular file of bounded size: a FIFO or /dev/zero must not hang a reader
            text = read_regular(path, MAX_SETTINGS_BYTES, IndexFolderError).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IndexFolderError(f"cannot read {path}: {exc}") from None
        return cls.from_json(text, source=str(path))


def peek_version(path: Path) -> str | None:
    """The folder's write token (Manifest.version), or None where it cannot be read."""
    try:
        return Manifest.read(path).version
    except IndexFolderError:
        return None
