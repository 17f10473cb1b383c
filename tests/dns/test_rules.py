"""Answer rules against a running server: 0x20 echo, size limits and TC, health, updates within a
second, SERVFAIL on a failing handler, malformed packets, TCP framing."""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.rcode
import pytest
from structlog.testing import capture_logs

from registrator.dns import server as server_module
from registrator.dns import wire_cache
from tests.dns.catalog import CATALOG, inst, snapshot
from tests.dns.clients import CLIENT_KINDS, Client, dig, dnspython, raw_tcp, raw_udp, wire_query
from tests.dns.conftest import Serve, Served, need_tool

# -- question echo ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_question_echoed_byte_for_byte(served: Served, transport: str) -> None:
    """0x20 case randomisation: every spelling comes back exactly as sent, also when the reply
    comes from the cache filled by another spelling; answer owners point at the question."""
    ask = raw_udp if transport == "udp" else raw_tcp
    spellings = [
        "WeB.SeRvIcE.CoNsUl",
        "WeB.SeRvIcE.CoNsUl",
        "wEB.service.CONSUL",
        "web.service.consul",
    ]
    for i, name in enumerate(spellings):
        query = wire_query(name, "SRV", msg_id=1000 + i)
        (reply,) = await ask(served.port, query)
        assert reply[:2] == query[:2]  # the ID
        assert reply[12 : 12 + len(query) - 12] == query[12:]  # the question, byte for byte
        msg = dns.message.from_wire(reply)
        assert msg.answer[0].name.to_text() == name + "."
        assert len(msg.answer[0]) == 3


async def test_dig_accepts_mixed_case(served: Served) -> None:
    need_tool("dig")
    result = await dig(served.port, "_WEB._Tcp.SERVICE.consul", "SRV")
    assert result.question == "_WEB._Tcp.SERVICE.consul."
    assert len(result.answer) == 3


# -- size limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["dig", "dnspython"])
async def test_udp_without_edns_is_cut_to_512_bytes_with_tc(served: Served, tool: str) -> None:
    """60 A records do not fit 512 bytes: whole records are dropped and TC is set."""
    if tool == "dig":
        need_tool("dig")
        result = await dig(served.port, "big.service.consul", "A", edns=None)
    else:
        result = await dnspython(served.port, "big.service.consul", "A", edns=None)
    assert result.rcode == "NOERROR"
    assert "tc" in result.flags
    assert result.size <= 512
    assert 20 < len(result.answer) < 60


@pytest.mark.parametrize("tool", ["dig", "dnspython"])
@pytest.mark.parametrize(("edns", "complete"), [(700, False), (1232, True), (4096, True)])
async def test_edns_size_is_honoured(served: Served, tool: str, edns: int, complete: bool) -> None:
    if tool == "dig":
        need_tool("dig")
        result = await dig(served.port, "big.service.consul", "A", edns=edns)
    else:
        result = await dnspython(served.port, "big.service.consul", "A", edns=edns)
    assert result.size <= edns
    assert ("tc" in result.flags) is not complete
    assert (len(result.answer) == 60) is complete


@pytest.mark.parametrize("tool", ["dig", "dnspython"])
async def test_tcp_carries_everything(served: Served, tool: str) -> None:
    if tool == "dig":
        need_tool("dig")
        result = await dig(served.port, "big.service.consul", "SRV", tcp=True, edns=None)
    else:
        result = await dnspython(served.port, "big.service.consul", "SRV", tcp=True, edns=None)
    assert "tc" not in result.flags
    assert len(result.answer) == 60
    assert len(result.additional) == 60


async def test_truncated_srv_keeps_glue_consistent(served: Served) -> None:
    """What is left of a cut SRV answer has the addresses of exactly its own targets."""
    result = await dnspython(served.port, "big.service.consul", "SRV", edns=None)
    assert "tc" in result.flags
    assert result.size <= 512
    targets = [r.rdata.split()[-1] for r in result.answer]
    assert 0 < len(targets) < 60
    assert {r.name for r in result.additional} <= set(targets)


async def test_dnspython_retries_truncated_answers_over_tcp(served: Served) -> None:
    result = await dnspython(served.port, "big.service.consul", "A", edns=None, ignore_tc=False)
    assert len(result.answer) == 60


async def test_tcp_is_cut_at_64k(serve: Serve) -> None:
    """2,000 SRV records (40 bytes each) exceed 64 KB: TC, and the message fits. Answers come
    first: the target addresses (Additional) are left out before any SRV record."""
    huge = snapshot(*(inst("huge", f"10.1.{i // 250}.{i % 250}", 1000 + i) for i in range(2000)))
    served = await serve(huge)
    (reply,) = await raw_tcp(served.port, wire_query("huge.service.consul", "SRV"))
    msg = dns.message.from_wire(reply)
    assert msg.flags & dns.flags.TC
    assert 60_000 < len(reply) <= 65535
    assert 1500 < len(msg.answer[0]) < 2000
    assert msg.additional == []


