"""The checks an index folder passes before it is searched: every file there and
unchanged since it was written, an index type this version knows, and every part
holding the same entries. Each failure says what is wrong and to rebuild."""

from __future__ import annotations

from pathlib import Path

from semsearch.cache import remembered_sha256, sha256_of
from semsearch.errors import IndexFolderError
from semsearch.index.lexical import LexicalIndex
from semsearch.index.manifest import DATA_FILES, MANIFEST_FILE, IndexSection, Manifest
from semsearch.index.ondisk import data_files
from semsearch.index.vectors import DEFAULT_PARAMS, VectorIndex
from semsearch.index.views import Parts


def checked_manifest(path: Path) -> Manifest:
    """The folder's manifest, once its files are all there with their checksums."""
    if not path.is_dir():
        raise IndexFolderError(f"no index folder at {path}: run `semsearch index` to build it")
    manifest = Manifest.read(path)  # first: a folder without one is no index at all
    for name in DATA_FILES:
        if not (path / name).is_file():
            raise IndexFolderError(
                f"{name} is missing from the index folder {path}: run `semsearch index` to build it"
            )
    parts = Parts.from_json(manifest.parts)
    large = data_files(manifest.index.type, bool(parts.second))
    for name in (*DATA_FILES, *parts.files, *large):
        if not (path / name).is_file():
            raise IndexFolderError(
                f"{name} is missing from the index folder {path}: rebuild the index"
            )
        # ivfpq's lists and full vectors are sized for corpora too big for RAM: hashed
        # once per file version (size, mtime) and remembered, not on every open.
        digest = remembered_sha256 if name in large else sha256_of
        if digest(path / name) != manifest.checksums.get(name):
            raise IndexFolderError(
                f"{name} in {path} is corrupt: its checksum does not match manifest.json; "
                "rebuild the index with `semsearch index`"
            )
    section = manifest.index
    if section.type not in DEFAULT_PARAMS:
        raise IndexFolderError(
            f"{path / MANIFEST_FILE} names an unknown index type {section.type!r} "
            f"(this semsearch knows {', '.join(DEFAULT_PARAMS)}): rebuild the index"
        )
    if set(section.params) != set(DEFAULT_PARAMS[section.type]):
        expected = ", ".join(DEFAULT_PARAMS[section.type]) or "none"
        given = ", ".join(section.params) or "none"
        raise IndexFolderError(
            f"{path / MANIFEST_FILE}: a {section.type} index needs the parameters "
            f"{expected}, the manifest gives {given}: rebuild the index"
        )
    return manifest


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
            f"{path} is inconsistent: manifest.json counts {counts[0]} records and "
            f"{counts[1]} deleted, records.sqlite {records[0]} and {records[1]}, vectors.faiss "
            f"{vectors.ntotal} vectors; rebuild the index"
        )
    if second is not None and second.ntotal != vectors.ntotal:
        raise IndexFolderError(
            f"{path} is inconsistent: the second view holds {second.ntotal} vectors, "
            f"vectors.faiss {vectors.ntotal}; rebuild the index"
        )
    if lexical is not None and lexical.count != section.count:
        raise IndexFolderError(
            f"{path} is inconsistent: the lexical index holds {lexical.count} entries, "
            f"the manifest counts {section.count}; rebuild the index"
        )
