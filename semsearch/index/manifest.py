"""manifest.json: what built an index folder, so that opening it can refuse what would
silently give wrong answers (a newer format, a corrupt file; a different encoder is
judged by `semsearch.fingerprint`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from semsearch.errors import IndexFolderError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.faiss"
RECORDS_FILE = "records.sqlite"
DATA_FILES = (VECTORS_FILE, RECORDS_FILE)


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


INDEX_KEY_TYPES: dict[str, type] = {
    "type": str,
    "faiss_factory": str,
    "count": int,
    "deleted": int,
    "params": dict,
    "metric": str,
}
"""Each key of the manifest's "index" object and the JSON type it must have."""


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
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = MANIFEST_FILE) -> Manifest:
        """Parse and validate; `source` names the file in error messages."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexFolderError(
                f"{source} is not valid JSON ({exc}): rebuild the index"
            ) from None
        except (RecursionError, ValueError) as exc:  # nested too deep, a huge integer
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise IndexFolderError(
                f"{source} cannot be read ({reason}): rebuild the index"
            ) from None
        if not isinstance(data, dict):
            raise IndexFolderError(f"{source} is not a JSON object: rebuild the index")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise IndexFolderError(f"{source} has no format_version: it is not a semsearch index")
        if version > FORMAT_VERSION:
            raise IndexFolderError(
                f"index format {version} is newer than this semsearch supports "
                f"({FORMAT_VERSION}): upgrade semsearch"
            )
        index = _object(data, "index", source)
        wanted = set(INDEX_KEY_TYPES)
        required = {"type", "faiss_factory", "count"}
        if missing := sorted(required - set(index)):
            raise IndexFolderError(
                f"{source}: the index entry lacks {', '.join(missing)}: rebuild the index"
            )
        if unknown := sorted(set(index) - wanted):
            raise IndexFolderError(
                f"{source}: the index entry has unknown keys {', '.join(unknown)}: "
                "rebuild the index"
            )
        for key, value in index.items():
            kind = INDEX_KEY_TYPES[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise IndexFolderError(
                    f"{source}: index.{key} should be {kind.__name__}, not {value!r:.40}: "
                    "rebuild the index"
                )
        for key in ("semsearch_version", "created", "updated"):
            if not isinstance(data.get(key), str):
                raise IndexFolderError(
                    f"{source}: {key!r} is missing or not a string: rebuild the index"
                )
        return cls(
            semsearch_version=data["semsearch_version"],
            created=data["created"],
            updated=data["updated"],
            encoder=_object(data, "encoder", source),
            index=IndexSection(**index),
            fields=_object(data, "fields", source, required=False),
            checksums=_object(data, "checksums", source),
            format_version=version,
            parts=_object(data, "parts", source, required=False),
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise IndexFolderError(
                f"{MANIFEST_FILE} is missing from the index folder {folder}: "
                "run `semsearch index` to build it"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexFolderError(f"cannot read {path}: {exc}") from None
        return cls.from_json(text, source=str(path))


def _object(data: dict[str, Any], key: str, source: str, required: bool = True) -> dict[str, Any]:
    """The JSON object at `key`, or an error that names the key."""
    if key not in data and not required:
        return {}
    value = data.get(key)
    if key not in data:
        raise IndexFolderError(f"{source} has no {key!r} entry: rebuild the index")
    if not isinstance(value, dict):
        raise IndexFolderError(f"{source}: {key!r} is not a JSON object: rebuild the index")
    return dict(value)
