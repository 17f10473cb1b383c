"""Settings come from flags, then REGISTRATOR_* env vars, then defaults; every problem at once."""

from __future__ import annotations

import pytest

from registrator.errors import ConfigError
from registrator.settings import RegistryURI, Settings, help_text, load_settings, parse_uri


def test_defaults() -> None:
    """No flags and no env: the embedded registry and registrator's defaults."""
    s = load_settings([], {})
    assert s == Settings()
    assert s.uri == RegistryURI("local")
    assert s.deregister == "always"
    assert s.retry_interval == 2000
    assert s.port_env == ("PORT",)


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["-ip", "127.0.0.1"], "ip", "127.0.0.1"),
        (["--ip", "::1"], "ip", "::1"),
        (["-ip=10.0.0.1"], "ip", "10.0.0.1"),
        (["-internal"], "internal", True),
        (["--internal"], "internal", True),
        (["-internal=false"], "internal", False),
        (["-explicit=true"], "explicit", True),
        (["-useIpFromLabel", "ip"], "use_ip_from_label", "ip"),
        (["--use-ip-from-label", "ip"], "use_ip_from_label", "ip"),
        (["-tags", "a, b,,c"], "tags", ("a", "b", "c")),
        (["-resync", "30"], "resync", 30),
        (["-cleanup"], "cleanup", True),
        (["-deregister", "on-success"], "deregister", "on-success"),
        (["-retry-attempts", "-1"], "retry_attempts", -1),
        (["-retry-interval", "500"], "retry_interval", 500),
        (["-ttl", "30", "-ttl-refresh", "10"], "ttl", 30),
        (["--node", "host-a"], "node", "host-a"),
        (
            ["--port-env", "SERVER_*_PORT", "--port-env", "PORT"],
            "port_env",
            ("SERVER_*_PORT", "PORT"),
        ),
        (["--network", "front"], "network", "front"),
        (["--dry-run"], "dry_run", True),
        (["--log-format", "json"], "log_format", "json"),
        (["--log-level", "DEBUG"], "log_level", "debug"),
        (["consul://10.0.0.1:8500"], "uri", RegistryURI("consul", "10.0.0.1", 8500)),
        (["-internal", "consul://c:1"], "uri", RegistryURI("consul", "c", 1)),
        (["consul://c:1", "-ip", "127.0.0.1"], "ip", "127.0.0.1"),  # registrator#294: any order
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_flags(argv: list[str], field: str, expected: object) -> None:
    """Each registrator flag, with one dash or two, sets its field."""
    assert getattr(load_settings(argv, {}), field) == expected


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"REGISTRATOR_IP": "127.0.0.2"}, "ip", "127.0.0.2"),
        ({"REGISTRATOR_INTERNAL": "yes"}, "internal", True),
        ({"REGISTRATOR_PORT_ENV": "A_*_PORT,PORT"}, "port_env", ("A_*_PORT", "PORT")),
        (
            {"REGISTRATOR_URI": "consul-unix:///run/consul.sock"},
            "uri",
            RegistryURI("consul-unix", path="/run/consul.sock"),
        ),
        ({"REGISTRATOR_DEREGISTER": "on-success"}, "deregister", "on-success"),
    ],
)
def test_env_vars(env: dict[str, str], field: str, expected: object) -> None:
    """Every option also comes from REGISTRATOR_<NAME>."""
    assert getattr(load_settings([], env), field) == expected


def test_flag_beats_env_beats_default() -> None:
    env = {"REGISTRATOR_IP": "127.0.0.2", "REGISTRATOR_RESYNC": "5"}
    s = load_settings(["-ip", "127.0.0.3"], env)
    assert s.ip == "127.0.0.3"
    assert s.resync == 5
    assert s.ttl == 0


def test_every_problem_is_reported_at_once() -> None:
    """A bad configuration lists all of its problems, not just the first."""
    argv = [
        "-ip",
        "nope",
        "-ttl",
        "5",
        "--bogus",
        "-deregister",
        "sometimes",
        "-internal=maybe",
        "-resync",
        "-3",
        "ftp://x",
    ]
    with pytest.raises(ConfigError) as info:
        load_settings(argv, {"REGISTRATOR_RETRY_INTERVAL": "soon"})
    text = "\n".join(info.value.problems)
    for needle in [
        "unknown argument '--bogus'",
        "-ip: 'nope' is not an IPv4 or IPv6 address",
        "-ttl and -ttl-refresh must be set together",
        "-deregister: 'sometimes' is not one of always, on-success",
        "-internal: 'maybe' is not a boolean",
        "-resync: -3 is negative",
        "unknown registry scheme 'ftp'",
        "-retry-interval (env REGISTRATOR_RETRY_INTERVAL): 'soon' is not an integer",
    ]:
        assert needle in text
    assert len(info.value.problems) == 8


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-ttl", "10", "-ttl-refresh", "10"], "-ttl-refresh (10) must be smaller than -ttl (10)"),
        (["--node", "a:b"], "contains ':'"),
        (["--port-env", "BAD-NAME"], "may hold only letters"),
        (["--watch-services", "web,bad name"], "-watch-services: 'bad name' may hold only"),
        (["-retry-attempts", "-2"], "use -1 for forever"),
        (["consul://h:1/path"], "nothing after it"),
        (["consul-unix://"], "needs a socket path"),
        (["local://somewhere"], "local:// takes no host"),
        (["--log-level", "loud"], "not one of debug, info, warning, error"),
        (["-ip"], "expected one argument"),
    ],
)
def test_bad_values(argv: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(argv, {})
    assert needle in "\n".join(info.value.problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", RegistryURI("local")),
        ("local://", RegistryURI("local")),
        ("consul://", RegistryURI("consul")),
        ("consul://127.0.0.1:8500", RegistryURI("consul", "127.0.0.1", 8500)),
        ("consul-tls://consul.example:8501", RegistryURI("consul-tls", "consul.example", 8501)),
        (
            "consul-unix:///var/run/consul.sock",
            RegistryURI("consul-unix", path="/var/run/consul.sock"),
        ),
        ("consul://[::1]:8500", RegistryURI("consul", "::1", 8500)),
    ],
)
def test_parse_uri(text: str, expected: RegistryURI) -> None:
    assert parse_uri(text) == expected


def test_help_names_env_vars_and_precedence() -> None:
    text = help_text()
    assert "REGISTRATOR_PORT_ENV" in text
    assert "a flag beats its env var, which" in " ".join(text.split())
    assert "-useIpFromLabel" in text
