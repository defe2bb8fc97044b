"""Which layer and which pooling make the best sentence vector from a raw BERT?

`run_sweep` runs the model once per batch with every hidden state and derives every
pooling of every layer (and the usual layer combinations) from that one forward pass,
reusing `semsearch.encoders.pooling`, so each cell is exactly what `--pooling P --layers L`
would encode. Each cell is the Spearman correlation of cosine similarity with the gold
scores of an STS file. `plot_sweep` draws the table as a heatmap (layers x pooling).

Both sentences of a pair go through the same forward pass, so only one cosine per pair
and cell is kept: memory stays small even for the 6,144-dim mean_max of four
concatenated BERT-base layers.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semsearch.config import POOLING_MODES
from semsearch.encoders.base import Encoder, pad_arrays
from semsearch.encoders.bert import RawBert
from semsearch.encoders.pooling import combine_layers, pool
from semsearch.evaluation.common import finite
from semsearch.evaluation.data import StsPairs
from semsearch.evaluation.deps import require
from semsearch.evaluation.metrics import spearman
from semsearch.fingerprint import summary

log = logging.getLogger("semsearch")


@dataclass(frozen=True)
class LayerChoice:
    """One row of the sweep: hidden states to read (0 = embeddings) and how to join them."""

    label: str
    layers: tuple[int, ...]
    combine: str = "concat"


def layer_choices(num_layers: int) -> list[LayerChoice]:
    """Every hidden state 0..L, then the last four (fewer for smaller models) summed and
    concatenated. Layer L-1 is bert-as-service's default (-2); averaging the last four
    ranks like summing them (cosine ignores the scale), so it is left out."""
    rows = []
    for layer in range(num_layers + 1):
        notes = []
        if layer == 0:
            notes.append("embeddings")
        if layer == num_layers - 1:
            notes.append("-2, bert-as-service")
        if layer == num_layers:
            notes.append("-1, last")
        label = f"{layer} ({', '.join(notes)})" if notes else str(layer)
        rows.append(LayerChoice(label, (layer,)))
    last = min(4, num_layers)
    if last >= 2:
        layers = tuple(range(-last, 0))
        rows.append(LayerChoice(f"last {last} summed", layers, "sum"))
        rows.append(LayerChoice(f"last {last} concat", layers, "concat"))
    return rows


@dataclass(frozen=True)
class SweepResult:
    """Spearman (fraction) per layer choice (rows) and pooling (columns); NaN = n/a."""

    file: str
    pairs: int
    model: str
    rows: list[LayerChoice]
    poolings: list[str]
    table: np.ndarray
    truncated: int
    seconds: float
    encoder: dict[str, Any]

    @property
    def best(self) -> tuple[int, int]:
        """(row, column) of the highest Spearman."""
        if np.all(np.isnan(self.table)):
            raise ValueError("no cell of the sweep has a defined Spearman")
        flat = int(np.nanargmax(self.table))
        return divmod(flat, self.table.shape[1])

    def to_json(self) -> dict[str, Any]:
        row, column = self.best
        return {
            "task": "sweep",
            "file": self.file,
            "pairs": self.pairs,
            "model": self.model,
            "poolings": self.poolings,
            "rows": [
                {
                    "label": choice.label,
                    "layers": list(choice.layers),
                    "combine": choice.combine,
                    "spearman": {
                        mode: finite(self.table[r, c]) for c, mode in enumerate(self.poolings)
                    },
                }
                for r, choice in enumerate(self.rows)
            ],
            "best": {
                "label": self.rows[row].label,
                "layers": list(self.rows[row].layers),
                "combine": self.rows[row].combine,
                "pooling": self.poolings[column],
                "spearman": float(self.table[row, column]),
            },
            "truncated": self.truncated,
            "seconds": round(self.seconds, 3),
            "encoder": self.encoder,
        }

    def render(self) -> str:
        """The table as text, Spearman x 100, the best cell marked with '*'."""
        best = self.best
        label_width = max(len("layers"), *(len(choice.label) for choice in self.rows))
        widths = [max(7, len(mode) + 1) for mode in self.poolings]
        lines = [
            f"{'layers':<{label_width}}"
            + "".join(f"{mode:>{w + 1}}" for mode, w in zip(self.poolings, widths, strict=True))
        ]
        for r, choice in enumerate(self.rows):
            cells = []
            for c, width in enumerate(widths):
                value = self.table[r, c]
                text = "n/a" if math.isnan(value) else f"{100 * value:.2f}"
                mark = "*" if (r, c) == best else " "
                cells.append(f"{text:>{width}}{mark}")
            lines.append(f"{choice.label:<{label_width}}" + "".join(cells))
        return "\n".join(lines)


def run_sweep(
    encoder: Encoder, pairs: StsPairs, *, show_progress: bool | None = None
) -> SweepResult:
    """Score every (layers, pooling) cell on `pairs` with one forward pass per batch of
    pairs (both sentences of a pair in the same batch), on the encoder's torch model."""
    started = time.perf_counter()
    model = encoder.torch_model
    if not isinstance(model, RawBert):
        raise TypeError("a layer sweep needs a raw BERT encoder (kind 'bert')")
    num_layers = model.num_layers
    rows = layer_choices(num_layers)
    poolings = [mode for mode in POOLING_MODES if mode != "pooler" or model.has_pooler]
    count = len(pairs)
    tokens = encoder.tokenize([*pairs.sentence1, *pairs.sentence2])
    truncated = encoder.truncated
    if truncated:
        log.warning(
            "%d of %d sentences were longer than %d tokens and were truncated",
            truncated,
            2 * count,
            encoder.max_seq_length,
        )
    longest = [
        max(len(tokens[i]["input_ids"]), len(tokens[count + i]["input_ids"])) for i in range(count)
    ]
    order = np.argsort(-np.asarray(longest), kind="stable")
    step = max(1, encoder.config.batch_size // 2)  # two sentences per pair
    similarities = np.full((len(rows), len(poolings), count), np.nan)
    pad_id = encoder.tokenizer.pad_id
    skip_special = encoder.config.skip_special_tokens
    if show_progress is None:
        show_progress = sys.stderr.isatty() and count > step
    with (
        torch.inference_mode(),
        tqdm(
            total=count, disable=not show_progress, unit="pair", desc="sweep", file=sys.stderr
        ) as progress,
    ):
        for start in range(0, count, step):
            chosen = order[start : start + step]
            size = len(chosen)
            arrays = pad_arrays(
                [tokens[i] for i in chosen] + [tokens[count + i] for i in chosen], pad_id
            )
            batch = {key: torch.from_numpy(value).to(model.device) for key, value in arrays.items()}
            output = model.backbone(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"),
                output_hidden_states=True,
            )
            special = batch.get("special_tokens_mask") if skip_special else None
            for r, choice in enumerate(rows):
                states = combine_layers(output.hidden_states, choice.layers, choice.combine)
                for c, mode in enumerate(poolings):
                    if mode == "pooler":
                        if choice.layers != (num_layers,):
                            continue  # the pooler reads the last layer's [CLS] only
                        vectors = output.pooler_output
                    else:
                        vectors = pool(
                            states, batch["attention_mask"], mode, special_tokens_mask=special
                        )
                    unit = torch.nn.functional.normalize(vectors.float(), p=2, dim=1).double()
                    unit = unit / unit.norm(dim=1, keepdim=True).clamp(min=1e-12)
                    cosine = (unit[:size] * unit[size:]).sum(dim=1)
                    similarities[r, c, chosen] = cosine.cpu().numpy()
            progress.update(size)
    table = np.full((len(rows), len(poolings)), np.nan)
    for r in range(len(rows)):
        for c in range(len(poolings)):
            if not np.isnan(similarities[r, c]).any():
                table[r, c] = spearman(pairs.scores, similarities[r, c])
    return SweepResult(
        file=str(pairs.path),
        pairs=count,
        model=encoder.config.model,
        rows=rows,
        poolings=poolings,
        table=table,
        truncated=truncated,
        seconds=time.perf_counter() - started,
        encoder=summary(
            encoder.fingerprint,
            ("kind", "model", "weights_sha256", "skip_special_tokens", "max_seq_length"),
        ),
    )


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """Write the sweep as a PNG heatmap: layers down, pooling across, Spearman x 100 in the
    cells, the best cell boxed in red. Uses matplotlib's Agg canvas (no display needed)."""
    require("matplotlib", "the sweep's heatmap")
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    path = Path(path)
    values = 100 * result.table
    n_rows, n_cols = values.shape
    figure = Figure(figsize=(1.15 * n_cols + 3.6, 0.42 * n_rows + 1.9), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    palette = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    span = (high - low) or 1.0
    image = axes.imshow(
        np.ma.masked_invalid(values), cmap=palette, aspect="auto", vmin=low, vmax=low + span
    )
    axes.set_xticks(range(n_cols), labels=result.poolings)
    axes.set_yticks(range(n_rows), labels=[choice.label for choice in result.rows])
    axes.set_xlabel("pooling")
    axes.set_ylabel("layers (hidden state; 0 = embeddings)")
    best = result.best
    for r in range(n_rows):
        for c in range(n_cols):
            value = values[r, c]
            if math.isnan(value):
                axes.text(c, r, "n/a", ha="center", va="center", fontsize=8, color="#666666")
                continue
            dark = (value - low) / span < 0.55  # viridis is dark at the low end
            axes.text(
                c,
                r,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=9 if (r, c) == best else 8,
                fontweight="bold" if (r, c) == best else "normal",
                color="white" if dark else "black",
            )
    axes.add_patch(
        Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)
    )
    figure.colorbar(image, ax=axes, label="Spearman x 100")
    model = Path(result.model).name or result.model
    axes.set_title(
        f"{model} as raw BERT: STS Spearman x 100 of cosine similarity\n"
        f"{Path(result.file).name}, {result.pairs} pairs; best (red box): "
        f"{result.rows[best[0]].label} / {result.poolings[best[1]]} = {values[best]:.2f}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
