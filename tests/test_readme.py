"""The README's examples, run (issue 24): every command its code blocks show is executed on
the demo data from a folder laid out as the README assumes (`examples/`, `indexes/faq`,
`indexes/demo`), and where the README shows what a command prints (`$ command` and the lines
under it in a plain block, or a `# value` comment), the output is compared.

This file holds no expected output: to update an example, edit the README. What it holds is
PLANS, one line per README command saying how it is checked (compared, run, or skipped and
why), and OTHER_BLOCKS for the code blocks that are not commands. A command or block the
README gains without a line here fails `test_every_readme_example_is_planned`.

Comparing: whitespace runs count as one space; durations (`2.9 s`) match any duration; a
shown line that is just `...` (or `…`) stands for any number of printed lines, and a shown
line ending in `...` (or `…`) for a printed line that starts with the rest."""

from __future__ import annotations

import difflib
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest
from typer.testing import CliRunner, Result

from semsearch.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ELLIPSES = ("...", "…")


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README."""

    line: int  # the line of its opening fence
    lang: str
    lines: tuple[str, ...]


@dataclass
class Example:
    """One command the README shows, with everything it says the command prints."""

    command: str  # as shown, comment dropped, whitespace runs as one space
    line: int  # where it first appears
    shown: list[list[str]] = field(default_factory=list)  # the lines under each `$ command`
    comments: list[str] = field(default_factory=list)  # `# ...` after it in a bash block


@dataclass(frozen=True)
class Plan:
    """How a README command is checked."""

    how: str  # "compare", "run", "fixture" (it builds the demo index) or "skip"
    why: str = ""
    exit_code: int = 0
    extra: tuple[str, ...] = ()  # options added to run it cheaper (why says so); {tiny}
    setup: tuple[str, ...] = ()  # README commands whose `indexes/` it needs, run first
    typed: str | None = None  # what a person types at the prompt (stdin is a terminal)
    writes: tuple[str, ...] = ()  # files it must write
    prints_comment: bool = False  # its `# comment` is a value it prints, not a description


def compare(**kwargs: Any) -> Plan:
    return Plan("compare", **kwargs)


def run(why: str = "", **kwargs: Any) -> Plan:
    return Plan("run", why, **kwargs)


def skip(why: str) -> Plan:
    return Plan("skip", why)


INT8_BUILD = "semsearch index examples/faq.csv -o indexes/faq-int8 --backend onnx-int8"
TUNED = "needs models/faq, which the fine-tuning above writes"
RAY = (
    "the shards/ it reads are not shipped and Ray needs a cluster or ~10 s to start; "
    "tests/distributed/test_ray_engine.py builds with --engine ray"
)
SERVE = (
    "a server that runs until stopped; tests/test_examples.py starts `semsearch serve` "
    "(the systemd unit's and the Dockerfile's command lines) until /health answers"
)

# Every command the README shows, by its text; "compare": its output is what the README
# prints (a `$` block, or the `#` comment), "run": executed, exit code (and files) checked.
PLANS: dict[str, Plan] = {
    # Two commands
    "make demo": skip("sets up .venv with pip; its two semsearch commands are run below"),
    "make test": skip("runs this suite"),
    'semsearch query indexes/demo "how can I get my notes out as PDF?" -k 3': compare(),
    # Use
    "semsearch index examples/faq.csv -o indexes/faq": Plan(
        "fixture", "the demo_index fixture (tests/conftest.py) is this build; it prints timings"
    ),
    'semsearch query indexes/faq "I forgot my password"': run("no output shown"),
    'semsearch query indexes/faq "..." --mode dense': run("no output shown"),
    'semsearch query indexes/faq "..." -k 3 --threshold 0.5 --json': run("no output shown"),
    "semsearch calibrate indexes/faq examples/labelled.csv": run("stores; the dry run is shown"),
    "semsearch query indexes/faq": run(
        "the interactive prompt (stdin a terminal), typed at; no output shown",
        typed=":help\n:k 1\nI forgot my password\n:quit\n",
    ),
    "cat examples/questions.txt | semsearch query indexes/faq --json": run("no output shown"),
    "semsearch add indexes/faq examples/new.csv": run("no output shown"),
    "semsearch delete indexes/faq reset-password-3": run("no output shown"),
    "semsearch info indexes/faq": run("prints dates and sizes"),
    INT8_BUILD: run(
        "with the tiny random model: MiniLM's int8 export and build cost ~10 s of CPU, and "
        "what it is here for (the int8 refusal below) does not name the model",
        extra=("--model", "{tiny}"),
    ),
    # (its finetune line is planned under Make it yours)
    # Filters
    'semsearch query indexes/faq "how do I get my notes out?" --where "category = export" '
    "-k 2": compare(),
    'semsearch query indexes/faq "what does it cost?" --where "category in (billing, account)" '
    '--where "not category = account"': run("no output shown"),
    "semsearch eval retrieval examples/beir-sample "
    "--where \"title != 'Checking tyre pressure'\"": run(
        "with the tiny random model: what it shows is that eval takes the filter",
        extra=("--model", "{tiny}"),
    ),
    'semsearch query indexes/faq "how much is it?" --where "plan = free"': compare(exit_code=1),
    # Knowing when not to answer
    "semsearch calibrate indexes/faq examples/labelled.csv --dry-run": compare(),
    # Past one machine: Ray
    "pip install 'semsearch[ray]'": skip("installs a package"),
    "semsearch index 'shards/*.parquet' -o indexes/big --engine ray": skip(RAY),
    "semsearch index shards/ -o indexes/big --engine ray --workers 2 --batch-size 64": skip(RAY),
    "semsearch index shards/ -o indexes/big --engine ray --address auto": skip(RAY),
    "semsearch index shards/ -o indexes/big --engine ray --address ray://head:10001 "
    "--gpus-per-worker 1": skip(RAY + "; it needs a GPU"),
    # Make it yours
    "pip install 'semsearch[finetune]'": skip("installs packages"),
    "semsearch finetune examples/faq.csv --pairs examples/faq-logs.csv -o models/faq": skip(
        "a minute or more of training on 2 cores; tests/finetune/test_train.py runs "
        "`semsearch finetune` with the tiny model"
    ),
    "semsearch index examples/faq.csv -o indexes/faq-tuned --model models/faq": skip(TUNED),
    'semsearch query indexes/faq-tuned "talk to a human" -k 3 --threshold none': skip(TUNED),
    "semsearch calibrate indexes/faq-tuned examples/labelled.csv": skip(TUNED),
    # How a sentence vector is made from BERT
    'semsearch tokens "Here is the sentence I want embeddings for."': run("no output shown"),
    'semsearch tokens "How old are you?" "I am six."': run("no output shown"),
    'semsearch similarity "A man is eating food." "A man is eating a piece of bread."': compare(
        prints_comment=True
    ),
    'semsearch similarity "A man is eating food." "The sky is blue." --encoder bert '
    "--pooling cls": run(
        "on --backend torch, which gives the onnx vectors (README, Backends) without a 3 s "
        "ONNX export of raw BERT",
        extra=("--backend", "torch"),
    ),
    "semsearch embed examples/texts.txt -o vectors.npy": run(writes=("vectors.npy",)),
    "semsearch embed examples/texts.txt -o words.npz --words --encoder bert --layers "
    "-4,-3,-2,-1 --layer-combine sum": run(writes=("words.npz",)),
    'semsearch query indexes/faq-int8 "export" --backend torch': compare(
        exit_code=1, setup=(INT8_BUILD,)
    ),
    # HTTP service, Production
    "pip install -e '.[serve]'": skip("installs packages"),
    "semsearch serve indexes/faq --port 8000": skip(SERVE),
    "SEMSEARCH_API_KEY=secret semsearch serve indexes/faq": skip(SERVE),
    "docker build -f deploy/Dockerfile -t semsearch .": skip(
        "no Docker daemon here; tests/test_examples.py runs the Dockerfile's commands"
    ),
    "docker run --rm -p 8000:8000 -e SEMSEARCH_API_KEY=change-me semsearch": skip("no Docker"),
    "docker run --rm -p 8000:8000 -v /srv/semsearch:/srv/semsearch:ro -e "
    "SEMSEARCH_API_KEY=change-me semsearch /srv/semsearch/faq --host 0.0.0.0 --port 8000": skip(
        "no Docker"
    ),
    # Evaluation
    "semsearch eval sts examples/sts-sample.tsv": compare(),
    "semsearch eval retrieval examples/beir-sample": compare(),
    "semsearch eval sweep examples/sts-sample.tsv --plot sweep.png": run(writes=("sweep.png",)),
    "semsearch eval classify examples/intents-train.csv examples/intents-test.csv": run(
        "no output shown"
    ),
    # Errors
    "semsearch similarity a b --encoder bert --pooling avg": compare(exit_code=1),
}

# The code blocks that show no command, by their first line (whitespace runs as one space).
OTHER_BLOCKS: dict[str, str] = {
    "from semsearch import open_index": "run: test_readme_python_block",
    "indexes/faq/": "the index folder's files, not a command's output",
    "from semsearch.client import Client": "skip: it needs a running server (" + SERVE + ")",
    "upstream semsearch {": "tests/test_examples.py: it is deploy/nginx.conf",
    'INFO: 127.0.0.1:41966 - "POST /search HTTP/1.1" 200 OK': "skip: a server's access log "
    "(ports vary)",
    "semsearch: serving /tmp/demo-idx (106 entries) at http://127.0.0.1:8765 (threshold 0.45, no "
    "API key, micro-batching on); search page http://127.0.0.1:8765/, API docs "
    "http://127.0.0.1:8765/docs": "skip: a server's stderr (ports, process ids, versions vary)",
    "semsearch/": "the package's layout, not a command's output",
}
PYTHON_RUN = [first for first, what in OTHER_BLOCKS.items() if what.startswith("run:")]


# -- reading the README -----------------------------------------------------------------------
def readme_blocks() -> list[Block]:
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    at = 0
    while at < len(lines):
        opening = re.fullmatch(r"```(\w*)", lines[at].strip())
        if opening:
            end = next(i for i in range(at + 1, len(lines)) if lines[i].strip() == "```")
            blocks.append(Block(at + 1, opening.group(1), tuple(lines[at + 1 : end])))
            at = end
        at += 1
    return blocks


def one_line(text: str) -> str:
    return " ".join(text.split())


def first_line(block: Block) -> str:
    return one_line(block.lines[0]) if block.lines else ""


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its `# comment`, a # inside quotes being no comment."""
    quote = None
    for at, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (at == 0 or line[at - 1].isspace()):
            return line[:at], line[at + 1 :].strip()
    return line, ""


