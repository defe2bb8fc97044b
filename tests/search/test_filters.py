"""`where` filters: the parser's exact trees and messages, the indexed columns and their
SQL, and filtered questions on every index type against an exact search of the subset."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from semsearch.cache import sha256_of
from semsearch.config import SearchConfig
from semsearch.corpus import Record
from semsearch.errors import FilterError
from semsearch.filters import And, Compare, In, Not, Or, parse_where
from semsearch.index import IndexStore
from semsearch.index.records import RecordStore
from semsearch.index.types import REGISTRY
from semsearch.index.types.base import exact_within
from semsearch.search.engine import SearchEngine
from tests.index_writer import HashEncoder

# -- the language ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("product = mobile", "product = 'mobile'"),
        ("product=mobile AND lang IN (en,'de')", "product = 'mobile' and lang in ('en', 'de')"),
        ("not (category = 'billing' or price >= 10)", "not (category = 'billing' or price >= 10)"),
        ("a = 1 or b != x and not c < 2.5", "a = 1 or b != 'x' and not c < 2.5"),
        ("(a = 1 or b = 2) and c = 3", "(a = 1 or b = 2) and c = 3"),
        ("year = '2020'", "year = '2020'"),
        ("'sub category' = \"it's\"", "'sub category' = 'it\\'s'"),
        ("x = 'or' and lang = en-GB", "x = 'or' and lang = 'en-GB'"),
        ("n > -1.5e2", "n > -150.0"),
    ],
)
def test_filters_parse_to_their_canonical_text(text: str, canonical: str) -> None:
    tree = parse_where(text)
    assert str(tree) == canonical
    assert str(parse_where(canonical)) == canonical  # the canonical text parses back


def test_the_tree_of_a_filter() -> None:
    tree = parse_where("not a = 1 and (b in (x, 2) or c <= 3)")
    assert tree == And(
        (
            Not(Compare("a", "=", 1, 5)),
            Or((In("b", ("x", 2), 16), Compare("c", "<=", 3, 31))),
        )
    )
    assert parse_where(["a = 1", "b = 2"]) == And(
        (Compare("a", "=", 1, 1), Compare("b", "=", 2, 1))
    )
    assert parse_where(None) is None and parse_where([]) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("product = ", "bad filter at position 11: expected a value after product =, got the end"),
        (
            "product mobile",
            "bad filter at position 9: expected =, !=, <, <=, >, >= or in after product, "
            "got 'mobile'",
        ),
        ("(a = 1", "bad filter at position 7: expected ')', got the end"),
        ("a = 1)", "bad filter at position 6: expected 'and', 'or' or the end, got ')'"),
        ("a = 1 b = 2", "bad filter at position 7: expected 'and', 'or' or the end, got 'b'"),
        ("a < x", "bad filter at position 5: < compares numbers, got 'x'"),
        (
            "a ! b",
            "bad filter at position 3: unexpected '!'; the operators are =, !=, <, <=, >, >=, in",
        ),
        ("a = 'x", "bad filter at position 5: the string opened with ' is not closed"),
        ("and = 1", "bad filter at position 1: expected a field name, got 'and'"),
        ("a in ()", "bad filter at position 7: expected a value after a in, got ')'"),
        (
            "a = or",
            "bad filter at position 5: expected a value after a =, got 'or' (quote a keyword "
            "used as a value)",
        ),
        ("a = 1e999", "bad filter at position 5: the number '1e999' is out of range"),
        ("  ", "the filter is empty: give an expression such as product = mobile"),
        ("not " * 40 + "a = 1", "bad filter at position 129: nested more than 32 deep"),
    ],
)
def test_a_bad_filter_is_one_line_naming_the_position(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_where(text)
    assert str(caught.value) == message and caught.value.setting == "where"


def test_the_second_of_several_filters_is_named() -> None:
    with pytest.raises(FilterError, match=r"^filter 2: bad filter at position 5: expected a"):
        parse_where(["a = 1", "b = "])


# -- the records store ---------------------------------------------------------------------

ROWS = [
    {"product": "mobile", "price": 1, "mixed": 1, "flag": True},
    {"product": "web", "price": 2.5, "mixed": "1"},
    {"product": "desk", "price": 3, "mixed": 3, "tags": ["a"]},
    {"product": "mobile", "price": 4},
    {"price": 5, "product": None},
]


@pytest.fixture()
def records(tmp_path: Path) -> RecordStore:
    store = RecordStore.create(tmp_path / "records.sqlite")
    store.insert([Record(f"r{i}", "t", "a", meta) for i, meta in enumerate(ROWS, 1)])
    store.commit()
    return store


@pytest.mark.parametrize(
    ("text", "rowids"),
    [
        ("product = mobile", [1, 4]),
        ("product != mobile", [2, 3]),  # an entry without the field holds no other value
        ("not product = mobile", [2, 3, 5]),  # the complement: the entry without it too
        ("product in (web, desk) or price > 4", [2, 3, 5]),
        ("price >= 2.5 and price < 4", [2, 3]),
        ("mixed = 1", [1]),  # numbers and text are not the same value
        ("mixed = '1'", [2]),
        ("mixed > 0", [1, 3]),  # text is never greater than a number
        ("not (product = mobile or price <= 2.5)", [3, 5]),
    ],
)
def test_a_filter_selects_by_its_columns(records: RecordStore, text: str, rowids: list) -> None:
    tree = parse_where(text)
    assert tree is not None
    assert records.select(tree).tolist() == rowids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "prodcut = x",
            "unknown filter field 'prodcut': the filterable fields are product, price, mixed",
        ),
        (
            "flag = 1",
            "unknown filter field 'flag': the filterable fields are product, price, mixed",
        ),
        (
            "price = cheap",
            "filter field 'price' holds numbers, not text: compare it with a number, not 'cheap'",
        ),
        (
            "product = 3",
            "filter field 'product' holds text, not numbers: quote the value ('3') to compare "
            "it as text",
        ),
        ("product < 3", "filter field 'product' holds text, not numbers: < compares numbers"),
    ],
)
def test_a_filter_the_index_cannot_run_names_the_fields(
    records: RecordStore, text: str, message: str
) -> None:
    tree = parse_where(text)
    assert tree is not None
    with pytest.raises(FilterError) as caught:
        records.select(tree)
    assert str(caught.value) == message


def test_filterable_fields_and_their_distinct_values(records: RecordStore) -> None:
    assert records.filter_fields() == {
        "product": {"kinds": ["text"], "values": 3},
        "price": {"kinds": ["number"], "values": 5},
        "mixed": {"kinds": ["text", "number"], "values": 3},
    }
    plan = records.connection.execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM records WHERE deleted = 0 AND (f1 = ?)", ("web",)
    ).fetchall()
    assert "USING INDEX records_f1" in " ".join(str(row) for row in plan)


# -- filtered questions, every index type -------------------------------------------------

COUNT, DIM, QUESTIONS = 1500, 32, 12
FILTERS = {  # the selected entry numbers of each filter
    "group = g3": lambda i: i % 10 == 3,  # 10%: scored exactly
    "group != g0 and rare = no": lambda i: i % 10 != 0 and i % 100 != 7,  # ~90%: walked
    "rare = yes": lambda i: i % 100 == 7,  # 1%
    "group in (g1, g2) or n >= 1400": lambda i: i % 10 in (1, 2) or i >= 1400,
}
PARAMS = {"hnsw": {"efConstruction": 40}, "ivfpq": {"nbits": 6}}  # cheaper builds


class Vectors(HashEncoder):
    """Given vectors for known texts (a corpus in clusters), hashed ones for the rest."""

    def __init__(self, rows: dict[str, np.ndarray]) -> None:
        super().__init__(dim=DIM)
        self.rows = rows

    def encode(self, texts, batch_size=None, show_progress=None):  # type: ignore[no-untyped-def]
        vectors = super().encode(texts)
        for i, text in enumerate(texts):
            if text in self.rows:
                vectors[i] = self.rows[text]
        return vectors


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered() -> tuple[Vectors, np.ndarray, np.ndarray, list[Record]]:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((30, DIM))
    corpus = _unit(centers[rng.integers(0, 30, COUNT)] + 0.5 * rng.standard_normal((COUNT, DIM)))
    asked = _unit(
        centers[rng.integers(0, 30, QUESTIONS)] + 0.5 * rng.standard_normal((QUESTIONS, DIM))
    )
    texts = [f"entry number {i}" for i in range(COUNT)]
    known = dict(zip(texts, corpus, strict=True))
    encoder = Vectors({**known, **{f"q{i}": v for i, v in enumerate(asked)}})
    records = [
        Record(
            str(i),
            texts[i],
            f"answer {i}",
            {"group": f"g{i % 10}", "rare": "yes" if i % 100 == 7 else "no", "n": i},
        )
        for i in range(COUNT)
    ]
    return encoder, corpus, asked, records


@pytest.fixture(scope="module", params=list(REGISTRY))
def typed_engine(request, clustered, tmp_path_factory):  # type: ignore[no-untyped-def]
    encoder, _, _, records = clustered
    folder = tmp_path_factory.mktemp(request.param) / "index"
    store = IndexStore.build(
        folder, [records], encoder, index_type=request.param, params=PARAMS.get(request.param)
    )
    yield SearchEngine(store, encoder, SearchConfig(threshold="none", mode="dense"))
    store.close()


def _exact_top(corpus: np.ndarray, question: np.ndarray, chosen: np.ndarray, k: int) -> list[str]:
    scores = corpus[chosen] @ question
    return [str(i) for i in chosen[np.argsort(-scores, kind="stable")[:k]]]


def test_filtered_results_are_the_subsets_exact_ranking(typed_engine, clustered) -> None:  # type: ignore[no-untyped-def]
    """flat: exactly the subset's ranking; the approximate types (and sq8's one-byte
    codes): at least 95% of its top 10. Both sides of `exact_within` are covered."""
    _, corpus, asked, _ = clustered
    kind = typed_engine.store.vectors.type
    sizes = set()
    for text, rule in FILTERS.items():
        chosen = np.array([i for i in range(COUNT) if rule(i)])
        sizes.add(exact_within(len(chosen), COUNT))
        results = typed_engine.query_batch([f"q{i}" for i in range(QUESTIONS)], k=10, where=text)
        found = 0
        for result, question in zip(results, asked, strict=True):
            ids = [hit.id for hit in result.hits]
            assert all(rule(int(i)) for i in ids), text
            expected = _exact_top(corpus, question, chosen, 10)
            if kind == "flat":
                assert ids == expected, text
                wanted = corpus[[int(i) for i in ids]] @ question
                assert [h.score for h in result.hits] == pytest.approx(wanted.tolist(), abs=1e-5)
            found += len(set(ids) & set(expected))
        assert found >= 0.95 * 10 * QUESTIONS, (kind, text, found)
    assert sizes == {True, False}


def test_answered_and_best_score_do_not_depend_on_k(typed_engine) -> None:  # type: ignore[no-untyped-def]
    engine = SearchEngine(typed_engine.store, typed_engine.encoder, SearchConfig(threshold=0.5))
    for where in ("group = g3", "group != g0 and rare = no"):
        for mode in ("dense", "hybrid"):
            seen = {
                (r.answered, r.best_score, r.hits[:1] and r.hits[0].id)
                for k in (1, 3, 10)
                for r in [engine.query("q1", k=k, mode=mode, where=where)]
            }
            assert len(seen) == 1, (where, mode, seen)


def test_every_part_ranks_only_the_selected_entries(clustered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """BM25 and hybrid see only the selection; the lexical and dense rankings are the
    unfiltered ones with the other entries left out (their scores never depend on it)."""
    encoder, _, _, records = clustered
    store = IndexStore.build(tmp_path / "index", [records[:300]], encoder, index_type="flat")
    engine = SearchEngine(store, encoder, SearchConfig(threshold="none"))
    rule = FILTERS["group in (g1, g2) or n >= 1400"]
    where = "group in (g1, g2) or n >= 1400"
    for mode in ("lexical", "dense"):
        every = engine.query("entry number 12", k=300, mode=mode).hits
        kept = [hit.id for hit in every if rule(int(hit.id))][:5]
        assert [
            h.id for h in engine.query("entry number 12", k=5, mode=mode, where=where).hits
        ] == kept
    hybrid = engine.query("entry number 12", k=20, mode="hybrid", where=where)
    assert len(hybrid.hits) == 20 and all(rule(int(hit.id)) for hit in hybrid.hits)
    assert hybrid.hits[0].id == "12" and hybrid.best_score == pytest.approx(1.0, abs=1e-5)
    none = engine.query("entry number 12", k=5, where="n > 5000")
    assert none.hits == [] and not none.answered and none.best_score is None
    store.close()


def test_writes_keep_the_columns_and_info_lists_them(clustered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    encoder, _, _, records = clustered
    store = IndexStore.build(tmp_path / "index", [records[:20]], encoder, index_type="hnsw")
    engine = SearchEngine(store, encoder, SearchConfig(threshold="none", mode="dense"))
    store.add(
        [[Record("new", "entry number 25", "new answer", {"group": "g5", "lang": "de"})]], encoder
    )
    store.delete(["5", "15"])  # hnsw: tombstones
    assert sorted(h.id for h in engine.query("q1", k=10, where="group = g5").hits) == ["new"]
    assert [h.id for h in engine.query("q1", where="lang = de").hits] == ["new"]
    assert store.info()["filters"] == {
        "group": {"kinds": ["text"], "values": 10},
        "rare": {"kinds": ["text"], "values": 2},
        "n": {"kinds": ["number"], "values": 18},
        "lang": {"kinds": ["text"], "values": 1},
    }
    with pytest.raises(FilterError) as caught:
        engine.query("q1", where="x = 1")
    assert str(caught.value) == (
        "unknown filter field 'x': the filterable fields are group, rare, n, lang"
    )
    store.close()


def test_an_index_from_before_filters_still_answers_and_says_to_rebuild(
    clustered,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    encoder, _, _, records = clustered
    store = IndexStore.build(tmp_path / "new", [records[:20]], encoder, index_type="flat")
    store.close()
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "new", old)
    with sqlite3.connect(old / "records.sqlite") as connection:  # as written before filters
        connection.execute("DROP TABLE filter_fields")
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["checksums"]["records.sqlite"] = sha256_of(old / "records.sqlite")
    del manifest["manifest_sha256"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    store = IndexStore.open(old)
    engine = SearchEngine(store, encoder, SearchConfig(threshold="none", mode="dense"))
    assert len(engine.query("q1", k=3).hits) == 3 and store.info()["filters"] is None
    with pytest.raises(FilterError) as caught:
        engine.query("q1", where="group = g1")
    assert str(caught.value) == (
        f"{old} was built before filters: rebuild it with `semsearch index` to filter on its "
        "metadata"
    )
    store.close()
