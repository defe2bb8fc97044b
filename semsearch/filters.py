"""The filter language of `where`: which entries a question may be answered from.

    product = mobile and lang in (en, de)
    not (category = 'billing' or price >= 10)

Grammar (keywords in any case; `not` binds tightest, then `and`, then `or`):

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := FIELD ("=" | "!=") VALUE | FIELD ("<" | "<=" | ">" | ">=") NUMBER
                | FIELD "in" "(" VALUE ("," VALUE)* ")"

A FIELD is a metadata key, bare (`product`) or quoted (`'sub category'`). A VALUE is a
quoted string ('billing' or "billing"; a backslash escapes the quote), a number (`5`,
`-2.5`, `1e3`) or a bare word, which is a string (`mobile`, `en-GB`). Quote a string
that looks like a number ('2020') or is a keyword ('or'). `!=` matches entries whose
field holds another value; `not` matches exactly the entries its operand does not
(those without the field too).

This module only parses: `parse_where` turns text into a `Filter` tree, or raises
`FilterError` naming the position (1-based characters) and what was expected. The
records store checks the fields and runs it as parameterised SQL
(semsearch.index.filtering): no text of a filter ever becomes SQL. Standard library
only, like semsearch.params.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from semsearch.errors import FilterError
from semsearch.text import echoed

Value = str | int | float

EQUALITY = ("=", "!=")
ORDER = ("<", "<=", ">", ">=")
KEYWORDS = ("and", "or", "not", "in")
MAX_CHARS = 4000
"""The longest filter accepted: a filter is typed, not generated from a list of ids."""
MAX_VALUES = 1000
"""The most values one filter compares with (each is one SQL parameter)."""
MAX_DEPTH = 32
"""The deepest nesting of parentheses and `not`."""

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[^\s()=!<>,'\"]+")
_OPERATOR = re.compile(r"!=|<=|>=|=|<|>")


@dataclass(frozen=True)
class Compare:
    """`field op value`; `at` is where the field starts (1-based)."""

    field: str
    op: str
    value: Value
    at: int = 0

    def __str__(self) -> str:
        return f"{_name(self.field)} {self.op} {_literal(self.value)}"


@dataclass(frozen=True)
class In:
    """`field in (values...)`."""

    field: str
    values: tuple[Value, ...]
    at: int = 0

    def __str__(self) -> str:
        return f"{_name(self.field)} in ({', '.join(map(_literal, self.values))})"


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]

    def __str__(self) -> str:
        return " and ".join(_inside(part, Or) for part in self.parts)


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]

    def __str__(self) -> str:
        return " or ".join(str(part) for part in self.parts)


@dataclass(frozen=True)
class Not:
    part: Filter

    def __str__(self) -> str:
        return f"not {_inside(self.part, And, Or)}"


Filter = Compare | In | And | Or | Not
"""A parsed filter; `str()` gives its canonical text (which parses back to it)."""


def _inside(part: Filter, *looser: type) -> str:
    return f"({part})" if isinstance(part, looser) else str(part)


def _name(field: str) -> str:
    bare = _WORD.fullmatch(field) and not _NUMBER.fullmatch(field)
    return field if bare and field.lower() not in KEYWORDS else _literal(field)


def _literal(value: Value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def fields_of(tree: Filter) -> list[str]:
    """The fields a filter names, in order, each once."""
    if isinstance(tree, Compare | In):
        return [tree.field]
    parts = (tree.part,) if isinstance(tree, Not) else tree.parts
    return list(dict.fromkeys(name for part in parts for name in fields_of(part)))


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "number", "op", "(", ")", ",", "end"
    text: str
    value: Value
    at: int  # 1-based

    def shown(self) -> str:
        return "the end" if self.kind == "end" else repr(self.text)


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        at = i + 1
        if char in "(),":
            found.append(_Token(char, char, char, at))
            i += 1
        elif char in "'\"":
            value, i = _quoted(text, i)
            found.append(_Token("string", text[at - 1 : i], value, at))
        elif operator := _OPERATOR.match(text, i):
            found.append(_Token("op", operator.group(), operator.group(), at))
            i = operator.end()
        elif word := _WORD.match(text, i):
            raw = word.group()
            if _NUMBER.fullmatch(raw):
                found.append(_Token("number", raw, _number(raw, at), at))
            else:
                found.append(_Token("word", raw, raw, at))
            i = word.end()
        else:  # only "!" not followed by "=" is left
            raise _error(at, f"unexpected {char!r}; the operators are =, !=, <, <=, >, >=, in")
    found.append(_Token("end", "", "", len(text) + 1))
    return found


def _number(raw: str, at: int) -> int | float:
    """A number as written: whole numbers stay whole (SQLite's 64-bit integers)."""
    number = float(raw) if any(c in raw for c in ".eE") else int(raw)
    if not math.isfinite(number) or (isinstance(number, int) and abs(number) >= 2**63):
        raise _error(at, f"the number {echoed(raw)} is out of range")
    return number


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The string whose opening quote is at `start`, and where it ends."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise _error(start + 1, f"the string opened with {quote} is not closed")


def _error(at: int, problem: str) -> FilterError:
    return FilterError(f"bad filter at position {at}: {problem}", setting="where")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0
        self.values = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def keyword(self, word: str) -> bool:
        token = self.token
        if token.kind == "word" and token.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> _Token:
        token = self.token
        if token.kind != kind:
            raise _error(token.at, f"expected {what}, got {token.shown()}")
        self.i += 1
        return token

    def parse(self) -> Filter:
        tree = self.expr()
        if self.token.kind != "end":
            token = self.token
            raise _error(token.at, f"expected 'and', 'or' or the end, got {token.shown()}")
        return tree

    def expr(self) -> Filter:
        parts = [self.term()]
        while self.keyword("or"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Filter:
        parts = [self.factor()]
        while self.keyword("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self) -> Filter:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.token.at, f"nested more than {MAX_DEPTH} deep")
        try:
            if self.keyword("not"):
                return Not(self.factor())
            if self.token.kind == "(":
                self.i += 1
                tree = self.expr()
                self.expect(")", "')'")
                return tree
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Compare | In:
        token = self.token
        if token.kind not in ("word", "string") or (
            token.kind == "word" and token.text.lower() in KEYWORDS
        ):
            raise _error(token.at, f"expected a field name, got {token.shown()}")
        self.i += 1
        field = str(token.value)
        if self.keyword("in"):
            self.expect("(", f"'(' after {field} in")
            values = [self.value(field, "in")]
            while self.token.kind == ",":
                self.i += 1
                values.append(self.value(field, "in"))
            self.expect(")", "',' or ')'")
            return In(field, tuple(values), token.at)
        op = self.token
        if op.kind != "op":
            raise _error(
                op.at, f"expected =, !=, <, <=, >, >= or in after {field}, got {op.shown()}"
            )
        self.i += 1
        value = self.value(field, op.text)
        if op.text in ORDER and isinstance(value, str):
            raise _error(
                self.tokens[self.i - 1].at, f"{op.text} compares numbers, got {echoed(value)}"
            )
        return Compare(field, op.text, value, token.at)

    def value(self, field: str, op: str) -> Value:
        token = self.token
        if token.kind not in ("word", "string", "number") or (
            token.kind == "word" and token.text.lower() in KEYWORDS
        ):
            hint = " (quote a keyword used as a value)" if token.kind == "word" else ""
            raise _error(
                token.at, f"expected a value after {field} {op}, got {token.shown()}{hint}"
            )
        self.values += 1
        if self.values > MAX_VALUES:
            raise _error(token.at, f"a filter compares with at most {MAX_VALUES} values")
        self.i += 1
        return token.value


def parse_filter(text: str) -> Filter:
    """One expression's tree; `FilterError` names the position of what is wrong."""
    if not isinstance(text, str):
        raise FilterError(f"a filter is text, got {echoed(text)}", setting="where")
    if not text.strip():
        raise FilterError(
            "the filter is empty: give an expression such as product = mobile", setting="where"
        )
    if len(text) > MAX_CHARS:
        raise FilterError(
            f"the filter is {len(text):,} characters; at most {MAX_CHARS:,} are accepted",
            setting="where",
        )
    return _Parser(text).parse()


def parse_where(where: str | Sequence[str] | None) -> Filter | None:
    """A `where` as every face takes it: None (no filter), one expression, or several
    (from a repeated --where, or a JSON list) that must all hold."""
    if where is None:
        return None
    if isinstance(where, str):
        return parse_filter(where)
    texts = list(where)
    if not texts:
        return None
    trees = []
    for number, text in enumerate(texts, 1):
        try:
            trees.append(parse_filter(text))
        except FilterError as exc:
            if len(texts) == 1:
                raise
            raise FilterError(f"filter {number}: {exc}", setting="where") from None
    return trees[0] if len(trees) == 1 else And(tuple(trees))
