"""Index build and question latency on WordNet glosses (~165k real short texts).

For each index type and encoder backend: build seconds, index bytes, search-only and
end-to-end latency p50/p99 of single questions, recall@10 against flat (fp32), and the
peak RSS of a process that opens the index and answers questions (model included).
End to end is `SearchEngine.query(question, k=10)` in dense mode (and again in hybrid
mode, the default: BM25 and fusion added): tokenise, encode, FAISS search,
records from SQLite, answer de-duplication, i.e. what `semsearch query`, the
interactive prompt and the HTTP service do per question. The reference in the same
run: sentence-transformers' own encode() of the one question plus a NumPy dot product
over all vectors.

The fp32 backends (torch, onnx) give the same vectors, so they share the indexes built
from one set of vectors; onnx-int8 vectors differ, so they get their own index (of
the `--int8-types`) built from the corpus encoded with int8.

    .venv/bin/python bench/search.py                 # the whole corpus
    .venv/bin/python bench/search.py --limit 20000   # a quicker run
    .venv/bin/python bench/search.py --types flat,hnsw --backends onnx,onnx-int8

The corpus vectors are encoded once per vector precision and cached in bench/.cache/;
the encoding rate is timed on every run over 5,000 texts.

    .venv/bin/python bench/search.py --smoke   # 100 texts, 10 questions, a tiny model, flat
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common
import numpy as np

DATA = _common.DATA / "wordnet_glosses" / "glosses.jsonl"
CACHE = _common.ROOT / "bench" / ".cache"
SMOKE_LINES = 400  # --smoke reads the first glosses only
TYPES = ("flat", "hnsw", "ivf", "sq8")
BACKENDS = ("torch", "onnx", "onnx-int8")


def entries(lines: int | None) -> list[dict[str, Any]]:
    """The glosses file's entries (the first `lines` only, when given)."""
    with DATA.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in itertools.islice(handle, lines)]


def load_texts(limit: int | None, lines: int | None = None) -> list[str]:
    """Definitions and example sentences, each distinct text once, in file order."""
    seen: dict[str, None] = {}
    for entry in entries(lines):
        for text in (entry["definition"], *entry["examples"]):
            seen.setdefault(text.strip(), None)
    texts = [t for t in seen if t]
    return texts[:limit] if limit else texts


def load_questions(count: int, seed: int = 0, lines: int | None = None) -> list[str]:
    """Short user-style questions built from WordNet lemmas ("what does X mean?")."""
    words = [entry["words"][0].replace("_", " ") for entry in entries(lines)]
    picked = np.random.default_rng(seed).choice(len(words), size=count, replace=False)
    return [f"what does {words[i]} mean?" for i in picked]


class Precomputed:
    """An encoder stand-in that returns cached vectors, so FAISS build time is isolated."""

    def __init__(self, real: Any, vectors: np.ndarray) -> None:
        self._real = real  # encodes what is not the corpus (the no-answer estimate's questions)
        self.fingerprint = real.fingerprint
        self.dim = real.dim
        self.truncated = 0
        self._vectors = vectors
        self._next = 0

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        if self._next >= len(self._vectors):
            return self._real.encode(texts)
        block = self._vectors[self._next : self._next + len(texts)]
        self._next += len(texts)
        return block


def corpus_vectors(encoder: Any, texts: list[str], cache: bool = True) -> np.ndarray:
    """Vectors of the corpus, cached by content so repeated runs skip the long encode."""
    if not cache:
        return encoder.encode(texts, batch_size=64, show_progress=False)
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    precision = encoder.fingerprint["precision"]
    path = CACHE / (
        f"wordnet-{key}.npy" if precision == "fp32" else f"wordnet-{key}-{precision}.npy"
    )
    if path.exists():
        return np.load(path)
    vectors = encoder.encode(texts, batch_size=64, show_progress=sys.stderr.isatty())
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def encode_rate(encoder: Any, texts: list[str], sample: int = 5000) -> float:
    """Texts per second of the build's encoding, timed on every run over a fixed sample."""
    chosen = texts[:sample]
    started = time.perf_counter()
    encoder.encode(chosen, batch_size=64, show_progress=False)
    return len(chosen) / (time.perf_counter() - started)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = _common.percentiles_ms(seconds, (50, 99))
    return p50, p99


