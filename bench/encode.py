"""Encoding speed: semsearch's backends against sentence-transformers on the same work.

What it measures: sentences per second of `semsearch.load_encoder(..., backend=B).encode`
for each backend B (torch, onnx, onnx-int8 on CPU; torch on CUDA) and of
sentence-transformers' own `SentenceTransformer.encode(texts)` on the same model and
texts, in the same process, and their ratio (semsearch / reference; above 1.0 means
semsearch is faster). For each side it also reports the largest absolute difference
and the mean cosine to the reference's vectors (fp32 backends: same vectors, < 1e-5;
int8: other vectors), and the STS Benchmark Spearman x100 of those vectors on the
split's pairs, which shows what quantization costs in quality.

Cases:

* ``sentence-transformer``: the packaged all-MiniLM-L6-v2 as a sentence-transformer
  (semsearch's default encoder) against ``SentenceTransformer(folder).encode(...,
  normalize_embeddings=True)``, on the STS-B sentences (short texts).
* ``bert-mean``: the same folder loaded as a raw BERT with mean pooling
  (``load_encoder(kind="bert", pooling="mean")``) against a sentence-transformers model
  built from ``Transformer(folder) + Pooling(dim, "mean") + Normalize()``.
* ``bert-base-passages``: the BERT-base shape (12 layers, 768 wide; random weights, as
  only the shape decides the speed) with mean pooling on 128-token passages made of
  WordNet glosses. Meant for a GPU; on 2 CPU cores it takes minutes.

On CUDA (``--device cuda``) semsearch runs its torch backend (fp16 autocast,
length-sorted batches of ``--batch-size``, pinned memory, the next texts tokenised
while the GPU computes) and the reference runs in fp16 at the best of
``--reference-batch-sizes``, so the comparison is against sentence-transformers at
its best, not at its default.

Texts: the unique sentences of an STS Benchmark split, read from
``../shared/data/stsb/sts-<split>.csv`` relative to the repository root (``--data``
names another folder); without the data the script says where it looked and exits 2.

Each side is warmed up on a small slice (and the ONNX exports made before timing),
then the sides alternate ``--repeats`` times and the best (highest) rate of each is
kept, which damps the noise of a shared machine.

Run it from the repository root::

    .venv/bin/python bench/encode.py                      # readable table, all backends
    .venv/bin/python bench/encode.py --case sentence-transformer --json
    .venv/bin/python bench/encode.py --device cuda --batch-size 256   # on a GPU
    .venv/bin/python bench/encode.py --smoke   # a tiny model on examples/sts-sample.tsv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import numpy as np

DATA_DIR = _common.DATA / "stsb"
GLOSSES = _common.DATA / "wordnet_glosses" / "glosses.jsonl"
SMOKE_PAIRS = _common.EXAMPLES / "sts-sample.tsv"  # sentence1, sentence2, score; a header
SMOKE_TEXTS = 24  # --smoke: the first sentences of the sample (12 pairs: a Spearman)
MODEL = "all-MiniLM-L6-v2"
CASES = ("sentence-transformer", "bert-mean", "bert-base-passages")
CPU_BACKENDS = ("torch", "onnx", "onnx-int8")
WARMUP_TEXTS = 64
PASSAGE_TOKENS = 128

EncodeFn = Callable[[list[str]], Any]


@dataclass
class Side:
    """One encoder in a case: its timed runs and how its vectors compare to the reference."""

    name: str
    encode: EncodeFn
    batch_size: int
    runs: list[float] = field(default_factory=list)
    max_abs_diff: float = 0.0
    mean_cosine: float = 1.0
    spearman: float | None = None

    @property
    def best(self) -> float:
        return max(self.runs)

    def as_dict(self, reference: Side) -> dict[str, Any]:
        return {
            "side": self.name,
            "batch_size": self.batch_size,
            "sentences_per_s": round(self.best, 1),
            "ratio": round(self.best / reference.best, 3),
            "runs": self.runs,
            "max_abs_diff": float(f"{self.max_abs_diff:.3g}"),
            "mean_cosine": round(self.mean_cosine, 5),
            "spearman": None if self.spearman is None else round(self.spearman, 4),
        }


# -- inputs -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sentences/s of semsearch's backends vs SentenceTransformer.encode()."
    )
    parser.add_argument(
        "--data", type=Path, default=DATA_DIR, help="STS-B folder (default ../shared/data/stsb)"
    )
    parser.add_argument("--split", choices=("train", "dev", "test"), default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N unique sentences")
    parser.add_argument("--batch-size", type=int, default=None, help="semsearch's (32; GPU 256)")
    parser.add_argument(
        "--reference-batch-sizes",
        default=None,
        help="comma list; the reference's best is kept (default 32; GPU 32,64,128,256,512)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (best kept)")
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--backends", default=None, help="comma list (default: all on CPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--passages", type=int, default=2000, help="bert-base-passages: texts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _common.add_smoke_options(parser)
    args = parser.parse_args(argv)
    args.model_folder = None  # the packaged MiniLM
    if args.smoke:  # the tiny model on the shipped STS sample: both cases, fp32 backends,
        args.model_folder = _common.smoke_model(args)  # a few texts, once, no warm-up
        args.repeats, args.backends = 1, args.backends or "torch,onnx"
        args.limit = args.limit or SMOKE_TEXTS
    for name in ("limit", "batch_size", "threads", "repeats", "passages"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    gpu = args.device.startswith("cuda")
    args.batch_size = args.batch_size or (256 if gpu else 32)
    sizes = args.reference_batch_sizes or ("32,64,128,256,512" if gpu else "32")
    args.reference_batch_sizes = [int(size) for size in sizes.split(",")]
    args.backends = (
        args.backends.split(",") if args.backends else (["torch"] if gpu else list(CPU_BACKENDS))
    )
    if args.case == "all":
        args.cases = ["sentence-transformer", "bert-base-passages"] if gpu else list(CASES[:2])
    else:
        args.cases = [args.case]
    return args


def read_pairs(folder: Path, split: str) -> tuple[list[tuple[str, str]], list[float]]:
    """STS-B pairs and gold scores (tab-separated, no csv quoting: bare quote marks)."""
    path = folder / f"sts-{split}.csv"
    if not path.is_file():
        where = "the STS Benchmark: ../shared/data/stsb/ (or give --data DIR)"
        _common.missing_data("bench/encode.py", path, where)
    pairs, scores = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        columns = line.split("\t")
        if len(columns) >= 7:
            pairs.append((columns[5], columns[6]))
            scores.append(float(columns[4]))
    return pairs, scores


def unique_sentences(pairs: list[tuple[str, str]], limit: int | None) -> list[str]:
    unique = dict.fromkeys(text for pair in pairs for text in pair)
    texts = list(unique)
    return texts[:limit] if limit else texts


def read_sample_pairs(path: Path) -> tuple[list[tuple[str, str]], list[float]]:
    """The shipped STS sample (--smoke): a header, then sentence1, sentence2, score."""
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [(row[0], row[1]) for row in rows], [float(row[2]) for row in rows]


def passages(count: int, tokenizer: Any) -> list[str]:
    """`count` texts of at least PASSAGE_TOKENS word-pieces, made of consecutive glosses."""
    if not GLOSSES.is_file():
        _common.missing_data("bench/encode.py", GLOSSES, "WordNet glosses: ../shared/data/")
    made: list[str] = []
    current: list[str] = []
    with GLOSSES.open(encoding="utf-8") as handle:
        for line in handle:
            current.append(json.loads(line)["text"])
            text = " ".join(current)
            if len(tokenizer(text)["input_ids"]) >= PASSAGE_TOKENS:
                made.append(text)
                current = []
                if len(made) == count:
                    break
    return made


# -- the sides --------------------------------------------------------------------------
def bert_base_folder() -> Path:
    """A random BERT-base shape with MiniLM's vocabulary: the speed of any BERT-base."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from semsearch.models import resolve_model

    folder = Path(tempfile.mkdtemp(prefix="bert-base-shape-"))
    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model(MODEL)).save_pretrained(folder)
    return folder


