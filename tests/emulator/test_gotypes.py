"""Go-compatibility helpers: durations, booleans, quoting, JSON output."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.consul_emulator.gotypes import (
    GoDurationError,
    format_duration,
    go_json,
    go_quote,
    parse_bool,
    parse_duration,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("10s", 10 * S),
        ("1m30s", 90 * S),
        ("500ms", S // 2),
        ("1h", 3600 * S),
        ("1.5h", 5400 * S),
        (".5s", S // 2),
        ("-2s", -2 * S),
        ("+3s", 3 * S),
        ("1us", 1000),
        ("1\u00b5s", 1000),
        ("1\u03bcs", 1000),
        ("7ns", 7),
        ("1h2m3.5s", 3723 * S + S // 2),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", 'time: invalid duration "x"'),
        ("", 'time: invalid duration ""'),
        ("10", 'time: missing unit in duration "10"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("9999999999999999999h", 'time: invalid duration "9999999999999999999h"'),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(GoDurationError) as err:
        parse_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (10 * S, "10s"),
        (90 * S, "1m30s"),
        (3600 * S, "1h0m0s"),
        (S // 2, "500ms"),
        (1500, "1.5\u00b5s"),
        (7, "7ns"),
        (-90 * S, "-1m30s"),
        (3723 * S + S // 2, "1h2m3.5s"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_format_then_parse_round_trips(ns: int) -> None:
    assert parse_duration(format_duration(ns)) == ns


@given(st.text(max_size=12))
def test_parse_duration_never_crashes(text: str) -> None:
    try:
        parse_duration(text)
    except GoDurationError as exc:
        message = str(exc)
    else:
        message = "time: (parsed)"
    assert message.startswith("time: ")


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "tRue", "2"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        parse_bool(text)


def test_go_quote_escapes_like_strconv() -> None:
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'


def test_go_json_is_compact_html_safe_and_pretty_ends_with_newline() -> None:
    assert go_json({"a": ["<&>"], "b": {}}) == '{"a":["\\u003c\\u0026\\u003e"],"b":{}}'
    assert go_json({"a": []}, pretty=True) == '{\n    "a": []\n}\n'
