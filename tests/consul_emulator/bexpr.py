"""The subset of go-bexpr that Consul's ``?filter=`` takes (spec section 14).

Grammar::

    expr     := or
    or       := and ("or" and)*
    and      := unary ("and" unary)*
    unary    := "not" unary | "(" or ")" | match
    match    := selector ("==" | "!=") value
              | selector "is" ["not"] "empty"
              | value ["not"] "in" selector
              | selector ["not"] "contains" value
              | selector ["not"] "matches" string
    selector := ident ("." ident | "[" string "]")*
    value    := string | number | ident-selector (a bare identifier is a raw string)

Strings are double-quoted (Go escapes) or backtick raw strings. Evaluation walks plain dicts
(Go structs: an unknown key is an error) and :class:`GoMap` dicts (Go maps: a missing key is the
zero value); selecting a field through a list of structs yields the list of that field's values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["BexprError", "BexprEvalError", "Expression", "GoMap", "compile_filter"]


class BexprError(ValueError):
    """The expression does not parse (Consul answers 500 with this text, prefixed)."""


class BexprEvalError(ValueError):
    """The expression parsed but could not be evaluated against a value."""


class GoMap(dict[str, Any]):
    """Marks a dict that is a Go map (``Meta``, ``NodeMeta``...) rather than a struct."""


_MISSING: Final = object()

_KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "is", "empty", "matches"})


@dataclass(frozen=True)
class _Tok:
    kind: str  # "ident", "string", "number", "op", "eof"
    text: str
    pos: int


def _position(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return f"{line}:{col} ({pos})"


_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def _tokenize(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
            continue
        if src.startswith(("==", "!="), i):
            toks.append(_Tok("op", src[i : i + 2], i))
            i += 2
            continue
        if c in "()[].":
            toks.append(_Tok("op", c, i))
            i += 1
            continue
        if c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise BexprError(f"{_position(src, i)}: no match found, unterminated raw string")
            toks.append(_Tok("string", src[i + 1 : end], i))
            i = end + 1
            continue
        if c == '"':
            out: list[str] = []
            j = i + 1
            while True:
                if j >= n:
                    raise BexprError(f"{_position(src, i)}: no match found, unterminated string")
                ch = src[j]
                if ch == '"':
                    break
                if ch == "\\":
                    if j + 1 >= n:
                        raise BexprError(f"{_position(src, j)}: invalid escape sequence")
                    esc = src[j + 1]
                    if esc in _ESCAPES:
                        out.append(_ESCAPES[esc])
                        j += 2
                        continue
                    if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", src[j + 2 : j + 6]):
                        out.append(chr(int(src[j + 2 : j + 6], 16)))
                        j += 6
                        continue
                    raise BexprError(f"{_position(src, j)}: invalid escape sequence")
                out.append(ch)
                j += 1
            toks.append(_Tok("string", "".join(out), i))
            i = j + 1
            continue
        m = _NUMBER_RE.match(src, i)
        if m and (c == "-" or c.isdigit()):
            end = m.end()
            if end < n and (src[end].isalnum() or src[end] == "_"):
                raise BexprError(f"{_position(src, end)}: no match found, expected: number")
            toks.append(_Tok("number", m.group(0), i))
            i = end
            continue
        m = _IDENT_RE.match(src, i)
        if m:
            toks.append(_Tok("ident", m.group(0), i))
            i = m.end()
            continue
        raise BexprError(f"{_position(src, i)}: no match found, unexpected {c!r}")
    toks.append(_Tok("eof", "", n))
    return toks


# --- AST ----------------------------------------------------------------------------------------

Node = Callable[[Any], bool]


@dataclass(frozen=True)
class _Selector:
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def is_kw(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "ident" and tok.text == word

    def is_op(self, op: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "op" and tok.text == op

    def fail(self, expected: str) -> BexprError:
        tok = self.peek()
        found = "end of input" if tok.kind == "eof" else repr(tok.text)
        return BexprError(
            f"{_position(self.src, tok.pos)}: no match found, expected: {expected}, found {found}"
        )

    def parse(self) -> Node:
        if self.peek().kind == "eof":
            raise self.fail("an expression")
        node = self.parse_or()
        if self.peek().kind != "eof":
            raise self.fail('"and", "or" or end of input')
        return node

    def parse_or(self) -> Node:
        left = self.parse_and()
        while self.is_kw("or"):
            self.take()
            right = self.parse_and()
            left = _or(left, right)
        return left

    def parse_and(self) -> Node:
        left = self.parse_unary()
        while self.is_kw("and"):
            self.take()
            right = self.parse_unary()
            left = _and(left, right)
        return left

    def parse_unary(self) -> Node:
        if self.is_kw("not"):
            self.take()
            inner = self.parse_unary()
            return _not(inner)
        if self.is_op("("):
            self.take()
            inner = self.parse_or()
            if not self.is_op(")"):
                raise self.fail('")"')
            self.take()
            return inner
        return self.parse_match()

    def parse_selector(self) -> _Selector:
        tok = self.peek()
        if tok.kind != "ident" or tok.text in _KEYWORDS:
            raise self.fail("a selector")
        parts = [self.take().text]
        while True:
            if self.is_op("."):
                self.take()
                tok = self.peek()
                if tok.kind != "ident":
                    raise self.fail("an identifier")
                parts.append(self.take().text)
            elif self.is_op("["):
                self.take()
                tok = self.peek()
                if tok.kind != "string":
                    raise self.fail("a string")
                parts.append(self.take().text)
                if not self.is_op("]"):
                    raise self.fail('"]"')
                self.take()
            else:
                return _Selector(tuple(parts))

    def parse_value(self) -> str:
        tok = self.peek()
        if tok.kind in ("string", "number"):
            return self.take().text
        if tok.kind == "ident" and tok.text not in _KEYWORDS:
            return str(self.parse_selector())
        raise self.fail("a value")

    def parse_match(self) -> Node:
        tok = self.peek()
        # value (not) in selector
        if tok.kind in ("string", "number"):
            value = self.take().text
            return self.parse_in(value)
        selector = self.parse_selector()
        if self.is_kw("in") or (self.is_kw("not") and self.is_kw("in", 1)):
            return self.parse_in(str(selector))
        if self.is_op("==") or self.is_op("!="):
            op = self.take().text
            value = self.parse_value()
            return _equal(selector, value, negate=op == "!=")
        if self.is_kw("is"):
            self.take()
            negate = False
            if self.is_kw("not"):
                self.take()
                negate = True
            if not self.is_kw("empty"):
                raise self.fail('"empty"')
            self.take()
            return _empty(selector, negate=negate)
        negate = False
        if self.is_kw("not") and (self.is_kw("contains", 1) or self.is_kw("matches", 1)):
            self.take()
            negate = True
        if self.is_kw("contains"):
            self.take()
            value = self.parse_value()
            return _contains(selector, value, negate=negate)
        if self.is_kw("matches"):
            self.take()
            tok = self.peek()
            if tok.kind != "string":
                raise self.fail("a string")
            pattern = self.take().text
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise BexprError(
                    f"{_position(self.src, tok.pos)}: error parsing regexp: {exc}"
                ) from None
            return _matches(selector, regex, negate=negate)
        raise self.fail('"==", "!=", "is", "contains", "matches", "in" or "not"')

    def parse_in(self, value: str) -> Node:
        negate = False
        if self.is_kw("not"):
            self.take()
            negate = True
        if not self.is_kw("in"):
            raise self.fail('"in" or "not in"')
        self.take()
        selector = self.parse_selector()
        return _contains(selector, value, negate=negate)


# --- evaluation ---------------------------------------------------------------------------------


def _resolve(datum: Any, selector: _Selector) -> Any:
    current = datum
    for i, part in enumerate(selector.parts):
        current = _step(current, part, selector, i)
        if current is _MISSING:
            return _MISSING
    return current


def _step(current: Any, part: str, selector: _Selector, i: int) -> Any:
    if isinstance(current, GoMap):
        return current.get(part, _MISSING)
    if isinstance(current, Mapping):
        if part in current:
            return current[part]
        raise BexprEvalError(
            f"error finding value in datum: /{'/'.join(selector.parts)} at part {i}: "
            f'couldn\'t find struct field with name "{part}"'
        )
    if isinstance(current, list):
        values = []
        for item in current:
            v = _step(item, part, selector, i)
            if v is not _MISSING:
                values.append(v)
        return values
    if current is None:
        return _MISSING
    raise BexprEvalError(
        f"error finding value in datum: /{'/'.join(selector.parts)} at part {i}: "
        f"invalid value kind: {type(current).__name__}"
    )


def _scalar_equal(actual: Any, raw: str, selector: _Selector) -> bool:
    if isinstance(actual, bool):
        lowered = raw.lower()
        if lowered in ("true", "1", "t"):
            return actual is True
        if lowered in ("false", "0", "f"):
            return actual is False
        raise BexprEvalError(f'Failed to convert value "{raw}" to bool for selector {selector}')
    if isinstance(actual, int):
        try:
            return actual == int(raw)
        except ValueError:
            try:
                return float(actual) == float(raw)
            except ValueError:
                raise BexprEvalError(
                    f'Failed to convert value "{raw}" to int for selector {selector}'
                ) from None
    if isinstance(actual, float):
        try:
            return actual == float(raw)
        except ValueError:
            raise BexprEvalError(
                f'Failed to convert value "{raw}" to float for selector {selector}'
            ) from None
    if actual is None:
        return raw == ""
    return str(actual) == raw


def _equal(selector: _Selector, raw: str, *, negate: bool) -> Node:
    def run(datum: Any) -> bool:
        actual = _resolve(datum, selector)
        if actual is _MISSING:
            result = False
        elif isinstance(actual, (list, Mapping)):
            raise BexprEvalError(
                f'Invalid match operator "Equal" for selector "{selector}": '
                "use in, contains or is empty on collections"
            )
        else:
            result = _scalar_equal(actual, raw, selector)
        return result != negate

    return run


def _empty(selector: _Selector, *, negate: bool) -> Node:
    def run(datum: Any) -> bool:
        actual = _resolve(datum, selector)
        if actual is _MISSING or actual is None:
            result = True
        elif isinstance(actual, (str, list, Mapping)):
            result = len(actual) == 0
        else:
            raise BexprEvalError(f'Invalid match operator "IsEmpty" for selector "{selector}"')
        return result != negate

    return run


def _contains(selector: _Selector, raw: str, *, negate: bool) -> Node:
    def run(datum: Any) -> bool:
        actual = _resolve(datum, selector)
        if actual is _MISSING or actual is None:
            result = False
        elif isinstance(actual, (str, Mapping)):
            result = raw in actual
        elif isinstance(actual, list):
            result = any(
                not isinstance(item, (list, Mapping)) and _scalar_equal(item, raw, selector)
                for item in actual
            )
        else:
            raise BexprEvalError(f'Invalid match operator "In" for selector "{selector}"')
        return result != negate

    return run


def _matches(selector: _Selector, regex: re.Pattern[str], *, negate: bool) -> Node:
    def run(datum: Any) -> bool:
        actual = _resolve(datum, selector)
        if actual is _MISSING or actual is None:
            result = False
        elif isinstance(actual, str):
            result = regex.search(actual) is not None
        else:
            raise BexprEvalError(f'Invalid match operator "Matches" for selector "{selector}"')
        return result != negate

    return run


def _and(a: Node, b: Node) -> Node:
    return lambda datum: a(datum) and b(datum)


def _or(a: Node, b: Node) -> Node:
    return lambda datum: a(datum) or b(datum)


def _not(a: Node) -> Node:
    return lambda datum: not a(datum)


@dataclass(frozen=True)
class Expression:
    """A compiled filter; call :meth:`matches` per item or :meth:`filter` on a sequence."""

    source: str
    _node: Node

    def matches(self, datum: Any) -> bool:
        return self._node(datum)

    def filter(self, items: Sequence[Any]) -> list[Any]:
        return [item for item in items if self._node(item)]


def compile_filter(source: str) -> Expression:
    """Parse ``source``; raises :class:`BexprError` with a position on syntax errors."""
    return Expression(source, _Parser(source).parse())
