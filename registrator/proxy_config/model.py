"""The routing model: a catalog snapshot -> routers and backends, sorted and immutable. Pure.

Routes come from each service's `traefik.*` tags in the grammar of Traefik's Consul Catalog
provider (the register role writes every hint source in that grammar; Consul users may also tag
by hand). Both renderers read this model, never the tags.

- A service is routed when its tags declare at least one router with a usable rule
  (`traefik.enable=false` turns it off; `traefik.enable=true` alone does not route, since
  Traefik's default rule depends on Traefik's own static configuration).
- A router without `service` targets the service's only declared Traefik service, else the
  default one, named after the registry service (normalized like Traefik does).
- Servers are the instances whose health is passing or warning (Traefik's `strictChecks`
  default); a `loadbalancer.server.port` tag overrides the registered port, as in Traefik.
- Tags may differ between instances of one service: for each key the instance with the smallest
  service ID wins, and the disagreement is reported.
- Anything unusable is left out and reported in `problems`, one sentence each.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from registrator.durations import parse_go_duration
from registrator.model import CatalogInstance, CatalogSnapshot, Check
from registrator.routing_hints import (
    Dnf,
    RuleError,
    check_key_value,
    host_problem,
    normalize_name,
    parse_bool,
    parse_rule,
    path_problem,
    split_tag,
)

Proto = Literal["http", "tcp"]
HEALTHY = frozenset({"passing", "warning"})
_SERVER_NAME_OK = re.compile(r"[A-Za-z0-9_.:-]+")
_METHOD = re.compile(r"[A-Z]{1,16}")
_QUERY = re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/%?]*")
MIN_CHECK_MS, MAX_CHECK_MS = 100, 3_600_000


@dataclass(frozen=True, slots=True, order=True)
class ServerCheck:
    kind: Literal["http", "tcp"]
    interval_ms: int
    port: int | None = None  # when the check targets another port than the server's


@dataclass(frozen=True, slots=True, order=True)
class Server:
    name: str  # stable, derived from the service ID, safe as an HAProxy server name
    service_id: str
    address: str
    port: int
    weight: int = 1
    check: ServerCheck | None = None

    @property
    def ip_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            return False
        return True

    @property
    def hostport(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


@dataclass(frozen=True, slots=True)
class TraefikHealthCheck:
    path: str
    interval: str | None = None
    timeout: str | None = None


@dataclass(frozen=True, slots=True)
class Backend:
    """One Traefik service / one HAProxy backend."""

    name: str  # the Traefik service name
    protocol: Proto
    service: str  # the registry service it draws instances from
    servers: tuple[Server, ...] = ()
    http_check: tuple[str, str] | None = None  # (method, path) from the registered HTTP checks
    scheme: str = "http"
    pass_host_header: bool | None = None
    health_check: TraefikHealthCheck | None = None  # from loadbalancer.healthcheck.* tags

    @property
    def key(self) -> tuple[str, str]:
        return (self.protocol, self.name)


@dataclass(frozen=True, slots=True)
class Router:
    name: str
    protocol: Proto
    rule: str
    dnf: Dnf = field(compare=False)
    backend: str  # a Backend name of the same protocol, or `name@provider` (external)
    service: str  # the registry service whose tags declared it
    priority: int  # the explicit priority, else the rule's length (Traefik's default)
    explicit_priority: bool = False
    entrypoints: tuple[str, ...] = ()
    middlewares: tuple[str, ...] = ()
    tls: bool = False
    cert_resolver: str | None = None
    tls_passthrough: bool = False


@dataclass(frozen=True, slots=True)
class RoutingModel:
    routers: tuple[Router, ...] = ()  # sorted by protocol, priority (high first), name
    backends: tuple[Backend, ...] = ()  # sorted by protocol, name
    problems: tuple[str, ...] = field(default=(), compare=False)

    def backend(self, protocol: Proto, name: str) -> Backend | None:
        for b in self.backends:
            if b.protocol == protocol and b.name == name:
                return b
        return None

    @property
    def server_count(self) -> int:
        return sum(len(b.servers) for b in self.backends)

    def without_servers(self) -> RoutingModel:
        return replace(self, backends=tuple(replace(b, servers=()) for b in self.backends))


@lru_cache(maxsize=16384)
def server_name(service_id: str) -> str:
    """The service ID when HAProxy accepts it as a name, else a cleaned prefix plus a hash."""
    if _SERVER_NAME_OK.fullmatch(service_id) and len(service_id) <= 100:
        return service_id
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]+", "_", service_id)[:80] or "srv"
    digest = hashlib.sha256(service_id.encode()).hexdigest()[:10]
    return f"{cleaned}-{digest}"


# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Section:
    attrs: dict[str, str] = field(default_factory=dict)


def build_routing(snapshot: CatalogSnapshot) -> RoutingModel:
    """The routing model of `snapshot`. Deterministic: the same catalog in any order gives an
    equal model."""
    problems: list[str] = []
    groups: dict[str, list[CatalogInstance]] = {}
    for inst in snapshot.instances:
        groups.setdefault(inst.service.name, []).append(inst)
    routers: dict[str, Router] = {}  # "proto/name" -> router
    backends: dict[tuple[str, str], Backend] = {}
    for service in sorted(groups):
        instances = sorted(groups[service], key=lambda i: i.service.id)
        _service_routing(service, instances, routers, backends, problems)
    for rkey, router in sorted(routers.items()):
        if "@" not in router.backend and (router.protocol, router.backend) not in backends:
            problems.append(
                f"service {router.service}: router {router.name} targets Traefik service "
                f"{router.backend}, which no service declares; it was left out"
            )
            del routers[rkey]
    ordered = sorted(routers.values(), key=lambda r: (r.protocol, -r.priority, r.name))
    return RoutingModel(
        routers=tuple(ordered),
        backends=tuple(backends[k] for k in sorted(backends)),
        problems=tuple(problems),
    )


def _merged_tags(
    service: str, instances: list[CatalogInstance], problems: list[str]
) -> dict[str, str]:
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for inst in instances:
        for tag in inst.service.tags:
            kv = split_tag(tag)
            if kv is None:
                continue
            key, value = kv
            if key not in merged:
                merged[key], owner[key] = value, inst.service.id
            elif merged[key] != value:
                problems.append(
                    f"service {service}: instances disagree on {key}; the value of "
                    f"{owner[key]} is used"
                )
    return merged


def _service_routing(
    service: str,
    instances: list[CatalogInstance],
    routers: dict[str, Router],
    backends: dict[tuple[str, str], Backend],
    problems: list[str],
) -> None:
    tags: dict[str, str] = _merged_tags(service, instances, problems)
    if parse_bool(tags.get("traefik.enable", "true")) is False:
        return
    sections: dict[tuple[str, str, str], _Section] = {}
    for key, value in sorted(tags.items()):
        parts = key.split(".")
        if (
            len(parts) < 5
            or parts[1] not in ("http", "tcp")
            or parts[2]
            not in (
                "routers",
                "services",
            )
        ):
            continue
        canonical, problem = check_key_value(key, value)
        if problem:
            problems.append(f"service {service}: {problem}")
            if parts[2] == "routers":  # a router is used whole or not at all (no lost auth)
                sections.pop((parts[1], parts[2], parts[3]), None)
                sections[(parts[1], "dropped", parts[3])] = _Section()
                problems.append(f"service {service}: router {parts[3]} was left out")
            continue
        if (parts[1], "dropped", parts[3]) in sections and parts[2] == "routers":
            continue
        sections.setdefault((parts[1], parts[2], parts[3]), _Section()).attrs[
            ".".join(parts[4:])
        ] = canonical or ""
    default_name = normalize_name(service) or "service"
    for proto in ("http", "tcp"):
        declared = sorted(n for (p, k, n) in sections if p == proto and k == "services")
        for (p, kind, name), section in sorted(sections.items()):
            if p != proto or kind != "routers":
                continue
            if "rule" not in section.attrs:
                problems.append(f"service {service}: router {name} has no rule; it was left out")
                continue
            target = section.attrs.get("service")
            if target is None and len(declared) > 1:
                problems.append(
                    f"service {service}: router {name} names no service and the tags declare "
                    f"several ({', '.join(declared)}); it was left out"
                )
                continue
            if target is None:
                target = declared[0] if declared else default_name
            router = _router(service, proto, name, section.attrs, target, problems)
            if router is None:
                continue
            rkey = f"{proto}/{name}"
            if rkey in routers:
                problems.append(
                    f"service {service}: router {name} is already declared by service "
                    f"{routers[rkey].service}; this one was left out"
                )
                continue
            if "@" not in target and (target in declared or target == default_name):
                attrs = sections.get((proto, "services", target), _Section()).attrs
                backend = _backend(service, proto, target, attrs, instances, problems)
                existing = backends.get((proto, target))
                if existing is not None and existing.service != service:
                    problems.append(
                        f"service {service}: Traefik service {target} already belongs to "
                        f"service {existing.service}; router {name} was left out"
                    )
                    continue
                backends[(proto, target)] = backend
            routers[rkey] = router


def _router(
    service: str,
    proto: str,
    name: str,
    attrs: Mapping[str, str],
    target: str,
    problems: list[str],
) -> Router | None:
    rule = attrs["rule"]
    try:
        dnf = parse_rule(rule, "http" if proto == "http" else "tcp")
    except RuleError as exc:  # check_key_value parsed it already; kept for safety
        problems.append(f"service {service}: router {name}: {exc}")
        return None
    priority = attrs.get("priority")
    return Router(
        name=name,
        protocol="http" if proto == "http" else "tcp",
        rule=rule,
        dnf=dnf,
        backend=target,
        service=service,
        priority=int(priority) if priority else len(rule),
        explicit_priority=bool(priority),
        entrypoints=_csv(attrs.get("entrypoints")),
        middlewares=_csv(attrs.get("middlewares")),
        tls=attrs.get("tls") == "true" or "tls.certresolver" in attrs,
        cert_resolver=attrs.get("tls.certresolver") or None,
        tls_passthrough=parse_bool(attrs.get("tls.passthrough", "false")) is True,
    )


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


def _backend(
    service: str,
    proto: str,
    name: str,
    attrs: Mapping[str, str],
    instances: Iterable[CatalogInstance],
    problems: list[str],
) -> Backend:
    port_override = (
        int(attrs["loadbalancer.server.port"]) if "loadbalancer.server.port" in attrs else None
    )
    servers: list[Server] = []
    http_check: tuple[str, str] | None = None
    for inst in instances:
        if inst.status not in HEALTHY:
            continue
        svc = inst.service
        address = svc.address or inst.node_address
        if not _address_ok(address):
            problems.append(f"service {service}: instance {svc.id} has an unusable address")
            continue
        port = port_override or svc.port
        if not 0 < port < 65536:
            problems.append(f"service {service}: instance {svc.id} has no usable port")
            continue
        check, http = _server_check(svc.checks, address, port)
        if http is not None and http_check is None:
            http_check = http
        weight = inst.weights[0] if inst.status == "passing" else inst.weights[1]
        servers.append(
            Server(
                name=server_name(svc.id),
                service_id=svc.id,
                address=address,
                port=port,
                weight=max(0, min(256, weight)),
                check=check,
            )
        )
    health = None
    if "loadbalancer.healthcheck.path" in attrs:
        health = TraefikHealthCheck(
            path=attrs["loadbalancer.healthcheck.path"],
            interval=_duration_or_none(attrs.get("loadbalancer.healthcheck.interval")),
            timeout=_duration_or_none(attrs.get("loadbalancer.healthcheck.timeout")),
        )
    passhost = attrs.get("loadbalancer.passhostheader")
    unique = {s.name: s for s in servers}
    return Backend(
        name=name,
        protocol="http" if proto == "http" else "tcp",
        service=service,
        servers=tuple(sorted(unique.values())),
        http_check=http_check if proto == "http" else None,
        scheme=attrs.get("loadbalancer.server.scheme", "http").lower(),
        pass_host_header=None if passhost is None else passhost == "true",
        health_check=health,
    )


@lru_cache(maxsize=16384)
def _address_ok(address: str) -> bool:
    if not address:
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return host_problem(address, wildcard=False) is None
    return True


def _duration_or_none(text: str | None) -> str | None:
    if text is None:
        return None
    seconds = parse_go_duration(text)
    return text if seconds is not None and seconds > 0 else None


@lru_cache(maxsize=16384)
def _server_check(
    checks: tuple[Check, ...], address: str, port: int
) -> tuple[ServerCheck | None, tuple[str, str] | None]:
    """HAProxy's check for one server from its registered checks: HTTP (http:// URLs with a safe
    path) or a TCP connect; gRPC, script and TTL checks stay Consul's business."""
    for check in checks:
        seconds = parse_go_duration(check.interval or "10s") or 10.0
        interval = max(MIN_CHECK_MS, min(MAX_CHECK_MS, round(seconds * 1000)))
        target: str | None = None
        http: tuple[str, str] | None = None
        if check.http:
            parts = urlsplit(check.http)
            path = parts.path or "/"
            method = (check.method or "GET").upper()
            if (
                parts.scheme == "http"
                and path_problem(path) is None
                and _QUERY.fullmatch(parts.query)
                and _METHOD.fullmatch(method)
            ):
                http = (method, path + (f"?{parts.query}" if parts.query else ""))
            target = parts.netloc
        elif check.tcp:
            target = check.tcp
        else:
            continue
        check_port = _port_of(target)
        extra = check_port if check_port is not None and check_port != port else None
        kind: Literal["http", "tcp"] = "http" if http is not None else "tcp"
        return ServerCheck(kind, interval, extra), http
    return None, None


def _port_of(hostport: str | None) -> int | None:
    if not hostport:
        return None
    _, _, tail = hostport.rpartition(":")
    return int(tail) if tail.isdigit() and 0 < int(tail) < 65536 else None
