"""What the CLI tells people on stderr: errors in terms of its own options, and the
library's notes (logged to the `semsearch` logger) as `semsearch: ...` lines."""

from __future__ import annotations

import logging
import sys

from semsearch.errors import SemsearchError

FLAGS = {
    "kind": "--encoder",
    "model": "--model",
    "pooling": "--pooling",
    "layers": "--layers",
    "layer_combine": "--layer-combine",
    "skip_special_tokens": "--skip-special",
    "max_seq_length": "--max-seq-length",
    "device": "--device",
    "batch_size": "--batch-size",
    "backend": "--backend",
    "threads": "--threads",
    "index_type": "--index-type",
    "engine": "--engine",
    "address": "--address",
    "workers": "--workers",
    "gpus_per_worker": "--gpus-per-worker",
    "text_field": "--text-field",
    "label_field": "--label-field",
    "delimiter": "--delimiter",
    "header": "--no-header",
    "k": "-k",
    "threshold": "--threshold",
    "target_precision": "--target-precision",
    "max_out_of_scope": "--max-out-of-scope",
    "mode": "--mode",
    "where": "--where",
    "rerank": "--rerank",
    "fusion": "--fusion",
    "dense_weight": "--dense-weight",
    "merge": "--merge",
    "limit": "--limit",
    "limit_train": "--limit-train",
    "api_key": "--api-key",
    "port": "--port",
    "max_batch_tokens": "--max-batch-tokens",
    "piece_share": "--piece-share",
    "max_connections": "--max-connections",
    "header_timeout": "--header-timeout",
    "body_timeout": "--body-timeout",
    "keep_alive_timeout": "--keep-alive-timeout",
    "output": "--output",
    "strict": "--strict",
    "pairs": "--pairs",
    "base": "--base",
    "epochs": "--epochs",
    "lr": "--lr",
    "hard_negatives": "--hard-negatives",
    "eval_split": "--eval-split",
}
"""The option that sets each library setting an error may name."""


def error_line(exc: SemsearchError) -> str:
    """The library's message, and the command-line option that sets the setting at fault."""
    flag = FLAGS.get(exc.setting or "")
    return f"{exc} (option {flag})" if flag else str(exc)


class _Notes(logging.Handler):
    """The library's notes (export progress, truncation counts) as `semsearch: ...` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"semsearch: {record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def show_library_notes() -> None:
    """Route the `semsearch` logger to stderr (once), at INFO, and nothing else: only
    `semsearch: ...` lines reach a user. Its records stop there (no second copy through
    the root logger), and the root logger gets a handler that drops everything, so a
    library that calls `logging.basicConfig()` while a command runs (ONNX Runtime's
    quantiser does, at import) configures nothing: no `INFO:...` or `DEBUG:bm25s:...`."""
    logger = logging.getLogger("semsearch")
    if not any(isinstance(handler, _Notes) for handler in logger.handlers):
        logger.addHandler(_Notes())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def quiet_notes(quiet: bool) -> bool:
    """--quiet: no progress notes (exporting, done in ...); warnings about the data
    (short rows, truncated texts) and errors still show."""
    if quiet:
        logging.getLogger("semsearch").setLevel(logging.WARNING)
    return quiet