def semsearch_side(case: str, backend: str, args: argparse.Namespace, folder: Path) -> Side:
    from semsearch.encoders import load_encoder

    options: dict[str, Any] = {"device": args.device, "backend": backend}
    if args.threads:
        options["threads"] = args.threads
    if case == "sentence-transformer":
        if args.model_folder is not None:
            options["model"] = str(folder)
        encoder = load_encoder(**options)
    else:
        max_length = PASSAGE_TOKENS if case == "bert-base-passages" else None
        encoder = load_encoder(
            kind="bert", model=str(folder), pooling="mean", max_seq_length=max_length, **options
        )
    encoder.prepare()  # the one-time ONNX export is not timed
    encoder.report_truncation = False

    def encode(texts: list[str]) -> Any:
        return encoder.encode(texts, batch_size=args.batch_size, show_progress=False)

    return Side(f"semsearch {backend}", encode, args.batch_size)


def reference_model(case: str, args: argparse.Namespace, folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    if case == "sentence-transformer":
        model = SentenceTransformer(str(folder), device=args.device)
    else:
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )

        max_length = PASSAGE_TOKENS if case == "bert-base-passages" else None
        transformer = Transformer(str(folder), max_seq_length=max_length)
        pooling = Pooling(transformer.get_embedding_dimension(), "mean")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=args.device)
    if args.device.startswith("cuda"):
        model.half()  # the reference at its fastest on a GPU
    return model


def reference_side(model: Any, batch_size: int) -> Side:
    def encode(texts: list[str]) -> Any:
        return model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )

    return Side(f"sentence-transformers (batch {batch_size})", encode, batch_size)


