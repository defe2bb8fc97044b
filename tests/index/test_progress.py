"""Issue 24 item 10: a build shows one progress bar for the whole corpus, not one that
restarts at every chunk (the CLI reads 4,096 rows a chunk)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semsearch.index import IndexStore
from tests.index_writer import HashEncoder, make_records


class Recording(HashEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.progress: list[bool | None] = []

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool | None = None
    ) -> np.ndarray:
        self.progress.append(show_progress)
        return super().encode(texts, batch_size)


class Bar:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.closed = False

    def update(self, count: int) -> None:
        self.updates.append(count)

    def close(self) -> None:
        self.closed = True


def test_one_bar_counts_every_entry_of_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars: list[Bar] = []

    def bar() -> Any:
        bars.append(Bar())
        return bars[-1]

    monkeypatch.setattr("semsearch.index.writes._entries_bar", bar)
    encoder = Recording()
    chunks = [make_records(4, "a"), make_records(4, "b"), make_records(2, "c")]
    IndexStore.build(tmp_path / "x", chunks, encoder, show_progress=True)
    assert len(bars) == 1 and bars[0].updates == [4, 4, 2] and bars[0].closed
    assert encoder.progress[:3] == [False, False, False]  # no bar of the encoder's own


def test_no_bar_when_not_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("semsearch.index.writes._entries_bar", lambda: pytest.fail("a bar"))
    IndexStore.build(tmp_path / "x", [make_records(3)], Recording(), show_progress=False)
