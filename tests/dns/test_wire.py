"""Parsing queries, packing replies, and the reply cache, without sockets."""

from __future__ import annotations

import random
import struct

import dns.flags
import dns.message
import dns.rcode
import pytest

from registrator.dns import answer as a
from registrator.dns import wire, wire_cache
from registrator.dns.config import DnsConfig
from registrator.dns.wire_cache import WireCache
from registrator.dns.zone import build_zone
from tests.dns.catalog import CATALOG
from tests.dns.clients import wire_query

ZONE = build_zone(CATALOG, DnsConfig(), serial=1)


def cache() -> WireCache:
    return WireCache(ZONE, rng=random.Random(1))


def respond(c: WireCache, packet: bytes, tcp: bool = False) -> dns.message.Message:
    out = c.respond(packet, tcp)
    assert isinstance(out, bytes), out
    return dns.message.from_wire(out)


# -- parse ------------------------------------------------------------------------------------


def test_parse_plain_query() -> None:
    q = wire.parse_query(wire_query("WeB.Service.consul", "SRV"))
    assert isinstance(q, wire.Query)
    assert q.labels == (b"web", b"service", b"consul")
    assert (q.qtype, q.qclass, q.edns) == (a.SRV, 1, None)
    assert q.question == b"\x03WeB\x07Service\x06consul\x00\x00\x21\x00\x01"
    assert q.canonical_question == q.question.lower()


def test_parse_edns() -> None:
    query = dns.message.make_query("x.consul", "A", use_edns=0, payload=1400, want_dnssec=True)
    q = wire.parse_query(query.to_wire())
    assert isinstance(q, wire.Query)
    assert q.edns == wire.Edns(1400, 0, True)


def test_binary_labels_are_fine() -> None:
    packet = struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x02\xff\x00\x06consul\x00\x00\x01\x00\x01"
    q = wire.parse_query(packet)
    assert isinstance(q, wire.Query)
    assert q.labels == (b"\xff\x00", b"consul")


def test_unusual_shapes_go_through_dnslib() -> None:
    """Two questions: the first is answered (Consul does the same)."""
    msg = dns.message.make_query("web.service.consul", "A")
    msg.question.append(dns.message.make_query("db.service.consul", "A").question[0])
    q = wire.parse_query(msg.to_wire())
    assert isinstance(q, wire.Query)
    assert q.labels == (b"web", b"service", b"consul")


def test_opt_after_other_additional_records() -> None:
    msg = dns.message.make_query("web.service.consul", "A", use_edns=0, payload=2000)
    msg.additional.append(dns.rrset.from_text("x.consul.", 0, "IN", "A", "10.0.0.1"))
    q = wire.parse_query(msg.to_wire())
    assert isinstance(q, wire.Query)
    assert q.edns is not None
    assert q.edns.payload == 2000


@pytest.mark.parametrize(
    ("edns", "tcp", "limit"),
    [
        (None, False, 512),
        (None, True, 65535),
        (100, False, 512),
        (1232, False, 1232),
        (65535, False, 65507),
    ],
)
def test_size_limit(edns: int | None, tcp: bool, limit: int) -> None:
    q = wire.parse_query(wire_query("x.consul", edns=edns))
    assert isinstance(q, wire.Query)
    assert wire.size_limit(q, tcp) == limit


# -- packing ----------------------------------------------------------------------------------


def test_flags_copied_and_set() -> None:
    query = dns.message.make_query("web.service.consul", "A", use_edns=0, want_dnssec=True)
    query.flags |= dns.flags.CD
    msg = respond(cache(), query.to_wire())
    assert msg.flags & dns.flags.QR
    assert msg.flags & dns.flags.AA
    assert msg.flags & dns.flags.RD
    assert msg.flags & dns.flags.CD
    assert not msg.flags & (dns.flags.RA | dns.flags.TC | dns.flags.AD)
    assert msg.ednsflags & dns.flags.DO
    assert msg.payload == wire.OUR_PAYLOAD


def test_names_are_compressed_against_the_question() -> None:
    """Answer owners are pointers to the question; additional names end in one."""
    raw = cache().respond(wire_query("_web._tcp.service.consul", "SRV"))
    assert isinstance(raw, bytes)
    assert raw.count(b"\xc0\x0c") == 3  # three SRV owners
    msg = dns.message.from_wire(raw)
    assert {rrset.name.to_text() for rrset in msg.additional} == {
        "7f00000a.addr.consul.",
        "7f00000b.addr.consul.",
        "7f00000c.addr.consul.",
    }


