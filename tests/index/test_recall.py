"""Recall@10 of every approximate index type against exact flat search, on real text:
5,000 WordNet glosses that MiniLM encodes once per run (tests/index/conftest.py). One
module, so that pytest-xdist's `--dist loadfile` gives these tests one worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semsearch.corpus import Record
from semsearch.index import IndexStore
from tests.index.conftest import Glosses, Lookup


def hits(store: IndexStore, queries: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    return [[(record.id, score) for record, score in found] for found in store.search(queries, k)]


@pytest.fixture(scope="module")
def gloss_index(
    glosses: Glosses, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IndexStore, Lookup]:
    """The 5,000 glosses in a flat index, from the vectors MiniLM made once."""
    lookup = Lookup(
        glosses.corpus + glosses.generic,
        np.vstack([glosses.corpus_vectors, glosses.generic_vectors]),
        glosses.fingerprint,
    )
    records = [Record(str(i), text, text, {}) for i, text in enumerate(glosses.corpus)]
    chunks = [records[i : i + 1000] for i in range(0, len(records), 1000)]
    folder = tmp_path_factory.mktemp("glosses")
    return IndexStore.build(folder / "flat", chunks, lookup, index_type="flat"), lookup


@pytest.mark.real
@pytest.mark.data
@pytest.mark.parametrize("index_type", ["hnsw", "ivf", "sq8"])
def test_recall_at_10_against_flat(
    index_type: str, glosses: Glosses, gloss_index: tuple[IndexStore, Lookup], tmp_path: Path
) -> None:
    flat, lookup = gloss_index
    queries = glosses.question_vectors
    records = [Record(str(i), text, text, {}) for i, text in enumerate(glosses.corpus)]
    store = IndexStore.build(tmp_path / index_type, [records], lookup, index_type=index_type)
    exact = [{r.id for r, _ in hits} for hits in flat.search(queries, 10)]
    approx = [{r.id for r, _ in hits} for hits in store.search(queries, 10)]
    recall = np.mean([len(a & e) / 10 for a, e in zip(approx, exact, strict=True)])
    print(f"{index_type} {store.manifest.index.params} recall@10 = {recall:.3f}")
    assert recall >= 0.95


@pytest.mark.real
def test_recall_at_ten_against_flat_with_minilm(tmp_path: Path, glosses: Glosses) -> None:
    """The issue's bar is 50k glosses; encoding 50k with MiniLM took 199 s of this test on
    an idle 2-core machine, so this test uses 5,000 with the default parameters and
    bench/scale_ivfpq.py measures 50k and all 117,659 (README)."""
    from semsearch.encoders import load_encoder

    records = [Record(str(i), text, "", {}) for i, text in enumerate(glosses.corpus)]
    questions = [f"what does {word} mean?" for word in glosses.words[::25]]
    lookup = Lookup(
        glosses.corpus + glosses.generic,
        np.vstack([glosses.corpus_vectors, glosses.generic_vectors]),
        glosses.fingerprint,
    )
    pq = IndexStore.build(tmp_path / "pq", [records], lookup, index_type="ivfpq")
    flat = IndexStore.build(tmp_path / "flat", [records], lookup, index_type="flat")
    q = load_encoder(backend="onnx-int8").encode(questions)  # as the glosses were
    got, expected = hits(pq, q, 10), hits(flat, q, 10)
    recall = np.mean(
        [
            len({i for i, _ in a} & {i for i, _ in b}) / 10
            for a, b in zip(got, expected, strict=True)
        ]
    )
    assert pq.manifest.index.params["nlist"] == 128
    assert recall >= 0.9
