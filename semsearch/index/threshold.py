"""An index's own "no answer" threshold, estimated without labels.

Questions that an index cannot answer still reach some cosine against it, and how high
depends on the model and on the entries. The package ships a few hundred everyday
generic questions (semsearch/data/generic_questions.txt) as a sample of such questions:
at `index` time they are encoded with the index's encoder, each gets its top-1 cosine
against the live entries, and the threshold is

    clip(quantile_0.99(top-1 cosines) + 0.02, floor, ceiling)

with the floor and ceiling of the model (BOUNDS, one place); a model not measured gets
no floor or ceiling, and its rule says so. Measured with bench/no_answer.py on the
shared FAQ sets (bench/results/no_answer.txt). The generic vectors are kept in the
folder (layout.GENERIC, checksummed like every part) so `add` and `delete`, which may
have no encoder, estimate again from the entries they leave. A threshold set by
`semsearch calibrate` (origin "calibrated") is kept as it is by later writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semsearch.cache import cache_root
from semsearch.index import layout
from semsearch.index.live import live_top
from semsearch.params import shown_threshold

if TYPE_CHECKING:
    from semsearch.index.store import IndexStore
    from semsearch.index.types import VectorIndex
    from semsearch.index.writes import Staged

QUANTILE = 0.99
MARGIN = 0.02
DIGITS = 6  # the stored value is rounded to this many places
ORIGINS = ("estimated", "calibrated")

BOUNDS: dict[str, tuple[float, float, str]] = {
    # weights_sha256 -> (floor, ceiling, model): from bench/results/no_answer.txt
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db": (
        0.35,
        0.45,
        "all-MiniLM-L6-v2",
    ),
}
"""The models whose cosine scale was measured, and the bounds that keep the estimate
within what worked there; other models (raw BERT's cosines sit high) get none."""


def generic_questions() -> list[str]:
    """The packaged generic questions, one a line."""
    text = resources.files("semsearch").joinpath("data/generic_questions.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def generic_vectors(encoder: Any, batch_size: int | None = None) -> np.ndarray:
    """The encoder's vectors of the generic questions, read from the cache where an
    earlier build on this machine made them with the same encoder ($SEMSEARCH_CACHE/
    generic/): the 483 questions cost MiniLM 1.4 s of CPU, more than the 106 entries of
    the demo FAQ. Only semsearch's own Encoder is cached, under its fingerprint and the
    hash of its model folder's other files; any other encoder object is asked each time."""
    questions = generic_questions()
    path = _generic_file(encoder, questions)
    if path is not None:
        with contextlib.suppress(OSError, ValueError):
            stored = np.load(path, allow_pickle=False)
            if stored.dtype == np.float32 and stored.shape == (len(questions), encoder.dim):
                return stored
    vectors = np.ascontiguousarray(encoder.encode(questions, batch_size=batch_size), np.float32)
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the next build time
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npy")
            np.save(partial, vectors)
            os.replace(partial, path)
    return vectors


def _generic_file(encoder: Any, questions: list[str]) -> Path | None:
    from semsearch.encoders.base import Encoder
    from semsearch.models import settings_sha256

    if type(encoder) is not Encoder:  # the exact class: a subclass may encode otherwise
        return None
    described = {
        "fingerprint": encoder.fingerprint,
        "settings_sha256": settings_sha256(encoder.folder),
        "questions": questions,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return cache_root() / "generic" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npy"


def save_generic(folder: Path, vectors: np.ndarray) -> None:
    np.save(folder / layout.GENERIC, np.ascontiguousarray(vectors, dtype=np.float32))


def load_generic(folder: Path) -> np.ndarray:
    return np.load(folder / layout.GENERIC, allow_pickle=False)


def top_cosines(vectors: VectorIndex, queries: np.ndarray, dead: set[int]) -> np.ndarray:
    """Each query's best score among the live vectors (none when there are none)."""
    total = vectors.ntotal
    if total - len(dead) <= 0 or len(queries) == 0:
        return np.zeros(0, dtype=np.float64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best = [hits[0][1] for hits in live_top(vectors, queries, 1, dead) if hits]
    return np.array(best, dtype=np.float64)


def estimate(top: np.ndarray, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The threshold object the manifest stores, from the generic questions' top-1s."""
    raw = float(np.quantile(top, QUANTILE))
    bounds = BOUNDS.get(str(fingerprint.get("weights_sha256")))
    value = raw + MARGIN
    floor: float | None = None
    ceiling: float | None = None
    if bounds is not None:
        floor, ceiling, model = bounds
        value = min(max(value, floor), ceiling)
        clipped = f", clipped to [{floor}, {ceiling}] (measured for {model})"
    else:
        clipped = " (no floor or ceiling: this model's cosine scale was not measured)"
    value = round(min(max(value, -1.0), 1.0), DIGITS)
    rule = (
        f"the {QUANTILE} quantile of {len(top)} generic questions' top-1 cosines "
        f"({raw:.3f}) + {MARGIN}{clipped}"
    )
    return {
        "value": value,
        "origin": "estimated",
        "rule": rule,
        "quantile": QUANTILE,
        "margin": MARGIN,
        "floor": floor,
        "ceiling": ceiling,
        "questions": len(top),
        "raw_quantile": round(raw, DIGITS),
    }


def refreshed(
    current: dict[str, Any] | None,
    generic: np.ndarray | None,
    vectors: VectorIndex,
    dead: set[int],
    fingerprint: dict[str, Any],
) -> dict[str, Any] | None:
    """The threshold after a write: estimated again from the entries left, except a
    calibrated one (kept) and an index without one or without live entries."""
    if current is None or generic is None or current.get("origin") != "estimated":
        return current
    top = top_cosines(vectors, generic, dead)
    return estimate(top, fingerprint) if len(top) else current


def carried(
    previous: dict[str, Any] | None,
    previous_encoder: dict[str, Any],
    encoder: dict[str, Any],
    count: int,
    path: Path,
) -> tuple[dict[str, Any] | None, str]:
    """For a build replacing an index whose threshold was `previous`: the calibrated
    threshold to keep (where the encoder's cosines are still comparable) and the note
    that says so, or None and the note that it was reset; (None, "") where there was
    nothing calibrated to keep."""
    from semsearch.fingerprint import differences

    if previous is None or previous.get("origin") != "calibrated":
        return None, ""
    value = previous["value"]
    if differences(previous_encoder, encoder):
        return None, (
            f"the index this build replaces had a calibrated threshold ({value}); the "
            "encoder changed, so the new index has its own estimate: run `semsearch "
            f"calibrate {path} LABELLED` to calibrate it again"
        )
    then = previous.get("calibrated_count")
    change = (
        f"; it was calibrated on {then} entries and the index now has {count}: run "
        f"`semsearch calibrate {path} LABELLED` again if the answers changed"
        if isinstance(then, int) and then != count
        else ""
    )
    kept = f"kept the calibrated threshold {value} of the index this build replaces"
    return previous, kept + change


def calibrated(value: float, rule: str, count: int, **details: Any) -> dict[str, Any]:
    """The threshold object for a value chosen on labelled questions."""
    return {
        "value": round(float(value), DIGITS),
        "origin": "calibrated",
        "rule": rule,
        "calibrated_count": count,
        **details,
    }


def problem(data: Any) -> str:
    """What is wrong with a manifest's threshold object; "" when nothing is."""
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "threshold.value must be a number"
    if not -1.0 <= value <= 1.0:
        return f"threshold.value {value} is not a cosine in [-1, 1]"
    if data.get("origin") not in ORIGINS:
        return f"threshold.origin must be one of {', '.join(ORIGINS)}"
    if not isinstance(data.get("rule"), str):
        return "threshold.rule must be a string"
    return ""


def value_of(threshold: dict[str, Any] | None) -> float | None:
    """The manifest threshold's value, or None (an index from before thresholds)."""
    return None if threshold is None else float(threshold["value"])


def describe(threshold: dict[str, Any] | None, count: int) -> str:
    """One line for `semsearch info`."""
    if threshold is None:
        return "none (built before per-index thresholds: `semsearch index` or `calibrate` sets one)"
    text = f"{shown_threshold(value_of(threshold))} ({threshold['origin']}: {threshold['rule']})"
    then = threshold.get("calibrated_count")
    if threshold["origin"] == "calibrated" and isinstance(then, int) and then != count:
        text += f"; calibrated on {then} entries, the index now has {count}: calibrate again"
    return text


def kept(
    store: IndexStore, staged: Staged, chosen: dict[str, Any] | None
) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """For a write to `store` leaving `staged`: the generic vectors to keep and the
    threshold to store (`chosen`, or the current one estimated again)."""
    generic = load_generic(store.path) if store.parts.generic else None
    if chosen is not None:
        return generic, chosen
    dead = staged.records.tombstones()
    current = store.manifest.threshold
    return generic, refreshed(current, generic, staged.vectors, dead, store.manifest.encoder)
