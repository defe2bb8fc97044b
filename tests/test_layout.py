"""The package's shape: small modules, errors in the library's words that the CLI maps
to its options, and a declared Python version that really works."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from semsearch.cli.feedback import FLAGS, error_line
from semsearch.config import EncoderConfig
from semsearch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "semsearch"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in MODULES
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_library_messages_name_settings_not_command_line_flags() -> None:
    flag = re.compile(r"""["'][^"'\n]*\s--(\{|[a-z][a-z-]+)""")
    offenders = []
    for path in MODULES:
        if path.parent.name in ("cli",) or path.name == "page.py":  # the CLI, and CSS
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if flag.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_setting_an_error_names_has_a_cli_option() -> None:
    named = set()
    for path in MODULES:
        named |= set(re.findall(r'setting="([a-z_]+)"', path.read_text(encoding="utf-8")))
    named |= {"kind", "backend", "pooling", "layer_combine"}  # through config._choice
    assert named - set(FLAGS) == set()


def test_the_cli_names_the_option_for_a_library_error() -> None:
    with pytest.raises(ConfigError) as caught:
        EncoderConfig(layers="x")
    assert caught.value.setting == "layers" and "--" not in str(caught.value)
    assert error_line(caught.value).endswith("(option --layers)")
    assert error_line(ConfigError("no setting at fault")) == "no setting at fault"


def _python310() -> str | None:
    """A working Python 3.10 interpreter (pyenv's shims may name one that is not active)."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    found = shutil.which("python3.10")
    for candidate in [*map(str, candidates), *([found] if found else [])]:
        done = subprocess.run([candidate, "-c", "pass"], capture_output=True)
        if done.returncode == 0:
            return candidate
    return None


PY310 = _python310()

COMPILE_ALL = """
import py_compile, sys
for number, source in enumerate(sys.argv[2:]):
    py_compile.compile(source, f"{sys.argv[1]}/{number}.pyc", doraise=True)
"""


@pytest.mark.skipif(PY310 is None, reason="no python3.10 interpreter on this machine")
def test_python_3_10_compiles_the_package_and_reads_config_through_tomli(
    tmp_path: Path,
) -> None:
    """requires-python says 3.10: every module must parse there, and config.py's tomli
    fallback must read a preset (tomli from pip's own vendored copy)."""
    assert PY310 is not None
    sources = [str(path) for path in MODULES]
    done = subprocess.run(
        [PY310, "-c", COMPILE_ALL, str(tmp_path), *sources], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    script = (
        "import sys; import pip._vendor.tomli as tomli; sys.modules['tomli'] = tomli; "
        "from semsearch.config import load_settings; "
        "from semsearch.service.config import load_serve_config; "
        "print(sys.version_info[:2], load_settings(sys.argv[1]).encoder.backend, "
        "load_serve_config(sys.argv[1]).max_k)"
    )
    done = subprocess.run(
        [PY310, "-c", script, str(ROOT / "configs" / "int8.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 10) onnx-int8 100"  # serve's [serve] reader too
