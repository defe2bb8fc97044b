"""Hot reload: the served index follows `semsearch add` / `delete` without a restart.

A background thread polls the folder's version token (manifest.json alone, cheap). When
it changes, the new version is opened and checked off the request path, then one
reference is swapped under a lock. Requests hold a lease on the version they started
with; an old version is closed only when its last lease ends, so no request ever sees
a half-switched or closed index.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semsearch.config import SearchConfig
from semsearch.errors import SemsearchError
from semsearch.index import IndexStore
from semsearch.search.engine import SearchEngine

log = logging.getLogger("semsearch.service")


@dataclass
class _Generation:
    engine: SearchEngine
    users: int = 0
    retired: bool = False


class LiveIndex:
    """The current SearchEngine of an index folder, swapped atomically on change."""

    def __init__(
        self,
        path: str | Path,
        encoder: Any,
        search: SearchConfig | None = None,
        *,
        interval: float = 0.5,
        store: IndexStore | None = None,
    ) -> None:
        self.path = Path(path)
        self.encoder = encoder
        self.search = search or SearchConfig()
        self.interval = interval
        self.reloads = 0
        self._lock = threading.Lock()
        self._current = _Generation(
            SearchEngine(store or IndexStore.open(self.path), encoder, self.search)
        )
        self._refused: str | None = None  # a version that failed to load: logged once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def version(self) -> str:
        return self._current.engine.store.version

    @property
    def count(self) -> int:
        return self._current.engine.store.count

    @contextlib.contextmanager
    def engine(self) -> Iterator[SearchEngine]:
        """Lease the current version for the length of one request."""
        with self._lock:
            generation = self._current
            generation.users += 1
        try:
            yield generation.engine
        finally:
            with self._lock:
                generation.users -= 1
                done = generation.retired and generation.users == 0
            if done:
                generation.engine.store.close()

    # -- reloading -------------------------------------------------------------------
    def check(self) -> bool:
        """Swap in the folder's version if it changed; True when it did."""
        try:
            version = IndexStore.current_version(self.path)
        except SemsearchError:
            return False  # mid-swap or briefly unreadable: next poll
        if version == self.version or version == self._refused:
            return False
        try:
            store = IndexStore.open(self.path)
        except SemsearchError as exc:
            return self._refuse(version, exc)
        try:
            engine = SearchEngine(store, self.encoder, self.search)
        except SemsearchError as exc:  # rebuilt with another encoder
            store.close()
            return self._refuse(version, exc)
        with self._lock:
            old, self._current = self._current, _Generation(engine)
            old.retired = True
            done = old.users == 0
        if done:
            old.engine.store.close()
        self.reloads += 1
        self._refused = None
        log.info(
            "semsearch: reloaded %s: %d entries (version %s)", self.path, store.count, store.version
        )
        return True

    def _refuse(self, version: str, exc: Exception) -> bool:
        if self._refused != version:
            log.error("semsearch: keeping the previous version of %s: %s", self.path, exc)
        self._refused = version
        return False

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the poller must outlive any surprise
                log.exception("semsearch: index reload check failed")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="semsearch-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End polling; close the current version (requests have finished by now)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._current.retired = True
            done = self._current.users == 0
        if done:
            self._current.engine.store.close()
