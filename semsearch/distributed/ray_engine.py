"""The Ray engine: an index build's chunks encoded by a pool of Ray actors.

The driver (the `semsearch index` process) reads the corpus with semsearch's own
readers, so the records are exactly those of a local build, and hands each chunk to an
actor that loaded the encoder once from the same `EncoderConfig`. The vectors come back
in the chunks' order, a bounded number of chunks ahead, and the driver writes the index
as a local build does (`IndexStore.build` with this pool as its engine): same records,
same index, same manifest, and the same atomic swap, so a failed or killed job leaves
the previous index in place. An actor that dies is restarted and its chunk sent again.

Ray Data's `map_batches` was the other way in; it needs its input either all at once
(`from_items`) or read by its own file readers, which do not make semsearch's records.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.config import EncoderConfig
from semsearch.corpus import Record
from semsearch.distributed.cluster import RaySettings, connected, import_ray
from semsearch.errors import ConfigError, SemsearchError
from semsearch.index.views import Parts
from semsearch.index.writes import Encoded, encode_views

AHEAD = 2  # chunks queued per actor beyond the one it encodes
RESTARTS = 3  # an actor that dies is restarted (and its chunk retried) this many times


class EncoderWorker:
    """One Ray actor: the encoder loaded once, then chunk after chunk encoded as a
    local build encodes them (`encode_views`)."""

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

    def encode_chunk(
        self, chunk: Sequence[Record], parts: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        return encode_views(self.encoder, chunk, Parts.from_json(parts), None, False)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, int]:
        vectors = self.encoder.encode(texts, show_progress=False)
        return vectors, self.encoder.truncated


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
    """The semsearch error a worker raised (a bad setting or text), or one line on what
    failed; Ray wraps the first in its own errors, one or two deep."""
    seen: BaseException | None = exc
    for _ in range(4):
        if isinstance(seen, SemsearchError):
            return seen
        if seen is None:
            break
        seen = getattr(seen, "cause", None) or seen.__cause__
    if isinstance(exc, ray.exceptions.RayActorError):
        return SemsearchError(
            f"a Ray encoder worker died: {str(exc).strip().splitlines()[0]}; "
            "the index was not changed"
        )
    return exc


class RayPool:
    """Encoder actors on Ray, seen by the index writer as its encoder (fingerprint,
    dim, the no-answer questions) and as its engine (`encoded`)."""

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
        actor = ray.remote(EncoderWorker).options(
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
        self._fingerprint, self._dim = {**prints[0], "model": given}, int(described[0]["dim"])
        self.pids = [int(entry["pid"]) for entry in described]  # as first started
        self.truncated = 0
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def _get(self, refs: Any) -> Any:
        try:
            return self.ray.get(refs)
        except Exception as exc:
            raise _unwrapped(self.ray, exc) from None

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool | None = None
    ) -> np.ndarray:
        """A few texts on the first actor (the no-answer estimate's questions)."""
        vectors, self.truncated = self._get(self.actors[0].encode.remote(list(texts)))
        return np.asarray(vectors)

    def encoded(self, chunks: Iterable[Sequence[Record]], parts: Parts) -> Iterator[Encoded]:
        """Each chunk with its vectors, in the chunks' order; chunks go to the actors in
        turn, at most AHEAD + 1 per actor at a time, so memory stays bounded."""
        window = (AHEAD + 1) * len(self.actors)
        pending: collections.deque[tuple[Sequence[Record], Any]] = collections.deque()
        layout = parts.to_json()
        with self._progress() as progress:
            for number, chunk in enumerate(chunks):
                actor = self.actors[number % len(self.actors)]
                pending.append((chunk, actor.encode_chunk.remote(chunk, layout)))
                while len(pending) >= window:
                    yield self._next(pending, progress)
            while pending:
                yield self._next(pending, progress)

    def _next(
        self, pending: collections.deque[tuple[Sequence[Record], Any]], progress: Any
    ) -> Encoded:
        chunk, ref = pending.popleft()
        primary, second, truncated = self._get(ref)
        if progress is not None:
            progress.update(len(chunk))
        # copies: the arrays Ray returns stay in its shared-memory object store otherwise
        return chunk, np.array(primary), None if second is None else np.array(second), truncated

    @contextlib.contextmanager
    def _progress(self) -> Iterator[Any]:
        if not self.show_progress:
            yield None
            return
        from tqdm.auto import tqdm

        with tqdm(
            unit="text", desc=f"encoding on {len(self.actors)} Ray workers", file=sys.stderr
        ) as bar:
            yield bar

    def close(self) -> None:
        """Stop the actors (a local Ray is shut down by `connected`)."""
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)


def _replace(config: EncoderConfig, **changes: Any) -> EncoderConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


@contextlib.contextmanager
def ray_pool(
    config: EncoderConfig, settings: RaySettings, show_progress: bool | None = None
) -> Iterator[RayPool]:
    """Connect to (or start) Ray and start the encoder actors, for the block."""
    from semsearch.models import resolve_model

    ray = import_ray()
    resolve_model(config.model)  # a missing model fails here, before Ray starts
    with connected(ray, settings):
        pool = RayPool(ray, config, settings, show_progress)
        try:
            yield pool
        finally:
            pool.close()
