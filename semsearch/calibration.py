"""Choosing an index's threshold on labelled questions (`semsearch calibrate`).

Each labelled question names the entry that answers it (`id`), or none (an empty id: it
should not be answered). Each gets its top hit (the default ranking, no threshold) and
that hit's cosine, its `best_score`. At a threshold T a question is answered by the rule
every search applies (semsearch.search.answer: the top hit's cosine is >= T), and

- precision = correct answers / all answered questions (in scope or not), where an
  answer is correct when the question is in scope and its top hit is the labelled entry
  (or one with the same answer: results show each answer once);
- coverage = answered in-scope questions / in-scope questions;
- out_of_scope = answered out-of-scope questions / out-of-scope questions.

The candidates are every distinct top-1 cosine, plus -1 and 1; the chosen threshold is
the lowest that meets the target on the labelled questions (precision >= target, or
out-of-scope answered <= target) while answering at least one question.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from semsearch.errors import ConfigError, InputError
from semsearch.regular import MAX_FILE_BYTES, read_regular
from semsearch.search.answer import clears

DEFAULT_PRECISION = 0.9


@dataclass(frozen=True)
class Point:
    """One threshold's figures on the labelled questions."""

    threshold: float
    precision: float  # 1.0 when nothing is answered (nothing answered wrongly)
    coverage: float
    out_of_scope: float
    answered: int


@dataclass(frozen=True)
class Target:
    """What the chosen threshold must meet: one of the two."""

    precision: float | None = None
    max_out_of_scope: float | None = None

    @classmethod
    def of(cls, precision: float | None, max_out_of_scope: float | None) -> Target:
        if precision is not None and max_out_of_scope is not None:
            raise ConfigError(
                "give a target precision or a most out-of-scope answered rate, not both",
                setting="max_out_of_scope",
            )
        if max_out_of_scope is None:
            precision = DEFAULT_PRECISION if precision is None else precision
            if not 0.0 < precision <= 1.0:
                raise ConfigError(
                    f"target precision {precision} is not in (0, 1]", setting="target_precision"
                )
            return cls(precision=precision)
        if not 0.0 <= max_out_of_scope <= 1.0:
            raise ConfigError(
                f"out-of-scope rate {max_out_of_scope} is not in [0, 1]",
                setting="max_out_of_scope",
            )
        return cls(max_out_of_scope=max_out_of_scope)

    def met(self, point: Point) -> bool:
        if point.answered == 0:
            return False
        if self.precision is not None:
            return point.precision >= self.precision
        assert self.max_out_of_scope is not None
        return point.out_of_scope <= self.max_out_of_scope

    def describe(self) -> str:
        if self.precision is not None:
            return f"precision >= {self.precision}"
        return f"out-of-scope answered <= {self.max_out_of_scope}"


@dataclass(frozen=True)
class Labelled:
    """Questions and the id that answers each (None: should not be answered)."""

    path: Path
    questions: list[str]
    ids: list[str | None]


def read_labelled(path: str | Path) -> Labelled:
    """A .csv, .tsv or .jsonl file with `question` and `id` columns (keys)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise InputError(f"{path}: give a .csv, .tsv or .jsonl file with question and id")
    try:
        text = read_regular(path, MAX_FILE_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    rows: list[dict[str, Any]] = []
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}, line {number}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}, line {number}: not a JSON object")
            rows.append(row)
    else:
        reader = csv.DictReader(text.splitlines(), delimiter="," if suffix == ".csv" else "\t")
        names = [name.strip().lower() for name in reader.fieldnames or []]
        missing = [name for name in ("question", "id") if name not in names]
        if missing:
            raise InputError(
                f"{path} has no {' and no '.join(missing)} column (columns: "
                f"{', '.join(reader.fieldnames or []) or 'none'}): give question and id"
            )
        rows = [{(k or "").strip().lower(): v for k, v in row.items()} for row in reader]
    questions: list[str] = []
    ids: list[str | None] = []
    for number, row in enumerate(rows, 1):
        question, ident = row.get("question"), row.get("id")
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{path}: row {number} has no question")
        if ident is not None and not isinstance(ident, str | int):
            raise InputError(f"{path}: row {number} has an id that is not text")
        questions.append(question.strip())
        ids.append(str(ident).strip() or None if ident is not None else None)
    if not questions:
        raise InputError(f"{path} holds no labelled questions")
    return Labelled(path, questions, ids)


def curve(
    cosines: Sequence[float | None], correct: Sequence[bool], ids: Sequence[str | None]
) -> list[Point]:
    """Precision, coverage and out-of-scope answered at every candidate threshold,
    lowest first. `cosines`: each question's best_score (None: no hit); `correct`:
    whether each question's top hit is its labelled id."""
    inside = [ident is not None for ident in ids]
    n_in, n_out = sum(inside), len(ids) - sum(inside)
    points = []
    for threshold in sorted({-1.0, 1.0, *(float(c) for c in cosines if c is not None)}):
        answered = [clears(cosine, threshold) for cosine in cosines]
        count = sum(answered)
        right = sum(a and c for a, c in zip(answered, correct, strict=True))
        covered = sum(a and i for a, i in zip(answered, inside, strict=True))
        outside = count - covered
        points.append(
            Point(
                threshold=threshold,
                precision=right / count if count else 1.0,
                coverage=covered / n_in if n_in else 0.0,
                out_of_scope=outside / n_out if n_out else 0.0,
                answered=count,
            )
        )
    return points


def choose(points: Sequence[Point], target: Target) -> Point:
    """The lowest threshold that meets the target on the labelled questions."""
    for point in points:
        if target.met(point):
            return point
    raise InputError(
        f"no threshold reaches {target.describe()} on these questions: nothing was stored"
    )


def shown_rows(points: Sequence[Point], chosen: Point, rows: int = 12) -> list[Point]:
    """A readable sample of the curve: evenly spaced points, with the chosen one."""
    step = max(1, len(points) // rows)
    sample = {*points[::step], points[-1], chosen}
    return sorted(sample, key=lambda point: point.threshold)


def to_json(
    points: Sequence[Point], chosen: Point, target: Target, counts: dict[str, int]
) -> dict[str, Any]:
    """One JSON object: the chosen threshold, the target, the counts and the curve."""
    return {
        "threshold": chosen.threshold,
        "target": {k: v for k, v in asdict(target).items() if v is not None},
        "chosen": asdict(chosen),
        "counts": counts,
        "curve": [asdict(point) for point in points],
    }


def plot(points: Sequence[Point], chosen: Point, target: Target, path: Path) -> None:
    """A PNG of the three curves over the threshold, the chosen one marked. Uses
    matplotlib's Agg canvas (no display needed)."""
    from semsearch.evaluation.deps import require

    require("matplotlib", "calibrate's plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs = [point.threshold for point in points]
    axes.step(xs, [p.precision for p in points], where="post", label="precision")
    axes.step(xs, [p.coverage for p in points], where="post", label="in-scope answered")
    axes.step(xs, [p.out_of_scope for p in points], where="post", label="out-of-scope answered")
    axes.axvline(
        chosen.threshold, color="red", linestyle="--", label=f"chosen {chosen.threshold:.3f}"
    )
    axes.set_xlabel("threshold (top-1 cosine)")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(f"calibration: {target.describe()}")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
