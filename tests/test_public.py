"""The public Python surface (issue 23): the names `semsearch` exports, its version, the
py.typed marker, and an `import semsearch` that loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

import semsearch
from semsearch import errors

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("open_index", "SearchEngine", "SearchConfig", "Client", "Hit", "SearchResult")


def test_all_names_the_api_and_every_error_class() -> None:
    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.SemsearchError)
    }
    assert set(PUBLIC) | error_classes | {"__version__"} <= set(semsearch.__all__)
    for name in semsearch.__all__:
        assert getattr(semsearch, name) is not None, name
    for name in error_classes:
        assert getattr(semsearch, name) is getattr(errors, name)
    from semsearch.client import Client
    from semsearch.config import SearchConfig
    from semsearch.search import SearchEngine
    from semsearch.search.engine import open_index
    from semsearch.search.results import Hit, SearchResult

    assert (semsearch.open_index, semsearch.SearchEngine, semsearch.SearchConfig) == (
        open_index, SearchEngine, SearchConfig
    )  # fmt: skip
    assert (semsearch.Client, semsearch.Hit, semsearch.SearchResult) == (Client, Hit, SearchResult)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = semsearch.nothing  # type: ignore[attr-defined]


def test_version_is_the_installed_one() -> None:
    try:
        expected = metadata.version("semsearch")
    except metadata.PackageNotFoundError:
        expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert semsearch.__version__ == expected
    from semsearch.cli.main import app

    shown = CliRunner().invoke(app, ["--version"])
    assert shown.stdout.strip() == f"semsearch {expected}"


def test_py_typed_ships_with_the_package() -> None:
    assert (ROOT / "semsearch" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["semsearch"]


def test_import_semsearch_loads_nothing_heavy() -> None:
    """Not torch, and not even numpy for a bot that only talks to a server; nor
    importlib.metadata (27 ms) until the version is asked for."""
    code = (
        "import sys, semsearch; semsearch.SearchConfig; semsearch.Client; "
        "print(sorted(m for m in ('torch', 'numpy', 'faiss', 'transformers', 'fastapi', "
        "'importlib.metadata') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_open_index_is_search_engine_open(tiny_sbert: Path, tmp_path: Path) -> None:
    from semsearch.cli.main import app

    folder = tmp_path / "faq"
    corpus = tmp_path / "faq.csv"
    corpus.write_text("id,question,answer\na,How do I reset my password?,Use the link.\n")
    done = CliRunner().invoke(
        app, ["index", str(corpus), "-o", str(folder), "--model", str(tiny_sbert)]
    )
    assert done.exit_code == 0, done.output
    engine = semsearch.open_index(folder, config=semsearch.SearchConfig(threshold="none"))
    try:
        assert isinstance(engine, semsearch.SearchEngine)
        assert engine.query("reset password", k=1).hits[0].id == "a"
    finally:
        engine.store.close()
    with pytest.raises(semsearch.ConfigError, match="k must be at least 1, got 0"):
        semsearch.SearchConfig(k=0)