def measure_type(
    index_type: str, backend: str, folder: str, questions: list[str], queue: Any
) -> None:
    """In a fresh process: open the index, time single questions, report peak RSS."""
    from semsearch.search.engine import SearchEngine

    engine = SearchEngine.open(folder, overrides={"backend": backend})
    store, encoder = engine.store, engine.encoder
    vectors = encoder.encode(questions)
    for question in questions[:20]:  # warm-up
        engine.query(question, k=10, mode="dense")
        engine.query(question, k=10, mode="hybrid")
    search_only, end_to_end, hybrid, ids = [], [], [], []
    for i, question in enumerate(questions):
        started = time.perf_counter()
        hits = store.search(vectors[i : i + 1], 10)
        search_only.append(time.perf_counter() - started)
        ids.append([record.id for record, _ in hits[0]])
        started = time.perf_counter()
        engine.query(question, k=10, mode="dense")
        end_to_end.append(time.perf_counter() - started)
        started = time.perf_counter()
        engine.query(question, k=10, mode="hybrid")
        hybrid.append(time.perf_counter() - started)
    queue.put(
        {
            "type": index_type,
            "backend": backend,
            "search_ms": percentiles(search_only),
            "end_to_end_ms": percentiles(end_to_end),
            "hybrid_ms": percentiles(hybrid),
            "ids": ids,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def reference_latency(
    texts_vectors: np.ndarray, questions: list[str], model_name: str = "all-MiniLM-L6-v2"
) -> tuple[float, float]:
    """sentence-transformers encode() of one question + a NumPy dot over all vectors."""
    from sentence_transformers import SentenceTransformer

    from semsearch.models import resolve_model

    model = SentenceTransformer(str(resolve_model(model_name)), device="cpu")
    for question in questions[:20]:
        model.encode([question], normalize_embeddings=True)
    timings = []
    for question in questions:
        started = time.perf_counter()
        query = model.encode([question], normalize_embeddings=True, show_progress_bar=False)
        scores = texts_vectors @ query[0]
        np.argpartition(-scores, 10)[:10]
        timings.append(time.perf_counter() - started)
    return percentiles(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="index only the first N texts")
    parser.add_argument("--questions", type=int, default=300, help="single questions timed")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated index types")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backends")
    parser.add_argument("--int8-types", default="hnsw", help="index types timed with onnx-int8")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    _common.require("bench/search.py", [DATA], args.smoke)
    lines, model = None, "all-MiniLM-L6-v2"
    if args.smoke:  # the first glosses, a tiny model, no vector cache, one index type
        lines, model = SMOKE_LINES, str(_common.smoke_model(args))
        args.limit, args.questions = args.limit or 100, min(args.questions, 10)
        args.types, args.backends = "flat", "onnx"

    import torch

    from semsearch.corpus import Record
    from semsearch.encoders import load_encoder
    from semsearch.index import IndexStore
    from semsearch.index.layout import LEXICAL
    from semsearch.index.lexical import LexicalIndex

    texts = load_texts(args.limit, lines)
    questions = load_questions(args.questions, lines=lines)
    backends = args.backends.split(",")
    encoders = {"fp32": load_encoder(backend="onnx", model=model)}
    if "onnx-int8" in backends:
        encoders["int8"] = load_encoder(backend="onnx-int8", model=model)
    vectors = {
        precision: corpus_vectors(e, texts, cache=not args.smoke)
        for precision, e in encoders.items()
    }
    texts_per_second = encode_rate(encoders["fp32"], texts)
    records = [Record(str(i), t, t, {}) for i, t in enumerate(texts)]
    chunks = [records[i : i + 4096] for i in range(0, len(records), 4096)]
    reference = reference_latency(vectors["fp32"], questions, model)
    started = time.perf_counter()  # the lexical part alone, as every build makes it
    LexicalIndex.build(texts, np.arange(len(texts)))
    lexical_seconds = time.perf_counter() - started

    # (index type, vector precision, backends timed on it); every fp32 index is timed at
    # least with onnx, so flat always gives the exact neighbours recall is measured by
    fp32_backends = [b for b in backends if b != "onnx-int8"] or ["onnx"]
    plan = [(index_type, "fp32", fp32_backends) for index_type in args.types.split(",")]
    if "onnx-int8" in backends:
        plan += [(t, "int8", ["onnx-int8"]) for t in args.int8_types.split(",")]
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="semsearch-bench-"))
    try:
        context = mp.get_context("spawn")
        for index_type, precision, timed_backends in plan:
            folder = workdir / f"{index_type}-{precision}"
            started = time.perf_counter()
            store = IndexStore.build(
                folder,
                chunks,
                Precomputed(encoders[precision], vectors[precision]),
                index_type=index_type,
            )
            build_seconds = time.perf_counter() - started
            size = sum(p.stat().st_size for p in folder.iterdir())
            lexical_bytes = sum((folder / name).stat().st_size for name in LEXICAL)
            store.close()
            for backend in timed_backends:
                queue = context.Queue()
                process = context.Process(
                    target=measure_type, args=(index_type, backend, str(folder), questions, queue)
                )
                process.start()
                result = queue.get()
                process.join()
                result.update(
                    build_seconds=build_seconds,
                    bytes=size,
                    lexical_bytes=lexical_bytes,
                    lexical_seconds=lexical_seconds,
                )
                rows.append(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    exact = next((r["ids"] for r in rows if r["type"] == "flat"), None)  # fp32 exact
    for row in rows:
        if exact is not None:
            found = [len(set(a) & set(b)) / 10 for a, b in zip(row["ids"], exact, strict=True)]
            row["recall@10"] = float(np.mean(found))
        del row["ids"]
        row["end_to_end_vs_reference"] = row["end_to_end_ms"][0] / reference[0]
    report = {
        "command": " ".join(sys.argv),
        "texts": len(texts),
        "questions": len(questions),
        "threads": torch.get_num_threads(),
        "encode_texts_per_second_onnx": round(texts_per_second, 1),
        "lexical_build_seconds": round(lexical_seconds, 2),
        "reference_end_to_end_ms": reference,
        "types": rows,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"$ {report['command']}")
    print(
        f"{len(texts)} texts, {len(questions)} single questions, "
        f"torch threads {report['threads']}; encoding (onnx) {texts_per_second:.0f} texts/s"
    )
    print(
        f"reference (sentence-transformers encode + NumPy dot): "
        f"p50 {reference[0]:.2f} ms, p99 {reference[1]:.2f} ms"
    )
    encode_seconds = len(texts) / texts_per_second
    print(
        f"lexical part (bm25s): built in {lexical_seconds:.1f} s; a whole `index` run "
        f"(encoding at {texts_per_second:.0f} texts/s, {encode_seconds:.0f} s) grows by "
        f"{100 * lexical_seconds / encode_seconds:.1f}%"
    )
    print(
        "type   backend    build s      MB  lexical MB  search p50/p99 ms  dense p50/p99 ms"
        "  hybrid p50/p99 ms  +p50 ms  vs ref  recall@10  RSS MB"
    )
    for row in rows:
        print(
            f"{row['type']:<6} {row['backend']:<10} {row['build_seconds']:>7.1f}"
            f" {row['bytes'] / 1e6:>7.1f}"
            f"  {row['lexical_bytes'] / 1e6:>10.1f}"
            f"  {row['search_ms'][0]:>7.3f} / {row['search_ms'][1]:<7.3f}"
            f"  {row['end_to_end_ms'][0]:>7.2f} / {row['end_to_end_ms'][1]:<7.2f}"
            f"  {row['hybrid_ms'][0]:>8.2f} / {row['hybrid_ms'][1]:<7.2f}"
            f"  {row['hybrid_ms'][0] - row['end_to_end_ms'][0]:>+6.2f}"
            f"  {row['end_to_end_vs_reference']:>5.2f}x"
            f"  {row.get('recall@10', float('nan')):>8.3f}  {row['peak_rss_mb']:>6.0f}"
        )


if __name__ == "__main__":
    main()
