"""All DNS semantics: (zone, question) -> reply. Pure: no I/O, no clock, no randomness.

The reply is structured, not packed: answers come in `Group`s (one per instance: an SRV record
with the address records of its target for the Additional section), the unit that `wire.assemble`
orders (shuffling) and drops whole when a size limit cuts the message (truncation). Names are
tuples of lower-case labels; the owner name of most answers is the question name itself, which the
encoder writes as a pointer to the question, so the reply echoes the question's own spelling.

Grammar (after consul-dns.md §2; labels right of the domain are matched case-insensitively):

    <svc>.service.D   <tag>.<svc>.service.D   _<svc>._<tcp|tag>[.service].D   (SRV: RFC 2782)
    <node>.node.D     <hex>.addr.D            D (SOA, NS)   ns.D (glue)
    <reversed IP>.in-addr.arpa / .ip6.arpa PTR, for registered addresses

Where this differs from Consul (consul-dns.md), on purpose:
- TC is set whenever answers were dropped (Consul: only with enable_truncate); no fixed
  udp_answer_limit of 3: as many records as fit the size limit.
- SOA and NS are answered at the apex only; other existing names get NODATA + SOA.
- NODATA always carries the SOA (Consul omits it for node lookups of other types); TXT is
  NODATA (Consul answers TXT with A records).
- Outside names without recursors, an unregistered PTR included, are REFUSED (Consul: SERVFAIL
  for PTR); a query without RD is never forwarded.
- No datacenter / peer labels (`web.service.dc1.consul` is NXDOMAIN), no prepared queries,
  connect, ingress or virtual lookups, no node-meta TXT (the snapshot has no node meta), no
  CNAME for hostname addresses (SRV targets the hostname; A/AAAA skip it), no EDNS client subnet.
- SRV targets and PTR names have no `<dc>` label: `<hex>.addr.<domain>`, `<node>.node.<domain>`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from registrator.dns.zone import ADDR, NODE, SERVICE, Endpoint, Labels, Zone

# Record types and classes
A: Final = 1
NS: Final = 2
SOA: Final = 6
PTR: Final = 12
AAAA: Final = 28
SRV: Final = 33
OPT: Final = 41
IXFR: Final = 251
AXFR: Final = 252
ANY: Final = 255
CLASS_IN: Final = 1
CLASS_ANY: Final = 255

# Response codes
NOERROR: Final = 0
FORMERR: Final = 1
SERVFAIL: Final = 2
NXDOMAIN: Final = 3
NOTIMP: Final = 4
REFUSED: Final = 5

SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 86400
_KEYWORDS = frozenset({SERVICE, NODE, ADDR, b"query", b"connect", b"ingress", b"virtual"})
_IN_ADDR = (b"in-addr", b"arpa")
_IP6 = (b"ip6", b"arpa")
_NS = b"ns"
_HOSTMASTER = b"hostmaster"

RData = tuple[bytes | Labels, ...]  # bytes: raw; a label tuple: a name the encoder may compress


@dataclass(frozen=True, slots=True)
class RR:
    name: Labels
    rtype: int
    ttl: int
    rdata: RData


@dataclass(frozen=True, slots=True)
class Group:
    """Answer records that stay together, with the Additional records they need."""

    answers: tuple[RR, ...]
    additional: tuple[RR, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    rcode: int = NOERROR
    groups: tuple[Group, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()  # kept after the groups' own, if room is left
    aa: bool = True
    shuffle: bool = False  # the groups' order is free: rotate it per query


@dataclass(frozen=True, slots=True)
class Forward:
    """The name is outside our domains and recursion is configured and desired."""


FORWARD: Final = Forward()


def answer(
    zone: Zone, qname: Labels, qtype: int, qclass: int = CLASS_IN, rd: bool = True
) -> Reply | Forward:
    """The reply for one question. `qname` is lower-case labels, without the root label."""
    if qtype in (AXFR, IXFR):
        return Reply(NOTIMP, aa=False)
    domain = _our_domain(zone, qname)
    if domain is None:
        if qtype == PTR and qclass in (CLASS_IN, CLASS_ANY):
            names = zone.ptr.get(_reverse_ip(qname) or b"")
            if names:
                return Reply(groups=tuple(_ptr_group(zone, qname, n) for n in names))
        return FORWARD if zone.recursion and rd else Reply(REFUSED, aa=False)
    if qclass not in (CLASS_IN, CLASS_ANY):
        return Reply(REFUSED, aa=False)
    parts = qname[: len(qname) - len(domain)]
    if not parts:
        return _apex(zone, domain, qtype)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _KEYWORDS:
            if i != len(parts) - 1:  # datacenter / peer suffixes: we have none
                return _negative(zone, domain, NXDOMAIN)
            keyword, left = parts[i], parts[:i]
            break
    else:
        if qtype == SRV and len(parts) == 2 and parts[0][:1] == parts[1][:1] == b"_":
            keyword, left = SERVICE, parts  # RFC 2782 form without the `service` label
        elif parts == (_NS,):
            return _ns_host(zone, domain, qtype)
        else:
            return _negative(zone, domain, NXDOMAIN)
    if keyword == SERVICE:
        return _service(zone, domain, qname, left, qtype)
    if keyword == NODE:
        return _node(zone, domain, qname, left, qtype)
    if keyword == ADDR:
        return _addr(zone, domain, qname, left, qtype)
    return _negative(zone, domain, NXDOMAIN)  # prepared queries, connect, ingress, virtual


def _our_domain(zone: Zone, qname: Labels) -> Labels | None:
    """The (longest) one of our domains that `qname` is in, or None."""
    found = [
        d
        for d in (zone.domain, zone.alt_domain)
        if d is not None and len(qname) >= len(d) and qname[len(qname) - len(d) :] == d
    ]
    return max(found, key=len) if found else None


def _service(zone: Zone, domain: Labels, qname: Labels, left: Labels, qtype: int) -> Reply:
    if len(left) == 2 and left[0][:1] == left[1][:1] == b"_":
        name, proto = left[0][1:], left[1][1:]
        tag = None if proto == b"tcp" else proto  # Consul: `_tcp` filters nothing
    elif left:
        name, tag = left[-1], b".".join(left[:-1]) or None
    else:
        return _negative(zone, domain, NXDOMAIN)
    service = zone.services.get(name)
    if service is None:
        return _negative(zone, domain, NXDOMAIN)
    endpoints = service.endpoints
    if tag is not None:
        endpoints = tuple(e for e in endpoints if tag in e.tags or (tag == b"udp" and e.udp))
        if not endpoints:
            return _negative(zone, domain, NXDOMAIN)
    ttl = service.ttl
    if qtype == SRV:
        groups = tuple(_srv_group(qname, domain, e, ttl) for e in endpoints)
    elif qtype in (A, AAAA, ANY):
        groups = _address_groups(qname, (e.ip for e in endpoints if e.ip is not None), qtype, ttl)
    else:
        groups = ()
    if not groups:
        return _negative(zone, domain, NOERROR)
    return Reply(groups=groups, shuffle=len(groups) > 1)


def _srv_group(qname: Labels, domain: Labels, e: Endpoint, ttl: int) -> Group:
    target = e.target if e.absolute else (*e.target, *domain)
    # RFC 2782: the target is never compressed, so it goes in as raw bytes.
    srv = RR(qname, SRV, ttl, (struct.pack("!HHH", 1, e.weight, e.port), name_wire(target)))
    if e.ip is None:
        return Group((srv,))
    return Group((srv,), (RR(target, A if len(e.ip) == 4 else AAAA, ttl, (e.ip,)),))


def _address_groups(qname: Labels, ips: Iterable[bytes], qtype: int, ttl: int) -> tuple[Group, ...]:
    """One A/AAAA record per distinct address of the asked family (both for ANY)."""
    seen: set[bytes] = set()
    groups = []
    for ip in ips:
        rtype = A if len(ip) == 4 else AAAA
        if qtype in (ANY, rtype) and ip not in seen:
            seen.add(ip)
            groups.append(Group((RR(qname, rtype, ttl, (ip,)),)))
    return tuple(groups)


def _node(zone: Zone, domain: Labels, qname: Labels, left: Labels, qtype: int) -> Reply:
    ip = zone.nodes.get(left)
    if ip is None:
        return _negative(zone, domain, NXDOMAIN)
    return _single_address(zone, domain, qname, ip, qtype)


def _addr(zone: Zone, domain: Labels, qname: Labels, left: Labels, qtype: int) -> Reply:
    ip = None
    if len(left) == 1 and len(left[0]) in (8, 32):
        try:
            ip = bytes.fromhex(left[0].decode("ascii"))
        except ValueError:  # also UnicodeDecodeError
            ip = None
    if ip is None:
        return _negative(zone, domain, NXDOMAIN)
    return _single_address(zone, domain, qname, ip, qtype)


def _single_address(zone: Zone, domain: Labels, qname: Labels, ip: bytes, qtype: int) -> Reply:
    groups = _address_groups(qname, (ip,), qtype, zone.node_ttl)
    return Reply(groups=groups) if groups else _negative(zone, domain, NOERROR)


def _apex(zone: Zone, domain: Labels, qtype: int) -> Reply:
    soa, ns, glue = _soa(zone, domain), _ns(zone, domain), _glue(zone, domain)
    if qtype == SOA:
        return Reply(groups=(Group((soa,)),), authority=(ns,), additional=glue)
    if qtype == NS:
        return Reply(groups=(Group((ns,)),), additional=glue)
    if qtype == ANY:
        return Reply(groups=(Group((soa,)), Group((ns,))), additional=glue)
    return _negative(zone, domain, NOERROR)


def _ns_host(zone: Zone, domain: Labels, qtype: int) -> Reply:
    groups = tuple(Group((rr,)) for rr in _glue(zone, domain) if qtype in (rr.rtype, ANY))
    return Reply(groups=groups) if groups else _negative(zone, domain, NOERROR)


def _ptr_group(zone: Zone, qname: Labels, name: Labels) -> Group:
    return Group((RR(qname, PTR, zone.node_ttl, ((*name, *zone.domain),)),))


def _negative(zone: Zone, domain: Labels, rcode: int) -> Reply:
    """NXDOMAIN, or NODATA (NOERROR, no answer); both carry the SOA for negative caching."""
    return Reply(rcode, authority=(_soa(zone, domain),))


def _soa(zone: Zone, domain: Labels) -> RR:
    timers = struct.pack(
        "!IIIII", zone.serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, zone.negative_ttl
    )
    rdata = ((_NS, *domain), (_HOSTMASTER, *domain), timers)
    return RR(domain, SOA, zone.negative_ttl, rdata)


def _ns(zone: Zone, domain: Labels) -> RR:
    return RR(domain, NS, zone.node_ttl, ((_NS, *domain),))


def _glue(zone: Zone, domain: Labels) -> tuple[RR, ...]:
    if zone.ns_glue is None:
        return ()
    rtype = A if len(zone.ns_glue) == 4 else AAAA
    return (RR((_NS, *domain), rtype, zone.node_ttl, (zone.ns_glue,)),)


def _reverse_ip(qname: Labels) -> bytes | None:
    """The address a `.in-addr.arpa` / `.ip6.arpa` name stands for, or None."""
    if len(qname) == 6 and qname[4:] == _IN_ADDR:
        octets = qname[3::-1]
        if all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in octets):
            return bytes(int(p) for p in octets)
    elif len(qname) == 34 and qname[32:] == _IP6 and all(len(p) == 1 for p in qname[:32]):
        try:
            return bytes.fromhex(b"".join(qname[31::-1]).decode("ascii"))
        except ValueError:  # also UnicodeDecodeError
            return None
    return None


def name_wire(labels: Labels) -> bytes:
    """Uncompressed wire form of an absolute name."""
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
