"""Question latency with `where` filters on WordNet glosses, flat and hnsw, in one run.

Every entry gets a number `bucket` in 0..999 (seeded at random), so the filters
`bucket < 1`, `< 10`, `< 100` and `< 500` select 0.1%, 1%, 10% and 50% of the entries;
each is timed against no filter on the same index and questions ("what does X mean?"):

- search: `SearchEngine.query(question, k=10, mode="dense", where=...)` with the
  question vectors encoded beforehand (an encoder stand-in returns them), i.e. the
  selection, the restricted FAISS search, records from SQLite and de-duplication;
- hybrid: the same in hybrid mode (BM25 and fusion of the selected entries added);
- end to end: dense mode with the real encoder, as `semsearch query` asks;
- first: the first question with each filter, which reads its selection from SQLite
  (an open index keeps the last 16 filters' selections);
- recall@10 of the dense hits against an exact search of the selected entries (of
  min(10, selected) per question).

    .venv/bin/python bench/filters.py                 # the whole corpus (~165k texts)
    .venv/bin/python bench/filters.py --limit 20000   # a quicker run
    .venv/bin/python bench/filters.py --smoke         # 400 texts, a tiny model

The corpus vectors are encoded once per model and cached in bench/.cache/.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
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
SMOKE_LINES = 400
TYPES = ("flat", "hnsw")
FILTERS = {"none": None, "0.1%": "bucket < 1", "1%": "bucket < 10", "10%": "bucket < 100",
           "50%": "bucket < 500"}  # fmt: skip


def corpus(lines: int | None, limit: int | None) -> tuple[list[str], list[str]]:
    """Distinct definitions and examples (the first `limit`), and lemmas for questions."""
    with DATA.open(encoding="utf-8") as handle:
        entries = [json.loads(line) for line in itertools.islice(handle, lines)]
    seen: dict[str, None] = {}
    for entry in entries:
        for text in (entry["definition"], *entry["examples"]):
            seen.setdefault(text.strip(), None)
    texts = [text for text in seen if text]
    words = [entry["words"][0].replace("_", " ") for entry in entries]
    return texts[:limit] if limit else texts, words


class Given:
    """An encoder stand-in: the vectors of known texts, the real encoder for the rest."""

    def __init__(self, real: Any, known: dict[str, np.ndarray]) -> None:
        self.real, self.known = real, known
        self.fingerprint, self.dim, self.truncated = real.fingerprint, real.dim, 0

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        if all(text in self.known for text in texts):
            return np.stack([self.known[text] for text in texts])
        return self.real.encode(texts, batch_size=64, show_progress=False)


def vectors_of(encoder: Any, texts: list[str], cache: bool) -> np.ndarray:
    if not cache:
        return encoder.encode(texts, batch_size=64, show_progress=False)
    key = hashlib.sha256(("\n".join(texts) + encoder.fingerprint["model"]).encode()).hexdigest()
    path = CACHE / f"filters-{key[:16]}.npy"
    if path.exists():
        return np.load(path)
    vectors = encoder.encode(texts, batch_size=64, show_progress=sys.stderr.isatty())
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def timed(engine: Any, questions: Sequence[str], mode: str, where: str | None) -> list[float]:
    """Seconds of each question's `engine.query`, one after the other."""
    seconds = []
    for question in questions:
        started = time.perf_counter()
        engine.query(question, k=10, mode=mode, where=where)
        seconds.append(time.perf_counter() - started)
    return seconds


