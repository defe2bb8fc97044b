"""Each index's own hybrid fusion (issue 27) against plain dense, the fixed fusion and the
best fixed weights in hindsight, on every shared retrieval set, with what choosing cost.

For each set one index is built as `semsearch index` builds it (it chooses its fusion
from its own entries, semsearch.search.adaptive); the judged queries are then ranked as
`eval retrieval` ranks them (every document on its own) by the dense part alone, the
fixed fusion (dense views 0.8 + BM25 0.2, the views summed), the index's own choice,
and every cell of a grid of the fusions it chooses among (dense weight 0.3 to 1.0 by
0.1, text share 0 to 1 by 0.25): the best of those is the best fixed weights in
hindsight, picked with the labels. nDCG@10 x 100. The same numbers for one set come
from `semsearch eval retrieval FOLDER --compare`.

    .venv/bin/python bench/adaptive.py            # results in bench/results/adaptive.txt
    .venv/bin/python bench/adaptive.py --smoke    # examples/beir-sample with a tiny model
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import _common

SETS = ("covidqa_faq", "stackfaq", "cranfield")
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_smoke_options(parser)
    parser.add_argument("--out", type=Path, default=None, help="where to write the table")
    args = parser.parse_args()
    from semsearch.config import SearchConfig
    from semsearch.corpus import open_corpus
    from semsearch.encoders import load_encoder
    from semsearch.evaluation.metrics import evaluate_rankings
    from semsearch.evaluation.retrieval import BeirFolder
    from semsearch.index import IndexStore
    from semsearch.search import adaptive, candidates
    from semsearch.search.engine import SearchEngine

    if args.smoke:
        encoder = load_encoder(model=str(_common.smoke_model(args)))
        sets = {"beir-sample": _common.EXAMPLES / "beir-sample"}
    else:
        sets = {name: _common.DATA / name for name in SETS}
        _common.require("bench/adaptive.py", sets.values(), smoke=False)
        encoder = load_encoder()
    load = _common.load_average()
    rows, rules = [], []
    for name, folder in sets.items():
        beir = BeirFolder.open(folder, "test")
        judged = beir.judged
        questions = [beir.queries[q] for q in judged]
        qrels = {q: beir.qrels[q] for q in judged}
        corpus = open_corpus(beir.path)
        fields = {"text": corpus.fields.text, "answer": corpus.fields.answer, "id": "_id"}
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            store = IndexStore.build(
                Path(scratch) / "i", corpus.chunks(4096), encoder, fields=fields,
                choose_fusion=adaptive.choose,
            )  # fmt: skip
            built = time.perf_counter() - started
            chosen = store.manifest.fusion
            assert chosen is not None

            each = SearchConfig(dedupe=False, threshold="none")  # as eval retrieval ranks
            fixed_config = dataclasses.replace(each, dense_weight=0.8)
            ways = {"dense": (each, "dense"), "fixed": (fixed_config, "hybrid"),
                    "own": (each, "hybrid")}  # fmt: skip
            measured = {}
            for way, (config, mode) in ways.items():
                found = SearchEngine(store, encoder, config).query_batch(questions, 10, mode=mode)
                rankings = {
                    q: [hit.id for hit in result.hits]
                    for q, result in zip(judged, found, strict=True)
                }
                measured[way] = 100 * evaluate_rankings(rankings, qrels)[0]["ndcg@10"]
            dense, fixed, own = measured["dense"], measured["fixed"], measured["own"]
            vectors = encoder.encode(questions)
            hindsight = {}
            shares = SHARES if store.second is not None else (1.0,)
            for share in shares:
                for weight in WEIGHTS:  # the index's fusion set in memory: ranked as chosen
                    cell = {**chosen, "dense_weight": weight, "text_share": share}
                    store.manifest = dataclasses.replace(store.manifest, fusion=cell)
                    ranked = candidates.ranked(store, vectors, questions, each, "hybrid", 10)
                    ids = store.records_for(c.rowid for hits in ranked for c in hits)
                    rankings = {
                        q: [ids[c.rowid].id for c in hits]
                        for q, hits in zip(judged, ranked, strict=True)
                    }
                    ndcg10 = evaluate_rankings(rankings, qrels)[0]["ndcg@10"]
                    hindsight[(weight, share)] = 100 * ndcg10
            store.close()
        (weight, share), best = max(hindsight.items(), key=lambda item: item[1])
        picked = f"dense {chosen['dense_weight']:.2f}, text {chosen['text_share']:.1f}"
        rows.append(
            f"| {name} | {dense:.2f} | {fixed:.2f} | **{own:.2f}** ({chosen['origin']}: "
            f"{picked}) | {best:.2f} (dense {weight:.1f}, text {share:.2f}) | "
            f"{built:.1f} ({chosen['seconds']:.1f}) |"
        )
        rules.append(f"- {name}: {chosen['rule']}")
    lines = [
        f"$ {' '.join(['bench/adaptive.py', *sys.argv[1:]])}",
        f"nDCG@10 x 100, one index per set; load average {load:.1f} at the start "
        "(2 CPU cores; the seconds are wall time on a shared machine)",
        "",
        "| set | dense | fixed hybrid | adaptive (the index's choice) | best fixed weights "
        "in hindsight | build s (of which choosing) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "What each index chose and why:",
        *rules,
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = _common.results_path("bench/adaptive.py", args.out, "adaptive.txt", args.smoke)
    _common.write_result(out, text)
    print(f"written: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
