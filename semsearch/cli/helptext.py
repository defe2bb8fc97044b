"""Help texts as written: typer 0.28 keeps a docstring's single line breaks, and rich
then wraps every source line on its own, which leaves ragged help at 80 columns."""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperGroup


def reflowed(text: str) -> str:
    """Each prose paragraph of a help text on one line, for rich to wrap; indented
    paragraphs (lists) and click's \\b blocks keep their lines."""
    return "\n\n".join(
        part
        if part.startswith("\b") or any(line.startswith(" ") for line in part.splitlines())
        else " ".join(line.strip() for line in part.splitlines())
        for part in inspect.cleandoc(text).split("\n\n")
    )


class ReflowingGroup(TyperGroup):
    """A command group whose commands show their help reflowed."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and command.help:
            command.help = reflowed(command.help)
        return command
