"""`calibrate`: choose an index's threshold on labelled questions and store it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from semsearch.cli.options import DeviceOpt, JsonOpt


def calibrate(
    index_path: Annotated[Path, typer.Argument(help="Index folder built by `semsearch index`.")],
    labelled: Annotated[
        Path,
        typer.Argument(
            help="A .csv, .tsv or .jsonl file with question and id (empty id: should not "
            "be answered)."
        ),
    ],
    target_precision: Annotated[
        float | None,
        typer.Option(
            "--target-precision",
            help="Choose the lowest threshold whose precision on LABELLED is at least this "
            "(default 0.9).",
        ),
    ] = None,
    max_out_of_scope: Annotated[
        float | None,
        typer.Option(
            "--max-out-of-scope",
            help="Instead: the lowest threshold that answers at most this share of the "
            "out-of-scope questions.",
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the curves as a PNG here.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the choice; store nothing.")
    ] = False,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Choose the threshold on labelled questions and store it in the index.

    Prints precision, in-scope answered (coverage) and out-of-scope answered over
    thresholds, picks the lowest that meets the target, and stores it in manifest.json
    (origin "calibrated"; `add` and `delete` keep it) unless --dry-run.

    Example: semsearch calibrate indexes/faq labelled.csv --target-precision 0.9
    """
    from semsearch import calibration
    from semsearch.config import SearchConfig
    from semsearch.errors import InputError
    from semsearch.index import layout, threshold
    from semsearch.params import OFF, shown_threshold
    from semsearch.search.engine import SearchEngine

    target = calibration.Target.of(target_precision, max_out_of_scope)
    data = calibration.read_labelled(labelled)
    if plot is not None:
        from semsearch.evaluation.deps import require

        require("matplotlib", "calibrate's plot")
        if not plot.parent.is_dir():
            raise InputError(f"cannot write the plot: no folder {plot.parent}")
    engine = SearchEngine.open(index_path, device=device, config=SearchConfig(threshold=OFF))
    known = engine.store.get([ident for ident in data.ids if ident is not None])
    unknown = sorted({i for i in data.ids if i is not None and i not in known})
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InputError(
            f"{labelled}: id(s) not in the index: {', '.join(map(repr, unknown[:10]))}{more}"
        )
    if target.max_out_of_scope is not None and all(i is not None for i in data.ids):
        raise InputError(f"{labelled} has no out-of-scope question (an empty id)")
    results = engine.query_batch(data.questions, k=1)  # the top hit is the same at every k
    cosines = [result.best_score for result in results]
    answers = {ident: " ".join(record.answer.split()) for ident, record in known.items()}
    correct = [  # the labelled entry, or one with the same answer (shown once, as `dedupe`)
        bool(result.hits)
        and ident is not None
        and (
            result.hits[0].id == ident or " ".join(result.hits[0].answer.split()) == answers[ident]
        )
        for result, ident in zip(results, data.ids, strict=True)
    ]
    points = calibration.curve(cosines, correct, data.ids)
    chosen = calibration.choose(points, target)
    in_scope = sum(ident is not None for ident in data.ids)
    counts = {
        "questions": len(data.ids),
        "in_scope": in_scope,
        "out_of_scope": len(data.ids) - in_scope,
    }
    if plot is not None:
        calibration.plot(points, chosen, target, plot)
    if not dry_run:
        rule = (
            f"the lowest threshold with {target.describe()} on {counts['questions']} labelled "
            f"questions ({labelled.name}): precision {chosen.precision:.3f}, in-scope "
            f"answered {chosen.coverage:.3f}, out-of-scope answered {chosen.out_of_scope:.3f}"
        )
        engine.store.set_threshold(
            threshold.calibrated(chosen.threshold, rule, engine.store.count, **counts)
        )
    if as_json:
        typer.echo(
            json.dumps(
                {**calibration.to_json(points, chosen, target, counts), "stored": not dry_run}
            )
        )
        return
    typer.echo(
        f"{counts['questions']} labelled questions: {counts['in_scope']} in scope, "
        f"{counts['out_of_scope']} out of scope"
    )
    typer.echo(f"{'threshold':>10}  {'precision':>9}  {'in-scope':>8}  {'out-of-scope':>12}")
    for point in calibration.shown_rows(points, chosen):
        mark = "  <- chosen" if point == chosen else ""
        typer.echo(
            f"{point.threshold:>10.3f}  {point.precision:>9.3f}  {point.coverage:>8.3f}  "
            f"{point.out_of_scope:>12.3f}{mark}"
        )
    where = "dry run: nothing stored" if dry_run else f"stored in {index_path / layout.MANIFEST}"
    stored = shown_threshold(round(chosen.threshold, threshold.DIGITS))
    typer.echo(f"threshold {stored} ({target.describe()}; {where})")
    if plot is not None:
        typer.echo(f"plot written to {plot}")


def register(app: typer.Typer) -> None:
    app.command()(calibrate)
