"""The zone: an immutable, query-ready view of one catalog snapshot. Pure.

`build_zone` does all the per-snapshot work (health filtering, TTL choice, SRV weights, target
names, reverse map) once, so that answering a query is only dictionary look-ups. Names are kept as
tuples of lower-case labels (bytes), the way they are compared on the wire.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from registrator.dns.config import DnsConfig
from registrator.model import CatalogInstance, CatalogSnapshot

Labels = tuple[bytes, ...]
_LABEL = re.compile(rb"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")

ADDR = b"addr"
NODE = b"node"
SERVICE = b"service"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One healthy instance as DNS serves it."""

    node: str
    ip: bytes | None  # packed address (4 or 16 bytes); None when the address is a hostname
    port: int
    weight: int  # SRV weight: Weights.Passing or Weights.Warning by the instance's status
    tags: frozenset[bytes]  # lower-cased
    udp: bool  # the registration's protocol is udp
    target: Labels  # SRV target: relative to the domain unless `absolute`
    absolute: bool = False  # the target is a hostname outside our domain


@dataclass(frozen=True, slots=True)
class Service:
    ttl: int
    endpoints: tuple[Endpoint, ...]  # never empty


@dataclass(frozen=True, slots=True)
class Zone:
    domain: Labels  # primary, e.g. (b"consul",)
    alt_domain: Labels | None
    services: Mapping[bytes, Service]  # lower-case name -> healthy endpoints
    nodes: Mapping[Labels, bytes]  # node name labels -> packed IP
    ptr: Mapping[bytes, tuple[Labels, ...]]  # packed IP -> names relative to the primary domain
    node_ttl: int
    negative_ttl: int
    serial: int
    recursion: bool  # recursors configured: RA is set, outside names are forwarded
    ns_glue: bytes | None  # packed listen address, when it is a specific IP
    version: int = 0  # the snapshot's version


def empty_zone(config: DnsConfig, serial: int = 1) -> Zone:
    return build_zone(CatalogSnapshot(), config, serial)


def build_zone(snapshot: CatalogSnapshot, config: DnsConfig, serial: int) -> Zone:
    """The zone for `snapshot`: instances with a critical check are dropped, and warning ones
    too with `only_passing`; services left without instances are absent (NXDOMAIN)."""
    services: dict[bytes, list[Endpoint]] = {}
    ttls: dict[bytes, int] = {}
    nodes: dict[Labels, bytes] = {}
    node_ptr: dict[bytes, list[Labels]] = {}
    service_ptr: dict[bytes, list[Labels]] = {}

    def add_node(name: str, address: str) -> None:
        labels = name_labels(name)
        packed = pack_ip(address)
        if labels is None or packed is None or labels in nodes:
            return
        nodes[labels] = packed
        node_ptr.setdefault(packed, []).append((*labels, NODE))

    for node, address in snapshot.nodes:
        add_node(node, address)
    for inst in snapshot.instances:
        add_node(inst.node, inst.node_address)
    for inst in snapshot.instances:
        if inst.status == "critical" or (config.only_passing and inst.status != "passing"):
            continue
        key = inst.service.name.lower().encode()
        endpoint = _endpoint(inst)
        if endpoint is None or len(key) > 63 or not key:
            continue
        services.setdefault(key, []).append(endpoint)
        ttls.setdefault(key, config.service_ttl(inst.service.name))
        if endpoint.ip is not None and inst.service.address:
            names = service_ptr.setdefault(endpoint.ip, [])
            if (key, SERVICE) not in names:
                names.append((key, SERVICE))

    ptr = {ip: tuple(names) for ip, names in service_ptr.items()}
    ptr.update({ip: tuple(names) for ip, names in node_ptr.items()})  # nodes win, as in Consul
    glue = pack_ip(config.host)
    if glue is not None and ipaddress.ip_address(config.host).is_unspecified:
        glue = None
    return Zone(
        domain=domain_labels(config.domain),
        alt_domain=domain_labels(config.alt_domain) if config.alt_domain else None,
        services=MappingProxyType(
            {k: Service(ttls[k], tuple(_dedupe(v))) for k, v in services.items()}
        ),
        nodes=MappingProxyType(nodes),
        ptr=MappingProxyType(ptr),
        node_ttl=config.node_ttl,
        negative_ttl=config.negative_ttl,
        serial=serial,
        recursion=bool(config.recursors),
        ns_glue=glue,
        version=snapshot.version,
    )


def _endpoint(inst: CatalogInstance) -> Endpoint | None:
    svc = inst.service
    address = svc.address or inst.node_address
    if not address or not 0 < svc.port <= 65535:
        return None
    ip = pack_ip(address)
    absolute = False
    target: Labels | None
    if ip is None:  # a hostname: SRV targets it directly, A/AAAA skip it
        target, absolute = name_labels(address), True
    elif not svc.address:  # no own address: the target is the node, as in Consul
        node = name_labels(inst.node)
        target = (*node, NODE) if node is not None else (ip.hex().encode(), ADDR)
    else:
        target = (ip.hex().encode(), ADDR)
    if target is None:
        return None
    weight = inst.weights[0] if inst.status == "passing" else inst.weights[1]
    return Endpoint(
        node=inst.node,
        ip=ip,
        port=svc.port,
        weight=max(0, min(weight, 65535)),
        tags=frozenset(t.lower().encode() for t in svc.tags),
        udp=svc.protocol == "udp",
        target=target,
        absolute=absolute,
    )


def _dedupe(endpoints: list[Endpoint]) -> list[Endpoint]:
    """One SRV per (node, address, port), as Consul does."""
    seen: set[tuple[str, bytes | None, Labels, int]] = set()
    out = []
    for e in endpoints:
        key = (e.node, e.ip, e.target, e.port)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def pack_ip(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def name_labels(name: str) -> Labels | None:
    """A dotted name as wire labels, lower-cased; None when it cannot be a DNS name."""
    try:
        raw = name.lower().rstrip(".").encode("ascii")
    except UnicodeEncodeError:
        return None
    labels = tuple(raw.split(b"."))
    if not all(_LABEL.fullmatch(label) for label in labels) or len(raw) > 250:
        return None
    return labels


def domain_labels(domain: str) -> Labels:
    return tuple(domain.lower().encode().split(b"."))
