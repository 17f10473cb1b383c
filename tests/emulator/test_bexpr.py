"""The go-bexpr subset used by ``?filter=``."""

from __future__ import annotations

import pytest

from tests.consul_emulator.bexpr import BexprError, BexprEvalError, GoMap, compile_filter

DATUM = {
    "Service": "web",
    "ID": "web-1",
    "Tags": ["v1", "primary"],
    "Meta": GoMap({"env": "prod", "team": "core"}),
    "Port": 8080,
    "EnableTagOverride": False,
    "Address": "",
    "Checks": [{"Status": "passing"}, {"Status": "warning"}],
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('Service == "web"', True),
        ("Service == web", True),
        ("Service == `web`", True),
        ('Service != "web"', False),
        ('"v1" in Tags', True),
        ('"v2" not in Tags', True),
        ('Tags contains "primary"', True),
        ('Tags not contains "primary"', False),
        ('Meta.env == "prod"', True),
        ('Meta["env"] == "prod"', True),
        ('Meta.missing == "x"', False),
        ("Meta.missing is empty", True),
        ("Meta is not empty", True),
        ('"team" in Meta', True),
        ("Address is empty", True),
        ("Tags is empty", False),
        ('Service matches "^w.b$"', True),
        ('ID not matches "-2$"', True),
        ("Port == 8080", True),
        ("EnableTagOverride == false", True),
        ('"warning" in Checks.Status', True),
        ('"critical" in Checks.Status', False),
        ('Service == "web" and Port == 80', False),
        ('Service == "db" or Port == 8080', True),
        ('not Service == "db"', True),
        ('not (Service == "web" and "v2" in Tags) and Meta.team == core', True),
        ('Service contains "e"', True),
    ],
)
def test_expressions(expression: str, expected: bool) -> None:
    assert compile_filter(expression).matches(DATUM) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "Service ==",
        "Node == host-name",
        '(Service == "web"',
        'Service = "web"',
        'Service == "web" and',
        'Service matches "("',
        '"web" in',
        "Service is full",
        'Service == "unterminated',
    ],
)
def test_syntax_errors(expression: str) -> None:
    with pytest.raises(BexprError, match=r"^\d+:\d+ \(\d+\): "):
        compile_filter(expression)


def test_unknown_struct_field_is_an_evaluation_error() -> None:
    expr = compile_filter('Nope == "x"')
    with pytest.raises(BexprEvalError, match='couldn\'t find struct field with name "Nope"'):
        expr.matches(DATUM)
