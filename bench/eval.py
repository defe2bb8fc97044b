"""Reproduce the README's evaluation table: every number comes from one `semsearch eval`
command, run here in its own process with --json, and the table is printed as markdown.

    python bench/eval.py                      # everything (about 15 minutes on 2 CPU cores)
    python bench/eval.py --only sts           # rows whose command contains 'sts'
    python bench/eval.py --out bench/results/eval.json
    python bench/eval.py --smoke              # 3 rows on examples/ with a tiny model,
                                              # the commands inside this process

Reads ../shared/data (relative to the project root) and exits with a message where it is
absent. The sweep writes bench/results/sweep-minilm.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import _common

DATA = "../shared/data"

STSB_TEST = f"{DATA}/stsb/sts-test.csv"
CONFIGS = ("bert-cls", "bert-pooler", "bert-mean", "bert-as-service", "bert-last4-concat")
PUBLISHED = {
    "sts default": "82.03 (MTEB STSBenchmark, all-MiniLM-L6-v2)",
    "sts bert-cls": "16.50 for raw BERT-base [CLS] (SBERT paper; another model)",
    "sts bert-mean": "46.35 for raw BERT-base mean (SBERT paper; another model)",
}

RUNS: list[tuple[str, str, tuple[str, ...]]] = [
    ("sts default", "STSb test, default (all-MiniLM-L6-v2)", ("sts", STSB_TEST)),
    *(
        (
            f"sts {name}",
            f"STSb test, {name}",
            ("sts", STSB_TEST, "--config", f"configs/{name}.toml"),
        )
        for name in CONFIGS
    ),
    *(
        (
            f"retrieval {folder} {kind} {mode}",
            f"{label}, {kind}, {mode}" + (" (default)" if mode == "hybrid" else ""),
            ("retrieval", f"{DATA}/{folder}", "--index-type", kind, "--mode", mode),
        )
        for folder, label in (("stackfaq", "StackFAQ"), ("covidqa_faq", "COVID-QA FAQ"))
        for kind, mode in (
            ("flat", "hybrid"),
            ("flat", "dense"),
            ("flat", "lexical"),
            ("hnsw", "hybrid"),
            ("hnsw", "dense"),
        )
    ),
    (
        "classify sst2",
        "SST-2 (train: 10,000 of 67,349 phrases)",
        (
            "classify",
            f"{DATA}/sst2/sentiment-train",
            f"{DATA}/sst2/sentiment-test",
            "--limit-train",
            "10000",
        ),
    ),
    (
        "classify banking77",
        "BANKING77 (full train)",
        ("classify", f"{DATA}/banking77/train.csv", f"{DATA}/banking77/test.csv"),
    ),
    (
        "sweep",
        "sweep, STSb dev",
        ("sweep", f"{DATA}/stsb", "--plot", "bench/results/sweep-minilm.png"),
    ),
]


def smoke_runs(model: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """One row per task on the shipped examples, with the tiny model (--smoke)."""
    tiny = ("--model", str(model))
    return [
        ("sts sample", "STS sample (examples/)", ("sts", "examples/sts-sample.tsv", *tiny)),
        (
            "retrieval beir-sample flat hybrid",
            "BEIR sample (examples/), flat, hybrid",
            ("retrieval", "examples/beir-sample", "--index-type", "flat", *tiny),
        ),
        (
            "classify intents",
            "intents (examples/)",
            ("classify", "examples/intents-train.csv", "examples/intents-test.csv", *tiny),
        ),
    ]


def command_line(args: tuple[str, ...]) -> str:
    return "semsearch eval " + " ".join(shlex.quote(a) for a in args)


def run(args: tuple[str, ...], smoke: bool = False) -> dict:
    """`semsearch eval ARGS --json --quiet` (a fresh process; --smoke: inside this one)."""
    with _common.Stopwatch() as watch:
        done = _common.semsearch(["eval", *args, "--json", "--quiet"], in_process=smoke)
    if done.returncode != 0:
        raise SystemExit(f"{command_line(args)} failed:\n{done.stderr}")
    data = json.loads(done.stdout)
    data["wall_seconds"] = round(watch.seconds, 1)
    return data


def x100(value: float) -> str:
    return f"{100 * value:.2f}"


def row(key: str, label: str, args: tuple[str, ...], data: dict) -> str:
    task = data["task"]
    if task == "sts":
        ours = f"Spearman {x100(data['spearman'])} (Pearson {x100(data['pearson'])})"
    elif task == "retrieval":
        ours = (
            f"nDCG@10 {x100(data['ndcg@10'])}, MRR@10 {x100(data['mrr@10'])}, "
            f"R@1 {x100(data['recall@1'])}, R@10 {x100(data['recall@10'])}, "
            f"MAP@100 {x100(data['map@100'])}"
        )
    elif task == "classify":
        ours = f"accuracy {x100(data['accuracy'])}, macro-F1 {x100(data['macro_f1'])}"
    else:
        best = data["best"]
        ours = f"best: layers {best['label']}, {best['pooling']}: Spearman {x100(best['spearman'])}"
    published = PUBLISHED.get(key, "")
    return f"| {label} | {ours} | {published} | `{command_line(args)}` |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the rows whose key contains this text")
    parser.add_argument("--out", type=Path, default=None, help="bench/results/eval.json")
    _common.add_smoke_options(parser)
    options = parser.parse_args()
    options.out = _common.results_path("bench/eval.py", options.out, "eval.json", options.smoke)
    if options.smoke:
        runs = smoke_runs(_common.smoke_model(options))
    else:
        _common.require("bench/eval.py", [_common.DATA], smoke=False, where="the evaluation data")
        runs = RUNS
    chosen = [r for r in runs if not options.only or options.only in r[0]]
    results = {}
    lines = ["| benchmark | ours (x 100) | published | command |", "|---|---|---|---|"]
    for key, label, args in chosen:
        print(f"running {command_line(args)}", file=sys.stderr, flush=True)
        data = run(args, smoke=options.smoke)
        results[key] = {"command": command_line(args), **data}
        lines.append(row(key, label, args, data))
        print(f"  {lines[-1]}  ({data['wall_seconds']} s)", file=sys.stderr, flush=True)
    meta = {"python": platform.python_version(), "machine": platform.machine()}
    _common.write_result(
        options.out, json.dumps({"meta": meta, "results": results}, indent=1) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
