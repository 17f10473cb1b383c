import pytest

from registrator.durations import parse_go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("-2s", -2.0),
        ("10", None),
        ("soon", None),
        ("", None),
        ("s", None),
        ("10 s", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    """Exactly the strings Go's time.ParseDuration (and so Consul) accepts."""
    assert parse_go_duration(text) == seconds