def measure(
    index_type: str,
    folder: Path,
    texts: list[str],
    vectors: np.ndarray,
    buckets: np.ndarray,
    questions: list[str],
    asked: np.ndarray,
    real: Any,
) -> list[dict[str, Any]]:
    from semsearch.config import SearchConfig
    from semsearch.index import IndexStore
    from semsearch.search.engine import SearchEngine

    given = Given(real, {**dict(zip(texts, vectors, strict=True)),
                         **dict(zip(questions, asked, strict=True))})  # fmt: skip
    records = [
        _record(str(i), text, {"bucket": int(bucket)})
        for i, (text, bucket) in enumerate(zip(texts, buckets, strict=True))
    ]
    with _common.Stopwatch() as build:
        IndexStore.build(folder, [records], given, index_type=index_type).close()
    config = SearchConfig(threshold="none")
    fast = SearchEngine(IndexStore.open(folder), given, config)
    slow = SearchEngine(fast.store, real, config)
    rows = []
    for share, where in FILTERS.items():
        first = timed(fast, questions[:1], "dense", where)
        for question in questions[:10]:  # warm-up
            fast.query(question, k=10, mode="dense", where=where)
        search = timed(fast, questions, "dense", where)
        hybrid = timed(fast, questions, "hybrid", where)
        end = timed(slow, questions, "dense", where)
        chosen = (
            np.arange(len(texts))
            if where is None
            else np.flatnonzero(buckets < int(where.split("<")[1]))
        )
        found, wanted = 0, min(10, len(chosen)) * len(questions)
        for question, vector in zip(questions, asked, strict=True):
            ids = {hit.id for hit in fast.query(question, k=10, mode="dense", where=where).hits}
            exact = chosen[np.argsort(-(vectors[chosen] @ vector), kind="stable")[:10]]
            found += len(ids & {str(i) for i in exact})
        rows.append(
            {
                "type": index_type,
                "filter": share,
                "selected": len(chosen),
                "build_s": round(build.seconds, 1),
                "first_ms": round(first[0] * 1000, 2),
                "search_ms": [round(v, 2) for v in _common.percentiles_ms(search, (50, 99))],
                "hybrid_ms": [round(v, 2) for v in _common.percentiles_ms(hybrid, (50, 99))],
                "end_to_end_ms": [round(v, 2) for v in _common.percentiles_ms(end, (50, 99))],
                "recall@10": round(found / wanted, 4) if wanted else None,
            }
        )
    fast.store.close()
    return rows


def _record(ident: str, text: str, metadata: dict[str, Any]) -> Any:
    from semsearch.corpus import Record

    return Record(ident, text, text, metadata)


def table(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| type | filter | selected | first ms | search p50 / p99 ms | hybrid p50 / p99 ms "
        "| end to end p50 / p99 ms | recall@10 |",
        "|------|--------|---------:|---------:|--------------------:|--------------------:"
        "|------------------------:|----------:|",
    ]
    for row in rows:
        timings = [row[name] for name in ("search_ms", "hybrid_ms", "end_to_end_ms")]
        cells = [
            row["type"],
            row["filter"],
            f"{row['selected']:,}",
            f"{row['first_ms']:.1f}",
            *("{:.2f} / {:.2f}".format(*pair) for pair in timings),
            _recall(row["recall@10"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _recall(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"  # none selected: nothing to find


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="index only the first N texts")
    parser.add_argument("--questions", type=int, default=200, help="single questions timed")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated index types")
    parser.add_argument("--out", type=Path, default=None, help="report file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    _common.require("bench/filters.py", [DATA], args.smoke)
    lines, model = None, "all-MiniLM-L6-v2"
    if args.smoke:
        lines, model = SMOKE_LINES, str(_common.smoke_model(args))
        args.limit, args.questions = args.limit or 300, min(args.questions, 10)

    from semsearch.encoders import load_encoder

    texts, words = corpus(lines, args.limit)
    rng = np.random.default_rng(0)
    buckets = rng.integers(0, 1000, len(texts))
    picked = rng.choice(len(words), size=min(args.questions, len(words)), replace=False)
    questions = list(dict.fromkeys(f"what does {words[i]} mean?" for i in picked))
    real = load_encoder(model=model)
    vectors = vectors_of(real, texts, cache=not args.smoke)
    asked = real.encode(questions, batch_size=64, show_progress=False)
    load = _common.load_average()
    rows = []
    with tempfile.TemporaryDirectory(prefix="semsearch-bench-filters-") as scratch:
        for index_type in args.types.split(","):
            folder = Path(scratch) / index_type
            rows += measure(index_type, folder, texts, vectors, buckets, questions, asked, real)
    header = (
        f"# where filters: {len(texts):,} WordNet texts, {len(questions)} questions, k=10, "
        f"{model}\n\nload average {load:.2f} before, {_common.load_average():.2f} after "
        "(2-core machine shared with other jobs)"
    )
    report = table(rows, header)
    if args.json:
        print(json.dumps({"rows": rows, "texts": len(texts), "questions": len(questions)}))
    else:
        print(report)
    path = _common.results_path("bench/filters.py", args.out, "filters.txt", args.smoke)
    _common.write_result(path, report)
    print(f"written: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
