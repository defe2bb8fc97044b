"""One question at a time through an open index, in one process: the warm path that
`semsearch query`'s prompt, piped input and the service run per question.

Times `SearchEngine.query(question, k=10)` for the first N WordNet glosses used as
questions (after 50 untimed), and prints p50 / p99 in ms and which semsearch it ran.
To compare two versions of the code, run it from each checkout in turn, e.g.

    git worktree add /tmp/before REV
    (cd /tmp/before && PYTHONPATH=/tmp/before $OLDPWD/.venv/bin/python $OLDPWD/bench/warm.py INDEX)
    .venv/bin/python bench/warm.py INDEX
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLOSSES = ROOT.parent / "shared" / "data" / "wordnet_glosses" / "glosses.jsonl"
WARMUP = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", help="an index folder, e.g. indexes/demo")
    parser.add_argument("--questions", type=int, default=400, help="timed questions (400)")
    parser.add_argument("--glosses", type=Path, default=GLOSSES, help="glosses.jsonl to ask")
    args = parser.parse_args()
    if not args.glosses.is_file():
        raise SystemExit(f"bench/warm.py: {args.glosses} is absent: it reads ../shared/data")
    import semsearch
    from semsearch.search.engine import SearchEngine

    with args.glosses.open(encoding="utf-8") as handle:
        lines = itertools.islice(handle, args.questions)
        questions = [json.loads(line)["text"] for line in lines]
    engine = SearchEngine.open(args.index)
    for question in questions[:WARMUP]:
        engine.query(question, k=10)
    times = []
    for question in questions:
        started = time.perf_counter()
        engine.query(question, k=10)
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    p50, p99 = times[len(times) // 2], times[int(0.99 * len(times))]
    code = Path(semsearch.__file__).parents[1]
    print(f"{code}: {len(times)} questions, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
