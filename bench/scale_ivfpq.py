"""ivfpq against flat (and optionally hnsw) on WordNet glosses: recall@10 against flat,
bytes per vector in RAM and on disk, search p50 of one question, the peak RSS of a fresh
process that opens the index and answers questions, and build time.

    .venv/bin/python bench/scale_ivfpq.py                  # all 117,659 glosses
    .venv/bin/python bench/scale_ivfpq.py --limit 50000 --types flat,ivfpq
    .venv/bin/python bench/scale_ivfpq.py --smoke   # the first 1,000 glosses, a tiny model

The corpus is the `text` field of every line of glosses.jsonl. Its MiniLM vectors
(ONNX backend, fp32) are encoded once and cached outside the repository
(~/.cache/semsearch-bench); questions are "what does WORD mean?" for 500 random lemmas.
The index processes load no encoder: the RSS is the index's (records, BM25 and FAISS)
plus Python, NumPy and FAISS themselves.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared, oversubscribed cores

import _common
import numpy as np
from _common import ROOT

DATA = _common.DATA / "wordnet_glosses" / "glosses.jsonl"
SMOKE_LINES = 1000  # --smoke: the first glosses only (no vector cache)
CACHE = Path.home() / ".cache" / "semsearch-bench"

PROBE = """
import json, sys, time
import numpy as np
def peak_mib():  # VmHWM: ru_maxrss would keep the forking parent's pages across exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from semsearch.index import IndexStore
store = IndexStore.open(sys.argv[1])
queries = np.load(sys.argv[2])
seconds, found = [], []
for q in queries:
    started = time.perf_counter()
    hits = store.search_rowids(q[None, :], 10)[0]
    seconds.append(time.perf_counter() - started)
    found.append([rowid for rowid, _ in hits])
print(json.dumps({"p50_ms": float(np.percentile(seconds, 50) * 1000),
                  "rss_mib": peak_mib(),
                  "found": found}))
"""


class Precomputed:
    """The real encoder, except that the corpus's vectors come from the cache."""

    def __init__(self, real: Any, vectors: np.ndarray) -> None:
        self.real, self.vectors, self.done = real, vectors, False
        self.fingerprint, self.dim, self.truncated = real.fingerprint, real.dim, 0

    def encode(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        if not self.done and len(texts) == len(self.vectors):
            self.done = True
            return self.vectors
        return self.real.encode(texts, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--types", default="flat,ivfpq")
    parser.add_argument("--questions", type=int, default=500)
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    _common.require("bench/scale_ivfpq.py", [DATA], args.smoke, "the WordNet glosses")
    lines = SMOKE_LINES if args.smoke else None
    if args.smoke:
        args.questions = min(args.questions, 20)

    from semsearch.corpus import Record
    from semsearch.encoders import load_encoder
    from semsearch.index import IndexStore

    with DATA.open(encoding="utf-8") as handle:
        entries = [json.loads(line) for line in itertools.islice(handle, lines)]
    texts = [e["text"] for e in entries]
    if args.smoke:
        encoder = load_encoder(backend="onnx", model=str(_common.smoke_model(args)))
        vectors = encoder.encode(texts, batch_size=64, show_progress=False)
    else:
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        cached = CACHE / f"glosses-text-{key}-onnx.npy"
        encoder = load_encoder(backend="onnx")
        if not cached.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            np.save(cached, encoder.encode(texts, batch_size=64, show_progress=False))
        vectors = np.load(cached)
    count = min(args.limit or len(texts), len(texts))
    records = [Record(str(i), texts[i], "", {}) for i in range(count)]
    rng = np.random.default_rng(0)
    picked = rng.choice(len(entries), size=args.questions, replace=False)
    questions = [f"what does {entries[i]['words'][0].replace('_', ' ')} mean?" for i in picked]
    work = Path(tempfile.mkdtemp(prefix="scale-ivfpq-"))
    np.save(work / "questions.npy", encoder.encode(questions))
    print(f"corpus: {count:,} glosses (of {len(texts):,} lines), {args.questions} questions")
    print(f"uptime: {os.popen('uptime').read().strip()}")
    rows, found = [], {}
    for kind in args.types.split(","):
        folder = work / kind
        started = time.perf_counter()
        store = IndexStore.build(
            folder, [records], Precomputed(encoder, vectors[:count]), index_type=kind
        )
        build_s = time.perf_counter() - started
        params, files = store.manifest.index.params, store.info()["files"]
        store.close()
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(folder), str(work / "questions.npy")],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        result = json.loads(probe.stdout)
        found[kind] = result["found"]
        vector_files = {n: s for n, s in files.items() if n.startswith("vectors.")}
        in_ram = sum(s for n, s in vector_files.items() if n.endswith(".faiss"))
        rows.append((kind, params, build_s, result, vector_files, in_ram))
    reference = found.get("flat")
    print(
        f"{'type':6} {'recall@10':>9} {'p50 ms':>7} {'RSS MiB':>8} {'build s':>8} "
        f"{'B/vec RAM':>9} {'B/vec disk':>10}  params"
    )
    for kind, params, build_s, result, vector_files, in_ram in rows:
        recall = float("nan")
        if reference is not None:
            recall = float(
                np.mean(
                    [
                        len(set(a) & set(b)) / 10
                        for a, b in zip(result["found"], reference, strict=True)
                    ]
                )
            )
        disk = sum(vector_files.values())
        print(
            f"{kind:6} {recall:9.3f} {result['p50_ms']:7.2f} {result['rss_mib']:8.0f} "
            f"{build_s:8.1f} {in_ram / count:9.1f} {disk / count:10.1f}  {params}"
        )
        print(f"       vector files: {vector_files}")
    print(
        "B/vec RAM: the .faiss file read into memory; ivfpq's .ivfdata, .f16.npy and "
        ".ids.npy are memory-mapped (on disk, paged in on use)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
