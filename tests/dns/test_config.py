"""DnsConfig.from_settings: the DNS flags, checked once."""

from __future__ import annotations

import pytest

from registrator.dns import DnsConfig
from registrator.errors import ConfigError
from registrator.settings import Settings, load_settings


def config(*argv: str) -> DnsConfig | None:
    return DnsConfig.from_settings(load_settings(list(argv), {}))


def direct(**values: object) -> DnsConfig | None:
    """From a Settings built directly, so only DnsConfig's own checks apply."""
    return DnsConfig.from_settings(Settings(**values))  # type: ignore[arg-type]


def test_defaults() -> None:
    assert config() == DnsConfig(
        host="127.0.0.1",
        port=8600,
        domain="consul",
        alt_domain=None,
        ttl=2,
        node_ttl=2,
        negative_ttl=1,
        only_passing=False,
        recursors=(),
    )


def test_off_disables() -> None:
    assert config("-dns-addr", "off") is None
    assert direct(dns_addr=" OFF ") is None


def test_every_flag() -> None:
    got = config(
        "-dns-addr=[::1]:53",
        "-dns-domain=Example.Internal.",
        "-dns-alt-domain=alt",
        "-dns-ttl=5",
        "-dns-service-ttl=web=30",
        "-dns-service-ttl=api-*=7,*=3",
        "-dns-node-ttl=9",
        "-dns-negative-ttl=4",
        "-dns-only-passing",
        "-dns-recursors=10.0.0.2,10.0.0.3:5353",
        "-dns-recursors=[2001:db8::1]:54,2001:db8::2",
    )
    assert got == DnsConfig(
        host="::1",
        port=53,
        domain="example.internal",
        alt_domain="alt",
        ttl=5,
        service_ttls=(("web", 30), ("api-*", 7), ("*", 3)),
        node_ttl=9,
        negative_ttl=4,
        only_passing=True,
        recursors=(
            ("10.0.0.2", 53),
            ("10.0.0.3", 5353),
            ("2001:db8::1", 54),
            ("2001:db8::2", 53),
        ),
    )


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"dns_addr": "127.0.0.1"}, "-dns-addr: '127.0.0.1' needs a port (HOST:PORT)"),
        ({"dns_addr": "localhost:53"}, "'localhost' is not an IP address"),
        ({"dns_addr": "127.0.0.1:99999"}, "between 0 and 65535"),
        ({"dns_addr": "[::1:53"}, "is not [IPv6]:PORT"),
        ({"dns_addr": "[::1]53"}, "is not [IPv6]:PORT"),
        ({"dns_addr": "127.0.0.1:"}, "empty port"),
        ({"dns_domain": "bad domain"}, "-dns-domain: 'bad domain' is not a domain name"),
        ({"dns_domain": "a..b"}, "is not a domain name"),
        ({"dns_alt_domain": "Consul."}, "is the same as -dns-domain"),
        ({"dns_service_ttl": ("web",)}, "-dns-service-ttl: 'web' is not NAME=SECONDS"),
        ({"dns_service_ttl": ("web=x",)}, "'x' is not a number of seconds"),
        ({"dns_service_ttl": ("w*b=3",)}, "'*' may only end the name"),
        ({"dns_service_ttl": ("=3",)}, "is not NAME=SECONDS"),
        ({"dns_recursors": ("dns.google",)}, "-dns-recursors: 'dns.google'"),
        ({"dns_recursors": ("10.0.0.1:0",)}, "port 0"),
        ({"dns_recursors": ("10.0.0.1:x",)}, "between 0 and 65535"),
        ({"dns_ttl": -1}, "-dns-ttl: -1 is not between"),
    ],
)
def test_bad_values(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        direct(**values)
    assert any(problem in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize(
    "argv",
    [["-dns-addr=nope"], ["-dns-service-ttl=x"], ["-dns-recursors=dns.google"]],
)
def test_bad_flags_are_config_errors(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        config(*argv)


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as exc:
        direct(dns_addr="nope:1", dns_service_ttl=("x",), dns_recursors=("y",))
    assert len(exc.value.problems) == 3


@pytest.mark.parametrize(
    ("name", "ttl"),
    [
        ("web", 30),  # exact
        ("WEB", 30),  # case-insensitive
        ("web-2", 10),  # longest prefix wins over "w*" and "*"
        ("wax", 20),
        ("api", 3),  # "*"
    ],
)
def test_service_ttl_rule(name: str, ttl: int) -> None:
    cfg = DnsConfig(ttl=2, service_ttls=(("*", 3), ("w*", 20), ("web-*", 10), ("web", 30)))
    assert cfg.service_ttl(name) == ttl


def test_service_ttl_default() -> None:
    assert DnsConfig(ttl=4, service_ttls=(("web", 1),)).service_ttl("api") == 4
