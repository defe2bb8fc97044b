"""Files and folders (issue 11, items 6, 8 and 9): a write checks that it may write before
it starts and reports a file-system failure as one line, keeps the folder's permissions,
leaves no lock file behind, and reading an index never writes anything.

Root ignores file modes, so the permission tests run the CLI as root without the
capabilities that let it (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): the
modes then bite as they do for any other user.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_writer import HashEncoder, make_records
from typer.testing import CliRunner

from semsearch import atomic
from semsearch.errors import IndexFolderError, InputError
from semsearch.index import IndexStore
from semsearch.search.engine import SearchEngine

ROOT = Path(__file__).resolve().parents[1]
CSV = """id,question,answer
pw,How do I reset my password?,Use the reset link.
pdf,Can I export notes as PDF?,File > Export > PDF.
offline,Does it work without internet?,"Yes, offline mode."
"""
MORE = "id,question,answer\ndark,Is there a dark mode?,Settings > Theme.\n"


def cli(*args: object) -> tuple[int, str, str]:
    from semsearch.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@functools.cache
def _drop_privileges() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    command = (setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search")
    if setpriv is None or subprocess.run([*command, "true"]).returncode != 0:
        pytest.skip("running as root, which ignores file modes, and setpriv cannot drop that right")
    return command


def as_a_user(*args: object, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a process that file modes apply to (and, optionally, that may write
    files of at most `limit_bytes`, so a write fails half way)."""

    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [*_drop_privileges(), sys.executable, "-m", "semsearch", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below `folder` with its mode, size and modification time."""
    found = {}
    for item in [folder, *sorted(folder.rglob("*"))]:
        info = item.lstat()
        found[str(item.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def answers(folder: Path, question: str = "I forgot my password") -> list[str]:
    code, out, err = cli("query", folder, question, "-k", "3", "--json", "--threshold", "none")
    assert code == 0, err
    return [hit["id"] for hit in json.loads(out)["results"]]


@pytest.fixture
def built(tiny_sbert: Path, tmp_path: Path) -> Path:
    """tmp_path/indexes/faq, built with the CLI; the corpora lie in tmp_path."""
    (tmp_path / "faq.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "more.csv").write_text(MORE, encoding="utf-8")
    folder = tmp_path / "indexes" / "faq"
    code, _, err = cli("index", tmp_path / "faq.csv", "-o", folder, "--model", tiny_sbert)
    assert code == 0, err
    return folder


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[None]:
    """Restores the modes a test takes away, so pytest can remove its folders."""
    yield
    for folder in [tmp_path, *tmp_path.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semsearch: error: "), done.stderr
    assert "unexpected" not in lines[0]
    return lines[0].removeprefix("semsearch: error: ")


# -- item 6: check first, one clear line, nothing left, the index intact ---------------


def test_a_read_only_parent_refuses_every_write_up_front(
    built: Path, tiny_sbert: Path, read_only: None
) -> None:
    before_answers = answers(built)
    corpus = built.parents[1]
    built.parent.chmod(0o555)
    before = snapshot(built.parent)
    message = (
        f"cannot write to {built}: the folder {built.parent} is not writable by this user: "
        f"make it writable (e.g. chmod u+w {built.parent}) and run again (nothing was changed)"
    )
    assert one_error_line(as_a_user("delete", built, "pw")) == message
    assert one_error_line(as_a_user("add", built, corpus / "more.csv")) == message
    rebuild = as_a_user("index", corpus / "faq.csv", "-o", built, "--model", tiny_sbert)
    assert one_error_line(rebuild) == message
    assert snapshot(built.parent) == before
    assert answers(built) == before_answers


def test_a_read_only_index_folder_is_not_written_and_no_copy_is_left(
    built: Path, read_only: None
) -> None:
    before_answers = answers(built)
    built.chmod(0o555)
    before = snapshot(built.parent)
    for command in (("delete", built, "pw"), ("add", built, built.parents[1] / "more.csv")):
        assert one_error_line(as_a_user(*command)) == (
            f"cannot write to {built}: the folder {built} is not writable by this user: "
            f"make it writable (e.g. chmod u+w {built}) and run again (nothing was changed)"
        )
    assert snapshot(built.parent) == before  # no idx.tmp-* copy, no lock file
    assert answers(built) == before_answers


def test_a_path_below_a_file_is_refused_with_one_line(tiny_sbert: Path, tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = cli(
        "index", tmp_path / "faq.csv", "-o", tmp_path / "notes.txt" / "faq", "--model", tiny_sbert
    )
    assert code == 1 and err == (
        f"semsearch: error: cannot write to {tmp_path / 'notes.txt' / 'faq'}: "
        f"{tmp_path / 'notes.txt'} is a file, not a folder: choose another path "
        "(nothing was changed)\n"
    )
    with pytest.raises(IndexFolderError, match=r"notes\.txt is a file, not a folder"):
        IndexStore.build(
            tmp_path / "notes.txt" / "deeper" / "faq", [make_records(3)], HashEncoder()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq.csv", "notes.txt"]


def test_a_file_system_failure_half_way_is_one_line_and_changes_nothing(built: Path) -> None:
    before_answers = answers(built)
    before = snapshot(built)
    # records.sqlite is copied first: a process that may not write a file that large fails
    size = (built / "records.sqlite").stat().st_size
    done = as_a_user("add", built, built.parents[1] / "more.csv", "-q", limit_bytes=size // 2)
    assert one_error_line(done) == (
        f"cannot write to {built}: File too large; the index was not changed"
    )
    assert snapshot(built) == before  # the folder itself was never touched
    assert sorted(p.name for p in built.parent.iterdir()) == ["faq"]  # no copy, no lock
    assert answers(built) == before_answers


# -- item 8: a write keeps the folder's mode; a new folder gets mkdir's -----------------


FILES = 6  # manifest.json, records.sqlite, vectors.faiss, lexical.json, lexical.npz, generic.npy


def modes(folder: Path) -> tuple[int, list[int]]:
    return stat.S_IMODE(folder.stat().st_mode), [
        stat.S_IMODE(item.stat().st_mode) for item in sorted(folder.iterdir())
    ]


@pytest.mark.parametrize(
    ("mask", "folder_mode", "file_mode"),
    [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)],
    ids=["umask-022", "umask-027"],
)
def test_a_new_index_folder_gets_the_mode_mkdir_gives(
    mask: int, folder_mode: int, file_mode: int, tmp_path: Path, umask: None
) -> None:
    os.umask(mask)
    IndexStore.build(tmp_path / "faq", [make_records(20)], HashEncoder()).close()
    assert modes(tmp_path / "faq") == (folder_mode, [file_mode] * FILES)


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o700, 0o2775], ids=oct)
def test_every_write_keeps_the_folder_mode(mode: int, tmp_path: Path, umask: None) -> None:
    path = tmp_path / "faq"
    IndexStore.build(path, [make_records(20)], HashEncoder()).close()
    path.chmod(mode)
    store = IndexStore.open(path)
    store.add([make_records(5, "new")], HashEncoder())
    assert modes(path) == (mode, [0o644] * FILES)
    store.delete(["r1"])
    assert modes(path) == (mode, [0o644] * FILES)
    IndexStore.build(path, [make_records(7)], HashEncoder()).close()
    assert modes(path) == (mode, [0o644] * FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq"]


def test_root_writing_a_read_only_folder_keeps_its_mode_and_leaves_no_copy(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may write a 555 folder (others are refused, tested above)")
    path = tmp_path / "faq"
    store = IndexStore.build(path, [make_records(20)], HashEncoder())
    path.chmod(0o555)
    try:
        store.delete(["r1"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o555
        assert sorted(p.name for p in tmp_path.iterdir()) == ["faq"]
    finally:
        path.chmod(0o755)


# -- item 9: no lock file left; the lock still excludes writers; reads never write -------


def test_no_lock_file_is_left_beside_the_index(tmp_path: Path) -> None:
    path = tmp_path / "faq"
    with pytest.raises(InputError, match="no texts to index"):
        IndexStore.build(path, [[]], HashEncoder())  # failed before anything was written
    assert list(tmp_path.iterdir()) == []
    store = IndexStore.build(path, [make_records(20)], HashEncoder())
    store.add([make_records(3, "new")], HashEncoder())
    store.delete(["r1"])
    with pytest.raises(RuntimeError, match="encoder failed"):
        IndexStore.build(path, [make_records(3), make_records(3, "b")], HashEncoder(fail_on_call=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faq"]


def test_the_lock_excludes_writers_while_its_file_comes_and_goes(tmp_path: Path) -> None:
    """Each holder deletes the lock file: a waiter that locked the deleted file must not
    go on beside the one that made a new file. A counter updated with a pause between
    reading and writing loses increments as soon as two holders overlap."""
    path, counter = tmp_path / "faq", tmp_path / "counter"
    counter.write_text("0")
    errors: list[BaseException] = []

    def increment() -> None:
        try:
            for _ in range(25):
                with atomic.locked(path):
                    value = int(counter.read_text())
                    time.sleep(0.0005)
                    counter.write_text(str(value + 1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=increment) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors and counter.read_text() == "200"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"]


def interrupt_mid_swap(path: Path) -> Path:
    """What a writer killed between its two renames leaves: only the old version, aside."""
    aside = path.with_name(f"{path.name}.old-99999999-abc")
    path.rename(aside)
    return aside


@pytest.mark.parametrize("crashed", [False, True], ids=["intact", "crashed-mid-swap"])
def test_reading_writes_nothing(built: Path, crashed: bool) -> None:
    expected = answers(built)
    aside = interrupt_mid_swap(built) if crashed else built
    before = snapshot(built.parent)
    code, out, err = cli("info", built, "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 3 and json.loads(out)["path"] == str(built)
    assert answers(built) == expected
    SearchEngine.open(built).store.close()
    IndexStore.open(built).close()
    assert snapshot(built.parent) == before
    assert aside.exists() and built.exists() is not crashed
    if crashed:  # the next write puts the folder back, and writes
        code, _, err = cli("delete", built, "pdf")
        assert code == 0, err
        assert sorted(p.name for p in built.parent.iterdir()) == ["faq"]
        assert answers(built, "Can I export notes as PDF?")[0] != "pdf"


@pytest.mark.parametrize("crashed", [False, True], ids=["intact", "crashed-mid-swap"])
def test_a_read_only_index_can_be_read(built: Path, crashed: bool, read_only: None) -> None:
    expected = answers(built)
    folder = interrupt_mid_swap(built) if crashed else built
    folder.chmod(0o555)
    built.parent.chmod(0o555)
    before = snapshot(built.parent)
    info = as_a_user("info", built, "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["count"] == 3
    query = as_a_user(
        "query", built, "I forgot my password", "-k", "3", "--json", "--threshold", "none"
    )
    assert query.returncode == 0, query.stderr
    assert [hit["id"] for hit in json.loads(query.stdout)["results"]] == expected
    if crashed:
        assert "reading the previous version from faq.old-99999999-abc" in query.stderr
    assert snapshot(built.parent) == before
