"""mypy on the package, as `make lint` runs it, inside the suite: on one pytest-xdist
worker while the other runs tests, instead of ~10 s of one core (a fresh clone, no
mypy cache) before the first test starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_nothing_in_the_package() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "semsearch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found")
