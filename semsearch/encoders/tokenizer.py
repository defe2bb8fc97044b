"""Word-piece ids for the batching loop, from the Rust `tokenizers` library.

A fast tokenizer is called through its Rust backend: the same ids as transformers'
wrapper, without importing transformers and without the wrapper's per-call cost, which
is a visible part of one question's time. A model with only a slow (Python) tokenizer
goes through transformers' wrapper instead.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

Rows = list[dict[str, list[int]]]


class Tokenizer(Protocol):
    """Texts (or text pairs) in, one dict of id lists per text out, with [CLS]/[SEP]."""

    pad_id: int

    def rows(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> tuple[Rows, int]:
        """(rows, how many inputs were longer than max_length and were cut)."""
        ...


class FastTokenizer:
    """A `tokenizers.Tokenizer` (tokenizer.json) used directly."""

    def __init__(
        self,
        backend: Any,
        *,
        pad_id: int,
        with_types: bool,
        lock: threading.Lock | None = None,
    ) -> None:
        self.backend = backend
        self.pad_id = pad_id
        self.with_types = with_types
        # the service's workers tokenise at once: setting truncation while another
        # thread's encode_batch runs would fail (the Rust object is borrowed); encoders
        # that share a backend (from_file) share its lock
        self._lock = lock or threading.Lock()

    @classmethod
    def from_file(cls, path: Path, *, pad_id: int, with_types: bool) -> FastTokenizer:
        """The parsed file is shared by every encoder of this process that reads the same
        unchanged file: parsing MiniLM's tokenizer.json costs ~28 ms of CPU, paid at each
        load_encoder (289 times in one run of the tests)."""
        found = os.stat(path)
        backend, lock = _parsed(
            os.path.realpath(path), found.st_mtime_ns, found.st_size, found.st_ino
        )
        return cls(backend, pad_id=pad_id, with_types=with_types, lock=lock)

    def save(self, path: Path) -> None:
        """Write tokenizer.json without any truncation or padding left set on it."""
        from tokenizers import Tokenizer as RustTokenizer

        copy = RustTokenizer.from_str(self.backend.to_str())
        copy.no_truncation()
        copy.no_padding()
        copy.save(str(path))

    def rows(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> tuple[Rows, int]:
        # Set on every call: transformers' wrapper, which may share this backend, sets
        # its own truncation and padding on each of its calls too.
        inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        with self._lock:
            self.backend.enable_truncation(max_length, strategy="longest_first")
            self.backend.no_padding()
            encodings = self.backend.encode_batch(inputs, add_special_tokens=True)
        rows = []
        for encoding in encodings:
            row = {"input_ids": encoding.ids, "special_tokens_mask": encoding.special_tokens_mask}
            if self.with_types:
                row["token_type_ids"] = encoding.type_ids
            rows.append(row)
        return rows, sum(1 for encoding in encodings if encoding.overflowing)


@functools.lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int, size: int, inode: int) -> tuple[Any, threading.Lock]:
    """A tokenizer.json parsed once per version of the file (the stat fields are the key),
    with the lock its users share."""
    from tokenizers import Tokenizer as RustTokenizer

    return RustTokenizer.from_file(path), threading.Lock()


class SlowTokenizer:
    """transformers' Python tokenizer, for models that have no fast one."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper
        self.pad_id = int(wrapper.pad_token_id or 0)

    def rows(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> tuple[Rows, int]:
        encoded = self.wrapper(
            list(texts),
            list(pairs) if pairs is not None else None,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
        )
        keys = [k for k in ("input_ids", "token_type_ids", "special_tokens_mask") if k in encoded]
        rows: Rows = []
        overflowed: set[int] = set()
        last_sample = -1
        for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            if sample == last_sample:  # a further window of a text that did not fit
                overflowed.add(sample)
                continue
            rows.append({key: encoded[key][row] for key in keys})
            last_sample = sample
        return rows, len(overflowed)


def from_transformers(wrapper: Any) -> FastTokenizer | SlowTokenizer:
    """The batching loop's tokenizer for a transformers tokenizer object."""
    backend = getattr(wrapper, "backend_tokenizer", None)
    if backend is None:
        return SlowTokenizer(wrapper)
    with_types = "token_type_ids" in getattr(wrapper, "model_input_names", ())
    return FastTokenizer(backend, pad_id=int(wrapper.pad_token_id or 0), with_types=with_types)


def word_pieces(
    folder: Path, text: str, pair: str | None = None, max_length: int | None = None
) -> dict[str, Any]:
    """What BERT sees of `text` (and `pair`): word-pieces, ids, attention mask and segment
    ids, truncated to `max_length` (default: the tokenizer's model_max_length). Reads the
    folder's tokenizer.json with the Rust library; a folder without one goes through
    transformers."""
    from semsearch.errors import InputError
    from semsearch.text import not_utf8

    for given in (text, pair):
        problem = not_utf8(given or "")
        if problem:
            raise InputError(f"the text holds {problem}: give it as UTF-8")
    limit = max_length or _model_max_length(folder)
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer as RustTokenizer

        backend = RustTokenizer.from_file(str(folder / "tokenizer.json"))
        backend.no_padding()
        if limit is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(limit, strategy="longest_first")
        encoding = backend.encode(text, pair) if pair is not None else backend.encode(text)
        return {
            "tokens": list(encoding.tokens),
            "input_ids": list(encoding.ids),
            "attention_mask": list(encoding.attention_mask),
            "token_type_ids": list(encoding.type_ids),
        }
    from transformers import AutoTokenizer

    wrapper = AutoTokenizer.from_pretrained(folder)
    encoded = wrapper(text, pair, truncation=limit is not None, max_length=limit)
    ids = list(encoded["input_ids"])
    return {
        "tokens": list(wrapper.convert_ids_to_tokens(ids)),
        "input_ids": ids,
        "attention_mask": list(encoded["attention_mask"]),
        "token_type_ids": list(encoded.get("token_type_ids") or [0] * len(ids)),
    }


def _model_max_length(folder: Path) -> int | None:
    """tokenizer_config.json's model_max_length; None where it gives none (no limit)."""
    import json

    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        value = int(config["model_max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if 0 < value < 1_000_000 else None