def test_truncation_drops_whole_groups() -> None:
    reply = a.Reply(
        groups=tuple(
            a.Group((a.RR((b"x",), a.A, 1, (bytes([10, 0, 0, i]),)),)) for i in range(100)
        ),
        shuffle=True,
    )
    question = b"\x01x\x00\x00\x01\x00\x01"
    prepared = wire.prepare(reply, (b"x",))
    packed = wire.assemble(prepared, question, 0, None, 512, range(100), ra=False)
    msg = dns.message.from_wire(packed)
    assert msg.flags & dns.flags.TC
    assert len(packed) <= 512
    assert len(msg.answer[0]) == (512 - 12 - len(question)) // 16
    silent = wire.assemble(prepared, question, 0, None, 512, range(100), ra=False, truncate=False)
    assert not dns.message.from_wire(silent).flags & dns.flags.TC


def test_error_reply_keeps_id_opcode_and_rd() -> None:
    packet = struct.pack("!6H", 0xBEEF, (2 << 11) | 0x0100, 0, 0, 0, 0)
    reply = wire.error_reply(packet, a.FORMERR)
    assert struct.unpack("!6H", reply) == (0xBEEF, 0x8000 | (2 << 11) | 0x0100 | 1, 0, 0, 0, 0)


# -- the cache --------------------------------------------------------------------------------


def test_repeat_questions_hit_the_raw_cache_with_a_new_id() -> None:
    c = cache()
    first = c.respond(wire_query("web.service.consul", msg_id=1))
    assert len(c.hits_udp) == 1
    second = c.respond(wire_query("web.service.consul", msg_id=2))
    assert isinstance(first, bytes)
    assert isinstance(second, bytes)
    assert second[:2] == b"\x00\x02"
    assert len(first) == len(second)


def test_other_spellings_share_one_entry_and_keep_their_own_question() -> None:
    c = cache()
    for name in ("web.service.consul", "WEB.service.consul", "Web.Service.Consul"):
        packet = wire_query(name, msg_id=5)
        out = c.respond(packet)
        assert isinstance(out, bytes)
        assert out[12 : len(packet)] == packet[12:]
    assert len(c._entries) == 1
    assert len(c.hits_udp) == 3


def test_udp_and_tcp_and_sizes_are_cached_apart() -> None:
    c = cache()
    assert "tc" in dns.flags.to_text(respond(c, wire_query("big.service.consul")).flags).lower()
    assert len(respond(c, wire_query("big.service.consul"), tcp=True).answer[0]) == 60
    assert len(respond(c, wire_query("big.service.consul", edns=4096)).answer[0]) == 60


def test_variants_cover_every_order_of_three() -> None:
    c = cache()
    orders = set()
    for i in range(12):
        msg = respond(c, wire_query("web.service.consul", msg_id=i))
        orders.add(tuple(rr.to_text() for rr in msg.answer[0]))
    assert len(orders) == 6


def test_many_instances_rotate_so_each_comes_first() -> None:
    c = cache()
    firsts = set()
    for i in range(60):
        msg = respond(c, wire_query("big.service.consul", msg_id=i, edns=4096))
        firsts.add(msg.answer[0][0].to_text())
    assert len(firsts) == wire_cache.MAX_VARIANTS


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire_cache, "MAX_KEYS", 10)
    c = cache()
    for i in range(25):
        c.respond(wire_query(f"n{i}.service.consul"))
    assert len(c.hits_udp) <= 10
    assert len(c._entries) <= 10


def test_badvers_is_not_cached() -> None:
    c = cache()
    query = dns.message.make_query("web.service.consul", "A", use_edns=1)
    assert respond(c, query.to_wire()).rcode() == dns.rcode.BADVERS
    assert not c.hits_udp


def test_forward_is_not_cached() -> None:
    c = WireCache(build_zone(CATALOG, DnsConfig(recursors=(("127.0.0.1", 53),)), 1))
    assert c.respond(wire_query("example.com")) is a.FORWARD
    assert not c.hits_udp
    assert not c._entries
