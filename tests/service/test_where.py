"""`where` over HTTP and through the client: the same answers as the Python API and the
CLI, single and batch, and a filter the index cannot run is 422 with the same line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from semsearch.cli.main import app
from semsearch.client import Client
from semsearch.config import SearchConfig
from semsearch.errors import RequestRejectedError
from semsearch.search.engine import SearchEngine
from tests.cli.test_where import build
from tests.service.test_server import call, server

WHERE = "category in (billing, account) and not lang = de"
QUESTIONS = ["how much does it cost", "I forgot my password", "export"]


def test_every_face_gives_the_same_filtered_answers(tiny_sbert: Path, tmp_path: Path) -> None:
    index = build(tmp_path, tiny_sbert)
    engine = SearchEngine.open(index, config=SearchConfig(threshold="none"))
    expected = [engine.query(q, k=3, where=WHERE).to_json() for q in QUESTIONS]
    batched = [r.to_json() for r in engine.query_batch(QUESTIONS, k=3, where=WHERE)]
    assert {hit["id"] for e in expected for hit in e["results"]} == {"pw", "plus", "team"}
    cli = CliRunner().invoke(
        app,
        ["query", str(index), "--where", WHERE, "-k", "3", "--threshold", "none", "--json"],
        input="\n".join(QUESTIONS) + "\n",
    )
    assert [json.loads(line) for line in cli.stdout.splitlines()] == expected
    with server(index) as (url, _):
        single = [
            call(url, "POST", "/search", {"query": q, "k": 3, "where": WHERE})[1] for q in QUESTIONS
        ]
        assert single == [{k: v for k, v in e.items() if k != "question"} | {"question": q}
                          for e, q in zip(expected, QUESTIONS, strict=True)]  # fmt: skip
        status, batch, _ = call(
            url, "POST", "/search", {"queries": QUESTIONS, "k": 3, "where": [WHERE]}
        )
        assert status == 200
        assert batch["results"] == [e["results"] for e in batched]  # encoded together
        assert batch["answered"] == [e["answered"] for e in batched]
        client = Client(url)
        assert [r.to_json() for r in client.query_batch(QUESTIONS, k=3, where=WHERE)] == batched
        parts = ["category in (billing, account)", "not lang = de"]
        assert client.query(QUESTIONS[0], k=3, where=parts).to_json() == expected[0]
        assert client.query(QUESTIONS[0], k=3).to_json() != expected[0]  # unfiltered differs

        message = "unknown filter field 'product': the filterable fields are category, lang, price"
        status, body, _ = call(url, "POST", "/search", {"query": "x", "where": "product = a"})
        assert status == 422 and body == {
            "detail": message,
            "errors": [{"field": "where", "message": message, "type": "filter"}],
        }
        status, body, _ = call(url, "POST", "/search", {"queries": ["x"], "where": "price <"})
        assert status == 422
        assert (
            body["detail"]
            == "bad filter at position 8: expected a value after price <, got the end"
        )
        with pytest.raises(RequestRejectedError) as caught:
            client.query("x", where="price = cheap")
        assert str(caught.value) == (
            "filter field 'price' holds numbers, not text: compare it with a number, not 'cheap'"
        )
        assert caught.value.status == 422 and caught.value.fields == ["where"]
        status, body, _ = call(url, "POST", "/search", {"query": "x", "where": 5})
        assert status == 422 and body["errors"][0]["field"].startswith("where")
    engine.store.close()