def readme_examples() -> tuple[dict[str, Example], list[Block]]:
    """Every command the README shows, and the blocks that show none."""
    examples: dict[str, Example] = {}
    others: list[Block] = []

    def seen(command: str, line: int) -> Example:
        command = one_line(command)
        return examples.setdefault(command, Example(command, line))

    for block in readme_blocks():
        if block.lang == "bash":
            joined = re.sub(r"\\\n\s*", " ", "\n".join(block.lines))
            for line in joined.splitlines():
                command, comment = split_comment(line)
                if command.strip():
                    example = seen(command, block.line)
                    if comment:
                        example.comments.append(comment)
        elif block.lang == "" and any(line.startswith("$ ") for line in block.lines):
            printed: list[str] | None = None
            for line in block.lines:
                if line.startswith("$ "):
                    printed = []
                    seen(line[2:], block.line).shown.append(printed)
                else:
                    assert printed is not None, f"README line {block.line}: output before its `$`"
                    printed.append(line)
        else:
            others.append(block)
    return examples, others


EXAMPLES, OTHERS = readme_examples()
EXECUTED = [
    e for e in EXAMPLES.values() if PLANS.get(e.command, skip("")).how in ("compare", "run")
]


def test_every_readme_example_is_planned() -> None:
    unplanned = [f"line {e.line}: {e.command}" for e in EXAMPLES.values() if e.command not in PLANS]
    assert unplanned == [], "add these README commands to PLANS, to run or skip with why"
    assert sorted(set(PLANS) - set(EXAMPLES)) == [], "PLANS names commands the README lost"
    firsts = {block.line: first_line(block) for block in OTHERS}
    unlisted = [f"line {at}: {first}" for at, first in firsts.items() if first not in OTHER_BLOCKS]
    assert unlisted == [], "add these README blocks to OTHER_BLOCKS, saying what they are"
    assert sorted(set(OTHER_BLOCKS) - set(firsts.values())) == [], "OTHER_BLOCKS names lost blocks"
    for example in EXAMPLES.values():
        plan = PLANS[example.command]
        if plan.how == "compare":  # something to compare it with
            assert example.shown or (plan.prints_comment and example.comments), example.command
        if plan.how == "skip":
            assert plan.why, example.command
        assert all(setup in EXAMPLES for setup in plan.setup), example.command


