"""An index's own hybrid fusion, as its manifest keeps it ("fusion").

`semsearch index` chooses it from the corpus itself, without labels
(semsearch.search.adaptive): the dense views' share against BM25 (`dense_weight`) and,
where entries have a second view, the indexed text's share of the dense views against
it (`text_share`; the rest is the second view's). Both parts are min-max normalised over
each question's candidates, as the fixed fusion always did. `origin` says whether the
corpus's pseudo-questions moved the choice off the default ("estimated") or not
("default": the default fusion kept, as the `rule` says why).

`add` and `delete` keep the choice made at build time (it describes the kind of corpus,
which a few entries do not change; `semsearch index` chooses again). An index built
before the choice existed has none and keeps the fixed fusion of semsearch.config.
"""

from __future__ import annotations

import math
from typing import Any

ORIGINS = ("estimated", "default")
NORMALISATIONS = ("minmax",)


def _share(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"fusion.{key} must be a number"
    if not 0.0 <= value <= 1.0:
        return f"fusion.{key} {value} is not in [0, 1]"
    return ""


def problem(data: Any) -> str:
    """What is wrong with a manifest's "fusion" object, naming the key; "" when nothing is."""
    if not isinstance(data, dict):
        return "fusion must be an object"
    found = _share(data, "dense_weight") or _share(data, "text_share")
    if found:
        return found
    if data.get("normalisation") not in NORMALISATIONS:
        return f"fusion.normalisation must be one of {', '.join(NORMALISATIONS)}"
    if data.get("origin") not in ORIGINS:
        return f"fusion.origin must be one of {', '.join(ORIGINS)}"
    if not isinstance(data.get("rule"), str):
        return "fusion.rule must be a string"
    return ""


def weights(data: dict[str, Any] | None) -> tuple[float, float] | None:
    """(dense_weight, text_share) of a manifest's fusion; None for an index without one."""
    if data is None:
        return None
    return float(data["dense_weight"]), float(data["text_share"])


def describe(data: dict[str, Any] | None, count: int) -> str:
    """One line for `semsearch info`."""
    if data is None:
        return (
            "none kept (built before each index chose its own): the fixed fusion "
            "(dense views 0.8, BM25 0.2); `semsearch index` rebuilds it to choose"
        )
    text = (
        f"dense views {data['dense_weight']:.2f} (text {data['text_share']:.1f} of them), "
        f"BM25 {1 - data['dense_weight']:.2f}, {data['normalisation']}; {data['rule']}"
    )
    then = data.get("count")
    if isinstance(then, int) and then != count:
        text += f"; chosen on {then} entries, kept by add/delete (`semsearch index` chooses again)"
    return text


def describe_in_force(fusion: dict[str, Any], count: int) -> str:
    """The fusion hybrid ranked with, in words (eval retrieval's report of
    `{"chosen": ..., "in_force": ...}`): the index's own, or the settings'."""
    chosen = describe(fusion.get("chosen"), count)
    rule = fusion.get("in_force", {})
    if rule.get("source") != "settings":
        return chosen
    given = "rrf" if rule["fusion"] == "rrf" else f"convex, dense weight {rule['dense_weight']}"
    return f"{given}, from the settings (the index's own: {chosen})"
