"""Real DNS clients for the tests: dig (a subprocess) and dnspython, over UDP or TCP, with their
replies reduced to one comparable shape."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from dataclasses import dataclass

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

HOST = "127.0.0.1"
TIMEOUT = 3.0
CLIENT_KINDS = [("dig", "udp"), ("dig", "tcp"), ("dnspython", "udp"), ("dnspython", "tcp")]


@dataclass(frozen=True)
class Rec:
    name: str  # lower-case, absolute
    ttl: int
    rtype: str
    rdata: str

    @property
    def short(self) -> str:
        return f"{self.rtype} {self.rdata}"


@dataclass(frozen=True)
class Result:
    rcode: str
    flags: frozenset[str]
    answer: tuple[Rec, ...]
    authority: tuple[Rec, ...]
    additional: tuple[Rec, ...]  # without the OPT pseudo-record
    size: int
    question: str  # as the reply spelled it

    def answers(self, rtype: str | None = None) -> set[str]:
        return {r.short for r in self.answer if rtype is None or r.rtype == rtype}


@dataclass(frozen=True)
class Client:
    """`tool` is "dig" or "dnspython"; `transport` is "udp" or "tcp"."""

    tool: str
    transport: str
    port: int

    async def ask(
        self, name: str, rtype: str = "A", *, edns: int | None = 1232, ignore_tc: bool = True
    ) -> Result:
        if self.tool == "dig":
            return await dig(self.port, name, rtype, tcp=self.transport == "tcp", edns=edns)
        return await dnspython(
            self.port, name, rtype, tcp=self.transport == "tcp", edns=edns, ignore_tc=ignore_tc
        )


async def dnspython(
    port: int,
    name: str,
    rtype: str = "A",
    *,
    tcp: bool = False,
    edns: int | None = 1232,
    ignore_tc: bool = True,
) -> Result:
    query = dns.message.make_query(name, rtype, use_edns=edns is not None, payload=edns or 512)
    if tcp:
        msg = await dns.asyncquery.tcp(query, HOST, port=port, timeout=TIMEOUT)
    else:
        msg = await dns.asyncquery.udp(query, HOST, port=port, timeout=TIMEOUT)
        if not ignore_tc and msg.flags & dns.flags.TC:
            msg = await dns.asyncquery.tcp(query, HOST, port=port, timeout=TIMEOUT)
    return from_message(msg)


def from_message(msg: dns.message.Message) -> Result:
    def recs(section: list[dns.rrset.RRset]) -> tuple[Rec, ...]:
        return tuple(
            Rec(
                rrset.name.to_text().lower(),
                rrset.ttl,
                dns.rdatatype.to_text(rrset.rdtype),
                rd.to_text().lower(),
            )
            for rrset in section
            for rd in rrset
        )

    return Result(
        rcode=dns.rcode.to_text(msg.rcode()),
        flags=frozenset(dns.flags.to_text(msg.flags).lower().split()),
        answer=recs(msg.answer),
        authority=recs(msg.authority),
        additional=recs(msg.additional),
        size=len(msg.to_wire()),
        question=msg.question[0].name.to_text() if msg.question else "",
    )


_STATUS = re.compile(r"status: (\w+)")
_FLAGS = re.compile(r";; flags:([a-z ]*);")
_SIZE = re.compile(r"MSG SIZE\s+rcvd: (\d+)")


async def dig(
    port: int,
    name: str,
    rtype: str = "A",
    *,
    tcp: bool = False,
    edns: int | None = 1232,
    extra: tuple[str, ...] = (),
) -> Result:
    exe = shutil.which("dig")
    if exe is None:
        raise RuntimeError("dig is not installed (Debian package dnsutils)")
    args = [exe, f"@{HOST}", "-p", str(port), "+tries=1", "+time=3", "+ignore", name, rtype]
    args += ["+tcp"] if tcp else []
    args += [f"+bufsize={edns}"] if edns is not None else ["+noedns"]
    args += extra
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT + 5)
    text = out.decode()
    status, flags, size = _STATUS.search(text), _FLAGS.search(text), _SIZE.search(text)
    if proc.returncode != 0 or not (status and flags and size):
        raise AssertionError(f"dig failed ({proc.returncode}): {text}\n{err.decode()}")
    sections: dict[str, list[Rec]] = {}
    question = ""
    current = None
    for line in text.splitlines():
        header = re.fullmatch(r";; (\w+) SECTION:", line)
        if header:
            current = header.group(1)
            sections[current] = []
        elif not line.strip():
            current = None
        elif current == "QUESTION":
            question = line.lstrip(";").split()[0]
        elif current is not None and not line.startswith(";"):
            owner, ttl, _cls, rtype_text, *rdata = line.split()
            sections[current].append(
                Rec(owner.lower(), int(ttl), rtype_text, " ".join(rdata).lower())
            )
    return Result(
        rcode=status.group(1),
        flags=frozenset(flags.group(1).split()),
        answer=tuple(sections.get("ANSWER", ())),
        authority=tuple(sections.get("AUTHORITY", ())),
        additional=tuple(sections.get("ADDITIONAL", ())),
        size=int(size.group(1)),
        question=question,
    )


async def raw_udp(port: int, *packets: bytes, replies: int = 1) -> list[bytes]:
    """Send `packets` from one UDP socket and collect `replies` datagrams."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((HOST, port))
        for packet in packets:
            await loop.sock_sendall(sock, packet)
        out = []
        async with asyncio.timeout(TIMEOUT):
            for _ in range(replies):
                out.append(await loop.sock_recv(sock, 70000))
        return out


async def raw_tcp(port: int, *packets: bytes, replies: int | None = None) -> list[bytes]:
    """Send length-prefixed `packets` on one connection and read the replies."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for packet in packets:
            writer.write(len(packet).to_bytes(2, "big") + packet)
        await writer.drain()
        out = []
        async with asyncio.timeout(TIMEOUT):
            for _ in range(len(packets) if replies is None else replies):
                size = int.from_bytes(await reader.readexactly(2), "big")
                out.append(await reader.readexactly(size))
        return out
    finally:
        writer.close()
        await writer.wait_closed()


def wire_query(
    name: str, rtype: str = "A", *, msg_id: int = 4242, edns: int | None = None
) -> bytes:
    query = dns.message.make_query(name, rtype, use_edns=edns is not None, payload=edns or 512)
    query.id = msg_id
    return query.to_wire()