async def test_no_tc_when_truncation_is_off(serve: Serve) -> None:
    """`truncate=False` is Consul's default: answers cut silently (kept as an option)."""
    served = await serve(truncate=False)
    result = await dnspython(served.port, "big.service.consul", "A", edns=None)
    assert "tc" not in result.flags
    assert len(result.answer) < 60


# -- health -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("tool", "transport"), CLIENT_KINDS)
async def test_only_passing_drops_warning_instances(
    serve: Serve, tool: str, transport: str
) -> None:
    if tool == "dig":
        need_tool("dig")
    served = await serve(only_passing=True)
    client = Client(tool, transport, served.port)
    result = await client.ask("web.service.consul", "A")
    assert result.answers() == {"A 127.0.0.10", "A 127.0.0.11"}
    result = await client.ask("_web._tcp.service.consul", "SRV")
    assert {r.rdata.split()[1] for r in result.answer} == {"1", "5"}  # Weights.Passing


async def test_default_keeps_warning_and_drops_critical(client: Client) -> None:
    result = await client.ask("web.service.consul", "A")
    assert "A 127.0.0.12" in result.answers()  # warning
    assert "A 127.0.0.13" not in result.answers()  # critical
    result = await client.ask("_web._tcp.service.consul", "SRV")
    assert "SRV 1 3 8082 7f00000c.addr.consul." in result.answers()  # Weights.Warning


# -- catalog updates --------------------------------------------------------------------------


async def _until(deadline_s: float, check: object) -> float:
    """Poll `check()` (async, returns bool) until true; fail at the deadline."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():  # type: ignore[operator]
        if loop.time() - start > deadline_s:
            pytest.fail(f"not seen within {deadline_s} s")
        await asyncio.sleep(0.01)
    return loop.time() - start


@pytest.mark.parametrize(("tool", "transport"), CLIENT_KINDS)
async def test_registration_change_shows_within_one_second(
    served: Served, tool: str, transport: str
) -> None:
    """Cached answers are dropped with the zone: a new instance, a new service and a removed
    service are answered for within 1 s of the snapshot being published."""
    if tool == "dig":
        need_tool("dig")
    client = Client(tool, transport, served.port)
    before = await client.ask("web.service.consul", "A")  # fills the cache
    assert len(before.answer) == 3
    assert (await client.ask("fresh.service.consul", "A")).rcode == "NXDOMAIN"
    new = snapshot(
        *(i for i in CATALOG.instances if i.service.name != "Api"),
        inst("web", "127.0.0.14", 8084),
        inst("fresh", "127.0.0.60", 80),
        version=2,
    )
    await served.snapshots.publish(new)

    async def changed() -> bool:
        web = await client.ask("web.service.consul", "A")
        fresh = await client.ask("fresh.service.consul", "A")
        api = await client.ask("api.service.consul", "A")
        return (
            "A 127.0.0.14" in web.answers()
            and fresh.answers() == {"A 127.0.0.60"}
            and api.rcode == "NXDOMAIN"
        )

    await _until(1.0, changed)


async def test_health_change_shows_within_one_second(served: Served) -> None:
    await dnspython(served.port, "web.service.consul", "A")
    sick = tuple(
        i
        if i.service.address != "127.0.0.10"
        else type(i)(node=i.node, node_address=i.node_address, service=i.service, status="critical")
        for i in CATALOG.instances
    )
    await served.snapshots.publish(snapshot(*sick, version=2))

    async def dropped() -> bool:
        result = await dnspython(served.port, "web.service.consul", "A")
        return result.answers() == {"A 127.0.0.11", "A 127.0.0.12"}

    await _until(1.0, dropped)


# -- robustness -------------------------------------------------------------------------------


async def test_handler_exception_becomes_servfail_and_is_logged(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(wire_cache, "answer", broken)
    with capture_logs() as logs:
        udp = await dnspython(served.port, "web.service.consul", "A")
        tcp = await dnspython(served.port, "web.service.consul", "A", tcp=True)
    assert udp.rcode == tcp.rcode == "SERVFAIL"
    assert udp.question == "web.service.consul."
    failures = [e for e in logs if e["event"] == "dns_handler_failed"]
    assert len(failures) == 2
    assert failures[0]["log_level"] == "error"
    assert failures[0]["exc_info"] is True
    monkeypatch.undo()
    assert (await dnspython(served.port, "web.service.consul", "A")).rcode == "NOERROR"


async def test_parser_exception_still_gets_servfail(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when reading the query is what fails, the client gets SERVFAIL with its ID."""

    def broken(data: bytes) -> object:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(wire_cache, "parse_query", broken)
    monkeypatch.setattr(server_module, "parse_query", broken)
    query = wire_query("web.service.consul", msg_id=77)
    for ask in (raw_udp, raw_tcp):
        (reply,) = await ask(served.port, query)
        msg = dns.message.from_wire(reply)
        assert (msg.id, msg.rcode(), msg.question) == (77, dns.rcode.SERVFAIL, [])


