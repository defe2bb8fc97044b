"""One parser per request value (semsearch.params), the same for the CLI, HTTP, config
files and Python; the one TOML reader and its Python 3.10 fallback; and `index`, `query`
and `serve` starting under the oldest Python that pyproject admits."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from semsearch import params
from semsearch.config import SearchConfig, load_settings, read_toml
from semsearch.errors import ConfigError
from semsearch.search.answer import threshold_in_force

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), (50, 50), ("3", 3), (" 7 ", 7)],
)
def test_k_accepted(value: object, expected: int) -> None:
    assert params.parse_k(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "k must be at least 1, got 0"),
        (-2, "k must be at least 1, got -2"),
        ("zero", "'zero' is not a whole number"),
        (True, "k must be a whole number, got True"),
        (2.5, "k must be a whole number, got 2.5"),
    ],
)
def test_k_refused_with_one_message(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        params.parse_k(value)
    assert str(caught.value) == message and caught.value.setting == "k"


def test_k_capped_by_a_server() -> None:
    assert params.parse_k(100, most=100) == 100
    with pytest.raises(ConfigError, match=r"^k must be at most 100, got 101$"):
        params.parse_k(101, most=100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("none", "none"),
        ("OFF", "none"),
        ("index", "index"),
        ("default", "index"),
        (0.5, 0.5),
        (1, 1.0),
        ("-0.25", -0.25),
        ("1", 1.0),
    ],
)
def test_threshold_accepted(value: object, expected: object) -> None:
    assert params.parse_threshold(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("high", "'high' is not a cosine in [-1, 1], none or index"),
        ("1.5", "'1.5' is not a cosine in [-1, 1], none or index"),
        ("nan", "'nan' is not a cosine in [-1, 1], none or index"),
        (1.5, "threshold 1.5 is not a cosine in [-1, 1]"),
        (float("nan"), "threshold nan is not a cosine in [-1, 1]"),
        (True, "threshold True is neither a number nor 'none'"),
        ([0.5], "threshold [0.5] is neither a number nor 'none'"),
    ],
)
def test_threshold_refused_with_one_message(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        params.parse_threshold(value)
    assert str(caught.value) == message and caught.value.setting == "threshold"


def test_the_threshold_in_force_by_hand() -> None:
    assert threshold_in_force(None, None, 0.4) == 0.4  # the index's own
    assert threshold_in_force(None, None, None) is None  # an index from before thresholds
    assert threshold_in_force(0.6, 0.5, 0.4) == 0.6  # the request's first
    assert threshold_in_force(None, 0.5, 0.4) == 0.5  # then the configuration's
    assert threshold_in_force("none", 0.5, 0.4) is None
    assert threshold_in_force(None, "none", 0.4) is None
    assert threshold_in_force("index", 0.5, 0.4) == 0.4  # skips the configured default
    assert threshold_in_force(None, "index", 0.4) == 0.4


def test_mode_fusion_and_weight() -> None:
    assert [params.parse_mode(m) for m in (None, "hybrid", "dense", "lexical")] == [
        None, "hybrid", "dense", "lexical"
    ]  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        params.parse_mode("fuzzy")
    assert str(caught.value) == "unknown mode 'fuzzy': choose one of hybrid, dense, lexical"
    assert caught.value.setting == "mode"
    assert params.parse_fusion("rrf") == "rrf"
    with pytest.raises(ConfigError, match=r"^unknown fusion 'sum': choose one of convex, rrf$"):
        params.parse_fusion("sum")
    assert params.parse_weight(0) == 0.0 and params.parse_weight("0.5") == 0.5
    for bad, message in ((1.5, "dense_weight 1.5 is not in [0, 1]"),
                         ("x", "dense_weight 'x' is not a number"),
                         (True, "dense_weight must be a number, got True")):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            params.parse_weight(bad)
        assert str(caught.value) == message and caught.value.setting == "dense_weight"


def test_config_files_and_python_use_the_same_parsers(tmp_path: Path) -> None:
    preset = tmp_path / "search.toml"
    preset.write_text("[search]\nk = 0\n")
    with pytest.raises(ConfigError, match=r"^k must be at least 1, got 0$"):
        load_settings(preset)
    preset.write_text('[search]\nthreshold = "index"\nmode = "dense"\ndense_weight = 0.6\n')
    search = load_settings(preset).search
    assert (search.threshold, search.mode, search.dense_weight) == ("index", "dense", 0.6)
    with pytest.raises(ConfigError, match=r"^threshold 2 is not a cosine in \[-1, 1\]$"):
        SearchConfig(threshold=2)
    assert SearchConfig(threshold="0.5").threshold == 0.5  # text, as a CLI gives it
    with pytest.raises(ConfigError, match=r"^\[search\] candidates must be at least 1, got 0$"):
        SearchConfig(candidates=0)
    with pytest.raises(ConfigError, match=r"^dense_weight 2.0 is not in \[0, 1\]$"):
        SearchConfig(dense_weight=2.0)


def test_one_toml_reader_for_every_section(tmp_path: Path) -> None:
    from semsearch.service.config import load_serve_config

    preset = tmp_path / "bad.toml"
    preset.write_text("[serve\n")
    for read in (read_toml, load_settings, load_serve_config):
        with pytest.raises(ConfigError, match=r"is not valid TOML"):
            read(preset)
        with pytest.raises(ConfigError, match=r"^config file not found: .*absent.toml$"):
            read(tmp_path / "absent.toml")


def test_without_tomllib_the_tomli_fallback_reads_config_files(tmp_path: Path) -> None:
    """On Python 3.10 there is no tomllib: `tomli` (a dependency there) is read instead,
    by the core settings and by `serve`'s. Here tomllib is hidden and a stand-in `tomli`
    wraps it, in a fresh interpreter."""
    preset = tmp_path / "all.toml"
    preset.write_text("[search]\nk = 3\n[serve]\nmax_k = 7\n")
    code = f"""
