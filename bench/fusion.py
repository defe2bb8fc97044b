"""How hybrid search's dense weight was chosen: nDCG@10 over a grid of weights.

On each shared retrieval set (COVID-QA FAQ, StackFAQ), twice: as it is (question and
answer: two dense views and BM25) and with the answers alone as documents (one dense
view and BM25, a stand-in for corpora of passages). One index per case, built as
`semsearch index` builds it; every weight ranks the same candidates.

    .venv/bin/python bench/fusion.py        # results in bench/results/fusion.txt
    .venv/bin/python bench/fusion.py --smoke   # examples/beir-sample with a tiny model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _common
import numpy as np

SETS = ("covidqa_faq", "stackfaq")
WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_smoke_options(parser)
    args = parser.parse_args()
    from semsearch.config import SearchConfig
    from semsearch.corpus import open_corpus
    from semsearch.encoders import load_encoder
    from semsearch.evaluation.metrics import evaluate_rankings
    from semsearch.evaluation.retrieval import BeirFolder
    from semsearch.index import IndexStore
    from semsearch.search.engine import SearchEngine

    if args.smoke:
        encoder = load_encoder(model=str(_common.smoke_model(args)))
        sets = {"beir-sample": _common.EXAMPLES / "beir-sample"}
    else:
        sets = {name: _common.DATA / name for name in SETS}
        _common.require("bench/fusion.py", sets.values(), smoke=False)
        encoder = load_encoder()
    table: dict[str, list[float]] = {}
    for name, folder in sets.items():
        beir = BeirFolder.open(folder, "test")
        questions = [beir.queries[q] for q in beir.judged]
        qrels = {q: beir.qrels[q] for q in beir.judged}
        for case, text_field in (("question+answer", None), ("answers alone", "text")):
            corpus = open_corpus(beir.path, text_field=text_field)
            fields = {"text": corpus.fields.text, "answer": corpus.fields.answer}
            with tempfile.TemporaryDirectory() as scratch:
                store = IndexStore.build(
                    Path(scratch) / "i", corpus.chunks(4096), encoder, fields=fields
                )
                row = []
                for weight in WEIGHTS:  # as `eval retrieval` ranks: every document on its own
                    config = SearchConfig(dense_weight=weight, dedupe=False, threshold="none")
                    found = SearchEngine(store, encoder, config).query_batch(questions, 100)
                    rankings = {
                        q: [hit.id for hit in result.hits]
                        for q, result in zip(beir.judged, found, strict=True)
                    }
                    row.append(100 * evaluate_rankings(rankings, qrels)[0]["ndcg@10"])
                store.close()
            table[f"{name}, {case}"] = row
    print(f"$ {' '.join(sys.argv)}")
    print("nDCG@10 x 100 by dense weight (hybrid, convex fusion; 1.0 = dense views only)")
    print(f"{'set':<34}" + "".join(f"{w:>7.1f}" for w in WEIGHTS))
    for label, row in table.items():
        print(f"{label:<34}" + "".join(f"{v:>7.2f}" for v in row))
    means = np.mean(list(table.values()), axis=0)
    print(f"{'mean':<34}" + "".join(f"{v:>7.2f}" for v in means))
    print(f"best mean: dense weight {WEIGHTS[int(np.argmax(means))]}")


if __name__ == "__main__":
    main()
