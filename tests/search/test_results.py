"""The one search result (semsearch.results) and its JSON form, the one home of the
error classes (semsearch.errors), and imports that point down only. No model needed."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from semsearch.search.results import Hit, SearchResult, batch_from_json, batch_to_json

PACKAGE = Path(__file__).resolve().parents[2] / "semsearch"

HITS = [
    Hit("pw-2", 0.98765432, "I forgot my password", "Use the reset link.", {"c": "account"}, 1),
    Hit("pdf", 0.41234567, "Can I export notes as PDF?", "File > Export > PDF.", {}, 2),
]


def test_result_json_is_the_documented_shape() -> None:
    result = SearchResult("lost password", HITS, True, 0.4, "dense", 0.98765432)
    assert result.to_json() == {
        "question": "lost password",
        "answered": True,
        "threshold": 0.4,
        "mode": "dense",
        "best_score": 0.987654,
        "results": [
            {"id": "pw-2", "score": 0.987654, "text": "I forgot my password",
             "answer": "Use the reset link.", "metadata": {"c": "account"}, "rank": 1},
            {"id": "pdf", "score": 0.412346, "text": "Can I export notes as PDF?",
             "answer": "File > Export > PDF.", "metadata": {}, "rank": 2},
        ],
    }  # fmt: skip
    assert list(result.to_json()) == [
        "question", "answered", "threshold", "mode", "best_score", "results",
    ]  # fmt: skip
    assert list(HITS[0].to_json()) == ["id", "score", "text", "answer", "metadata", "rank"]
    json.dumps(result.to_json())  # plain JSON types only


def test_a_fused_hit_carries_each_part_and_is_judged_on_its_cosine() -> None:
    scores = {"dense": 0.61234567, "joint": 0.5, "lexical": 3.25}
    fused = Hit("pw", 0.9, "t", "a", {}, 1, scores)
    assert fused.to_json()["scores"] == {"dense": 0.612346, "joint": 0.5, "lexical": 3.25}
    assert fused.cosine == 0.61234567 and HITS[0].cosine == HITS[0].score
    rounded = Hit("pw", 0.9, "t", "a", {}, 1, {"dense": 0.612346, "joint": 0.5, "lexical": 3.25})
    assert Hit.from_json(json.loads(json.dumps(fused.to_json()))) == rounded
    # the threshold judges the cosine (0.61), not the fused score (0.9)
    assert SearchResult("q", [fused], True, 0.7, "hybrid").confident == []
    assert SearchResult("q", [fused], True, 0.6, "hybrid").confident == [fused]


def test_json_round_trips() -> None:
    rounded = [Hit(h.id, round(h.score, 6), h.text, h.answer, h.metadata, h.rank) for h in HITS]
    for threshold in (0.5, None):
        result = SearchResult("q", rounded, True, threshold, "hybrid", 0.987654)
        again = SearchResult.from_json(json.loads(json.dumps(result.to_json())))
        assert again == result
    assert Hit.from_json(HITS[0].to_json()) == rounded[0]
    # metadata and rank may be absent (then {} and 0)
    assert Hit.from_json({"id": "a", "score": 1, "text": "t", "answer": "a"}) == Hit(
        "a", 1.0, "t", "a", {}, 0
    )


def test_batch_form_and_its_inverse() -> None:
    first = SearchResult("one", HITS[:1], True, 0.9, "dense", 0.98765432)
    second = SearchResult("two", [], False, 0.9, "dense", 0.41234567)
    data = batch_to_json([first, second])
    assert data == {
        "results": [[HITS[0].to_json()], []],
        "answered": [True, False],
        "threshold": 0.9,
        "mode": "dense",
        "best_score": [0.987654, 0.412346],
    }
    back = batch_from_json(json.loads(json.dumps(data)), ["one", "two"])
    assert [r.to_json() for r in back] == [first.to_json(), second.to_json()]
    assert batch_to_json([]) == {
        "results": [], "answered": [], "threshold": None, "mode": None, "best_score": []
    }  # fmt: skip
    assert batch_from_json(batch_to_json([]), []) == []
    with pytest.raises(ValueError, match="2 results for 1 questions"):
        batch_from_json(data, ["one"])


def test_confident_keeps_hits_at_or_above_the_threshold() -> None:
    assert SearchResult("q", HITS, True, 0.5).confident == HITS[:1]
    assert SearchResult("q", HITS, True, 0.41234567).confident == HITS
    assert SearchResult("q", HITS, True, None).confident == HITS


def test_old_import_paths_still_work() -> None:
    import semsearch
    from semsearch import client, errors, search
    from semsearch.service import batcher

    assert semsearch.Hit is search.Hit is client.Hit is Hit
    assert semsearch.SearchResult is search.SearchResult is client.SearchResult is SearchResult
    for name in (
        "ServiceError",
        "ServiceUnavailableError",
        "AuthenticationError",
        "RequestRejectedError",
        "ServerError",
    ):
        assert getattr(client, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.SemsearchError)
    assert batcher.BatcherStoppedError is errors.BatcherStoppedError


def test_every_error_class_lives_in_errors() -> None:
    defined = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                defined.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert defined and all(item.startswith("errors.py:") for item in defined), defined


def test_missing_extra_names_the_pip_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from semsearch.errors import MissingExtraError, install_line
    from semsearch.service import require_serve_extra

    real = importlib.import_module

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvicorn":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingExtraError) as caught:
        require_serve_extra()
    assert install_line("serve") == "pip install 'semsearch[serve]'"
    assert (
        str(caught.value) == "`semsearch serve` needs uvicorn: run pip install 'semsearch[serve]'"
    )


def test_no_module_imports_back_up_into_the_cli() -> None:
    """Imports point down: only the CLI itself and `python -m semsearch` use semsearch.cli."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "cli" or relative == Path("__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "semsearch.cli" or n.startswith("semsearch.cli.") for n in names):
                offenders.append(str(relative))
    assert offenders == []