# -- timing -----------------------------------------------------------------------------
def timed(encode: EncodeFn, texts: list[str]) -> tuple[float, np.ndarray]:
    """Sentences per second of one full encode (wall clock), and its vectors."""
    import torch

    started = time.perf_counter()
    vectors = encode(texts)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return round(len(texts) / (time.perf_counter() - started), 1), np.asarray(vectors, np.float32)


def spearman(
    vectors: np.ndarray, texts: list[str], pairs: list[tuple[str, str]], scores: list[float]
) -> float | None:
    """STS Spearman of cosine similarity over the pairs whose sentences were encoded."""
    from scipy.stats import spearmanr

    row = {text: i for i, text in enumerate(texts)}
    kept = [
        (row[a], row[b], s)
        for (a, b), s in zip(pairs, scores, strict=True)
        if a in row and b in row
    ]
    if len(kept) < 10:
        return None
    first, second, gold = (np.array(column) for column in zip(*kept, strict=True))
    cosine = (vectors[first] * vectors[second]).sum(axis=1)
    return float(spearmanr(cosine, gold).statistic)


def run_case(case: str, args: argparse.Namespace, pairs: list, scores: list) -> dict[str, Any]:
    from semsearch.models import resolve_model

    if case == "bert-base-passages":
        folder = bert_base_folder()
    else:
        folder = args.model_folder or resolve_model(MODEL)
    if case == "bert-base-passages":
        from transformers import AutoTokenizer

        texts = passages(args.passages, AutoTokenizer.from_pretrained(folder))
    else:
        texts = unique_sentences(pairs, args.limit)
    model = reference_model(case, args, folder)
    candidates = [reference_side(model, size) for size in args.reference_batch_sizes]
    for side in candidates:  # warm up, then keep the reference's best batch size
        if not args.smoke:
            side.encode(texts[:WARMUP_TEXTS])
        side.runs.append(timed(side.encode, texts[: max(WARMUP_TEXTS, len(texts) // 4)])[0])
    reference = max(candidates, key=lambda side: side.best)
    reference.runs = []
    sides = [reference] + [semsearch_side(case, b, args, folder) for b in args.backends]
    for side in sides[1:] if not args.smoke else []:
        side.encode(texts[:WARMUP_TEXTS])
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for side in sides:
            rate, vectors[side.name] = timed(side.encode, texts)
            side.runs.append(rate)
    expected = vectors[reference.name]
    for side in sides:
        got = vectors[side.name]
        side.max_abs_diff = float(np.abs(got - expected).max())
        side.mean_cosine = float((got * expected).sum(axis=1).mean())
        if case != "bert-base-passages":
            side.spearman = spearman(got, texts, pairs, scores)
    return {
        "case": case,
        "texts": len(texts),
        "what": f"{PASSAGE_TOKENS}-token passages" if case == "bert-base-passages" else "STS-B",
        "results": [side.as_dict(reference) for side in sides],
        "noisy": [side.name for side in sides if _common.noisy(side.runs)],
    }


# -- output -----------------------------------------------------------------------------
def command_line() -> str:
    """The command as typed from the repo root, e.g. `.venv/bin/python bench/encode.py`."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(Path.cwd()))
    except ValueError:
        shown = str(python)
    return shlex.join([shown, *sys.argv])


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers

    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    return {
        "command": command_line(),
        "device": gpu or args.device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": str(args.model_folder or MODEL),
        "split": args.split,
        "repeats": args.repeats,
    }


def print_environment(env: dict[str, Any]) -> None:
    for key, value in env.items():
        print(f"{key + ':':24} {value}")
    print(flush=True)


def print_case(case: dict[str, Any]) -> None:
    print(f"{case['case']}: {case['texts']} texts ({case['what']})")
    header = (
        f"  {'side':36} {'batch':>5} {'texts/s':>8} {'ratio':>7} {'max|diff|':>10}"
        f" {'cos':>8} {'Spearman':>9}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in case["results"]:
        rho = "" if r["spearman"] is None else f"{100 * r['spearman']:.2f}"
        print(
            f"  {r['side']:36} {r['batch_size']:5d} {r['sentences_per_s']:8.1f}"
            f" {_common.ratio(r['ratio'], 6, 2)} {r['max_abs_diff']:10.1e}"
            f" {r['mean_cosine']:8.5f} {rho:>9}"
        )
    for r in case["results"]:
        print(_common.runs_line(r["side"], r["runs"]))
    if case["noisy"]:
        print(_common.noisy_warning(case["noisy"]))
    print(flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        pairs, scores = read_sample_pairs(SMOKE_PAIRS)
    else:
        pairs, scores = read_pairs(args.data, args.split)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the reference's "Loading weights" bar is noise here
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(args)
    if not args.json:  # the header first, so a long run shows what it is doing
        print_environment(env)
    cases = []
    for name in args.cases:
        cases.append(run_case(name, args, pairs, scores))
        if not args.json:
            print_case(cases[-1])
    env_after = {"load_average_1min_after": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps({**env, **env_after, "cases": cases}, indent=2))
    else:
        print_environment(env_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
