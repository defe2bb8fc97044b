"""One question at a time through an open index, in one process: the warm path that
`semsearch query`'s prompt, piped input and the service run per question.

Times `SearchEngine.query(question, k=10)` for the first N WordNet glosses used as
questions (after 50 untimed), and prints p50 / p99 in ms and which semsearch it ran.
To compare two versions of the code, run it from each checkout in turn, e.g.

    git worktree add /tmp/before REV
    (cd /tmp/before && PYTHONPATH=/tmp/before $OLDPWD/.venv/bin/python $OLDPWD/bench/warm.py INDEX)
    .venv/bin/python bench/warm.py INDEX
    .venv/bin/python bench/warm.py --smoke   # a tiny model's FAQ index, its own questions

p50 and p99 are NumPy's (linear interpolation), as in bench/search.py and serve_load.py.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import tempfile
from pathlib import Path

import _common

GLOSSES = _common.DATA / "wordnet_glosses" / "glosses.jsonl"
WARMUP = 50
SMOKE_QUESTIONS, SMOKE_WARMUP = 20, 5


def smoke_index(folder: Path, model: Path) -> Path:
    """--smoke: examples/faq.csv indexed with the tiny model, as `semsearch index` does."""
    index = folder / "faq"
    command = ["index", _common.FAQ, "-o", index, "--model", model, "--quiet"]
    done = _common.semsearch(command, in_process=True)
    if done.returncode != 0:
        raise SystemExit(f"bench/warm.py: semsearch index failed:\n{done.stderr}")
    return index


def faq_questions(count: int) -> list[str]:
    with _common.FAQ.open(encoding="utf-8", newline="") as handle:
        return [row["question"] for row in csv.DictReader(handle)][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", nargs="?", help="an index folder, e.g. indexes/demo")
    parser.add_argument("--questions", type=int, default=400, help="timed questions (400)")
    parser.add_argument("--glosses", type=Path, default=GLOSSES, help="glosses.jsonl to ask")
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="semsearch-bench-warm-"))
    try:
        measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure(args: argparse.Namespace, scratch: Path) -> None:
    warmup = WARMUP
    if args.smoke:  # the FAQ's own questions against its tiny-model index
        args.index = smoke_index(scratch, _common.smoke_model(args))
        questions, warmup = faq_questions(SMOKE_QUESTIONS), SMOKE_WARMUP
    else:
        if args.index is None:
            raise SystemExit("bench/warm.py: give an index folder (or --smoke)")
        _common.require("bench/warm.py", [args.glosses], smoke=False)
        with args.glosses.open(encoding="utf-8") as handle:
            lines = itertools.islice(handle, args.questions)
            questions = [json.loads(line)["text"] for line in lines]
    import semsearch
    from semsearch.search.engine import SearchEngine

    engine = SearchEngine.open(args.index)
    for question in questions[:warmup]:
        engine.query(question, k=10)
    times = []
    for question in questions:
        with _common.Stopwatch() as watch:
            engine.query(question, k=10)
        times.append(watch.seconds)
    p50, p99 = _common.percentiles_ms(times, (50, 99))
    code = Path(semsearch.__file__).parents[1]
    print(f"{code}: {len(times)} questions, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
