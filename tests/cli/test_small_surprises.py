"""Issue 24 item 10, the smaller surprises: a long value is not echoed in full; a
path-like --model that does not exist is called a missing folder, not a package to
install; an index folder given as the corpus says so; `{"q": ...}` over HTTP names the
fields /search takes; --mode's help says what dense is; the piped summary's grammar."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.config import SearchConfig
from semsearch.corpus import open_corpus
from semsearch.errors import ConfigError, InputError, ModelNotFoundError
from semsearch.models import resolve_model
from semsearch.text import echoed

runner = CliRunner()
LONG = "x" * 65_536


def test_a_64k_value_is_cut_in_errors() -> None:
    assert echoed(LONG) == "'" + "x" * 59 + "... (65,536 characters)"
    assert echoed("dense") == "'dense'"
    with pytest.raises(ConfigError) as caught:
        SearchConfig(mode=LONG)
    assert len(str(caught.value)) < 200 and "(65,536 characters)" in str(caught.value)
    done = runner.invoke(app, ["query", "nowhere", "q", "--threshold", LONG])
    assert done.exit_code == 2 and len(done.stderr) < 300
    assert "(65,536 characters) is not a cosine in [-1, 1], none or index" in done.stderr


def test_a_path_like_model_that_is_not_there_is_a_missing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for name in ("models/faq", "models/faq/", "a/b/c"):
        resolve_model.cache_clear()
        with pytest.raises(ModelNotFoundError) as caught:
            resolve_model(name)
        assert str(caught.value) == f"model folder {Path(name)} does not exist or is not a folder"
        assert "pip install" not in str(caught.value)


def test_an_index_folder_as_the_corpus_says_so(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "manifest.json").write_text("{}")
    (tmp_path / "idx" / "records.sqlite").write_bytes(b"")
    with pytest.raises(InputError) as caught:
        open_corpus(tmp_path / "idx")
    assert str(caught.value) == (
        f"{tmp_path / 'idx'} is an index folder (it holds manifest.json), not a corpus: give "
        "the corpus file it was built from"
    )


def test_mode_help_says_what_dense_is() -> None:
    shown = " ".join(runner.invoke(app, ["query", "--help"], env={"COLUMNS": "300"}).stdout.split())
    assert "dense (ranked by the cosine alone)" in shown and "as before" not in shown


def test_http_names_the_expected_field(tiny_sbert: Path, tmp_path: Path) -> None:
    from semsearch.service.config import ServeConfig
    from semsearch.service.server import build_service, serve_in_thread

    corpus = tmp_path / "faq.csv"
    corpus.write_text("id,question,answer\na,How do I log in?,Email.\nb,Dark mode?,Yes.\n")
    folder = tmp_path / "idx"
    built = runner.invoke(
        app, ["index", str(corpus), "-o", str(folder), "--model", str(tiny_sbert), "--quiet"]
    )
    assert built.exit_code == 0, built.output
    config = ServeConfig(port=0)
    with serve_in_thread(build_service(folder, config), config) as url:
        request = urllib.request.Request(
            url + "/search", data=json.dumps({"q": "log in"}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        body = json.loads(caught.value.read())
    assert caught.value.code == 422
    expected = "q: unknown field; /search takes query, queries, k, threshold, mode, where"
    assert body["detail"] == expected
