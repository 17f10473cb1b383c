"""DnsConfig: the DNS responder's settings, checked once at start-up. Pure."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from registrator.errors import ConfigError
from registrator.settings import Settings

_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_DEFAULT_DNS_PORT = 53


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    """Where to listen and how to answer. Domains are lower-case, without the trailing dot."""

    host: str = "127.0.0.1"  # an IP literal (IPv6 without brackets)
    port: int = 8600  # 0: any free port (tests)
    domain: str = "consul"
    alt_domain: str | None = None
    ttl: int = 2  # service answers
    service_ttls: tuple[tuple[str, int], ...] = ()  # ("web", 5), ("api-*", 10), ("*", 3)
    node_ttl: int = 2  # node, addr, PTR, NS and glue records
    negative_ttl: int = 1  # SOA MINIMUM and the SOA record's own TTL
    only_passing: bool = False
    recursors: tuple[tuple[str, int], ...] = ()  # (IP, port), tried in order
    recursor_timeout: float = 2.0
    truncate: bool = True  # set TC when answers were dropped (Consul's enable_truncate is off)
    tcp_idle_timeout: float = 10.0

    def service_ttl(self, name: str) -> int:
        """Consul's service_ttl rule: the exact name, else the longest `prefix*`, else the
        default TTL (`*` is the empty prefix)."""
        name = name.lower()
        best: tuple[int, int] | None = None  # (prefix length, ttl)
        for pattern, seconds in self.service_ttls:
            if pattern == name:
                return seconds
            prefix = pattern[:-1]
            matches = pattern.endswith("*") and name.startswith(prefix)
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), seconds)
        return self.ttl if best is None else best[1]

    @classmethod
    def from_settings(cls, settings: Settings) -> DnsConfig | None:
        """The DNS part of `settings`; None when `dns_addr` is "off". ConfigError lists every
        value that cannot be used."""
        if settings.dns_addr.strip().lower() == "off":
            return None
        problems: list[str] = []
        host, port = "127.0.0.1", 8600
        try:
            host, port = parse_hostport(settings.dns_addr, default_port=None)
        except ValueError as exc:
            problems.append(f"-dns-addr: {exc}")
        domain = _domain("-dns-domain", settings.dns_domain, problems)
        alt = None
        if settings.dns_alt_domain is not None:
            alt = _domain("-dns-alt-domain", settings.dns_alt_domain, problems)
            if alt == domain:
                problems.append(f"-dns-alt-domain: {alt!r} is the same as -dns-domain")
        service_ttls = []
        for item in settings.dns_service_ttl:
            try:
                service_ttls.append(_service_ttl(item))
            except ValueError as exc:
                problems.append(f"-dns-service-ttl: {exc}")
        recursors = []
        for item in settings.dns_recursors:
            try:
                recursors.append(parse_hostport(item, default_port=_DEFAULT_DNS_PORT))
            except ValueError as exc:
                problems.append(f"-dns-recursors: {exc}")
        for flag, value in (
            ("-dns-ttl", settings.dns_ttl),
            ("-dns-node-ttl", settings.dns_node_ttl),
            ("-dns-negative-ttl", settings.dns_negative_ttl),
        ):
            if not 0 <= value <= 2**31 - 1:
                problems.append(f"{flag}: {value} is not between 0 and 2147483647 seconds")
        if problems:
            raise ConfigError(problems)
        return cls(
            host=host,
            port=port,
            domain=domain,
            alt_domain=alt,
            ttl=settings.dns_ttl,
            service_ttls=tuple(service_ttls),
            node_ttl=settings.dns_node_ttl,
            negative_ttl=settings.dns_negative_ttl,
            only_passing=settings.dns_only_passing,
            recursors=tuple(recursors),
        )


def parse_hostport(raw: str, default_port: int | None) -> tuple[str, int]:
    """`IP:PORT`, `[IPv6]:PORT`, and with a default port also `IP` and a bare IPv6 literal."""
    text = raw.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{raw!r} is not [IPv6]:PORT")
        port_text = rest[1:]
        if rest and not port_text:
            raise ValueError(f"{raw!r} has an empty port")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not port_text:
            raise ValueError(f"{raw!r} has an empty port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{raw!r}: {host!r} is not an IP address") from None
    if not port_text:
        if default_port is None:
            raise ValueError(f"{raw!r} needs a port (HOST:PORT)")
        return str(address), default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{raw!r}: the port is not a number between 0 and 65535")
    port = int(port_text)
    if default_port is not None and port == 0:
        raise ValueError(f"{raw!r}: port 0 cannot be sent to")
    return str(address), port


def _domain(flag: str, raw: str, problems: list[str]) -> str:
    text = raw.strip().lower().rstrip(".")
    labels = text.split(".")
    if not text or not all(_LABEL.fullmatch(label) for label in labels) or len(text) > 200:
        problems.append(
            f"{flag}: {raw!r} is not a domain name (labels of letters, digits, '-' and '_')"
        )
        return "consul"
    return text


def _service_ttl(raw: str) -> tuple[str, int]:
    name, sep, seconds = raw.partition("=")
    name = name.strip().lower()
    seconds = seconds.strip()
    if not sep or not name or not seconds:
        raise ValueError(f"{raw!r} is not NAME=SECONDS")
    if "*" in name[:-1]:
        raise ValueError(f"{raw!r}: '*' may only end the name")
    if not seconds.isdigit() or int(seconds) > 2**31 - 1:
        raise ValueError(f"{raw!r}: {seconds!r} is not a number of seconds")
    return name, int(seconds)
