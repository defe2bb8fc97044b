"""An index folder assembled from the workers' shards, in the build's staging folder,
without the corpus in one process's memory.

- records: each shard's SQLite rows appended by SQLite itself (`RecordStore.append_from`),
  rowids shifted so that they run on in part order, as a local build numbers them; an id
  that two parts hold is refused naming both places;
- flat, hnsw, ivf, sq8: built from the memory-mapped shard vectors, added in blocks (these
  types hold every vector in memory when searched anyway; ivf and sq8 train on all of
  them, as a local build does);
- ivfpq: a task trains it on the same sample a local build draws, one task per shard
  fills a copy with that shard's vectors (`coarse.fill`, through the HNSW coarse
  quantizer where nlist is large), and a last task merges the copies' lists on
  disk (`merge_lists`), writes the float16 copy block by block and finds the generic
  questions' best cosines: the process that runs `semsearch index` holds none of them;
- BM25: merged from the shards' term counts (semsearch.index.lexical_counts).

The functions that run as tasks take plain arguments, so `Runner` may be Ray's tasks
or a plain loop.
"""

from __future__ import annotations

import bisect
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from semsearch.corpus.base import input_error
from semsearch.distributed.shards import Shard
from semsearch.errors import InputError
from semsearch.index import threshold, types
from semsearch.index.layout import RECORDS, SECOND, VECTORS
from semsearch.index.lexical_counts import merged
from semsearch.index.manifest import Manifest
from semsearch.index.records import RecordStore
from semsearch.index.types import VectorIndex
from semsearch.index.types.coarse import fill
from semsearch.index.types.ivfpq import (
    IVFPQ,
    full_vectors_file,
    ids_file,
    merge_lists,
    training_sample,
)
from semsearch.index.views import Parts
from semsearch.index.writes import Written, finish

ADD_ROWS = 16_384
"""Vectors read from a shard and added to an index at a time."""
SCRATCH = "shards"
"""The staging folder's subfolder for shards and assembly files; removed at the end."""

Runner = Callable[[Callable[..., Any], Sequence[tuple[Any, ...]]], list[Any]]
"""Runs a function once per argument tuple (in parallel where it can), results in order."""


