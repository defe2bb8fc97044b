"""Encoding speed: semsearch's encoders against sentence-transformers on the same work.

What it measures: sentences per second of `semsearch.load_encoder(...).encode(texts)`
and of sentence-transformers' own `SentenceTransformer.encode(texts)` on the same
model, the same texts and the same batch size, in the same process, and their ratio
(semsearch / reference; above 1.0 means semsearch is faster). It also reports the
largest absolute difference between the two sets of vectors, which shows that both
sides computed the same embeddings (expect < 1e-5).

Two cases:

* ``sentence-transformer``: the packaged all-MiniLM-L6-v2 as a sentence-transformer
  (semsearch's default encoder) against ``SentenceTransformer(folder).encode(...,
  normalize_embeddings=True)``.
* ``bert-mean``: the same folder loaded as a raw BERT with mean pooling
  (``load_encoder(kind="bert", pooling="mean")``) against a sentence-transformers model
  built from ``Transformer(folder) + Pooling(dim, "mean") + Normalize()``.

Texts: the unique sentences of an STS Benchmark split, read from
``../shared/data/stsb/sts-<split>.csv`` relative to the repository root (``--data``
names another folder); without the data the script says where it looked and exits 2.

Each case warms both sides up on a small slice, then alternates reference and
semsearch runs ``--repeats`` times and keeps the best (highest) rate of each, which
damps the noise of a shared machine. When one side's runs still differ by more than
25% the table ends with a warning: on a busy machine, multi-threaded torch slows down
many times over whenever a thread is descheduled, and ``--threads 1`` gives steady
numbers (it measures the work, not the parallelism).

Run it from the repository root::

    .venv/bin/python bench/encode.py                   # readable table
    .venv/bin/python bench/encode.py --batch-size 64   # another batch size
    .venv/bin/python bench/encode.py --threads 1 --json # steady on a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "stsb"
MODEL = "all-MiniLM-L6-v2"
CASES = ("sentence-transformer", "bert-mean")
WARMUP_TEXTS = 64
NOISY_SPREAD = 1.25  # best run / worst run of one side above this: the machine was busy

EncodeFn = Callable[[list[str]], Any]


@dataclass
class CaseResult:
    """Timings of one case: every run's sentences/s for both sides, and the vector check."""

    case: str
    texts: int
    batch_size: int
    reference_runs: list[float] = field(default_factory=list)
    semsearch_runs: list[float] = field(default_factory=list)
    reference_cpu_runs: list[float] = field(default_factory=list)
    semsearch_cpu_runs: list[float] = field(default_factory=list)
    max_abs_diff: float = float("nan")

    @property
    def reference(self) -> float:
        return max(self.reference_runs)

    @property
    def semsearch(self) -> float:
        return max(self.semsearch_runs)

    @property
    def ratio(self) -> float:
        return self.semsearch / self.reference

    @property
    def cpu_ratio(self) -> float:
        """The same ratio on process CPU time: steadier than wall time on a busy machine."""
        return max(self.semsearch_cpu_runs) / max(self.reference_cpu_runs)

    @property
    def spread(self) -> float:
        """Largest best/worst ratio over the two sides' runs; near 1.0 on a quiet machine."""
        runs = (self.reference_runs, self.semsearch_runs)
        return max(max(r) / min(r) for r in runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "reference_sentences_per_s": round(self.reference, 1),
            "semsearch_sentences_per_s": round(self.semsearch, 1),
            "ratio": round(self.ratio, 3),
            "cpu_time_ratio": round(self.cpu_ratio, 3),
            "spread": round(self.spread, 2),
        }


# -- inputs -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sentences/s of semsearch's encoders vs SentenceTransformer.encode()."
    )
    parser.add_argument(
        "--data", type=Path, default=DATA_DIR, help="STS-B folder (default ../shared/data/stsb)"
    )
    parser.add_argument("--split", choices=("train", "dev", "test"), default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N unique sentences")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32, as ST's encode()")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (best kept)")
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--device", default="cpu", help="torch device for both sides")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for name in ("limit", "batch_size", "threads", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def read_sentences(folder: Path, split: str, limit: int | None) -> list[str]:
    """Unique sentence1/sentence2 values of an STS-B split, in first-seen order."""
    path = folder / f"sts-{split}.csv"
    if not path.is_file():
        missing_data(path)
    unique: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        columns = line.split("\t")  # no csv quoting: sentences hold bare quote marks
        if len(columns) >= 7:
            unique.setdefault(columns[5], None)
            unique.setdefault(columns[6], None)
    texts = list(unique)
    return texts[:limit] if limit else texts


