"""Issue 11's first items: row-number ids never replace entries, text that is not UTF-8
is refused at every entrance, NaN and pathological JSON are input errors with their line,
and piped --json keeps one output line per input line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.corpus import open_corpus
from semsearch.errors import IndexFolderError, InputError
from semsearch.index import Manifest
from semsearch.search.engine import SearchEngine

runner = CliRunner()


def run(*args: object, input: str | bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture()
def numbered(tiny_sbert: Path, tmp_path: Path) -> Path:
    """An index of a file without an id column: its ids are the row numbers 1 and 2."""
    corpus = tmp_path / "a.csv"
    corpus.write_text("question,answer\nHow do I reset my password?,A\nQ2,B\n")
    folder = tmp_path / "x"
    result = run("index", corpus, "-o", folder, "--model", tiny_sbert, "--quiet")
    assert result.exit_code == 0, result.output
    return folder


def test_add_without_an_id_column_appends_and_never_replaces(
    numbered: Path, tmp_path: Path
) -> None:
    more = tmp_path / "b.csv"
    more.write_text("question,answer\nIs there a dark mode?,C\nAnother one?,D\n")
    added = json.loads(run("add", numbered, more, "--json").stdout)
    assert (added["added"], added["updated"], added["count"]) == (2, 0, 4)
    engine = SearchEngine.open(numbered)
    records = engine.store.get(["1", "2", "3", "4"])
    assert {ident: record.answer for ident, record in records.items()} == {
        "1": "A",
        "2": "B",
        "3": "C",
        "4": "D",
    }
    engine.store.close()
    with_ids = tmp_path / "c.csv"
    with_ids.write_text("id,question,answer\n1,How do I reset my password?,A2\n")
    updated = json.loads(run("add", numbered, with_ids, "--json").stdout)
    assert (updated["added"], updated["updated"], updated["count"]) == (0, 1, 4)  # real ids do


def test_text_that_is_not_utf8_is_refused_at_every_entrance(
    numbered: Path, tiny_sbert: Path, tmp_path: Path
) -> None:
    engine = SearchEngine.open(numbered)
    with pytest.raises(InputError, match=r"the question holds byte 0xe9, which is not UTF-8"):
        engine.search("Caf\udce9")
    engine.store.close()
    script = "import sys; from semsearch.cli.main import main; main()"
    for args in (
        ["query", str(numbered), b"Caf\xe9"],
        ["similarity", b"Caf\xe9", "a", "--model", str(tiny_sbert)],
        ["tokens", b"Caf\xe9"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, check=False
        )
        assert done.returncode == 1, done.stderr
        assert b"byte 0xe9, which is not UTF-8" in done.stderr
        assert b"unexpected" not in done.stderr and len(done.stderr.splitlines()) == 1
    corpus = tmp_path / "s.jsonl"
    corpus.write_text('{"id": "1", "question": "Caf\\udce9", "answer": "a"}\n')
    with pytest.raises(InputError, match=r"s.jsonl, line 1: holds \\udce9, a lone surrogate"):
        list(open_corpus(corpus).chunks(8))


def test_piped_lines_each_get_one_json_line_and_a_bad_one_does_not_stop_the_rest(
    numbered: Path,
) -> None:
    piped = b"How do I reset my password?\n\nCaf\xe9\nQ2\n"
    result = run("query", numbered, "--json", "-k", "1", input=piped)
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4
    assert lines[0]["results"][0]["id"] == "1" and lines[3]["results"][0]["id"] == "2"
    assert lines[1]["error"].startswith("every question must be a non-empty string")
    assert "byte 0xe9" in lines[2]["error"] and lines[2]["answered"] is False
    assert "2 of 4 lines got no answer (lines 2, 3)" in result.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "n", "question": "q", "answer": "a", "x": NaN}', "NaN is not a JSON value"),
        ('{"id": "n", "question": "q", "x": -Infinity}', "-Infinity is not a JSON value"),
        ('{"id": "n", "question": "q", "x": ' + "[" * 5000 + "]" * 5000 + "}", "nested too"),
        ('{"id": "n", "question": "q", "x": ' + "9" * 5000 + "}", "bad JSON: Exceeds the limit"),
        ('{"id": "n", "question": "q" "x"}', "bad JSON: Expecting ',' delimiter (column 29)"),
    ],
    ids=["nan", "infinity", "deep", "huge-int", "syntax"],
)
def test_json_lines_that_are_not_plain_json_name_their_line(
    tmp_path: Path, line: str, message: str
) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "ok", "question": "fine", "answer": "a"}\n' + line + "\n")
    with pytest.raises(InputError, match=r"c\.jsonl, line 2: ") as caught:
        list(open_corpus(corpus).chunks(8))
    assert message in str(caught.value)


def test_a_pathological_manifest_is_an_index_error(tmp_path: Path) -> None:
    for text, reason in (("[" * 5000 + "]" * 5000, "nested too deeply"), ("9" * 5000, "limit")):
        with pytest.raises(IndexFolderError, match=rf"cannot be read \(.*{reason}.*rebuild"):
            Manifest.from_json(text)


def test_client_refuses_a_redirect_and_never_sends_the_key_elsewhere() -> None:
    import http.server
    import threading

    from semsearch.client import Client
    from semsearch.errors import ServiceError

    seen: list[str | None] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"[]")

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://127.0.0.1:{other.server_address[1]}/search"

    class Redirecting(Elsewhere):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

    first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (first, other):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{first.server_address[1]}", api_key="secret-key")
        with pytest.raises(ServiceError, match=r"answered 302, a redirect to .*does not follow"):
            client.search("hello")
        assert seen == []  # the other server never heard from the client
    finally:
        for server in (first, other):
            server.shutdown()


def test_serve_listens_before_it_announces_its_url(numbered: Path) -> None:
    import os
    import re
    import urllib.request

    process = subprocess.Popen(
        [sys.executable, "-m", "semsearch", "serve", str(numbered), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"at (http://127\.0\.0\.1:\d+) ", line)
            if found:
                break
        else:
            raise AssertionError("no URL announced")
        # at once, no retry: a socket that is not listening yet would refuse this
        with urllib.request.urlopen(found.group(1) + "/health", timeout=60) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_eval_outputs_are_refused_in_a_missing_folder(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("sentence1,sentence2,score\na,b,1\nc,d,2\ne,f,3\n")
    missing = tmp_path / "nonexistent" / "dir"
    swept = run("eval", "sweep", pairs, "--plot", missing / "x.png")
    assert swept.exit_code == 1
    assert f"the folder {missing} does not exist; create it first" in swept.stderr
    beir = run("eval", "retrieval", tmp_path, "--per-query", missing / "q.jsonl")
    assert beir.exit_code == 1 and "does not exist; create it first" in beir.stderr
    assert not (tmp_path / "nonexistent").exists()