def in_process(function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [function(*arguments) for arguments in calls]


def merge_records(path: Path, shards: Sequence[Shard]) -> int:
    """records.sqlite from the shards' records, in part order; returns the count."""
    store = RecordStore.create(path)
    starts: list[int] = []
    shift = 0
    try:
        for shard in shards:
            clash = store.append_from(shard.records, shift)
            if clash is not None:
                raise _duplicate(shards, starts, shard, clash)
            starts.append(shift)
            shift += shard.count
        store.commit()
    finally:
        store.close()
    return shift


def _duplicate(
    shards: Sequence[Shard], starts: list[int], shard: Shard, clash: tuple[str, int, int]
) -> InputError:
    """The error a local read gives: the later place first, then the earlier one."""
    ident, there, here = clash
    earlier = bisect.bisect_left(starts, here) - 1  # the shard whose rowids hold `here`
    first = shards[earlier]
    line = first.line_of(here - starts[earlier])
    if first.part.file == shard.part.file:
        message = f"duplicate id {ident!r} (first on line {line})"
    else:
        message = f"duplicate id {ident!r} (first in {first.part.file}, line {line})"
    return input_error(Path(shard.part.file), shard.line_of(there), message)


def _blocks(shards: Sequence[Shard], second: bool) -> Any:
    """(vectors, their rowids) in blocks of at most ADD_ROWS, in part order."""
    rowid = 1
    for shard in shards:
        matrix = shard.vectors(second)
        for start in range(0, shard.count, ADD_ROWS):
            block = np.array(matrix[start : start + ADD_ROWS])
            yield block, np.arange(rowid + start, rowid + start + len(block), dtype=np.int64)
        rowid += shard.count


def in_memory_view(
    shards: Sequence[Shard], kind: types.IndexType, params: dict[str, int], dim: int, second: bool
) -> VectorIndex:
    """A flat, hnsw, ivf or sq8 view from the shards' vectors."""
    empty = faiss.index_factory(dim, kind.factory(params), faiss.METRIC_INNER_PRODUCT)
    training = None
    if not empty.is_trained:
        training = np.concatenate([np.asarray(shard.vectors(second)) for shard in shards])
    view = kind.create(dim, params, training=training)
    for block, rowids in _blocks(shards, second):
        view.add(block, rowids)
    return view


# -- ivfpq: each step a task ---------------------------------------------------------------


def train_ivfpq(
    shards: Sequence[Shard], params: dict[str, int], dim: int, second: bool, out: str
) -> None:
    """Train on the sample a local build of these vectors draws; write the empty index."""
    count = sum(shard.count for shard in shards)
    chosen = training_sample(count, params)
    pieces, start = [], 0
    for shard in shards:
        matrix = shard.vectors(second)
        if chosen is None:
            pieces.append(np.asarray(matrix))
        else:
            lo, hi = np.searchsorted(chosen, [start, start + shard.count])
            pieces.append(np.asarray(matrix[chosen[lo:hi] - start]))
        start += shard.count
    view = IVFPQ.create(dim, params, training=np.concatenate(pieces))
    faiss.write_index(view.index, out)


def fill_ivfpq(trained: str, shard: Shard, first_rowid: int, second: bool, out: str) -> None:
    """A copy of the trained index holding one shard's vectors, written to `out`
    (filled as a local build fills its shards: through the HNSW quantizer where the
    index has one)."""
    blocks = _blocks([shard], second)
    shifted = ((block, rowids + (first_rowid - 1)) for block, rowids in blocks)
    faiss.write_index(fill(faiss.read_index(trained), shifted), out)


def merge_ivfpq(
    trained: str,
    filled: Sequence[str],
    shards: Sequence[Shard],
    second: bool,
    view: str,
    params: dict[str, int],
    generic: np.ndarray | None,
) -> np.ndarray:
    """The view's files (STEM.faiss, .ivfdata, .f16.npy, .ids.npy) from the filled
    copies; returns the generic questions' best cosines in it (none without them)."""
    path = Path(view)
    merge_lists(faiss.read_index(trained), [Path(name) for name in filled], path)
    for name in filled:
        Path(name).unlink()
    count = sum(shard.count for shard in shards)
    dim = shards[0].dim
    with full_vectors_file(path).open("wb") as out:
        header = {"descr": np.dtype(np.float16).str, "fortran_order": False, "shape": (count, dim)}
        np.lib.format.write_array_header_1_0(out, header)
        for block, _ in _blocks(shards, second):
            out.write(block.astype(np.float16).tobytes())
    np.save(ids_file(path), np.arange(1, count + 1, dtype=np.int64))
    if generic is None:
        return np.zeros(0, dtype=np.float64)
    opened = IVFPQ.load(path, params)
    return threshold.top_cosines(opened, generic, set())


def ivfpq_views(
    scratch: Path,
    shards: Sequence[Shard],
    params: dict[str, int],
    second: bool,
    generic: np.ndarray,
    run: Runner,
) -> tuple[VectorIndex, VectorIndex | None, np.ndarray]:
    """Both views of an ivfpq index written by tasks into `scratch/ivfpq`, opened."""
    folder = scratch / "ivfpq"
    folder.mkdir()
    dim = shards[0].dim
    views: list[VectorIndex] = []
    top = np.zeros(0, dtype=np.float64)
    for name, of_second in [(VECTORS, False)] + [(SECOND, True)] * second:
        trained = str(folder / f"{name}.trained")
        run(train_ivfpq, [(shards, params, dim, of_second, trained)])
        starts = np.cumsum([1] + [shard.count for shard in shards])
        filled = [str(folder / f"{name}.part-{n}") for n in range(len(shards))]
        calls = [
            (trained, shard, int(start), of_second, out)
            for shard, start, out in zip(shards, starts, filled, strict=False)
            if shard.count
        ]
        run(fill_ivfpq, calls)
        found = run(
            merge_ivfpq,
            [
                (
                    trained,
                    [call[-1] for call in calls],
                    shards,
                    of_second,
                    str(folder / name),
                    params,
                    None if of_second else generic,
                )
            ],
        )[0]
        top = top if of_second else found
        views.append(IVFPQ.load(folder / name, params))
    return views[0], views[1] if second else None, top


def assemble(
    staging: Path,
    shards: Sequence[Shard],
    *,
    fingerprint: dict[str, Any],
    generic: np.ndarray,
    index_type: str,
    params: dict[str, Any] | None,
    fields: dict[str, Any] | None,
    parts: Parts,
    replaced: tuple[Path, Manifest] | None,
    run: Runner = in_process,
) -> None:
    """Write the index folder's files into `staging` from the shards (which lie in
    `staging/SCRATCH`, removed once the folder is complete)."""
    scratch = staging / SCRATCH
    count = merge_records(staging / RECORDS, shards)
    if not count:
        raise InputError("no texts to index: the corpus holds no records")
    dim = shards[0].dim
    kind = types.get(types.resolve_type(index_type, count))
    resolved = kind.resolve_params(params, count, dim)
    live = [shard for shard in shards if shard.count]
    if kind is IVFPQ:
        vectors, second, top = ivfpq_views(
            scratch, live, resolved, parts.second is not None, generic, run
        )
    else:
        vectors = in_memory_view(live, kind, resolved, dim, False)
        second = in_memory_view(live, kind, resolved, dim, True) if parts.second else None
        top = threshold.top_cosines(vectors, generic, set())
    lexical = merged([shard.terms for shard in shards], scratch) if parts.lexical else None
    written = Written(kind.name, resolved, count, vectors, second, lexical)
    finish(staging, written, fingerprint, generic, top, fields, parts, replaced)
    shutil.rmtree(scratch)