def _header(
    msg_id: int, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return struct.pack("!HHHHHH", msg_id, flags, qd, an, ns, ar)


_QUESTION = b"\x03web\x07service\x06consul\x00\x00\x01\x00\x01"
MALFORMED = {
    "truncated-question": _header(1) + b"\x03we",
    "truncated-type": _header(1) + b"\x03web\x00\x00",
    "label-type-0x40": _header(1) + b"\x43web\x00\x00\x01\x00\x01",
    "name-too-long": _header(1)
    + b"\x3f"
    + b"a" * 63
    + (b"\x3f" + b"b" * 63) * 4
    + b"\x00\x00\x01\x00\x01",
    "compression-loop": _header(1) + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer-forward": _header(1) + b"\xc0\x20\x00\x01\x00\x01",
    "absurd-counts": _header(1, qd=65535, an=65535, ns=65535, ar=65535) + _QUESTION,
    "no-question": _header(1, qd=0),
    "trailing-bytes": _header(1) + _QUESTION + b"junk",
    "bad-opt-length": _header(1, ar=1)
    + _QUESTION
    + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x09",
    "two-opt-records": _header(1, ar=2)
    + _QUESTION
    + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00" * 2,
    "oversized": _header(1) + _QUESTION + b"\x00" * 5000,
}


@pytest.mark.parametrize("packet", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_malformed_packets_get_formerr(served: Served, transport: str, packet: bytes) -> None:
    """A malformed query gets FORMERR with its ID, and the server keeps answering."""
    ask = raw_udp if transport == "udp" else raw_tcp
    good = wire_query("web.service.consul", msg_id=7)
    replies = await ask(served.port, packet, good, replies=2)
    bad_reply, good_reply = replies
    assert bad_reply[:2] == packet[:2]
    msg = dns.message.from_wire(bad_reply, question_only=True)
    assert msg.rcode() == dns.rcode.FORMERR
    assert dns.message.from_wire(good_reply).id == 7


DROPPED = {
    "empty": b"",
    "short-header": b"\x00\x01\x01",
    "a-response": _header(1, flags=0x8180) + _QUESTION,
}


@pytest.mark.parametrize("packet", list(DROPPED.values()), ids=list(DROPPED))
async def test_garbage_and_responses_are_dropped(served: Served, packet: bytes) -> None:
    """No reply at all (the next reply on the socket is the good query's)."""
    good = wire_query("web.service.consul", msg_id=9)
    (reply,) = await raw_udp(served.port, packet, good)
    assert dns.message.from_wire(reply).id == 9


@pytest.mark.parametrize("opcode", [1, 2, 4, 5])  # IQUERY, STATUS, NOTIFY, UPDATE
async def test_other_opcodes_get_notimp(served: Served, opcode: int) -> None:
    packet = _header(3, flags=opcode << 11) + _QUESTION
    (reply,) = await raw_udp(served.port, packet)
    assert reply[:2] == packet[:2]
    assert reply[3] & 0xF == dns.rcode.NOTIMP
    assert (reply[2] >> 3) & 0xF == opcode


async def test_edns_version_1_gets_badvers(served: Served) -> None:
    query = dns.message.make_query("web.service.consul", "A", use_edns=1)
    (reply,) = await raw_udp(served.port, query.to_wire())
    msg = dns.message.from_wire(reply)
    assert msg.rcode() == dns.rcode.BADVERS


async def test_tcp_pipelined_queries_on_one_connection(served: Served) -> None:
    queries = [
        wire_query(n, msg_id=100 + i)
        for i, n in enumerate(["web.service.consul", "nope.service.consul", "node1.node.consul"])
    ]
    replies = await raw_tcp(served.port, *queries)
    msgs = [dns.message.from_wire(r) for r in replies]
    assert [m.id for m in msgs] == [100, 101, 102]
    assert [dns.rcode.to_text(m.rcode()) for m in msgs] == ["NOERROR", "NXDOMAIN", "NOERROR"]


async def test_client_fixture_smoke(client: Client) -> None:
    result = await client.ask("web.service.consul")
    assert len(result.answer) == 3
