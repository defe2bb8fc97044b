"""The checks an index folder passes before it is searched: every file there and
unchanged since it was written, an index type this version knows, and every part
holding the same entries. Each failure says what is wrong and to rebuild."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from semsearch.cache import remembered_sha256, sha256_of
from semsearch.errors import IndexFolderError
from semsearch.index import types
from semsearch.index.layout import MANIFEST, RECORDS, REQUIRED, VECTORS
from semsearch.index.lexical import LexicalIndex
from semsearch.index.manifest import IndexSection, Manifest
from semsearch.index.types import VectorIndex
from semsearch.index.views import Parts


def checked_manifest(path: Path) -> Manifest:
    """The folder's manifest, once its files are all there with their checksums; a
    parameter added to its type since it was written is given the value it had then."""
    if not path.is_dir():
        raise IndexFolderError(f"no index folder at {path}: run `semsearch index` to build it")
    manifest = Manifest.read(path)  # first: a folder without one is no index at all
    for name in REQUIRED:
        if not (path / name).is_file():
            raise IndexFolderError(
                f"{name} is missing from the index folder {path}: run `semsearch index` to build it"
            )
    section = manifest.index
    kind = types.REGISTRY.get(section.type)
    if kind is None:
        raise IndexFolderError(
            f"{path / MANIFEST} names an unknown index type {section.type!r} "
            f"(this semsearch knows {', '.join(types.REGISTRY)}): rebuild the index"
        )
    parts = Parts.from_json(manifest.parts)
    large = kind.data_files(parts.views)
    for name in parts.data_files(kind):
        if not (path / name).is_file():
            raise IndexFolderError(
                f"{name} is missing from the index folder {path}: rebuild the index"
            )
        # A type's own files (ivfpq's lists and full vectors) are sized for corpora too
        # big for RAM: hashed once per file version (size, mtime) and remembered.
        digest = remembered_sha256 if name in large else sha256_of
        if digest(path / name) != manifest.checksums.get(name):
            raise IndexFolderError(
                f"{name} in {path} is corrupt: its checksum does not match {MANIFEST}; "
                "rebuild the index with `semsearch index`"
            )
    params = {**kind.added_params, **section.params}
    if set(params) != set(kind.defaults):
        expected = ", ".join(kind.defaults) or "none"
        given = ", ".join(section.params) or "none"
        raise IndexFolderError(
            f"{path / MANIFEST}: a {section.type} index needs the parameters "
            f"{expected}, the manifest gives {given}: rebuild the index"
        )
    complete = {key: params[key] for key in kind.defaults}
    return dataclasses.replace(manifest, index=dataclasses.replace(section, params=complete))


def check_counts(
    path: Path,
    section: IndexSection,
    records: tuple[int, int],
    vectors: VectorIndex,
    second: VectorIndex | None,
    lexical: LexicalIndex | None,
) -> None:
    """The manifest, records.sqlite and every part agree on how many entries there are
    (`records`: live and tombstoned rows)."""
    counts = (section.count, section.deleted)
    if records != counts or vectors.ntotal != sum(counts):
        raise IndexFolderError(
            f"{path} is inconsistent: {MANIFEST} counts {counts[0]} records and "
            f"{counts[1]} deleted, {RECORDS} {records[0]} and {records[1]}, {VECTORS} "
            f"{vectors.ntotal} vectors; rebuild the index"
        )
    if second is not None and second.ntotal != vectors.ntotal:
        raise IndexFolderError(
            f"{path} is inconsistent: the second view holds {second.ntotal} vectors, "
            f"{VECTORS} {vectors.ntotal}; rebuild the index"
        )
    if lexical is not None and lexical.count != section.count:
        raise IndexFolderError(
            f"{path} is inconsistent: the lexical index holds {lexical.count} entries, "
            f"the manifest counts {section.count}; rebuild the index"
        )
