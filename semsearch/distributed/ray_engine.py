"""The Ray engine: workers read, encode and write the shards; the driver coordinates.

The driver (the `semsearch index` process) opens the corpus only to check it and cut
it into parts (semsearch.distributed.parts); it never reads the records. Each part goes
to a Ray actor that loaded the encoder once: the actor reads the part with semsearch's
readers and writes its shard into the build's staging folder, next to the output (on
a cluster, a folder every node mounts at the same path). The driver then assembles the
index from the shards (semsearch.distributed.assemble), ivfpq's heavy steps as Ray tasks,
and `IndexStore.build_with` swaps it in as a local build's: the same lock, checks and
atomic swap, so a failed or killed build leaves the previous index and the next write
removes what it left. An actor that dies is restarted and its part written again.

Ray Data is not used: its readers do not make semsearch's records (ids by row number,
errors naming file and line), and the parts, few and coarse, each write their own
files and hand back a few counts, so there is no stream between stages for its
back-pressure to bound; actors with Ray's own restarts and retries do what is needed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.config import EncoderConfig
from semsearch.corpus.files import FileSet
from semsearch.corpus.reader import Corpus
from semsearch.distributed.assemble import SCRATCH, assemble
from semsearch.distributed.cluster import RaySettings, connected, import_ray
from semsearch.distributed.parts import Part, Reading, count, needs_counts, numbered, plan
from semsearch.distributed.shards import Shard, write_shard
from semsearch.errors import ConfigError, SemsearchError
from semsearch.index import threshold
from semsearch.index.manifest import Manifest
from semsearch.index.store import IndexStore
from semsearch.index.views import Parts

log = logging.getLogger("semsearch")

AHEAD = 1  # parts queued per actor beyond the one it writes
STOP_WAIT = 10.0  # seconds to wait for killed actors' parts to end after a failure
RESTARTS = 3  # an actor that dies is restarted (and its part retried) this many times


class ShardWorker:
    """One Ray actor: the encoder loaded once, then part after part written as a shard."""

    def __init__(self, config: EncoderConfig) -> None:
        from semsearch.encoders import load_encoder

        self.encoder = load_encoder(config).prepare()
        self.encoder.report_truncation = False  # the driver adds up and reports truncation

    def describe(self) -> dict[str, Any]:
        return {
            "fingerprint": self.encoder.fingerprint,
            "dim": self.encoder.dim,
            "pid": os.getpid(),
        }

    def write(
        self, part: Part, reading: Reading, parts: dict[str, Any], folder: str, chunk_size: int
    ) -> Shard:
        return write_shard(
            self.encoder, part, reading, Parts.from_json(parts), Path(folder), chunk_size
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts, show_progress=False)

    def count(self, part: Part, reading: Reading) -> tuple[int, int]:
        return count(part, reading)


def _shape(ray: Any, settings: RaySettings, threads: int | None) -> tuple[int, int]:
    """How many actors, and how many CPUs (encoder threads) each, on this cluster."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if settings.gpus_per_worker:
        if gpus < settings.gpus_per_worker:
            raise ConfigError(
                f"the Ray cluster has {gpus:g} GPUs, fewer than one worker's "
                f"{settings.gpus_per_worker:g}",
                setting="gpus_per_worker",
            )
        workers = settings.workers or int(gpus // settings.gpus_per_worker)
        each = threads or 1
    elif settings.workers is None:
        each = threads or 1
        workers = max(1, cpus // each)
    else:
        workers = settings.workers
        each = threads or max(1, cpus // workers)
    if workers * each > cpus:
        raise ConfigError(
            f"{workers} workers of {each} CPU{'s' * (each != 1)} each need {workers * each} "
            f"CPUs; the Ray cluster has {cpus}: give fewer workers or threads",
            setting="workers",
        )
    if settings.gpus_per_worker and workers * settings.gpus_per_worker > gpus:
        raise ConfigError(
            f"{workers} workers of {settings.gpus_per_worker:g} GPUs each need more than the "
            f"cluster's {gpus:g} GPUs",
            setting="workers",
        )
    return workers, each


def _unwrapped(ray: Any, exc: BaseException) -> BaseException:
    """The semsearch error a worker raised (a bad setting or row), or one line on what
    failed; Ray wraps the first in its own errors, one or two deep."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        inner = getattr(seen, "cause", None) or seen.__cause__
        if isinstance(seen, SemsearchError) and not isinstance(inner, SemsearchError):
            return seen  # the worker's own, not Ray's subclass of it that wraps it
        seen = inner
    if isinstance(exc, ray.exceptions.RayActorError):
        return SemsearchError(
            f"a Ray worker died: {str(exc).strip().splitlines()[0]}; the index was not changed"
        )
    return exc


def _replace(config: EncoderConfig, **changes: Any) -> EncoderConfig:
    return dataclasses.replace(config, **changes)


class ShardPool:
    """Shard-writing actors on Ray, and the build that uses them (`build`)."""

    def __init__(
        self,
        ray: Any,
        config: EncoderConfig,
        settings: RaySettings,
        show_progress: bool | None = None,
    ) -> None:
        self.ray = ray
        given = config.model  # a local folder travels as an absolute path, shown as given
        if Path(given).expanduser().is_dir():
            config = _replace(config, model=str(Path(given).expanduser().resolve()))
        workers, threads = _shape(ray, settings, config.threads)
        if not settings.gpus_per_worker:
            config = _replace(config, threads=threads)
        actor = ray.remote(ShardWorker).options(
            num_cpus=threads,
            num_gpus=settings.gpus_per_worker,
            max_restarts=RESTARTS,
            max_task_retries=RESTARTS,
        )
        self.workers, self.threads = workers, threads
        self.actors = [actor.remote(config) for _ in range(workers)]
        try:
            described = self._get([worker.describe.remote() for worker in self.actors])
        except BaseException:
            self.close()
            raise
        prints = [entry["fingerprint"] for entry in described]
        if any(other != prints[0] for other in prints[1:]):
            self.close()
            raise ConfigError(
                "the Ray workers loaded different encoders (a node with another model "
                "version or backend): install the same semsearch and model on every node"
            )
        self.fingerprint = {**prints[0], "model": given}
        self.dim = int(described[0]["dim"])
        self.pids = [int(entry["pid"]) for entry in described]  # as first started
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        self.skipped_empty = self.short_rows = 0

    def _get(self, refs: Any) -> Any:
        try:
            return self.ray.get(refs)
        except Exception as exc:
            raise _unwrapped(self.ray, exc) from None

    def build(
        self,
        output: Path,
        corpus: Corpus | FileSet,
        reading: Reading,
        *,
        index_type: str = "auto",
        params: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        chunk_size: int = 4096,
    ) -> IndexStore:
        """Write the index at `output` from shards the actors write; the actors are
        stopped once the shards are written (assembly tasks take their CPUs)."""

        def write(staging: Path, replaced: tuple[Path, Manifest] | None) -> int:
            parts = dataclasses.replace(Parts.choose(fields), generic=True)
            pieces = self._numbered(plan(corpus, self.workers), reading)
            generic = self._get(self.actors[0].encode.remote(threshold.generic_questions()))
            shards = self._write_all(pieces, reading, parts, staging / SCRATCH, chunk_size)
            self.close()
            self.skipped_empty = sum(shard.skipped_empty for shard in shards)
            self.short_rows = sum(shard.short_rows for shard in shards)
            for shard in shards:
                if shard.short_note:
                    log.warning(shard.short_note)
            assemble(
                staging,
                shards,
                fingerprint=self.fingerprint,
                generic=np.asarray(generic),
                index_type=index_type,
                params=params,
                fields=fields,
                parts=parts,
                replaced=replaced,
                run=self._tasks,
            )
            return sum(shard.truncated for shard in shards)

        return IndexStore.build_with(output, write, index_type=index_type, params=params)

    def _numbered(self, parts: list[Part], reading: Reading) -> list[Part]:
        """The parts with their first lines and rows, counted by the actors where needed
        (they are up and have semsearch's readers loaded: a task would start a process
        a part, seconds each, for what is a read of the part)."""
        by_rows = reading.fields.id is None
        if not needs_counts(parts, by_rows):
            return parts
        cut = {part.file for part in parts if part.cut}
        # only what a later part starts from: rows where ids are row numbers, else the
        # lines of the files cut into byte ranges (a .csv is not parsed twice for nothing)
        wanted = [part for part in parts if by_rows or part.file in cut]
        calls = [
            self.actors[n % len(self.actors)].count.remote(part, reading)
            for n, part in enumerate(wanted)
        ]
        found = dict(zip((part.number for part in wanted), self._get(calls), strict=True))
        return numbered(parts, [found.get(part.number, (0, 0)) for part in parts])

    def _write_all(
        self,
        pieces: Sequence[Part],
        reading: Reading,
        parts: Parts,
        scratch: Path,
        chunk_size: int,
    ) -> list[Shard]:
        """Every part written by the actors, each kept AHEAD + 1 parts busy; the shards
        in part order."""
        scratch.mkdir(exist_ok=True)
        queue = collections.deque(pieces)
        pending: dict[Any, Any] = {}
        done: dict[int, Shard] = {}
        layout = parts.to_json()

        def send(actor: Any) -> None:
            if queue:
                part = queue.popleft()
                folder = str(scratch / f"part-{part.number:06d}")
                pending[actor.write.remote(part, reading, layout, folder, chunk_size)] = actor

        for actor in self.actors:
            for _ in range(AHEAD + 1):
                send(actor)
        with self._progress(len(pieces)) as progress:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=1)
                actor = pending.pop(ready[0])
                try:
                    shard: Shard = self._get(ready[0])
                except BaseException:
                    self._stop(list(pending))
                    raise
                done[shard.part.number] = shard
                if progress is not None:
                    progress.update(1)
                send(actor)
        return [done[part.number] for part in pieces]

    def _stop(self, pending: list[Any]) -> None:
        """Kill the actors and wait until their parts have ended, so that none writes
        into the staging folder while it is removed."""
        self.close()
        with contextlib.suppress(Exception):
            self.ray.wait(pending, num_returns=len(pending), timeout=STOP_WAIT)

    def _tasks(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Each call as a Ray task of one CPU, retried where its worker dies."""
        task = self.ray.remote(function).options(num_cpus=1, max_retries=RESTARTS)
        return list(self._get([task.remote(*arguments) for arguments in calls]))

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        if not self.show_progress:
            yield None
            return
        from tqdm.auto import tqdm

        with tqdm(
            total=total, unit="part", desc=f"{self.workers} Ray workers", file=sys.stderr
        ) as bar:
            yield bar

    def close(self) -> None:
        """Stop the actors (a local Ray is shut down by `connected`)."""
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        self.actors = []


@contextlib.contextmanager
def shard_pool(
    config: EncoderConfig, settings: RaySettings, show_progress: bool | None = None
) -> Iterator[ShardPool]:
    """Connect to (or start) Ray and start the shard-writing actors, for the block."""
    from semsearch.models import resolve_model

    ray = import_ray()
    resolve_model(config.model)  # a missing model fails here, before Ray starts
    with connected(ray, settings):
        pool = ShardPool(ray, config, settings, show_progress)
        try:
            yield pool
        finally:
            pool.close()
