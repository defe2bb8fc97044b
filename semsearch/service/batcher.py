"""Dynamic micro-batching: concurrent requests share one trip through the model.

One model serves every request. A single worker thread owns it (tokenizers and torch
modules are not meant to be driven from several threads at once) and handles one batch
at a time: every job waiting when it turns to the queue (plus what arrives within
`wait_ms` of the oldest, 0 by default), up to `max_batch` texts and `max_cost` work
units (the service counts estimated tokens). Under load jobs pile up while the previous
batch runs, so batches form without any wait, and a lone question is answered at once;
one forward pass over 32 short questions costs far less than 32 passes. With batching
off, jobs are handled one at a time by the same thread (the benchmark's baseline).

Requests are served first come, first served. A request worth more than one batch is
cut by its caller into pieces of at most `max_cost` (`run_pieces`); pieces wait in a
line of their own, and the worker alternates: one piece, then a batch of whatever other
jobs wait, then the next piece. So a big request never holds the model for longer than
one piece at a time, and a small one arriving meanwhile waits for one piece at most.

Callers never block the event loop: `run` is awaitable, `submit` returns a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
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
    piece: bool = False
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
        self._waiting: deque[_Job[P, R]] = deque()  # requests, first come first served
        self._pieces: deque[_Job[P, R]] = deque()  # pieces of big requests
        self._piece_turn = False
        self._stop_seen = False
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._gate = threading.Lock()  # no job may be queued behind the stop marker

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = self._stop_seen = False
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
    def submit(
        self, payload: P, size: int = 1, cost: float | None = None, *, piece: bool = False
    ) -> Future[R]:
        """Queue one job of `size` texts costing `cost` (default: `size`); thread-safe.
        A `piece` of a big request waits in a line of its own (see `run_pieces`)."""
        size = max(size, 1)
        job: _Job[P, R] = _Job(payload, size, float(size if cost is None else cost), piece)
        with self._gate:
            if self._thread is None or self._stopping:
                raise BatcherStoppedError("the server is shutting down: try again shortly")
            self._queue.put(job)
        return job.future

    async def run(self, payload: P, size: int = 1, cost: float | None = None) -> R:
        """Await one job without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(payload, size, cost))

    async def run_pieces(self, pieces: Sequence[tuple[P, int, float]]) -> list[R]:
        """Await the pieces (payload, size, cost) of one big request, in order. The worker
        takes them one at a time, each alone, and takes the other jobs waiting (a batch of
        them) between two pieces: a question never waits for more than one piece."""
        futures = [self.submit(payload, size, cost, piece=True) for payload, size, cost in pieces]
        try:
            return list(await asyncio.gather(*map(asyncio.wrap_future, futures)))
        finally:
            for future in futures:  # after a failure or a disconnect: drop the rest
                future.cancel()

    def call(self, payload: P, size: int = 1, cost: float | None = None) -> R:
        """Run one job and wait for it (from a thread other than the worker)."""
        return self.submit(payload, size, cost).result()

    # -- worker ----------------------------------------------------------------------
    def _sort(self, item: Any) -> None:
        """File a queued item in its line (or note the stop marker)."""
        if item is _STOP:
            self._stop_seen = True
        else:
            (self._pieces if item.piece else self._waiting).append(item)

    @staticmethod
    def _pop(line: deque[_Job[P, R]]) -> _Job[P, R] | None:
        # a job whose caller went away (client disconnected) is dropped here
        while line:
            job = line.popleft()
            if job.future.set_running_or_notify_cancel():
                return job
        return None

    def _take(self) -> Any:
        """The job the next batch starts with, or _STOP once every line is empty. Pieces
        and other jobs take turns when both wait."""
        if self._carry is not None:  # already taken from a line and marked running
            item, self._carry = self._carry, None
            return item
        while True:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._sort(self._queue.get_nowait())
            lines = (
                (self._pieces, self._waiting) if self._piece_turn else (self._waiting, self._pieces)
            )
            for line in lines:
                job = self._pop(line)
                if job is not None:
                    self._piece_turn = not job.piece
                    return job
            if self._stop_seen:
                return _STOP
            self._sort(self._queue.get())

    def _next(self, deadline: float) -> _Job[P, R] | None:
        """The next waiting job (not a piece) that arrives before `deadline`, or None."""
        while True:
            job = self._pop(self._waiting)
            if job is not None:
                return job
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return None
            self._sort(item)

    def _run(self) -> None:
        while True:
            first = self._take()
            if first is _STOP:
                return
            batch = self._gather(first) if self.enabled and not first.piece else [first]
            self._handle(batch)

    def _gather(self, first: _Job[P, R]) -> list[_Job[P, R]]:
        """`first` plus whatever arrives until its window closes or the batch is full."""
        batch = [first]
        size, cost = first.size, first.cost
        limit = self.max_cost if self.max_cost is not None else float("inf")
        deadline = first.queued + self.wait
        while size < self.max_batch and cost < limit:
            item = self._next(deadline)
            if item is None:
                break
            if size + item.size > self.max_batch or cost + item.cost > limit:
                self._carry = item  # the next batch starts with it
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
