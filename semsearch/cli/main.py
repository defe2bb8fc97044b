"""The typer app. Typed errors become one line on stderr and exit code 1 here, at the edge."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError

import semsearch
from semsearch.cli.feedback import error_line, show_library_notes
from semsearch.cli.helptext import ReflowingGroup
from semsearch.errors import SemsearchError


class SemsearchGroup(ReflowingGroup):
    """Turn errors into `semsearch: error: ...` unless --debug asks for the traceback."""

    def main(self, *args: Any, **extra: Any) -> Any:
        """Usage errors (a bad option value, a missing argument) in the same one-line
        style as every other error, instead of typer's box; exit code 2 as click's."""
        standalone = extra.pop("standalone_mode", True)
        extra["standalone_mode"] = False
        if not standalone:
            return super().main(*args, **extra)
        try:
            result = super().main(*args, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "semsearch"
            typer.echo(f"semsearch: error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("semsearch: error: interrupted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own exits and usage errors print themselves
        except BrokenPipeError:
            raise  # the reader went away (`| head`): typer exits quietly
        except Exception as exc:
            if _debug(ctx):
                raise
            if isinstance(exc, SemsearchError):
                message = error_line(exc)
            elif isinstance(exc, KeyboardInterrupt):
                message = "interrupted"
            else:
                message = (
                    f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
                )
            typer.echo(f"semsearch: error: {message}", err=True)
            raise typer.Exit(code=1) from None


def _debug(ctx: typer.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or os.environ.get("SEMSEARCH_DEBUG", "") not in (
        "",
        "0",
    )


app = typer.Typer(
    cls=SemsearchGroup,
    help="Semantic search that answers new questions with known answers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"semsearch {semsearch.__version__}")
        raise typer.Exit()


@app.callback()
def callback(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Semantic search: index known answers once, then answer new questions by cosine similarity."""
    ctx.obj = {"debug": debug}
    show_library_notes()


from semsearch.cli import calibrate, encode, finetune, index, query, serve  # noqa: E402  (commands register)
from semsearch.cli import eval as evaluate  # noqa: E402

for group in (index, query, serve, encode, evaluate, calibrate, finetune):
    group.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="semsearch")
    sys.exit(0)
