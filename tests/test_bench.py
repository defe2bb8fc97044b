"""Every bench script runs at smoke size (`--smoke`): tiny data, the tiny random model,
results in a temporary folder. A benchmark that no longer runs fails here, not months
later when someone wants its figures; a new script without a smoke mode fails too.

The scripts run inside this test process (their `main()` under `sys.argv`), so the
libraries (torch, sentence-transformers) and the tiny model's ONNX export are loaded
once for all of them instead of once per fresh Python; their own subprocesses (a
server, Ray, semsearch commands where a fresh process is the point) still run. One
script also runs as `python bench/X.py --smoke`, the way `make bench` runs them all.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SKIPPED = 77  # bench/_common.py: a smoke run whose ../shared/data are absent
TIMEOUT = 300  # seconds for one script run as a process, on a busy 2-core machine
AS_A_SCRIPT = "no_answer.py"  # the one run as a fresh process: light, no torch import

SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if path.name != "_common.py")

# What each script's smoke output must show: its table's header or verdict line.
EXPECTED = {
    "adaptive.py": ["| set | dense | fixed hybrid | adaptive", "What each index chose"],
    "cold.py": [
        "vs reference (median, min)",
        "semsearch query",
        "check: top ids",
        "whole-process encoding of 16 texts",
        "semsearch embed --backend onnx-int8",
    ],
    "encode.py": ["texts/s   ratio", "semsearch onnx", "sentence-transformers (batch 32)"],
    "eval.py": ["| benchmark | ours (x 100) | published | command |", "| BEIR sample"],
    "filters.py": ["| type | filter | selected | first ms", "| hnsw | 50% |"],
    "finetune.py": ["held out (corpus)", "dense nDCG@10 change:"],
    "fusion.py": ["nDCG@10 x 100 by dense weight", "best mean: dense weight"],
    "no_answer.py": ["| threshold rule", "## Candidate default rules against the goal"],
    "scale.py": ["build texts/s  vs local", "ray, 1 worker", "driver alone"],
    "scale_ivfpq.py": ["recall@10", "ivfpq "],
    "search.py": ["vs ref  recall@10", "flat   onnx"],
    "serve_load.py": ["q/s   p50 ms", "fp32     batched", "fp32     maximal"],
    "warm.py": ["20 questions, p50"],
}


def results_state() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in RESULTS.iterdir()}


def smoke_argv(script: str, model: Path) -> list[str]:
    return [str(BENCH / script), "--smoke", "--smoke-model", str(model)]


@pytest.fixture(scope="module", autouse=True)
def one_cpu() -> Iterator[None]:
    """The smoke runs on one CPU (inherited by their processes: ONNX Runtime, FAISS and
    Ray size themselves by the affinity mask): at this size a second thread only spins,
    which on a busy machine costs CPU time and no wall time."""
    import torch

    cpus, threads = os.sched_getaffinity(0), torch.get_num_threads()
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    os.sched_setaffinity(0, {sorted(cpus)[worker % len(cpus)]})  # each xdist worker its own
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    os.sched_setaffinity(0, cpus)


@pytest.fixture(scope="module")
def smoke_model(tiny_sbert: Path) -> Path:
    """The tiny model with its ONNX exports (fp32, int8) made once, in this process, into
    the test run's cache: the scripts and the semsearch processes they start find them
    there (cold.py's `semsearch embed --backend onnx-int8` would otherwise import torch
    and quantize, ~8 s of CPU, whenever no other test had made the int8 one yet)."""
    from semsearch.encoders import load_encoder

    for backend in ("onnx", "onnx-int8"):
        load_encoder(model=str(tiny_sbert), backend=backend).prepare()
    return tiny_sbert


@pytest.fixture
def bench_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a script run inside this process may change, restored after it: the
    environment, the import path (bench/ first, as for `python bench/X.py`), sys.argv."""
    saved = dict(os.environ)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    yield
    os.environ.clear()
    os.environ.update(saved)


def run_in_process(script: str, argv: list[str]) -> object:
    """`python bench/SCRIPT ARGV` inside this process: its exit code (or SystemExit's message)."""
    name = Path(script).stem
    spec = importlib.util.spec_from_file_location(name, BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # by its own name, as multiprocessing's spawn imports it
    try:
        spec.loader.exec_module(module)
        sys.argv = argv
        try:
            code = module.main()
        except SystemExit as exit:
            code = exit.code
    finally:
        sys.modules.pop(name, None)
    return 0 if code is None else code


def test_every_script_has_an_expected_smoke_output() -> None:
    assert sorted(EXPECTED) == SCRIPTS, "a bench script needs --smoke and a line in EXPECTED"


def test_make_bench_runs_every_script_at_full_size() -> None:
    """`make bench` is the full-size run of every script: one added to bench/ and not to
    the Makefile would never have its committed results made again."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^bench: (?:setup|demo)\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None, "no bench: recipe in the Makefile"
    ran = re.findall(r"\$\(BIN\)/python bench/(\w+\.py)(.*)", recipe.group(1))
    assert sorted(name for name, _ in ran) == SCRIPTS
    assert not any("--smoke" in rest for _, rest in ran)


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_run(
    script: str, smoke_model: Path, bench_process: None, capfd: pytest.CaptureFixture[str]
) -> None:
    before = results_state()
    code = run_in_process(script, smoke_argv(script, smoke_model))
    out, err = capfd.readouterr()
    if code == SKIPPED:
        pytest.skip(err.strip().splitlines()[-1])
    assert code == 0, f"{script} --smoke: exit {code!r}\n{err[-3000:]}"
    output = out + err
    for expected in EXPECTED[script]:
        assert expected in output, f"{script} --smoke printed no {expected!r}:\n{output[-3000:]}"
    assert results_state() == before, f"{script} --smoke wrote into bench/results/"


def test_a_script_runs_as_a_process(smoke_model: Path) -> None:
    """`python bench/X.py --smoke` from the repository root: `import _common` resolves
    from the script's folder and the exit code is the script's."""
    before = results_state()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's semsearch; OMP_* inherited
    command = [sys.executable, *smoke_argv(AS_A_SCRIPT, smoke_model)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if done.returncode == SKIPPED:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, f"{AS_A_SCRIPT}: exit {done.returncode}\n{done.stderr[-3000:]}"
    for expected in EXPECTED[AS_A_SCRIPT]:
        assert expected in done.stdout + done.stderr, f"{AS_A_SCRIPT} printed no {expected!r}"
    assert results_state() == before, f"{AS_A_SCRIPT} --smoke wrote into bench/results/"
