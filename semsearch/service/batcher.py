"""Dynamic micro-batching: concurrent requests share one trip through the model.

One model serves every request, from `workers` threads (the service starts one per
core, each encoding on one core: `[serve] workers`). A worker handles one batch at a
time: every job waiting when it turns to the queue (plus what arrives within `wait_ms`
of the oldest, 0 by default), up to `max_batch` texts and `max_cost` work units (the
service counts estimated tokens). Under load jobs pile up while the previous batches
run, so batches form without any wait, and a lone question is answered at once. With
batching off, jobs are handled one at a time (the benchmark's baseline).

Requests are served first come, first served. A request worth more than one batch is
cut by its caller into pieces of at most `max_cost` (`run_pieces`); pieces wait in a
line of their own. While other requests wait too, pieces get at most `piece_share` of
the cost the workers run (a quarter by default: after one piece, three pieces' worth of
other requests), so a flood of big requests cannot take the model from everyone else;
when nothing else waits, pieces run back to back. At most `workers - 1` workers run a
piece at a time (one, with one worker): with two or more workers one is always free for
the other requests; with one, a question waits for one piece at most.

Callers never block the event loop: `run` is awaitable, `submit` returns a future.
"""

from __future__ import annotations

import asyncio
import logging
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
PIECE_SHARE = 0.25
"""While other requests wait, pieces of big requests get at most this part of the cost
(estimated tokens) the workers run; alone, they run back to back."""


