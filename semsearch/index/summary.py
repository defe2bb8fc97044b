"""What `semsearch info` and the HTTP health route say about an opened index folder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semsearch.atomic import folder_bytes, leftovers, stale_lock
from semsearch.index.layout import MANIFEST

if TYPE_CHECKING:
    from semsearch.index.store import IndexStore


def summary(store: IndexStore) -> dict[str, Any]:
    """Counts, encoder, index type and parameters, parts, filterable metadata fields
    (None: built before filters), file sizes, threshold, the index's own hybrid fusion
    (None: none kept), dates;
    and what killed writers left beside the folder (bytes of each), which the next
    write removes: reading never changes a folder."""
    manifest, section = store.manifest, store.manifest.index
    files = (MANIFEST, *store.parts.data_files(store.vectors.kind))
    return {
        "path": str(store.path),
        "count": section.count,
        "deleted": section.deleted,
        "encoder": dict(manifest.encoder),
        "index": {
            "type": section.type,
            "faiss_factory": section.faiss_factory,
            "metric": section.metric,
            "params": dict(section.params),
        },
        "fields": dict(manifest.fields),
        "filters": store.records.filter_fields(),
        "parts": store.parts.to_json(),
        "files": {name: (store.folder / name).stat().st_size for name in files},
        "threshold": manifest.threshold,
        "fusion": manifest.fusion,
        "format_version": manifest.format_version,
        "semsearch_version": manifest.semsearch_version,
        "created": manifest.created,
        "updated": manifest.updated,
        "version": store.version,
        "leftovers": {str(folder): folder_bytes(folder) for folder in leftovers(store.path)},
        "stale_lock": None if (lock := stale_lock(store.path)) is None else str(lock),
    }


def describe_filters(filters: dict[str, dict[str, Any]] | None) -> str:
    """The filterable fields of `summary()["filters"]` in words, for `semsearch info`."""
    if filters is None:
        return "none: built before filters (`semsearch index` rebuilds it to filter)"
    if not filters:
        return "none: the entries have no text or number metadata"
    return ", ".join(
        f"{name} ({' and '.join(field['kinds'])}, {field['values']:,} "
        f"value{'s' * (field['values'] != 1)})"
        for name, field in filters.items()
    )


def describe_parts(parts: dict[str, Any]) -> str:
    """What hybrid search can use in this index, in words."""
    if not parts.get("lexical"):
        return "dense only (built before hybrid search: `semsearch index` rebuilds it)"
    second = {"joint": "question + answer", "question": "the title alone"}.get(
        parts.get("second") or ""
    )
    return "dense" + (f", a second view of {second}" if second else "") + ", lexical (BM25)"
