"""Every query form and answer rule, asked by dig and dnspython over UDP and TCP (the `client`
fixture runs each case four times) against a real server on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.dns.clients import Client, Result


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    rtype: str
    rcode: str = "NOERROR"
    answer: frozenset[str] = frozenset()  # "TYPE rdata", the whole answer section
    authority: tuple[str, ...] = ()  # record types
    additional: frozenset[str] | None = None  # None: not checked
    ttl: int | None = None  # of every answer record
    aa: bool = True


def case(id: str, name: str, rtype: str, *answer: str, **kw: object) -> object:
    return pytest.param(Case(id, name, rtype, answer=frozenset(answer), **kw), id=id)  # type: ignore[arg-type]


NODATA = {"authority": ("SOA",)}
NXDOMAIN = {"rcode": "NXDOMAIN", "authority": ("SOA",)}
WEB_A = ("A 127.0.0.10", "A 127.0.0.11", "A 127.0.0.12")
WEB_SRV = (
    "SRV 1 1 8080 7f00000a.addr.consul.",
    "SRV 1 5 8081 7f00000b.addr.consul.",
    "SRV 1 3 8082 7f00000c.addr.consul.",  # warning: Weights.Warning
)
WEB_GLUE = frozenset({"A 127.0.0.10", "A 127.0.0.11", "A 127.0.0.12"})

CASES = [
    # <svc>.service: healthy and warning instances, the critical one dropped; service_ttl web=5
    case("service-a", "web.service.consul", "A", *WEB_A, ttl=5),
    case("service-case", "WeB.SeRvIcE.CoNsUl", "A", *WEB_A),
    case("service-name-case", "api.service.consul", "A", "A 127.0.0.50", ttl=2),
    case("service-aaaa-nodata", "web.service.consul", "AAAA", **NODATA),
    case("service-txt-nodata", "web.service.consul", "TXT", **NODATA),
    case("service-any", "v6.service.consul", "ANY", "A 127.0.0.30", "AAAA ::1"),
    case("service-aaaa", "v6.service.consul", "AAAA", "AAAA ::1"),
    case("service-a-v4-only", "v6.service.consul", "A", "A 127.0.0.30"),
    case("service-a-v6-only-nodata", "v6only.service.consul", "A", **NODATA),
    case("service-srv", "web.service.consul", "SRV", *WEB_SRV, additional=WEB_GLUE, ttl=5),
    case("service-unknown", "nope.service.consul", "A", **NXDOMAIN),
    case("service-all-critical", "down.service.consul", "A", **NXDOMAIN),
    case("service-empty", "service.consul", "A", **NXDOMAIN),
    case("service-with-dc", "web.service.dc1.consul", "A", **NXDOMAIN),
    case("prepared-query", "web.query.consul", "A", **NXDOMAIN),
    case("unknown-form", "web.consul", "A", **NXDOMAIN),
    # <tag>.<svc>.service
    case("tag", "v1.web.service.consul", "A", "A 127.0.0.10", "A 127.0.0.11"),
    case("tag-case", "BLUE.api.service.consul", "A", "A 127.0.0.50"),
    case("tag-dotted", "a.b.web.service.consul", "A", "A 127.0.0.10"),
    case("tag-unknown", "v9.web.service.consul", "A", **NXDOMAIN),
    # RFC 2782
    case("rfc2782", "_web._tcp.service.consul", "SRV", *WEB_SRV, additional=WEB_GLUE),
    case("rfc2782-no-keyword", "_web._tcp.consul", "SRV", *WEB_SRV),
    case(
        "rfc2782-tag",
        "_web._v1.service.consul",
        "SRV",
        "SRV 1 1 8080 7f00000a.addr.consul.",
        "SRV 1 5 8081 7f00000b.addr.consul.",
    ),
    case(
        "rfc2782-udp",
        "_dns._udp.service.consul",
        "SRV",
        "SRV 1 1 53 7f000028.addr.consul.",  # protocol udp
        "SRV 1 1 53 7f000029.addr.consul.",  # tag udp
        ttl=7,
    ),
    case(
        "srv-node-target",
        "db.service.consul",
        "SRV",
        "SRV 1 1 5432 node2.node.consul.",
        additional=frozenset({"A 127.0.0.2"}),
        ttl=7,
    ),
    case("srv-hostname-target", "ext.service.consul", "SRV", "SRV 1 1 443 db.example.net."),
    case("hostname-a-nodata", "ext.service.consul", "A", **NODATA),
    # alternative domain: answers use the domain that was asked
    case("alt-domain-a", "web.service.alt.test", "A", *WEB_A),
    case(
        "alt-domain-srv",
        "_web._tcp.service.alt.test",
        "SRV",
        *(s.replace(".consul.", ".alt.test.") for s in WEB_SRV),
        additional=WEB_GLUE,
    ),
    case("alt-domain-nxdomain", "nope.service.alt.test", "A", **NXDOMAIN),
    # <node>.node
    case("node", "node1.node.consul", "A", "A 127.0.0.1", ttl=3),
    case("node-dotted-name", "host.dotted.node.consul", "A", "A 127.0.0.3"),
    case("node-aaaa-nodata", "node1.node.consul", "AAAA", **NODATA),
    case("node-unknown", "nope.node.consul", "A", **NXDOMAIN),
    # <hex>.addr
    case("addr-v4", "7f00000a.addr.consul", "A", "A 127.0.0.10", ttl=3),
    case("addr-v6", "00000000000000000000000000000001.addr.consul", "AAAA", "AAAA ::1"),
    case("addr-family-nodata", "7f00000a.addr.consul", "AAAA", **NODATA),
    case("addr-bad-hex", "7f00000z.addr.consul", "A", **NXDOMAIN),
    case("addr-bad-length", "7f0000.addr.consul", "A", **NXDOMAIN),
    # PTR for registered addresses: nodes first, then services; the primary domain
    case("ptr-service", "10.0.0.127.in-addr.arpa", "PTR", "PTR web.service.consul.", ttl=3),
    case("ptr-node", "1.0.0.127.in-addr.arpa", "PTR", "PTR node1.node.consul."),
    case(
        "ptr-v6",
        ".".join("00000000000000000000000000000001"[::-1]) + ".ip6.arpa",
        "PTR",
        "PTR v6.service.consul.",
    ),
    case("ptr-unknown-refused", "99.0.0.127.in-addr.arpa", "PTR", rcode="REFUSED", aa=False),
    # apex
    case(
        "ns",
        "consul",
        "NS",
        "NS ns.consul.",
        additional=frozenset({"A 127.0.0.1"}),
        ttl=3,
    ),
    case("ns-glue", "ns.consul", "A", "A 127.0.0.1"),
    case("apex-a-nodata", "consul", "A", **NODATA),
    # outside our domains, no recursors: REFUSED, never an open resolver
    case("outside-refused", "example.com", "A", rcode="REFUSED", aa=False),
    case("outside-suffix-refused", "notconsul", "A", rcode="REFUSED", aa=False),
]


@pytest.mark.parametrize("c", CASES)
async def test_query(client: Client, c: Case) -> None:
    """The case's answer, with AA on in-domain replies and RA off (no recursors)."""
    result = await client.ask(c.name, c.rtype)
    assert result.rcode == c.rcode, result
    assert result.question == c.name + "."  # echoed as asked, case and all
    assert ("aa" in result.flags) is c.aa
    assert "ra" not in result.flags
    assert "tc" not in result.flags
    assert result.answers() == c.answer, result
    assert all(r.name == c.name.lower() + "." for r in result.answer)
    assert tuple(r.rtype for r in result.authority) == c.authority, result
    if c.additional is not None:
        assert {r.short for r in result.additional} == c.additional, result
    if c.ttl is not None:
        assert {r.ttl for r in result.answer} == {c.ttl}