class MicroBatcher(Generic[P, R]):
    """Gather concurrent jobs into few calls of `process` on `workers` worker threads.

    `process` takes the payloads of one batch and returns one result per payload (an
    exception instance fails just that job). If it raises, each job of the batch is run
    alone, so one bad request never fails its neighbours. With several workers, at
    most `workers - 1` of them run pieces of big requests at a time (one when there is
    one worker), so a worker is always free for the other requests.
    """

    def __init__(
        self,
        process: Callable[[list[P]], Sequence[R | BaseException]],
        *,
        enabled: bool = True,
        wait_ms: float = 0.0,
        max_batch: int = 64,
        max_cost: float | None = None,
        workers: int = 1,
        piece_share: float = PIECE_SHARE,
    ) -> None:
        if workers < 1:
            raise ValueError("a MicroBatcher needs at least one worker")
        self._process_fn = process
        self.enabled = enabled
        self.wait = wait_ms / 1000.0
        self.max_batch = max_batch
        self.max_cost = max_cost
        self.workers = workers
        self.piece_share = piece_share
        self.stats = BatchStats()
        self._ready = threading.Condition()  # guards everything below
        self._waiting: deque[_Job[P, R]] = deque()  # requests, first come first served
        self._pieces: deque[_Job[P, R]] = deque()  # pieces of big requests
        self._piece_workers = max(1, workers - 1)
        self._running_pieces = 0
        self._spent = {True: 0.0, False: 0.0}  # cost run since big requests began waiting
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if not self._threads:
            self._stopping = False
            self._threads = [
                threading.Thread(target=self._run, name=f"semsearch-batcher-{n}", daemon=True)
                for n in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the jobs already queued, then end the worker threads."""
        if not self._threads:
            return
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    # -- callers ---------------------------------------------------------------------
    def submit(
        self, payload: P, size: int = 1, cost: float | None = None, *, piece: bool = False
    ) -> Future[R]:
        """Queue one job of `size` texts costing `cost` (default: `size`); thread-safe.
        A `piece` of a big request waits in a line of its own (see `run_pieces`)."""
        size = max(size, 1)
        job: _Job[P, R] = _Job(payload, size, float(size if cost is None else cost), piece)
        with self._ready:
            if not self._threads or self._stopping:
                raise BatcherStoppedError("the server is shutting down: try again shortly")
            (self._pieces if piece else self._waiting).append(job)
            self._ready.notify_all()  # a worker gathering a full batch must not swallow it
        return job.future

    async def run(self, payload: P, size: int = 1, cost: float | None = None) -> R:
        """Await one job without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(payload, size, cost))

    async def run_pieces(self, pieces: Sequence[tuple[P, int, float]]) -> list[R]:
        """Await the pieces (payload, size, cost) of one big request, in order. A worker
        takes them one at a time, each alone, and takes the other jobs waiting (a batch of
        them) between two pieces: a question never waits for more than one piece."""
        futures = [self.submit(payload, size, cost, piece=True) for payload, size, cost in pieces]
        try:
            return list(await asyncio.gather(*map(asyncio.wrap_future, futures)))
        finally:
            for future in futures:  # after a failure or a disconnect: drop the rest
                future.cancel()

    def call(self, payload: P, size: int = 1, cost: float | None = None) -> R:
        """Run one job and wait for it (from a thread other than the workers)."""
        return self.submit(payload, size, cost).result()

    # -- workers (every method below runs with `_ready` held) ---------------------------
    @staticmethod
    def _pop(line: deque[_Job[P, R]], fits: Callable[[_Job[P, R]], bool] | None = None) -> Any:
        """The first live job of `line` marked running, or None; with `fits`, only if
        the first live job fits (else it stays first in line). A job whose caller went
        away (client disconnected) is dropped here."""
        while line:
            job = line[0]
            if not job.future.cancelled() and fits is not None and not fits(job):
                return None
            line.popleft()
            if job.future.set_running_or_notify_cancel():
                return job
        return None

    def _piece_next(self) -> bool:
        """Whether a piece goes before the waiting requests: while both wait, pieces
        get at most `piece_share` of the cost run (one piece, then others until the
        pieces' part is back under the share)."""
        if self._running_pieces >= self._piece_workers or not self._pieces:
            return False
        if not self._waiting:
            return True
        spent = self._spent[True]
        return spent <= self.piece_share * (spent + self._spent[False])

    def _take(self) -> Any:
        """The job the next batch starts with (waiting for one), or _STOP once stopping
        and every line is empty. Pieces only while fewer than `_piece_workers` workers
        run one, and within their share of the cost while other requests wait."""
        while True:
            if not self._pieces and not self._running_pieces:
                self._spent = {True: 0.0, False: 0.0}  # no big request: a fresh count
            piece = self._piece_next()
            job = self._pop(self._pieces if piece else self._waiting)
            if job is None and not piece and self._piece_next():
                job = self._pop(self._pieces)  # the waiting jobs were all cancelled
            if job is not None:
                if job.piece:
                    self._running_pieces += 1
                return job
            if self._stopping and not self._waiting and not self._pieces:
                return _STOP
            self._ready.wait()

    def _gather(self, first: _Job[P, R]) -> list[_Job[P, R]]:
        """`first` plus the waiting jobs that arrive until its window closes or the batch
        is full; a job that does not fit stays first in line for the next batch."""
        batch = [first]
        size, cost = first.size, first.cost
        limit = self.max_cost if self.max_cost is not None else float("inf")
        deadline = first.queued + self.wait

        def fits(job: _Job[P, R]) -> bool:
            return size + job.size <= self.max_batch and cost + job.cost <= limit

        while size < self.max_batch and cost < limit:
            job = self._pop(self._waiting, fits)
            if job is None:
                remaining = deadline - time.monotonic()
                if self._waiting or remaining <= 0 or self._stopping:
                    self._ready.notify_all()  # what did not fit: for another worker
                    break  # full, or the window has closed
                self._ready.wait(remaining)
                continue
            batch.append(job)
            size += job.size
            cost += job.cost
        return batch

    def _run(self) -> None:
        while True:
            with self._ready:
                first = self._take()
                if first is _STOP:
                    self._ready.notify_all()
                    return
                batch = self._gather(first) if self.enabled and not first.piece else [first]
                if self._pieces or self._running_pieces:
                    self._spent[first.piece] += sum(job.cost for job in batch)
            try:
                self._handle(batch)
            finally:
                if first.piece:
                    with self._ready:
                        self._running_pieces -= 1
                        self._ready.notify()

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
        texts = sum(job.size for job in batch)
        with self._ready:
            self.stats.batches += 1
            self.stats.jobs += len(batch)
            self.stats.texts += texts
            self.stats.largest = max(self.stats.largest, texts)
        for job, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
