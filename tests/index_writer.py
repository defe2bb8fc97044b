"""A deterministic stand-in encoder for index tests, and a writer process to kill.

Run as a script, it adds many slow chunks to an index so that a test can SIGKILL it in
the middle of a write: `python index_writer.py INDEX_FOLDER`.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from semsearch.corpus import Record


class HashEncoder:
    """Each text maps to a fixed random unit vector (seeded by its sha256), in any process."""

    def __init__(
        self,
        dim: int = 32,
        fail_on_call: int | None = None,
        fail_with: type[BaseException] = RuntimeError,
        delay: float = 0.0,
    ) -> None:
        self.dim = dim
        self.truncated = 0
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.fail_with = fail_with
        self.delay = delay
        self.fingerprint: dict[str, Any] = {
            "kind": "hash",
            "model": "hash-encoder",
            "weights_sha256": "0" * 64,
            "pooling": "none",
            "dim": dim,
        }

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool | None = None
    ) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise self.fail_with(f"encoder failed on call {self.calls}")
        time.sleep(self.delay)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dim))
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_records(count: int, prefix: str = "r", start: int = 0) -> list[Record]:
    return [
        Record(f"{prefix}{i}", f"text {prefix}{i}", f"answer {prefix}{i}", {"n": i})
        for i in range(start, start + count)
    ]


def main(folder: str) -> None:
    from semsearch.index import IndexStore

    store = IndexStore.open(folder)
    chunks = (make_records(100, "big", start) for start in range(0, 100_000, 100))
    print("writing", flush=True)
    store.add(chunks, HashEncoder(delay=0.01))


if __name__ == "__main__":
    main(sys.argv[1])