def test_make_demo_runs_what_the_readme_shows() -> None:
    recipe = re.search(r"^demo: .*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe
    commands = [line.strip().replace("$(BIN)/", "") for line in recipe.group(1).splitlines()]
    assert commands[0] == "semsearch index examples/faq.csv -o indexes/demo"
    assert EXAMPLES[one_line(commands[1])].shown, "the README shows what `make demo` asks"


# -- running the examples ---------------------------------------------------------------------
def lay_out(folder: Path, demo_index: Path) -> Path:
    """A folder laid out as the README's commands expect: examples/ and configs/ of the
    repository, and a copy of the demo index as indexes/faq and indexes/demo."""
    for name in ("examples", "configs"):
        (folder / name).symlink_to(ROOT / name)
    for name in ("faq", "demo"):
        shutil.copytree(demo_index, folder / "indexes" / name)
    return folder


@pytest.fixture
def workdir(demo_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's folder, as the current directory; a command may change its index."""
    monkeypatch.chdir(lay_out(tmp_path, demo_index))
    return tmp_path


def invoke(command: str, plan: Plan, tiny: Callable[[], Path]) -> Result:
    """Run a README command line in-process, from the current directory."""
    typed = plan.typed
    if " | " in command:  # `cat FILE | semsearch ...`: the file is the input
        cat, command = command.split(" | ", 1)
        typed = Path(shlex.split(cat)[1]).read_text(encoding="utf-8")
    argv = shlex.split(command)
    assert argv[0] == "semsearch", command
    extra = [str(tiny()) if arg == "{tiny}" else arg for arg in plan.extra]
    return CliRunner().invoke(app, [*argv[1:], *extra], input=typed)


class AtATerminal:
    """`sys` as a command sees it when a person types: its stdin (CliRunner's) is a
    terminal."""

    def __getattr__(self, name: str) -> object:
        return getattr(sys, name)

    @property
    def stdin(self) -> object:
        return Typed(sys.stdin)


class Typed:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


SETUPS = {setup for plan in PLANS.values() for setup in plan.setup}


@pytest.fixture(scope="session")
def setup_runs() -> dict[str, tuple[Path, Result]]:
    """Commands that others need, run once a session: their folder and result."""
    return {}


def run_once(
    command: str, runs: dict[str, tuple[Path, Result]], folder: Path, tiny: Callable[[], Path]
) -> tuple[Path, Result]:
    if command not in runs:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(folder)
            runs[command] = folder, invoke(command, PLANS[command], tiny)
    return runs[command]


DURATION = re.compile(r"\b\d+(?:\.\d+)? s\b")


def normal(line: str) -> str:
    return one_line(DURATION.sub("<N> s", line))


def trimmed(lines: list[str]) -> list[str]:
    text = [normal(line) for line in lines]
    while text and not text[-1]:
        text.pop()
    while text and not text[0]:
        text.pop(0)
    return text


def shown_pattern(shown: list[str]) -> str:
    """A regular expression for the printed lines the README shows (see the docstring)."""
    parts = []
    for line in trimmed(shown):
        if line in ELLIPSES:
            parts.append(r"(?:[^\n]*\n)*?")
        elif line.endswith(ELLIPSES):
            parts.append(re.escape(line.rstrip(".…").rstrip()) + r"[^\n]*\n")
        else:
            parts.append(re.escape(line) + "\n")
    return "".join(parts)


def assert_prints(shown: list[str], printed: str, command: str) -> None:
    lines = trimmed(printed.splitlines())
    text = "".join(line + "\n" for line in lines)
    if not re.fullmatch(shown_pattern(shown), text):
        diff = "\n".join(
            difflib.unified_diff(trimmed(shown), lines, "README", "printed", lineterm="")
        )
        pytest.fail(f"`{command}` prints other lines than the README shows:\n{diff}")


def test_the_rules_of_comparing() -> None:
    shown = ["Q: pdf?", "  1. 0.976 fused 1.000  [export-pdf-2] How ...", "...", "(2.9 s)"]
    for printed in (  # what the README shows
        "Q: pdf?\n  1. 0.976 fused  1.000  [export-pdf-2] How can I\n(12.5 s)\n",
        "Q: pdf?\n1. 0.976 fused 1.000 [export-pdf-2] How\n  2. 0.6\n  more\n(0.1 s)\n\n",
    ):
        assert_prints(shown, printed, "semsearch query")
    for printed in (  # another score, another id, a line too many at the end, a missing line
        "Q: pdf?\n  1. 0.975 fused 1.000  [export-pdf-2] How\n(2.9 s)\n",
        "Q: pdf?\n  1. 0.976 fused 1.000  [export-pdf-1] How\n(2.9 s)\n",
        "Q: pdf?\n  1. 0.976 fused 1.000  [export-pdf-2] How\n(2.9 s)\nmore\n",
        "Q: pdf?\n(2.9 s)\n",
    ):
        with pytest.raises(pytest.fail.Exception):
            assert_prints(shown, printed, "semsearch query")


@pytest.mark.real
@pytest.mark.parametrize(
    "example",
    EXECUTED,
    ids=[f"L{e.line} {e.command.removeprefix('semsearch ')[:50]}" for e in EXECUTED],
)
def test_readme_command(
    example: Example,
    workdir: Path,
    demo_index: Path,
    setup_runs: dict[str, tuple[Path, Result]],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = PLANS[example.command]

    def tiny() -> Path:
        return Path(request.getfixturevalue("tiny_sbert"))

    def once(command: str) -> tuple[Path, Result]:
        folder = lay_out(tmp_path_factory.mktemp("setup"), demo_index)
        return run_once(command, setup_runs, folder, tiny)

    for setup in plan.setup:
        folder, result = once(setup)
        assert result.exit_code == 0, f"{setup}\n{result.output}"
        for made in (folder / "indexes").iterdir():
            if not (workdir / "indexes" / made.name).exists():
                shutil.copytree(made, workdir / "indexes" / made.name)
    if plan.typed is not None:  # a person types at the prompt
        monkeypatch.setattr("semsearch.cli.query.sys", AtATerminal())
    if example.command in SETUPS:
        workdir, result = once(example.command)
    else:
        result = invoke(example.command, plan, tiny)
    assert result.exit_code == plan.exit_code, f"{example.command}\n{result.output}"
    printed = (result.stdout if plan.exit_code == 0 else result.stderr).replace(f"{workdir}/", "")
    for name in plan.writes:
        assert (workdir / name).stat().st_size > 0, name
    if plan.how == "compare":
        for shown in example.shown:
            assert_prints(shown, printed, example.command)
        for comment in example.comments if plan.prints_comment else []:
            assert normal(comment) in normal(printed), f"{example.command} does not print {comment}"


@pytest.mark.real
@pytest.mark.parametrize("first", PYTHON_RUN)
def test_readme_python_block(first: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = next(b for b in OTHERS if first_line(b) == first)
    exec(compile("\n".join(block.lines), f"README.md, line {block.line + 1}", "exec"), {})
    assert capsys.readouterr().out.strip(), "the README's Python example printed nothing"