async def test_soa_at_apex(client: Client) -> None:
    """SOA: the zone's SOA in Answer, NS in Authority, glue in Additional; TTL = MINIMUM."""
    result = await client.ask("consul", "SOA")
    assert result.rcode == "NOERROR"
    (soa,) = result.answer
    mname, rname, serial, refresh, retry, expire, minimum = soa.rdata.split()
    assert (soa.name, mname, rname) == ("consul.", "ns.consul.", "hostmaster.consul.")
    assert int(serial) > 0
    assert (refresh, retry, expire, minimum, soa.ttl) == ("3600", "600", "86400", "1", 1)
    assert [r.short for r in result.authority] == ["NS ns.consul."]
    assert [(r.name, r.short) for r in result.additional] == [("ns.consul.", "A 127.0.0.1")]


@pytest.mark.parametrize(
    ("name", "rtype", "rcode"),
    [("nope.service.consul", "A", "NXDOMAIN"), ("web.service.consul", "AAAA", "NOERROR")],
)
async def test_negative_answers_carry_the_soa(
    client: Client, name: str, rtype: str, rcode: str
) -> None:
    """NXDOMAIN and NODATA both carry the SOA, whose TTL and MINIMUM are the negative TTL."""
    result = await client.ask(name, rtype)
    assert result.rcode == rcode
    assert result.answer == ()
    (soa,) = result.authority
    assert (soa.name, soa.rtype, soa.ttl) == ("consul.", "SOA", 1)
    assert soa.rdata.split()[-1] == "1"


async def test_srv_targets_have_addresses_in_additional(client: Client) -> None:
    """Each SRV target's A record is in Additional, under the target's name."""
    result = await client.ask("_web._tcp.service.consul", "SRV")
    targets = {r.rdata.split()[-1] for r in result.answer}
    glue = {r.name: r.rdata for r in result.additional if r.rtype == "A"}
    assert set(glue) == targets
    assert glue["7f00000a.addr.consul."] == "127.0.0.10"


def _first(result: Result) -> str:
    return result.answer[0].rdata


async def test_answers_are_shuffled_per_query(client: Client) -> None:
    """Repeated queries see different orders; every instance comes first sometimes."""
    firsts = set()
    orders = set()
    for _ in range(12):
        result = await client.ask("web.service.consul", "A")
        firsts.add(_first(result))
        orders.add(tuple(r.rdata for r in result.answer))
    assert firsts == {"127.0.0.10", "127.0.0.11", "127.0.0.12"}
    assert len(orders) > 1
