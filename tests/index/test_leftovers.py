"""Issue 24 item 16: a writer killed mid-write leaves its `NAME.tmp-PID-*` folder and
its lock file; `info` says they are there and how big (reading never changes a folder),
and the next write of any kind, even one that then fails, removes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semsearch.cli.main import app
from semsearch.index import IndexStore
from tests.index_writer import HashEncoder, make_records

runner = CliRunner()


def _beside(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.parent.iterdir() if path != folder)


@pytest.fixture()
def killed(tmp_path: Path) -> Path:
    """An index whose writer was SIGKILLed in the middle of an add."""
    store = IndexStore.build(tmp_path / "faq", [make_records(50)], HashEncoder())
    store.close()
    writer = Path(__file__).parents[1] / "index_writer.py"
    root = str(writer.parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, str(writer), str(store.path)], env=env, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"writing\n"
        deadline = time.monotonic() + 60
        while not any(".tmp-" in name for name in _beside(store.path)):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    names = _beside(store.path)
    assert ".faq.lock" in names and any(name.startswith("faq.tmp-") for name in names)
    return store.path


def test_info_reports_what_a_killed_writer_left_and_changes_nothing(killed: Path) -> None:
    before = _beside(killed)
    (tmp,) = [killed.parent / name for name in before if name.startswith("faq.tmp-")]
    details = json.loads(runner.invoke(app, ["info", str(killed), "--json"]).stdout)
    size = sum(file.stat().st_size for file in tmp.rglob("*") if file.is_file())
    assert details["leftovers"] == {str(tmp): size} and size > 0
    assert details["stale_lock"] == str(killed.parent / ".faq.lock")
    done = runner.invoke(app, ["info", str(killed)])
    shown = done.stdout.splitlines()
    assert done.exit_code == 0, done.output
    assert shown[-1] == (
        f" leftovers: {tmp} ({size:,} B), {killed.parent / '.faq.lock'} (a lock nobody holds): "
        "from killed writes; the next index/add/delete removes them"
    )
    assert _beside(killed) == before  # reading never changes a folder


def test_the_next_write_removes_them_even_when_it_fails(killed: Path) -> None:
    store = IndexStore.open(killed)
    with pytest.raises(RuntimeError, match="encoder failed on call 1"):
        store.add([make_records(1, "new")], HashEncoder(fail_on_call=1))
    assert _beside(killed) == []
    assert IndexStore.open(killed).count == 50  # the failed write changed nothing


def test_a_clean_index_reports_none(killed: Path) -> None:
    IndexStore.open(killed).delete(["r0"])
    details = json.loads(runner.invoke(app, ["info", str(killed), "--json"]).stdout)
    assert (details["leftovers"], details["stale_lock"]) == ({}, None)
    assert "leftovers" not in runner.invoke(app, ["info", str(killed)]).stdout
