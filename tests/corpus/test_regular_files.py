"""Issue 24 item 14: what is not a regular file is refused, not read: a FIFO as a corpus
(it blocked forever), a symlink to /dev/zero (it grew memory without bound), the same
as manifest.json (it hung `query` and the server's reload poller); every line read is
bounded. Each refusal comes at once, with no folder left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from semsearch.corpus import Record, open_corpus
from semsearch.errors import IndexFolderError, InputError
from semsearch.evaluation.data import read_sts
from semsearch.index import IndexStore
from tests.index_writer import HashEncoder

ZERO = Path("/dev/zero")


def within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Run `call` on a daemon thread; the error it raised, failing the test if it hangs."""
    caught: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # handed back to the test
            caught[0] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds} s"
    return caught[0]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt", ".tsv"])
def test_a_fifo_corpus_is_refused_at_once(tmp_path: Path, suffix: str) -> None:
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    error = within(10, lambda: list(open_corpus(fifo)))
    assert isinstance(error, InputError)
    assert str(error) == f"{fifo} is a named pipe (FIFO), not a regular file: give a corpus file"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path, suffix: str) -> None:
    link = tmp_path / f"zero{suffix}"
    link.symlink_to(ZERO)
    error = within(10, lambda: list(open_corpus(link)))
    assert isinstance(error, InputError)
    assert "is a character device, not a regular file" in str(error)


def test_a_folder_of_shards_reads_only_its_regular_files(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.txt").write_text("one\ntwo\n")
    os.mkfifo(shards / "b.txt")
    (shards / "c.txt").symlink_to(ZERO)
    records: list[Record] = []
    assert within(10, lambda: records.extend(open_corpus(shards))) is None
    assert [record.text for record in records] == ["one", "two"]


def test_a_line_longer_than_the_bound_is_refused_with_its_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("semsearch.regular.MAX_LINE_BYTES", 1000)
    corpus = tmp_path / "c.txt"
    corpus.write_text("short\n" + "x" * 5000 + "\n")
    with pytest.raises(InputError, match=r"c\.txt, line 2: longer than 0 MiB"):
        list(open_corpus(corpus))
    sts = tmp_path / "s.tsv"
    sts.write_text("a\tb\t1\n" + "y" * 5000 + "\n")
    with pytest.raises(InputError, match=r"s\.tsv, line 2: longer than"):
        read_sts(sts)


@pytest.fixture()
def faq(tmp_path: Path) -> Path:
    records = [Record("pw", "reset my password", "the link", {}), Record("x", "b", "c", {})]
    store = IndexStore.build(tmp_path / "faq", [records], HashEncoder())
    store.close()
    return store.path


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_manifest_that_is_not_a_regular_file_is_refused_by_open_and_the_poller(
    faq: Path, kind: str
) -> None:
    manifest = faq / "manifest.json"
    manifest.unlink()
    if kind == "fifo":
        os.mkfifo(manifest)
    else:
        manifest.symlink_to(ZERO)
    what = "a named pipe (FIFO)" if kind == "fifo" else "a character device"
    for call in (lambda: IndexStore.open(faq), lambda: IndexStore.current_version(faq)):
        error = within(10, call)
        assert isinstance(error, IndexFolderError)
        assert (
            str(error)
            == f"{manifest} is {what}, not a regular file: give a file semsearch can read"
        )


def test_an_oversized_manifest_is_refused_unread(faq: Path) -> None:
    with (faq / "manifest.json").open("ab") as handle:
        handle.truncate(17 << 20)  # sparse: 17 MiB of NUL bytes
    with pytest.raises(IndexFolderError, match=r"manifest\.json is larger than 16 MiB"):
        IndexStore.open(faq)


def test_cli_index_of_a_fifo_exits_at_once_and_leaves_nothing(
    tiny_sbert: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "faq.csv"
    os.mkfifo(fifo)
    out = tmp_path / "idx"
    command = [sys.executable, "-m", "semsearch", "index", str(fifo), "-o", str(out)]
    done = subprocess.run(
        [*command, "--model", str(tiny_sbert)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"semsearch: error: {fifo} is a named pipe (FIFO), not a regular file: give a corpus file\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["faq.csv"]