import sys, tomllib, types
tomli = types.ModuleType("tomli")
tomli.loads, tomli.TOMLDecodeError = tomllib.loads, tomllib.TOMLDecodeError
sys.modules["tomli"], sys.modules["tomllib"] = tomli, None
import semsearch.config, semsearch.service.config
assert semsearch.config.tomllib is tomli
print(semsearch.config.load_settings({str(preset)!r}).search.k,
      semsearch.service.config.load_serve_config({str(preset)!r}).max_k)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "7"]


def _python310() -> str:
    """A Python 3.10 with semsearch's dependencies (SEMSEARCH_PY310, else the folder the
    README's Development section builds), or skip with how to get one."""
    given = os.environ.get("SEMSEARCH_PY310")
    default = Path.home() / ".cache" / "semsearch-py310" / "bin" / "python"
    python = given or (str(default) if default.exists() else None)
    if python is None:
        pytest.skip(
            "no Python 3.10 environment with semsearch's dependencies: set SEMSEARCH_PY310 "
            "to its python (see the README's Development section)"
        )
    probe = (  # found, not imported: importing torch alone costs seconds
        "import sys, importlib.util as u; "
        "gone = [m for m in ('typer', 'torch', 'faiss', 'fastapi', 'uvicorn', 'tomli') "
        "if u.find_spec(m) is None]; "
        "sys.exit('No module named ' + ', '.join(gone)) if gone else print(*sys.version_info[:2])"
    )
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
    if found.returncode and not given:  # the default folder, not (yet) complete
        pytest.skip(f"{python} lacks semsearch's dependencies: {found.stderr.strip()[-200:]}")
    assert found.returncode == 0, f"{python} lacks semsearch's dependencies: {found.stderr}"
    assert found.stdout.split() == ["3", "10"], f"{python} is not Python 3.10"
    return python


def test_index_query_and_serve_start_on_python_310(tiny_sbert: Path, tmp_path: Path) -> None:
    """pyproject admits Python 3.10: the three commands run there, from this checkout."""
    python = _python310()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    index = tmp_path / "faq"
    preset = tmp_path / "serve.toml"
    preset.write_text("[serve]\nmax_k = 20\n")  # the [serve] reader, through tomli
    built = subprocess.run(
        [python, "-m", "semsearch", "index", str(ROOT / "examples" / "faq.csv"), "-o",
         str(index), "--model", str(tiny_sbert), "--quiet"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    asked = subprocess.run(
        [python, "-m", "semsearch", "query", str(index), "reset my password", "--json",
         "-k", "2", "--threshold", "none"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert len(json.loads(asked.stdout)["results"]) == 2
    served = subprocess.Popen(
        [python, "-m", "semsearch", "serve", str(index), "--port", "0", "--no-access-log",
         "--config", str(preset)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert served.stderr is not None
        url, deadline = None, time.monotonic() + 180
        while url is None and time.monotonic() < deadline:
            line = served.stderr.readline()
            if not line and served.poll() is not None:
                break
            found = re.search(r"at (http://127\.0\.0\.1:\d+) ", line)
            url = found.group(1) if found else None
        assert url, "serve did not start on Python 3.10"
        with urllib.request.urlopen(url + "/health", timeout=30) as response:
            assert json.loads(response.read())["status"] == "ok"
        served.send_signal(signal.SIGTERM)
        served.communicate(timeout=60)
    finally:
        if served.poll() is None:
            served.kill()
            served.communicate()
    assert served.returncode == 0
