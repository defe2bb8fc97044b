"""Issue 24 item 1: ivfpq on a small corpus (the 106-entry demo FAQ) is refused in one
line naming the minimum and a setting that works, instead of FAISS's RuntimeError;
`index --help` lists every index type."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.errors import ConfigError
from semsearch.index import IndexStore
from semsearch.index.types import INDEX_TYPES
from tests.index_writer import HashEncoder, make_records

runner = CliRunner()
EXAMPLES = Path(__file__).parents[2] / "examples"


def test_too_few_vectors_for_the_codebooks_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        IndexStore.build(tmp_path / "x", [make_records(106)], HashEncoder(), index_type="ivfpq")
    assert str(caught.value) == (
        "ivfpq: nbits=8 needs at least 256 vectors to train its codebooks; the corpus has 106: "
        "use index type flat (ivfpq is for corpora too large for memory) or nbits=6 under "
        "[index.params]"
    )
    assert not (tmp_path / "x").exists()


def test_the_suggested_setting_builds_and_the_minimum_is_exact(tmp_path: Path) -> None:
    small = IndexStore.build(
        tmp_path / "six",
        [make_records(106)],
        HashEncoder(),
        index_type="ivfpq",
        params={"nbits": 6},
    )
    assert small.manifest.index.params["nbits"] == 6 and small.count == 106
    exact = IndexStore.build(
        tmp_path / "min", [make_records(256)], HashEncoder(), index_type="ivfpq"
    )
    assert exact.count == 256


def test_cli_refuses_the_demo_faq_in_one_line(tiny_sbert: Path, tmp_path: Path) -> None:
    out = tmp_path / "faq"
    done = runner.invoke(
        app,
        [
            "index",
            str(EXAMPLES / "faq.csv"),
            "-o",
            str(out),
            "--model",
            str(tiny_sbert),
            "--index-type",
            "ivfpq",
            "--quiet",
        ],
    )
    assert done.exit_code == 1
    *notes, last = done.stderr.splitlines()  # --quiet: warnings about the data, the error
    assert all(note.startswith("semsearch: ") and "error" not in note for note in notes)
    assert last.startswith("semsearch: error: ivfpq: nbits=8 needs at least 256 vectors")
    assert last.endswith("or nbits=6 under [index.params] (option --index-type)")
    assert "RuntimeError" not in done.stderr
    assert not out.exists()


def test_index_help_lists_every_type() -> None:
    shown = " ".join(runner.invoke(app, ["index", "--help"], env={"COLUMNS": "200"}).stdout.split())
    for name in INDEX_TYPES:
        assert name in shown
    assert "ivfpq (compressed, on disk; at least 256 entries)" in shown
