"""The pure core: build_zone (health, weights, targets, reverse map) and answer (grammar,
rcodes, sections), without sockets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from registrator.dns import answer as a
from registrator.dns.config import DnsConfig
from registrator.dns.zone import Zone, build_zone
from registrator.model import CatalogSnapshot
from tests.dns.catalog import CATALOG, inst, snapshot

CONFIG = DnsConfig(alt_domain="alt.test", service_ttls=(("web", 5),), node_ttl=3)


def labels(name: str) -> tuple[bytes, ...]:
    return tuple(name.lower().encode().split(b".")) if name else ()


def zone(snap: CatalogSnapshot = CATALOG, **overrides: object) -> Zone:
    return build_zone(snap, replace(CONFIG, **overrides), serial=7)  # type: ignore[arg-type]


def ask(z: Zone, name: str, qtype: int = a.A, **kw: object) -> a.Reply | a.Forward:
    return a.answer(z, labels(name), qtype, **kw)  # type: ignore[arg-type]


def reply(z: Zone, name: str, qtype: int = a.A, **kw: object) -> a.Reply:
    result = ask(z, name, qtype, **kw)
    assert isinstance(result, a.Reply)
    return result


def answer_data(r: a.Reply) -> set[tuple[int, bytes]]:
    return {
        (rr.rtype, b"".join(p for p in rr.rdata if isinstance(p, bytes)))
        for g in r.groups
        for rr in g.answers
    }


# -- build_zone -------------------------------------------------------------------------------


def test_health_filtering() -> None:
    z = zone()
    ports = sorted(e.port for e in z.services[b"web"].endpoints)
    assert ports == [8080, 8081, 8082]  # 8083 is critical
    assert b"down" not in z.services  # every instance critical: the name is gone
    z = zone(only_passing=True)
    assert sorted(e.port for e in z.services[b"web"].endpoints) == [8080, 8081]


def test_weights_follow_status() -> None:
    weights = {e.port: e.weight for e in zone().services[b"web"].endpoints}
    assert weights == {8080: 1, 8081: 5, 8082: 3}


def test_ttls() -> None:
    z = zone()
    assert z.services[b"web"].ttl == 5
    assert z.services[b"db"].ttl == CONFIG.ttl
    assert (z.node_ttl, z.negative_ttl, z.serial) == (3, 1, 7)


def test_targets() -> None:
    z = zone()
    (db,) = z.services[b"db"].endpoints
    assert (db.target, db.ip) == ((b"node2", b"node"), bytes([127, 0, 0, 2]))
    (ext,) = z.services[b"ext"].endpoints
    assert (ext.target, ext.absolute, ext.ip) == ((b"db", b"example", b"net"), True, None)
    web = {e.port: e.target for e in z.services[b"web"].endpoints}
    assert web[8080] == (b"7f00000a", b"addr")


def test_duplicates_are_merged() -> None:
    twice = snapshot(
        inst("x", "10.0.0.1", 80), inst("x", "10.0.0.1", 80), inst("x", "10.0.0.1", 81)
    )
    assert len(zone(twice).services[b"x"].endpoints) == 2


def test_unservable_instances_are_skipped() -> None:
    snap = snapshot(
        inst("a" * 64, "10.0.0.1", 80),  # not a DNS label
        inst("noport", "10.0.0.1", 0),
        inst("badhost", "bad host name!", 80),
        inst("ok", "10.0.0.1", 80),
    )
    assert set(zone(snap).services) == {b"ok"}


def test_reverse_map_prefers_nodes() -> None:
    z = zone()
    assert z.ptr[bytes([127, 0, 0, 1])] == ((b"node1", b"node"),)
    assert z.ptr[bytes([127, 0, 0, 10])] == ((b"web", b"service"),)


def test_glue_only_for_a_specific_listen_address() -> None:
    assert zone().ns_glue == bytes([127, 0, 0, 1])
    assert zone(host="0.0.0.0").ns_glue is None
    assert reply(zone(host="0.0.0.0"), "ns.consul").authority[0].rtype == a.SOA  # NODATA


# -- answer -----------------------------------------------------------------------------------


def test_zone_transfers_are_not_implemented() -> None:
    for qtype in (a.AXFR, a.IXFR):
        r = reply(zone(), "consul", qtype)
        assert (r.rcode, r.aa) == (a.NOTIMP, False)


def test_other_classes_are_refused() -> None:
    r = reply(zone(), "web.service.consul", a.A, qclass=3)  # CH
    assert (r.rcode, r.aa) == (a.REFUSED, False)
    assert reply(zone(), "web.service.consul", a.A, qclass=a.CLASS_ANY).rcode == a.NOERROR


def test_outside_names_forward_only_with_recursors_and_rd() -> None:
    assert reply(zone(), "example.com").rcode == a.REFUSED
    z = zone(recursors=(("127.0.0.1", 53),))
    assert ask(z, "example.com") is a.FORWARD
    assert reply(z, "example.com", rd=False).rcode == a.REFUSED
    assert ask(z, "99.0.0.127.in-addr.arpa", a.PTR) is a.FORWARD  # unregistered address
    assert reply(z, "10.0.0.127.in-addr.arpa", a.PTR).rcode == a.NOERROR


def test_keyword_is_the_rightmost() -> None:
    """`node.web.service` is tag `node` of service `web` (labels scanned right to left)."""
    tagged = snapshot(inst("web", "10.0.0.1", 80, tags=("node",)), inst("web", "10.0.0.2", 80))
    r = reply(zone(tagged), "node.web.service.consul")
    assert answer_data(r) == {(a.A, bytes([10, 0, 0, 1]))}


def test_longest_domain_wins() -> None:
    """With domain consul and alt dc1.consul, web.service.dc1.consul is in the alt domain."""
    z = zone(alt_domain="dc1.consul")
    r = reply(z, "web.service.dc1.consul")
    assert len(r.groups) == 3
    r = reply(z, "nope.service.dc1.consul")
    assert r.authority[0].name == (b"dc1", b"consul")


def test_apex_any_and_soa() -> None:
    r = reply(zone(), "alt.test", a.ANY)
    assert [g.answers[0].rtype for g in r.groups] == [a.SOA, a.NS]
    soa = reply(zone(), "alt.test", a.SOA).groups[0].answers[0]
    assert soa.name == (b"alt", b"test")
    assert soa.rdata[:2] == ((b"ns", b"alt", b"test"), (b"hostmaster", b"alt", b"test"))


def test_srv_groups_carry_their_glue() -> None:
    r = reply(zone(), "_web._tcp.service.consul", a.SRV)
    assert r.shuffle
    for g in r.groups:
        (srv,) = g.answers
        (glue,) = g.additional
        assert srv.rdata[1] == a.name_wire(glue.name)


def test_single_answers_are_not_shuffled() -> None:
    assert not reply(zone(), "api.service.consul").shuffle


@pytest.mark.parametrize(
    "name",
    [
        "1.2.3.in-addr.arpa",
        "256.0.0.127.in-addr.arpa",
        "x.0.0.127.in-addr.arpa",
        "1.ip6.arpa",
        ".".join("g" * 32) + ".ip6.arpa",
    ],
)
def test_malformed_reverse_names_are_not_ours(name: str) -> None:
    assert reply(zone(), name, a.PTR).rcode == a.REFUSED
