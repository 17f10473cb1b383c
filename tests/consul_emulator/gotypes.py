"""Small ports of Go standard-library behaviour that Consul's HTTP API exposes to clients.

``time.ParseDuration`` / ``Duration.String``, ``strconv.ParseBool`` / ``strconv.Quote`` and the
output conventions of ``encoding/json`` (HTML-safe escaping, ``MarshalIndent`` with four spaces).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

__all__ = [
    "GoDurationError",
    "format_duration",
    "go_json",
    "go_quote",
    "go_quote_char",
    "parse_bool",
    "parse_duration",
    "seconds_to_ns",
]

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # U+00B5 micro sign
    "\u03bcs": MICROSECOND,  # U+03BC Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX = 1 << 63


class GoDurationError(ValueError):
    """``time.ParseDuration`` failed; ``str(err)`` is Go's exact message."""


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def parse_duration(text: str) -> int:
    """Parse a Go duration string (``"1m30s"``, ``"-1.5h"``, ``"0"``) into nanoseconds."""
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
    total = 0
    while s:
        if not (s[0] == "." or _is_digit(s[0])):
            raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
        i = 0
        v = 0
        while i < len(s) and _is_digit(s[i]):
            if v > (_MAX - 1) // 10:
                raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
            v = v * 10 + int(s[i])
            if v > _MAX:
                raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
            i += 1
        pre = i > 0
        s = s[i:]
        frac = 0
        scale = 1.0
        post = False
        if s and s[0] == ".":
            s = s[1:]
            i = 0
            overflow = False
            while i < len(s) and _is_digit(s[i]):
                if not overflow:
                    if frac > (_MAX - 1) // 10:
                        overflow = True
                    else:
                        frac = frac * 10 + int(s[i])
                        scale *= 10
                i += 1
            post = i > 0
            s = s[i:]
        if not pre and not post:
            raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
        i = 0
        while i < len(s) and not (s[i] == "." or _is_digit(s[i])):
            i += 1
        if i == 0:
            raise GoDurationError(f"time: missing unit in duration {go_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise GoDurationError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}"
            )
        if v > _MAX // unit:
            raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
        v *= unit
        if frac > 0:
            v += int(float(frac) * (float(unit) / scale))
            if v > _MAX:
                raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
        total += v
        if total > _MAX:
            raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
    if neg:
        return -total
    if total > _MAX - 1:
        raise GoDurationError(f"time: invalid duration {go_quote(orig)}")
    return total


def _fmt_frac(value: int, prec: int) -> tuple[str, int]:
    """Fraction digits of ``value / 10**prec`` without trailing zeros, and the integer part."""
    if prec == 0:
        return "", value
    whole, frac = divmod(value, 10**prec)
    digits = f"{frac:0{prec}d}".rstrip("0")
    return ("." + digits if digits else ""), whole


def format_duration(ns: int) -> str:
    """Go's ``Duration.String()``: ``"0s"``, ``"1.5ms"``, ``"10s"``, ``"1m30s"``, ``"1h0m0s"``."""
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "\u00b5s"
        else:
            prec, unit = 6, "ms"
        frac, whole = _fmt_frac(u, prec)
        out = f"{whole}{frac}{unit}"
    else:
        frac, whole = _fmt_frac(u, 9)
        out = f"{whole % 60}{frac}s"
        minutes = whole // 60
        if minutes > 0:
            out = f"{minutes % 60}m{out}"
            hours = minutes // 60
            if hours > 0:
                out = f"{hours}h{out}"
    return ("-" if neg else "") + out


def seconds_to_ns(seconds: float) -> int:
    """Seconds as integer nanoseconds (rounded)."""
    return round(seconds * SECOND)


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``; raises ``ValueError`` for anything else."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid syntax: {text!r}")


_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    "\\": "\\\\",
}


def _is_print(c: str) -> bool:
    if c == " ":
        return True
    cat = unicodedata.category(c)
    return cat[0] in "LMNPS"


def _quote_with(text: str, quote: str) -> str:
    out = [quote]
    for c in text:
        if c == quote:
            out.append("\\" + c)
        elif c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif _is_print(c):
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append(quote)
    return "".join(out)


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints for a string)."""
    return _quote_with(text, '"')


def go_quote_char(c: str) -> str:
    """How ``encoding/json`` quotes a character in syntax errors: ``'x'``."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return _quote_with(c, "'")


def go_json(value: Any, *, pretty: bool = False) -> str:
    """Serialise like Go: compact (or 4-space indented + newline), HTML-safe escapes, UTF-8."""
    if pretty:
        text = json.dumps(value, ensure_ascii=False, indent=4, separators=(",", ": "))
        text += "\n"
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Characters that can only occur inside JSON strings, so a plain replace is safe.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
