"""Issue 24 item 12: manifest.json is covered by an integrity check of its own
(`manifest_sha256`), a value the code does not know is refused by name, and an index
written before the check existed still opens."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from semsearch.corpus import Record
from semsearch.errors import IndexFolderError
from semsearch.index import IndexStore, Manifest
from semsearch.index.manifest import canonical_sha256
from tests.index_writer import HashEncoder

FAQ = [
    Record("pw", "How do I reset my password?", "Use the reset link.", {}),
    Record("pdf", "Can I export notes as PDF?", "Choose File > Export > PDF.", {}),
]
FIELDS = {"text": "question", "answer": "answer", "id": "id"}


@pytest.fixture()
def faq(tmp_path: Path) -> Path:
    store = IndexStore.build(tmp_path / "faq", [FAQ], HashEncoder(), fields=FIELDS)
    store.close()
    return store.path


def _data(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def test_the_written_manifest_carries_the_checksum_of_its_own_content(faq: Path) -> None:
    data = _data(faq)
    assert data["manifest_sha256"] == canonical_sha256(data)
    assert len(data["manifest_sha256"]) == 64
    assert data["parts"]["second"] == "joint"


def test_a_one_character_edit_is_refused(faq: Path) -> None:
    """The adversarial run's edit: "joint" -> "joind" silently dropped the second view."""
    manifest = faq / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"joint"', '"joind"'))
    with pytest.raises(IndexFolderError, match=r'parts.second "joind" is not one of question'):
        IndexStore.open(faq)


def test_an_edit_to_a_known_value_fails_the_integrity_check(faq: Path) -> None:
    manifest = faq / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"lexical": true', '"lexical": false'))
    with pytest.raises(IndexFolderError) as caught:
        IndexStore.open(faq)
    assert str(caught.value) == (
        f"{manifest} was changed after it was written (its manifest_sha256 does not match its "
        "content): rebuild the index with `semsearch index`"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["parts"].update(second="joind"), 'parts.second "joind" is not one of'),
        (lambda m: m["parts"].update(views=2), "parts has unknown key(s) views"),
        (lambda m: m["parts"].update(lexical="yes"), "parts.lexical must be true or false"),
        (lambda m: m["parts"].update(field=3), "parts.field must be a string or null"),
        (lambda m: m["index"].update(metric="l2"), 'index.metric "l2" is not one of inner_prod'),
        (lambda m: m["fields"].update(text=["q"]), "fields.text must be a column name or null"),
        (lambda m: m.update(manifest_sha256=5), "manifest_sha256 must be a string, got 5"),
    ],
    ids=["second", "parts-key", "lexical", "field", "metric", "fields", "checksum-type"],
)
def test_unknown_values_are_refused_by_name_even_with_a_matching_checksum(
    faq: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = _data(faq)
    change(data)
    if isinstance(data["manifest_sha256"], str):
        data["manifest_sha256"] = canonical_sha256(data)
    with pytest.raises(IndexFolderError, match="is malformed: ") as caught:
        Manifest.from_json(json.dumps(data), source="m.json")
    assert message in str(caught.value) and str(caught.value).endswith(": rebuild the index")


def test_an_index_written_before_the_check_still_opens_and_gains_it_on_the_next_write(
    faq: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(faq, old)
    data = _data(old)
    del data["manifest_sha256"]
    (old / "manifest.json").write_text(json.dumps(data, indent=2))
    store = IndexStore.open(old)
    assert store.count == 2
    store.add([[Record("print", "How do I print?", "File > Print.", {})]], HashEncoder())
    store.close()
    assert _data(old)["manifest_sha256"] == canonical_sha256(_data(old))
