"""Issue 24 item 9: rich markup ate `[ray]` from `pip install 'semsearch[ray]'` in
`index --help`. Every command's help, and every option's, is scanned: each bracketed
piece of the source text must reach the rendered help as written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from semsearch.cli.main import app

runner = CliRunner()
BRACKETED = re.compile(r"(?<!\\)\[[^\]\n]*\]")


def _commands() -> Iterator[tuple[list[str], Any]]:
    root = typer.main.get_command(app)

    def walk(path: list[str], command: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):  # a group's
            yield from walk([*path, name], sub)

    yield from walk([], root)


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


COMMANDS = list(_commands())


def test_every_command_is_scanned() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"index", "query", "serve", "eval sts", "eval retrieval", "calibrate"} <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=" ".join)
def test_no_bracketed_text_is_lost_in_help(path: list[str]) -> None:
    command = dict((" ".join(p), c) for p, c in COMMANDS)[" ".join(path)]
    done = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert done.exit_code == 0, done.output
    shown = _flat(done.stdout)
    sources = [command.help or ""] + [
        getattr(param, "help", None) or "" for param in command.params
    ]
    lost = [
        piece.replace("\\[", "[")
        for source in sources
        for piece in BRACKETED.findall(_flat(source))
        if _flat(piece) not in shown
    ]
    assert lost == []


def test_the_ray_install_line_is_shown_whole() -> None:
    done = runner.invoke(app, ["index", "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert "pip install 'semsearch[ray]'" in _flat(done.stdout)


def test_help_paragraphs_wrap_as_one_text_at_80_columns() -> None:
    """typer keeps a docstring's line breaks; rich then wrapped each source line on its
    own ("... (in a temporary folder) and" / "every" / "judged query ...")."""
    done = runner.invoke(app, ["eval", "retrieval", "--help"], terminal_width=80)
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert " every judged query is asked as `semsearch query` asks it, with the same" in lines
    assert " every" not in lines
    for path, _ in COMMANDS:
        command = typer.main.get_command(app)
        for name in path:
            command = command.get_command(None, name)
        for paragraph in (command.help or "").split("\n\n"):
            if not paragraph.startswith((" ", "\b")):
                assert "\n" not in paragraph, (path, paragraph)


@pytest.mark.parametrize("path", [["index"], ["eval", "retrieval"]], ids=" ".join)
def test_index_type_help_names_every_type(path: list[str]) -> None:
    from semsearch.index.types import INDEX_TYPES

    shown = _flat(runner.invoke(app, [*path, "--help"], terminal_width=400).stdout)
    assert all(f" {name}" in shown for name in INDEX_TYPES)
