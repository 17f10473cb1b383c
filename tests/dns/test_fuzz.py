"""Fuzzing the packet path with hypothesis: random bytes, mutated queries and structured
queries with random fields. Nothing escapes; every reply parses, carries the request's ID and a
sensible RCODE. The pure path takes 20,000 examples; the socket path a few hundred."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registrator.dns.answer import Forward
from registrator.dns.config import DnsConfig
from registrator.dns.wire import Rejected
from registrator.dns.wire_cache import WireCache
from registrator.dns.zone import build_zone
from tests.dns.catalog import CATALOG
from tests.dns.clients import HOST, TIMEOUT, wire_query
from tests.dns.conftest import Served

RCODES = {
    dns.rcode.NOERROR,
    dns.rcode.FORMERR,
    dns.rcode.SERVFAIL,
    dns.rcode.NXDOMAIN,
    dns.rcode.NOTIMP,
    dns.rcode.REFUSED,
    dns.rcode.BADVERS,
}

SEEDS = [
    wire_query("web.service.consul"),
    wire_query("_web._tcp.service.consul", "SRV", edns=1232),
    wire_query("big.service.consul", "A", edns=4096),
    wire_query("v1.web.service.consul", "AAAA"),
    wire_query("node1.node.consul", "ANY", edns=512),
    wire_query("7f00000a.addr.consul", "A"),
    wire_query("10.0.0.127.in-addr.arpa", "PTR"),
    wire_query("consul", "SOA"),
    wire_query("example.com", "A"),
    wire_query("web.service.consul", "A") + b"\x00",
]

WORDS = [
    b"web",
    b"service",
    b"node",
    b"addr",
    b"_web",
    b"_tcp",
    b"big",
    b"node1",
    b"v1",
    b"7f00000a",
    b"in-addr",
    b"arpa",
    b"ip6",
    b"10",
    b"127",
    b"0",
    b"alt",
    b"test",
    b"WeB",
    b"x" * 63,
    b"consul",
]
QTYPES = [1, 2, 6, 12, 16, 28, 33, 41, 251, 252, 255]
SPECIAL = [0, 0x3F, 0x40, 0x80, 0xC0, 0xC0 | 12, 0xFF, 0x29]
COUNTS = [0, 1, 2, 255, 65535]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid query with a few bytes flipped, set, cut, inserted or deleted, or a count changed;
    the edits come from one binary draw (three bytes each), which keeps generation cheap."""
    data = bytearray(SEEDS[draw(st.integers(0, len(SEEDS) - 1))])
    edits = draw(st.binary(min_size=3, max_size=18))
    for i in range(0, len(edits) - 2, 3):
        op, where, value = edits[i] % 7, edits[i + 1], edits[i + 2]
        pos = where % len(data) if data else 0
        if op == 0 and data:
            data[pos] ^= 1 << (value % 8)
        elif op == 1 and data:
            data[pos] = SPECIAL[value % len(SPECIAL)]
        elif op == 2:
            del data[pos:]
        elif op == 3:
            data[pos:pos] = bytes([value]) * (1 + where % 4)
        elif op == 4:
            del data[pos : pos + 1 + value % 4]
        elif op == 5 and len(data) >= 12:
            field = 4 + 2 * (where % 4)
            data[field : field + 2] = struct.pack("!H", COUNTS[value % len(COUNTS)])
        elif op == 6 and data:
            data[pos] = value
    return bytes(data)


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """A well-framed query with random fields, mostly a plausible one (a query, class IN, a
    common type, under `consul`), so that it reaches the grammar, not just the parser."""
    fields = draw(st.binary(min_size=16, max_size=16))  # one draw: cheap
    msg_id, flags, qtype, qclass, payload = struct.unpack_from("!5H", fields)
    (ttl,) = struct.unpack_from("!I", fields, 10)
    shape, pick = fields[14], fields[15]
    if shape & 3:
        flags &= 0x07FF  # a QUERY
    if shape & 12:
        qclass = 1
    if shape & 48:
        qtype = QTYPES[pick % len(QTYPES)]
    if shape & 64:
        ttl &= 0xFF00FFFF  # EDNS version 0
    labels = [WORDS[i % len(WORDS)] for i in draw(st.binary(max_size=5))]
    if pick & 16:
        labels.insert(pick % (len(labels) + 1), draw(st.binary(max_size=64)))
    if pick & 96:
        labels.append(b"consul")
    name = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    opt = b""
    if shape & 128:
        rdata = fields[: pick % 17]
        opt = b"\x00" + struct.pack("!HHIH", 41, payload, ttl, len(rdata)) + rdata
    header = struct.pack("!6H", msg_id, flags, 1, 0, 0, 1 if opt else 0)
    return header + name + struct.pack("!HH", qtype, qclass) + opt


PACKETS = st.binary(max_size=600) | mutated() | structured()
CACHES = [
    WireCache(build_zone(CATALOG, DnsConfig(), 1), rng=random.Random(0)),
    WireCache(
        build_zone(CATALOG, DnsConfig(recursors=(("127.0.0.1", 53),), alt_domain="alt"), 1),
        rng=random.Random(0),
    ),
]


def check_reply(packet: bytes, reply: bytes) -> None:
    msg = dns.message.from_wire(reply, question_only=True)
    assert reply[:2] == packet[:2]
    assert msg.rcode() in RCODES
    assert msg.flags & 0x8000


@settings(
    max_examples=20_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(packet=PACKETS, which=st.integers(0, 1), tcp=st.booleans())
def test_packet_path_never_raises(packet: bytes, which: int, tcp: bool) -> None:
    result = CACHES[which].respond(packet, tcp)
    if isinstance(result, Rejected):
        if result.reply is not None:
            check_reply(packet, result.reply)
    elif isinstance(result, bytes):
        check_reply(packet, result)
        dns.message.from_wire(result)  # the whole message parses, not just its header
    else:
        assert isinstance(result, Forward)
        assert which == 1


@settings(
    max_examples=2_000,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(packet=PACKETS)
async def test_server_survives_fuzzing_over_udp(served: Served, packet: bytes) -> None:
    """Each fuzz packet is followed by a probe; replies before the probe's are the fuzz
    packet's, and the probe is always answered."""
    loop = asyncio.get_running_loop()
    probe_id = (int.from_bytes(packet[:2].ljust(2, b"\0"), "big") + 1) & 0xFFFF
    probe = wire_query("node1.node.consul", msg_id=probe_id)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((HOST, served.port))
        await loop.sock_sendall(sock, packet)
        await loop.sock_sendall(sock, probe)
        async with asyncio.timeout(TIMEOUT):
            while True:
                reply = await loop.sock_recv(sock, 70000)
                if reply[:2] == probe[:2] and reply[12 : len(probe)] == probe[12:]:
                    break
                check_reply(packet, reply)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR
