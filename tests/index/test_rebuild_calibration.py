"""Issue 24 item 4: rebuilding a calibrated index no longer drops its calibration
silently: with the same encoder the calibrated threshold is kept (and a note says so,
with a hint to calibrate again where the entry count changed); with another encoder
it is reset to the new estimate and the note says how to calibrate again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from semsearch.index import IndexStore
from semsearch.index.threshold import calibrated
from tests.index_writer import HashEncoder, make_records


@pytest.fixture()
def calibrated_index(tmp_path: Path) -> IndexStore:
    store = IndexStore.build(tmp_path / "faq", [make_records(40)], HashEncoder())
    store.set_threshold(calibrated(0.548509, "precision 0.9 on 20 labelled questions", 40))
    return store


def _notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "semsearch"]


def test_same_encoder_same_corpus_keeps_it(
    calibrated_index: IndexStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="semsearch"):
        rebuilt = IndexStore.build(calibrated_index.path, [make_records(40)], HashEncoder())
    assert rebuilt.manifest.threshold == calibrated_index.manifest.threshold
    assert rebuilt.manifest.threshold["value"] == 0.548509  # type: ignore[index]
    assert _notes(caplog) == [
        "kept the calibrated threshold 0.548509 of the index this build replaces"
    ]


def test_a_changed_corpus_keeps_it_and_says_to_check(
    calibrated_index: IndexStore, caplog: pytest.LogCaptureFixture
) -> None:
    path = calibrated_index.path
    with caplog.at_level(logging.INFO, logger="semsearch"):
        rebuilt = IndexStore.build(path, [make_records(45)], HashEncoder())
    assert rebuilt.manifest.threshold["origin"] == "calibrated"  # type: ignore[index]
    assert _notes(caplog) == [
        "kept the calibrated threshold 0.548509 of the index this build replaces; it was "
        f"calibrated on 40 entries and the index now has 45: run `semsearch calibrate {path} "
        "LABELLED` again if the answers changed"
    ]


def test_another_encoder_resets_it_and_says_how_to_calibrate_again(
    calibrated_index: IndexStore, caplog: pytest.LogCaptureFixture
) -> None:
    other = HashEncoder()
    other.fingerprint = {**other.fingerprint, "weights_sha256": "1" * 64}
    path = calibrated_index.path
    with caplog.at_level(logging.INFO, logger="semsearch"):
        rebuilt = IndexStore.build(path, [make_records(40)], other)
    assert rebuilt.manifest.threshold["origin"] == "estimated"  # type: ignore[index]
    assert _notes(caplog) == [
        "the index this build replaces had a calibrated threshold (0.548509); the encoder "
        f"changed, so the new index has its own estimate: run `semsearch calibrate {path} "
        "LABELLED` to calibrate it again"
    ]


def test_an_estimated_threshold_is_estimated_anew_without_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "faq"
    IndexStore.build(path, [make_records(40)], HashEncoder())
    with caplog.at_level(logging.INFO, logger="semsearch"):
        rebuilt = IndexStore.build(path, [make_records(10, "other")], HashEncoder())
    assert rebuilt.manifest.threshold["origin"] == "estimated"  # type: ignore[index]
    assert _notes(caplog) == []
