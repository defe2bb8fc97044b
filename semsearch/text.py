"""One rule for text that is not UTF-8, at every entrance: it is refused, with where.

Undecodable bytes from the command line or a pipe reach Python as lone surrogates
(U+DC80..U+DCFF, "surrogateescape"); a JSON escape such as "\\udce9" gives one too.
Neither can be tokenised, stored or sent as JSON, so they are named, not guessed at.
Also here: how names from a user's file are shown in a one-line message."""

from __future__ import annotations

from collections.abc import Iterable


def not_utf8(text: str, *, from_json: bool = False) -> str | None:
    """What in `text` is not encodable text, or None when all of it is. Text read from
    JSON names the escape; text from bytes names the byte."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF and not from_json:
            return f"byte 0x{code - 0xDC00:02x}, which is not UTF-8"
        return f"\\u{code:04x}, a lone surrogate"
    return None


def shown(names: Iterable[str]) -> str:
    """Column names for a one-line message: a name holding a line break or another
    control character is quoted with escapes (a header cell may span lines)."""
    return ", ".join(
        repr(name) if any(ch < " " or ch == "\x7f" for ch in name) else name for name in names
    )


ECHO_CHARS = 60
"""How much of a value a user gave an error message repeats."""


def echoed(value: object) -> str:
    """`value` as an error message repeats it (its repr), cut to `ECHO_CHARS` with the
    full length said, so a 64k-character question does not fill the terminal."""
    shown = repr(value)
    if len(shown) <= ECHO_CHARS:
        return shown
    return f"{shown[:ECHO_CHARS]}... ({len(str(value)):,} characters)"
