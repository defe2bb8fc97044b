"""Every bench script runs at smoke size (`--smoke`): tiny data, the tiny random model,
results in a temporary folder. A benchmark that no longer runs fails here, not months
later when someone wants its figures; a new script without a smoke mode fails too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SKIPPED = 77  # bench/_common.py: a smoke run whose ../shared/data are absent
TIMEOUT = 300  # seconds for one script, on a busy 2-core machine

SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if path.name != "_common.py")

# What each script's smoke output must show: its table's header or verdict line.
EXPECTED = {
    "cold.py": ["vs reference (median, min)", "semsearch query", "check: top ids"],
    "encode.py": ["texts/s   ratio", "semsearch onnx", "sentence-transformers (batch 32)"],
    "eval.py": ["| benchmark | ours (x 100) | published | command |", "| BEIR sample"],
    "finetune.py": ["held out (corpus)", "dense nDCG@10 change:"],
    "fusion.py": ["nDCG@10 x 100 by dense weight", "best mean: dense weight"],
    "no_answer.py": ["| threshold rule", "## Candidate default rules against the goal"],
    "scale.py": ["build texts/s  vs local", "ray, 1 worker", "driver alone"],
    "scale_ivfpq.py": ["recall@10", "ivfpq "],
    "search.py": ["vs ref  recall@10", "flat   onnx", "hnsw   onnx"],
    "serve_load.py": ["during the big request", "req/s", "batched "],
    "warm.py": ["20 questions, p50"],
}


def results_state() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in RESULTS.iterdir()}


def test_every_script_has_an_expected_smoke_output() -> None:
    assert sorted(EXPECTED) == SCRIPTS, "a bench script needs --smoke and a line in EXPECTED"


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_run(script: str, tiny_sbert: Path) -> None:
    before = results_state()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's semsearch; OMP_* inherited
    command = [sys.executable, str(BENCH / script), "--smoke", "--smoke-model", str(tiny_sbert)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if done.returncode == SKIPPED:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, f"{script} --smoke: exit {done.returncode}\n{done.stderr[-3000:]}"
    output = done.stdout + done.stderr
    for expected in EXPECTED.get(script, []):
        assert expected in output, f"{script} --smoke printed no {expected!r}:\n{output[-3000:]}"
    assert results_state() == before, f"{script} --smoke wrote into bench/results/"
