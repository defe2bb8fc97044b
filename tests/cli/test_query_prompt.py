"""Issue 24 item 2: a prompt session pasted into a pipe (a here-document) does what a
user expects: `:quit` ends the input, the other prompt commands are refused on their
line, never searched as questions; the prompt says the threshold as the CLI takes it
("none", not "None") and the threshold in force when it starts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.cli.query import prompt_command, shown_threshold

runner = CliRunner()
CSV = "id,question,answer\npw,How do I reset my password?,Use the link.\npdf,Export as PDF?,File.\n"


@pytest.fixture(scope="module")
def faq(tiny_sbert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prompt")
    (folder / "faq.csv").write_text(CSV)
    done = runner.invoke(
        app,
        ["index", str(folder / "faq.csv"), "-o", str(folder / "idx"),
         "--model", str(tiny_sbert), "--quiet"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return folder / "idx"


def test_prompt_commands_are_told_from_questions() -> None:
    assert [prompt_command(x) for x in (":quit", ":q", ":k 3", ":threshold none")] == [
        "quit",
        "q",
        "k",
        "threshold",
    ]
    assert prompt_command("How do I quit?") is None
    assert prompt_command(":-) how do I reset it") is None
    assert (shown_threshold(None), shown_threshold(0.548509)) == ("none", "0.548509")


def test_quit_in_a_here_document_ends_the_input(faq: Path) -> None:
    piped = "How do I reset my password?\n:quit\nExport as PDF?\n"
    done = runner.invoke(app, ["query", str(faq), "--json", "-k", "1", "--threshold", "none"],
                         input=piped)  # fmt: skip
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["How do I reset my password?"]


def test_other_prompt_commands_are_errors_on_their_line_not_questions(faq: Path) -> None:
    piped = ":help\nHow do I reset my password?\n:k 3\n"
    done = runner.invoke(app, ["query", str(faq), "--json", "-k", "1"], input=piped)
    assert done.exit_code == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 3 and lines[1]["results"][0]["id"] == "pw"
    assert lines[0]["error"].startswith(":help is a command of the interactive prompt; piped")
    assert lines[0]["results"] == [] and lines[2]["error"].startswith(":k is a command")
    assert "2 of 3 lines got no answer (lines 1, 3)" in done.stderr
    plain = runner.invoke(app, ["query", str(faq)], input=":help\n:q\n")
    assert plain.stdout == "" and plain.exit_code == 1
    assert plain.stderr.splitlines() == [
        "semsearch: error: line 1: :help is a command of the interactive prompt; piped input "
        "is one question a line (give -k and --threshold as options)",
        "semsearch: error: 1 of 1 line got no answer (line 1)",  # item 10: the grammar
    ]


def test_the_prompt_says_none_and_the_threshold_in_force(faq: Path) -> None:
    from semsearch.search import SearchEngine

    own = SearchEngine.open(faq).threshold()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "semsearch", "query", str(faq)],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    read_until = _read_until
    try:
        banner = read_until(leader, "? ")
        assert f"2 entries in {faq}, threshold {shown_threshold(own)}." in banner
        os.write(leader, b":threshold none\n")
        assert "threshold = none" in read_until(leader, "? ")
        os.write(leader, b":threshold 0.25\n")
        assert "threshold = 0.25" in read_until(leader, "? ")
        os.write(leader, b":quit\n")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)


def _read_until(fd: int, marker: str, timeout: float = 60.0) -> str:
    import select
    import time

    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        assert time.monotonic() < deadline, f"timed out waiting for {marker!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen.decode(errors="replace")
