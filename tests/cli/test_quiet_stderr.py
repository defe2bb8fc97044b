"""Issue 24 item 8: the first onnx-int8 build (ONNX Runtime's quantiser calls
`logging.basicConfig()` when imported) leaked `INFO:semsearch:...` and `DEBUG:bm25s:...`
lines; only semsearch's own lines reach a user, and none at all with --quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


def _first_int8_build(
    tiny_bert: Path, folder: Path, *extra: str, cache: Path | None = None
) -> subprocess.CompletedProcess:
    """A fresh process (the quantiser's `logging.basicConfig()` acts once per process)
    with an empty cache, so it exports and quantises, or with `cache` (holding the fp32
    export), so it quantises that; a raw BERT spares the child the import of
    sentence-transformers, which is no part of what leaks."""
    env = {**os.environ, "SEMSEARCH_CACHE": str(cache or folder / "cache")}
    command = [sys.executable, "-m", "semsearch", "index", str(EXAMPLES / "faq.csv")]
    command += ["-o", str(folder / "idx"), "--encoder", "bert", "--model", str(tiny_bert)]
    command += ["--backend", "onnx-int8"]
    return subprocess.run([*command, *extra], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("quiet", [False, True], ids=["notes", "quiet"])
def test_only_semsearch_lines_reach_stderr(tiny_bert: Path, tmp_path: Path, quiet: bool) -> None:
    """Notes: a first build that exports and quantises. Quiet: one that quantises the
    cached fp32 export (the quantiser, which leaked, runs in both; without torch here)."""
    cache = None
    if quiet:
        from semsearch.encoders import load_encoder

        cache = tmp_path / "fp32-cache"
        os.environ["SEMSEARCH_CACHE"], previous = str(cache), os.environ["SEMSEARCH_CACHE"]
        try:
            load_encoder(kind="bert", model=str(tiny_bert), backend="onnx").prepare()
        finally:
            os.environ["SEMSEARCH_CACHE"] = previous
    done = _first_int8_build(tiny_bert, tmp_path, *(["--quiet"] if quiet else []), cache=cache)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    if quiet:
        assert any("-int8-" in p.name for p in (cache / "onnx").iterdir())  # it quantised
        assert all(line.startswith("semsearch: ") for line in lines), lines
        assert not any(note in done.stderr for note in ("exporting", "quantizing", "done in"))
        return
    assert any("quantizing" in line for line in lines)  # the first int8 build indeed
    strays = [line for line in lines if not line.startswith(("semsearch: ", "reading "))]
    assert strays == []
    assert not any(line.startswith(("INFO:", "DEBUG:", "WARNING:")) for line in lines)
