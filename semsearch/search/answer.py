"""The one "answered" rule and `best_score`, the same at every k and in every face.

A question is judged on its top-ranked hit, the one a bot shows first: `best_score` is
that hit's cosine (`dense`: the cosine with the entry's indexed text, never a fused or
normalised score), and the question is answered when a threshold is in force and that
cosine is at or above it, or when none is and it has a hit at all. Since the ranking is
one fixed order per question (semsearch.search.candidates), the top hit, and so the
decision, is the same whatever number of hits is asked for. `semsearch calibrate`
chooses thresholds on exactly this cosine.

An answered question lists its hits whose cosine clears the threshold (the top one
does), renumbered; an unanswered one lists none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from semsearch.params import INDEX, OFF, parse_threshold
from semsearch.search.results import Hit, SearchResult


def threshold_in_force(
    given: float | str | None, configured: float | str | None, own: float | None
) -> float | None:
    """The threshold that judges a question: the request's, else the configuration's,
    else the index's own (`own`; None: it has none). "none" turns it off at the level
    that says it; "index" names the index's own."""
    for choice in (given, configured):
        parsed = parse_threshold(choice)
        if parsed is None:
            continue
        if parsed == OFF:
            return None
        if parsed == INDEX:
            return own
        assert isinstance(parsed, float)
        return parsed
    return own


def best_score(ranked: Sequence[Hit]) -> float | None:
    """The top-ranked hit's cosine; None when there is no hit."""
    return ranked[0].cosine if ranked else None


def clears(best: float | None, threshold: float | None) -> bool:
    """The rule itself, on the top hit's cosine `best` (None: no hit)."""
    return best is not None and (threshold is None or best >= threshold)


def answered(ranked: Sequence[Hit], threshold: float | None) -> bool:
    """Whether the top-ranked hit clears the threshold (or exists, with none in force)."""
    return clears(best_score(ranked), threshold)


def result(
    question: str, ranked: Sequence[Hit], threshold: float | None, mode: str | None
) -> SearchResult:
    """The SearchResult of one question from its ranked hits (best first)."""
    if not answered(ranked, threshold):
        return SearchResult(question, [], False, threshold, mode, best_score(ranked))
    shown = [hit for hit in ranked if threshold is None or hit.cosine >= threshold]
    hits = [dataclasses.replace(hit, rank=i) for i, hit in enumerate(shown, 1)]
    return SearchResult(question, hits, True, threshold, mode, best_score(ranked))
