"""Dynamic micro-batching: concurrent requests share one trip through the model.

One model serves every request. A single worker thread owns it (tokenizers and torch
modules are not meant to be driven from several threads at once) and handles one batch
at a time: every job waiting when it turns to the queue (plus what arrives within
`wait_ms` of the oldest, 0 by default), up to `max_batch` texts and `max_cost` work
units (the service counts estimated tokens). Under load jobs pile up while the previous
batch runs, so batches form without any wait, and a lone question is answered at once;
one forward pass over 32 short questions costs far less than 32 passes. With batching
off, jobs are handled one at a time by the same thread (the benchmark's baseline).

The queue is first come, first served; a caller with much work cuts it into jobs of at
most `max_cost` and submits the next one when the last is done, so each of its pieces
queues behind whatever arrived meanwhile and nobody waits behind all of it.

Callers never block the event loop: `run` is awaitable, `submit` returns a future.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from semsearch.errors import BatcherStoppedError  # defined there; importable from here too

log = logging.getLogger("semsearch.service")

P = TypeVar("P")
R = TypeVar("R")


@dataclass
class _Job(Generic[P, R]):
    payload: P
    size: int
    cost: float
    future: Future[R] = field(default_factory=Future)
    queued: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """How many batches ran and how full they were."""

    batches: int = 0
    jobs: int = 0
    texts: int = 0
    largest: int = 0

    def summary(self) -> str:
        mean = self.texts / self.batches if self.batches else 0.0
        return (
            f"{self.jobs} requests, {self.texts} texts in {self.batches} batches "
            f"(mean {mean:.1f} texts, largest {self.largest})"
        )


_STOP = object()


class MicroBatcher(Generic[P, R]):
    """Gather concurrent jobs into few calls of `process` on one worker thread.

    `process` takes the payloads of one batch and returns one result per payload (an
    exception instance fails just that job). If it raises, each job of the batch is run
    alone, so one bad request never fails its neighbours.
    """

    def __init__(
        self,
        process: Callable[[list[P]], Sequence[R | BaseException]],
        *,
        enabled: bool = True,
        wait_ms: float = 0.0,
        max_batch: int = 64,
        max_cost: float | None = None,
    ) -> None:
        self._process_fn = process
        self.enabled = enabled
        self.wait = wait_ms / 1000.0
        self.max_batch = max_batch
        self.max_cost = max_cost
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._carry: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._gate = threading.Lock()  # no job may be queued behind the stop marker

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="semsearch-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the jobs already queued, then end the worker thread."""
        if self._thread is None:
            return
        with self._gate:
            self._stopping = True
            self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # -- callers ---------------------------------------------------------------------
    def submit(self, payload: P, size: int = 1, cost: float | None = None) -> Future[R]:
        """Queue one job of `size` texts costing `cost` (default: `size`); thread-safe."""
        size = max(size, 1)
        job: _Job[P, R] = _Job(payload, size, float(size if cost is None else cost))
        with self._gate:
            if self._thread is None or self._stopping:
                raise BatcherStoppedError("the server is shutting down: try again shortly")
            self._queue.put(job)
        return job.future

    async def run(self, payload: P, size: int = 1, cost: float | None = None) -> R:
        """Await one job without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(payload, size, cost))

    def call(self, payload: P, size: int = 1, cost: float | None = None) -> R:
        """Run one job and wait for it (from a thread other than the worker)."""
        return self.submit(payload, size, cost).result()

    # -- worker ----------------------------------------------------------------------
    def _next(self, timeout: float | None) -> Any:
        """The next live job or _STOP; None when the window closed first."""
        if self._carry is not None:  # already taken from the queue and marked running
            item, self._carry = self._carry, None
            return item
        while True:
            if timeout is None:
                item = self._queue.get()
            else:
                try:
                    item = (
                        self._queue.get(timeout=timeout)
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    return None
            # a job whose caller went away (client disconnected) is dropped here
            if item is _STOP or item.future.set_running_or_notify_cancel():
                return item

    def _run(self) -> None:
        while True:
            first = self._next(None)
            if first is _STOP:
                return
            self._handle(self._gather(first) if self.enabled else [first])

    def _gather(self, first: _Job[P, R]) -> list[_Job[P, R]]:
        """`first` plus whatever arrives until its window closes or the batch is full."""
        batch = [first]
        size, cost = first.size, first.cost
        limit = self.max_cost if self.max_cost is not None else float("inf")
        deadline = first.queued + self.wait
        while size < self.max_batch and cost < limit:
            item = self._next(deadline - time.monotonic())
            if item is None:
                break
            if item is _STOP or size + item.size > self.max_batch or cost + item.cost > limit:
                self._carry = item  # the next batch starts with it (or stops)
                break
            batch.append(item)
            size += item.size
            cost += item.cost
        return batch

    def _handle(self, batch: list[_Job[P, R]]) -> None:
        try:
            results = self._process_fn([job.payload for job in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} jobs")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            log.warning(
                "semsearch: a batch of %d requests failed (%s); retrying one by one",
                len(batch),
                exc,
            )
            for job in batch:
                self._handle([job])
            return
        self.stats.batches += 1
        self.stats.jobs += len(batch)
        texts = sum(job.size for job in batch)
        self.stats.texts += texts
        self.stats.largest = max(self.stats.largest, texts)
        for job, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