def missing_data(path: Path) -> NoReturn:
    """One line on stderr saying where the data are expected, exit code 2."""
    print(
        f"bench/encode.py: STS Benchmark data not found: expected {path} "
        "(tab-separated sts-{train,dev,test}.csv; default folder ../shared/data/stsb/ "
        "from the repository root, or give --data DIR)",
        file=sys.stderr,
    )
    raise SystemExit(2)


# -- the two sides ----------------------------------------------------------------------
def semsearch_side(case: str, device: str, batch_size: int) -> EncodeFn:
    from semsearch.encoders import load_encoder

    if case == "sentence-transformer":
        encoder = load_encoder(device=device)
    else:
        encoder = load_encoder(kind="bert", pooling="mean", device=device)
    return lambda texts: encoder.encode(texts, batch_size=batch_size, show_progress=False)


def reference_side(case: str, device: str, batch_size: int) -> EncodeFn:
    from sentence_transformers import SentenceTransformer

    from semsearch.models import resolve_model

    folder = str(resolve_model(MODEL))
    if case == "sentence-transformer":
        model = SentenceTransformer(folder, device=device)
    else:
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )

        transformer = Transformer(folder)
        pooling = Pooling(transformer.get_embedding_dimension(), "mean")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)
    return lambda texts: model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )


# -- timing -----------------------------------------------------------------------------
def timed(encode: EncodeFn, texts: list[str]) -> tuple[float, float, Any]:
    """Sentences per second of one full encode (wall clock, then CPU time), and its vectors."""
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return round(len(texts) / wall, 1), round(len(texts) / cpu, 1), vectors


def run_case(case: str, texts: list[str], args: argparse.Namespace) -> CaseResult:
    reference = reference_side(case, args.device, args.batch_size)
    semsearch = semsearch_side(case, args.device, args.batch_size)
    for encode in (reference, semsearch):
        encode(texts[:WARMUP_TEXTS])
    result = CaseResult(case, len(texts), args.batch_size)
    for _ in range(args.repeats):
        rate, cpu_rate, ref_vectors = timed(reference, texts)
        result.reference_runs.append(rate)
        result.reference_cpu_runs.append(cpu_rate)
        rate, cpu_rate, sem_vectors = timed(semsearch, texts)
        result.semsearch_runs.append(rate)
        result.semsearch_cpu_runs.append(cpu_rate)
    import numpy as np

    result.max_abs_diff = float(np.abs(np.asarray(ref_vectors) - sem_vectors).max())
    return result


# -- output -----------------------------------------------------------------------------
def command_line() -> str:
    """The command as typed from the repo root, e.g. `.venv/bin/python bench/encode.py`."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(Path.cwd()))
    except ValueError:
        shown = str(python)
    return shlex.join([shown, *sys.argv])


def environment(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    import sentence_transformers
    import torch
    import transformers

    return {
        "command": command_line(),
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": MODEL,
        "texts": f"STS-B {args.split}, {len(texts)} unique sentences",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
    }


def print_environment(env: dict[str, Any]) -> None:
    for key, value in env.items():
        print(f"{key + ':':24} {value}")
    print(flush=True)


def print_table(results: list[CaseResult]) -> None:
    header = (
        f"{'case':22} {'reference s/s':>14} {'semsearch s/s':>14} {'ratio':>7}"
        f" {'cpu ratio':>10} {'max|diff|':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.case:22} {r.reference:14.1f} {r.semsearch:14.1f} {r.ratio:6.2f}x"
            f" {r.cpu_ratio:9.2f}x {r.max_abs_diff:10.1e}"
        )
    print()
    print("s/s: best of the runs, wall clock; cpu ratio: the same on process CPU time")
    print("all runs, sentences/s (reference | semsearch, in the order they ran):")
    for r in results:
        print(f"  {r.case:22} wall {r.reference_runs} | {r.semsearch_runs}")
        print(f"  {'':22} cpu  {r.reference_cpu_runs} | {r.semsearch_cpu_runs}")
    noisy = [r.case for r in results if r.spread > NOISY_SPREAD]
    if noisy:
        print(
            f"warning: runs of {', '.join(noisy)} differ by more than "
            f"{NOISY_SPREAD - 1:.0%}: the machine was busy, so the ratio is unreliable; "
            "rerun when it is idle, or with --threads 1 or more --repeats"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts = read_sentences(args.data, args.split, args.limit)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the reference's "Loading weights" bar is noise here
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(args, texts)
    if not args.json:  # the header first, so a long run shows what it is doing
        print_environment(env)
    cases = CASES if args.case == "all" else (args.case,)
    results = [run_case(case, texts, args) for case in cases]
    env_after = {"load_average_1min_after": round(os.getloadavg()[0], 2)}
    if args.json:
        summary = {**env, **env_after, "results": [r.as_dict() for r in results]}
        print(json.dumps(summary, indent=2))
    else:
        print_table(results)
        print_environment(env_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
