"""What `semsearch finetune` with its defaults does to dense retrieval, and how long it takes.

Cases (``--only`` picks some), each run as the commands a user types, in fresh processes:

* ``covidqa-self``: ``semsearch finetune ../shared/data/covidqa_faq -o M`` (no labelled
  questions: each entry's title -> title and text), then ``semsearch eval retrieval
  ../shared/data/covidqa_faq --mode dense`` with the base model and with M.
* ``covidqa-logs``: the 240 COVID-QA questions split in two halves (sorted ids shuffled
  with seed 0; written with the corpus to a temporary BEIR folder as qrels/train.tsv and
  qrels/test.tsv), ``semsearch finetune HALVES --pairs HALVES -o M`` trains on the first
  half, and both models are scored on the second (``--split test``).
* ``stackfaq-self``: as covidqa-self on ../shared/data/stackfaq (719 entries).

At ``--smoke`` size one case runs on examples/beir-sample with the tiny model, and its
semsearch commands run inside this process (a fresh one costs seconds of imports).

The machine may be shared: the 1-minute load average is read before and after each
training and written beside its time.

Run it from the repository root::

    .venv/bin/python bench/finetune.py                     # bench/results/finetune.txt
    .venv/bin/python bench/finetune.py --only covidqa-self --out /tmp/f.txt
    .venv/bin/python bench/finetune.py --smoke   # a tiny model on examples/beir-sample
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import _common
from _common import DATA

SEMSEARCH = [sys.executable, "-m", "semsearch"]
CASES = ("covidqa-self", "covidqa-logs", "stackfaq-self")
SMOKE_CASE = "sample-self"  # --smoke: examples/beir-sample, a tiny model, a few small steps


def command(*args: object, smoke: bool = False) -> dict:
    """Run `semsearch ARGS --json --quiet` (a fresh process; --smoke: inside this one);
    its JSON, with the command line and wall time."""
    argv = [*(str(a) for a in args), "--json", "--quiet"]
    with _common.Stopwatch() as watch:
        done = _common.semsearch(argv, in_process=smoke)
    if done.returncode != 0:
        raise SystemExit(f"failed: {shlex.join([*SEMSEARCH, *argv])}\n{done.stderr}")
    result = json.loads(done.stdout)
    result["_wall"] = watch.seconds
    result["_command"] = "semsearch " + shlex.join(str(a) for a in args)
    return result


def halves(source: Path, scratch: Path) -> Path:
    """A BEIR folder holding the corpus and queries, qrels/train.tsv the first half of the
    judged queries and qrels/test.tsv the second."""
    folder = scratch / "covidqa-halves"
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        shutil.copy(source / name, folder / name)
    header, *rows = (source / "qrels" / "test.tsv").read_text().splitlines()
    queries = sorted({row.split("\t")[0] for row in rows})
    random.Random(0).shuffle(queries)
    first = set(queries[: len(queries) // 2])
    for name, keep in (("train", True), ("test", False)):
        chosen = [row for row in rows if (row.split("\t")[0] in first) == keep]
        (folder / "qrels" / f"{name}.tsv").write_text("\n".join([header, *chosen]) + "\n")
    return folder


def case(
    name: str,
    data: Path,
    scratch: Path,
    pairs: Path | None = None,
    extra: Sequence[object] = (),
    smoke: bool = False,
) -> list[str]:
    model = scratch / f"model-{name}"
    extra = [*extra, *(["--pairs", pairs] if pairs else [])]
    before_load = _common.load_average()
    tuned = command("finetune", data, "-o", model, *extra, smoke=smoke)
    after_load = _common.load_average()
    scores = {
        label: command("eval", "retrieval", data, "--model", chosen, "--mode", "dense", smoke=smoke)
        for label, chosen in (("base", tuned["base"]["model"]), ("tuned", model))
    }
    lines = [
        f"## {name}",
        f"$ {tuned['_command']}",
        f"  training {tuned['seconds']['train']:.1f} s, whole command {tuned['_wall']:.1f} s "
        f"(load average {before_load:.2f} before, {after_load:.2f} after, {os.cpu_count()} cores)",
        f"  pairs: {json.dumps(tuned['pairs'])}",
        f"  held out ({tuned['held_out_from']}): before {json.dumps(tuned['before'])}, "
        f"after {json.dumps(tuned['after'])}",
    ]
    for label, result in scores.items():
        lines.append(f"$ {result['_command']}")
        lines.append(
            f"  {label}: nDCG@10 x100 {100 * result['ndcg@10']:.2f}, "
            f"Recall@1 x100 {100 * result['recall@1']:.2f} ({result['queries']} queries)"
        )
    gain = 100 * (scores["tuned"]["ndcg@10"] - scores["base"]["ndcg@10"])
    lines.append(f"  dense nDCG@10 change: {gain:+.2f} points")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--out", type=Path, default=None, help="bench/results/finetune.txt")
    _common.add_smoke_options(parser)
    options = parser.parse_args()
    options.out = _common.results_path(
        "bench/finetune.py", options.out, "finetune.txt", options.smoke
    )
    if options.smoke:
        options.only = ""
    chosen = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(chosen) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}; known: {CASES}")
    lines = [
        "# semsearch finetune with its defaults (bench/finetune.py)",
        f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.platform()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="semsearch-bench-finetune-") as folder:
        scratch = Path(folder)
        if options.smoke:
            base = _common.smoke_model(options)
            small = ["--base", base, "--batch-size", 8, "--max-seq-length", 32]
            data = _common.EXAMPLES / "beir-sample"
            lines += case(SMOKE_CASE, data, scratch, extra=small, smoke=True)
            print("\n".join(lines[-9:]), file=sys.stderr)
        for name in chosen:
            source = DATA / ("stackfaq" if name.startswith("stackfaq") else "covidqa_faq")
            if not source.is_dir():
                lines += [f"## {name}", f"  skipped: {source} is absent", ""]
                continue
            if name == "covidqa-logs":
                split = halves(source, scratch)
                lines += case(name, split, scratch, pairs=split)
            else:
                lines += case(name, source, scratch)
            print("\n".join(lines[-9:]), file=sys.stderr)
            _common.write_result(
                options.out, "\n".join(lines)
            )  # after each case: a long run keeps some
    if options.smoke:
        _common.write_result(options.out, "\n".join(lines))
    print(f"written: {options.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
