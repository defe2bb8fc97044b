"""What the bench scripts share: where things are, the exit when data are absent, the
smoke size (every script runs tiny with ``--smoke``, see tests/test_bench.py), timing,
percentiles, the noisy-runs footer of the side-by-side tables and writing results.

A script imports it as ``import _common`` (Python puts the script's own folder,
bench/, first on the path), so ``python bench/X.py`` works from any folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # read-only evaluation data, beside the checkout
RESULTS = ROOT / "bench" / "results"
EXAMPLES = ROOT / "examples"
FAQ = EXAMPLES / "faq.csv"
SKIPPED = 77  # exit code of a smoke run that cannot run here (its data are absent)
NOISY_SPREAD = 1.25  # slowest run / fastest run of one side above this: the machine was busy


# -- data -------------------------------------------------------------------------------
def missing_data(script: str, path: Path, where: str = "it reads ../shared/data") -> NoReturn:
    """One line on stderr naming what is absent and where it is expected; exit code 2."""
    print(f"{script}: {path} is absent: {where}", file=sys.stderr)
    raise SystemExit(2)


def require(script: str, paths: Iterable[Path], smoke: bool, where: str = "") -> None:
    """Exit unless every path exists: code 2 at full size, SKIPPED at smoke size (the
    test reports the script as skipped with this message)."""
    missing = [path for path in paths if not path.exists()]
    if not missing:
        return
    where = where or "it reads ../shared/data relative to the repository"
    if smoke:
        listed = ", ".join(str(path) for path in missing)
        print(f"{script} --smoke: skipped: {listed} absent ({where})", file=sys.stderr)
        raise SystemExit(SKIPPED)
    missing_data(script, missing[0], where)


# -- smoke size -------------------------------------------------------------------------
def add_smoke_options(parser: argparse.ArgumentParser) -> None:
    """--smoke (tiny data, few repeats, a tiny random model, results in a temp folder)
    and --model for the smoke run's encoder."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run that checks the script works: tiny data and model, results to a "
        "temporary folder (never bench/results/)",
    )
    parser.add_argument(
        "--smoke-model",
        type=Path,
        default=None,
        help="--smoke: a small sentence-transformers folder (default: a random 2-layer "
        "BERT made in a temporary folder)",
    )


def smoke_model(args: argparse.Namespace) -> Path:
    """The smoke run's model folder: --smoke-model, else the tiny random one in the temp
    folder (made once; the same folder each run, so its ONNX export is cached)."""
    if args.smoke_model is not None:
        return Path(args.smoke_model)
    folder = Path(tempfile.gettempdir()) / "semsearch-bench-tiny-model"
    if not (folder / "modules.json").is_file():  # written last: a complete folder
        made = tiny_model(Path(tempfile.mkdtemp(prefix="semsearch-bench-tiny-")))
        try:
            made.rename(folder)
        except OSError:  # another run made it first
            shutil.rmtree(made, ignore_errors=True)
    return folder


def tiny_model(folder: Path) -> Path:
    """A 2-layer random BERT with MiniLM's word-piece vocabulary, saved as a
    sentence-transformers folder (Transformer -> mean Pooling -> Normalize) that also
    loads as a raw BERT: the shape of the real model at a fraction of its cost."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from semsearch.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    torch.manual_seed(0)  # the same weights each time, so ONNX exports are cached
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    modules = [
        ("0", "", "sentence_transformers.models.Transformer"),
        ("1", "1_Pooling", "sentence_transformers.models.Pooling"),
        ("2", "2_Normalize", "sentence_transformers.models.Normalize"),
    ]
    listed = [
        {"idx": i, "name": name, "path": path, "type": kind}
        for i, (name, path, kind) in enumerate(modules)
    ]
    (folder / "modules.json").write_text(json.dumps(listed))  # last: the folder is complete
    return folder


# -- results ----------------------------------------------------------------------------
def results_path(script: str, given: Path | None, name: str, smoke: bool) -> Path:
    """Where a report goes: --out when given, else bench/results/NAME; at smoke size a
    temporary folder, and never bench/results/ (a smoke run must not replace a result)."""
    if not smoke:
        return given if given is not None else RESULTS / name
    if given is not None and given.resolve().is_relative_to(RESULTS.resolve()):
        print(f"{script} --smoke: refusing to write {given} into bench/results/", file=sys.stderr)
        raise SystemExit(2)
    if given is not None:
        return given
    return Path(tempfile.mkdtemp(prefix="semsearch-bench-smoke-")) / name


def write_result(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# -- timing -----------------------------------------------------------------------------
class Stopwatch:
    """Wall seconds of a block: ``with Stopwatch() as watch: ...; watch.seconds``."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


def percentiles_ms(seconds: Sequence[float], points: Sequence[float]) -> list[float]:
    """The given percentiles (NumPy's linear interpolation) of durations, in milliseconds."""
    import numpy as np

    return [float(value) for value in np.percentile(np.asarray(seconds) * 1000, points)]


def load_average() -> float:
    return os.getloadavg()[0]


# -- the side-by-side tables ------------------------------------------------------------
def ratio(value: float, width: int, digits: int) -> str:
    """A ratio cell of a side-by-side table, e.g. `  1.35x`."""
    return f"{value:{width}.{digits}f}x"


def noisy(runs: Sequence[float]) -> bool:
    """Whether one side's runs spread so far that the machine must have been busy."""
    return max(runs) / min(runs) > NOISY_SPREAD


def runs_line(name: str, runs: Sequence[float]) -> str:
    return f"    runs {name}: {list(runs)}"


def noisy_warning(names: Sequence[str]) -> str:
    return (
        f"  warning: runs of {', '.join(names)} differ by more than "
        f"{NOISY_SPREAD - 1:.0%}: the machine was busy; rerun when it is idle"
    )


# -- semsearch commands -----------------------------------------------------------------
def semsearch(
    args: Sequence[object], in_process: bool = False, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`semsearch ARGS` with its exit code, stdout and stderr: a fresh process, or at smoke
    size (``in_process``) the same command line inside this process, where the libraries
    and the model are already loaded (a fresh Python importing torch costs seconds)."""
    argv = [str(arg) for arg in args]
    if not in_process:
        command = [sys.executable, "-m", "semsearch", *argv]
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    from semsearch.cli.main import app

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app(args=argv, prog_name="semsearch")
            code: object = 0
        except SystemExit as exit:
            code = exit.code
    if not isinstance(code, int):
        err.write(f"{code}\n" if code is not None else "")
        code = 0 if code is None else 1
    return subprocess.CompletedProcess(["semsearch", *argv], code, out.getvalue(), err.getvalue())
