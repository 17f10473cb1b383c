"""DNS messages on the wire: parse a query, pack a reply. Pure.

Queries of the usual shape (one question, no compression in it, at most an OPT record) are read
with a few `struct` calls; anything else goes through dnslib, and what dnslib cannot read is a
FORMERR. Replies are packed here, not with dnslib: every record is packed on its own, compressing
names only against the question (always at offset 12), so packed records do not depend on where
they land in the message. That makes truncation a matter of adding lengths and shuffling a matter
of concatenating the same chunks in another order.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import dnslib

from registrator.dns.answer import FORMERR, NOTIMP, OPT, RR, Reply, name_wire
from registrator.dns.zone import Labels

QR: Final = 0x8000
AA: Final = 0x0400
TC: Final = 0x0200
RD: Final = 0x0100
RA: Final = 0x0080
CD: Final = 0x0010
_OPCODE: Final = 0x7800

UDP_PLAIN_LIMIT: Final = 512  # without EDNS (RFC 1035)
UDP_MAX_LIMIT: Final = 65507  # the largest UDP payload over IPv4
TCP_LIMIT: Final = 65535  # the two-byte length prefix
MAX_QUERY: Final = 4096  # no sane query is longer; longer ones get FORMERR
OUR_PAYLOAD: Final = 4096  # the UDP payload size we advertise in our OPT record
BADVERS: Final = 16

_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")
_POINTER = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Edns:
    payload: int  # the requester's UDP payload size
    version: int
    do: bool  # DNSSEC OK: copied to the reply, nothing else (we do not sign)


@dataclass(frozen=True, slots=True)
class Query:
    flags: int
    question: bytes  # the first question's wire form, with the sender's spelling
    name: bytes  # its name's wire form, lower-cased (length bytes are < 64: lower() is safe)
    qtype: int
    qclass: int
    edns: Edns | None

    @property
    def labels(self) -> Labels:
        return split_name(self.name)

    @property
    def canonical_question(self) -> bytes:
        return self.name + self.question[-4:]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A packet we do not answer normally: `reply` is an error reply, or None to drop it."""

    reason: str  # snake_case, for the debug log
    reply: bytes | None


def parse_query(data: bytes) -> Query | Rejected:
    """The query in `data`, or why it is rejected (with the FORMERR / NOTIMP reply to send)."""
    if len(data) < 12:
        return Rejected("short_header", None)
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & QR:
        return Rejected("not_a_query", None)  # never answer a response: no reflection loops
    if len(data) > MAX_QUERY:
        return Rejected("oversized", error_reply(data, FORMERR))
    if flags & _OPCODE:
        return Rejected("opcode_not_implemented", error_reply(data, NOTIMP))
    if qdcount == 1 and ancount == 0 and nscount == 0 and arcount <= 1:
        simple = _parse_simple(data, flags, arcount)
        if simple is not None:
            return simple
    return _parse_with_dnslib(data, flags)


def _parse_simple(data: bytes, flags: int, arcount: int) -> Query | Rejected | None:
    """The common shape, by hand; None sends the packet to dnslib."""
    size = len(data)
    pos = 12
    while True:
        if pos >= size:
            return Rejected("truncated_question", error_reply(data, FORMERR))
        length = data[pos]
        if length == 0:
            break
        if length > 63:
            if length >= 0xC0:
                return None  # a compression pointer in the question: legal, but let dnslib do it
            return Rejected("bad_label_type", error_reply(data, FORMERR))
        pos += length + 1
        if pos > 12 + 254:
            return Rejected("name_too_long", error_reply(data, FORMERR))
    name_end = pos + 1
    end = name_end + 4
    if end > size:
        return Rejected("truncated_question", error_reply(data, FORMERR))
    qtype, qclass = _TYPE_CLASS.unpack_from(data, name_end)
    edns = None
    if arcount:
        if end + 11 > size or data[end] != 0:
            return None
        rtype, payload, ttl, rdlength = _RR_FIXED.unpack_from(data, end + 1)
        if rtype != OPT:
            return None
        if end + 11 + rdlength != size:
            return Rejected("bad_opt_record", error_reply(data, FORMERR))
        edns = Edns(payload, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
    elif end != size:
        return Rejected("trailing_bytes", error_reply(data, FORMERR))
    return Query(flags, data[12:end], data[12:name_end].lower(), qtype, qclass, edns)


def _parse_with_dnslib(data: bytes, flags: int) -> Query | Rejected:
    try:
        record = dnslib.DNSRecord.parse(data)
    except Exception:  # noqa: BLE001 - any failure to parse is the sender's FORMERR
        return Rejected("unparseable", error_reply(data, FORMERR))
    if not record.questions:
        return Rejected("no_question", error_reply(data, FORMERR))
    q = record.questions[0]
    labels = tuple(q.qname.label)
    if (
        not all(0 < len(label) <= 63 for label in labels)
        or sum(map(len, labels)) + len(labels) > 254
    ):
        return Rejected("bad_name", error_reply(data, FORMERR))
    if not (0 <= q.qtype <= 0xFFFF and 0 <= q.qclass <= 0xFFFF):
        return Rejected("bad_question", error_reply(data, FORMERR))
    opts = [rr for rr in record.ar if rr.rtype == OPT]
    if len(opts) > 1 or (opts and opts[0].rname.label):
        return Rejected("bad_opt_record", error_reply(data, FORMERR))
    edns = None
    if opts:
        ttl = opts[0].ttl
        edns = Edns(opts[0].rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
    wire = name_wire(labels)
    question = wire + _TYPE_CLASS.pack(q.qtype, q.qclass)
    return Query(flags, question, wire.lower(), q.qtype, q.qclass, edns)


def split_name(wire: bytes) -> Labels:
    labels = []
    pos = 0
    while wire[pos]:
        labels.append(wire[pos + 1 : pos + 1 + wire[pos]])
        pos += 1 + wire[pos]
    return tuple(labels)


def size_limit(query: Query, tcp: bool) -> int:
    """The largest reply the client takes: 512 over plain UDP, the EDNS size, 64 KB over TCP."""
    if tcp:
        return TCP_LIMIT
    if query.edns is None:
        return UDP_PLAIN_LIMIT
    return max(UDP_PLAIN_LIMIT, min(query.edns.payload, UDP_MAX_LIMIT))


# ---------------------------------------------------------------------------------------------
# Packing


class _Names:
    """Name packing with compression against the question's name and its suffixes."""

    __slots__ = ("_suffixes",)

    def __init__(self, qname: Labels) -> None:
        self._suffixes: dict[Labels, int] = {}
        offset = 12
        for i, label in enumerate(qname):
            self._suffixes.setdefault(qname[i:], offset)
            offset += 1 + len(label)

    def pack(self, labels: Labels) -> bytes:
        for i in range(len(labels)):
            pointer = self._suffixes.get(labels[i:])
            if pointer is not None:
                head = b"".join(bytes((len(label),)) + label for label in labels[:i])
                return head + _POINTER.pack(0xC000 | pointer)
        return name_wire(labels)

    def rr(self, rr: RR) -> bytes:
        rdata = b"".join(p if isinstance(p, bytes) else self.pack(p) for p in rr.rdata)
        return self.pack(rr.name) + _RR_FIXED.pack(rr.rtype, 1, rr.ttl, len(rdata)) + rdata


@dataclass(frozen=True, slots=True)
class _PackedGroup:
    answers: bytes
    count: int
    additional: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A reply's records, packed once; `assemble` orders and fits them into messages."""

    reply: Reply
    groups: tuple[_PackedGroup, ...]
    authority: bytes
    additional: tuple[bytes, ...]


def prepare(reply: Reply, qname: Labels) -> Prepared:
    names = _Names(qname)
    return Prepared(
        reply,
        tuple(
            _PackedGroup(
                b"".join(names.rr(rr) for rr in g.answers),
                len(g.answers),
                tuple(names.rr(rr) for rr in g.additional),
            )
            for g in reply.groups
        ),
        b"".join(names.rr(rr) for rr in reply.authority),
        tuple(names.rr(rr) for rr in reply.additional),
    )


def assemble(
    prepared: Prepared,
    question: bytes,
    query_flags: int,
    edns: Edns | None,
    limit: int,
    order: Sequence[int],
    *,
    ra: bool,
    truncate: bool = True,
) -> bytes:
    """The reply message (ID 0) with the groups in `order`, cut to `limit` bytes.

    Whole groups are dropped from the end when the answers do not fit (TC is then set, unless
    `truncate` is off, Consul's default); the authority section goes in if it then still fits,
    and Additional records (target addresses, glue) as far as room is left, without TC.
    """
    opt = _opt_record(edns, 0) if edns is not None else b""
    budget = limit - 12 - len(question) - len(opt)
    parts = [b"", question]
    used = ancount = kept = 0
    groups = prepared.groups
    for i in order:
        group = groups[i]
        if used + len(group.answers) > budget:
            break
        parts.append(group.answers)
        used += len(group.answers)
        ancount += group.count
        kept += 1
    dropped = kept < len(order)
    nscount = 0
    if prepared.authority and used + len(prepared.authority) <= budget:
        parts.append(prepared.authority)
        used += len(prepared.authority)
        nscount = len(prepared.reply.authority)
    arcount = 0
    seen: set[bytes] = set()
    extra = [chunk for i in order[:kept] for chunk in groups[i].additional]
    for chunk in (*extra, *prepared.additional):
        if chunk in seen:
            continue
        if used + len(chunk) > budget:
            break
        seen.add(chunk)
        parts.append(chunk)
        used += len(chunk)
        arcount += 1
    if opt:
        parts.append(opt)
        arcount += 1
    reply = prepared.reply
    flags = QR | (query_flags & (RD | CD)) | (reply.rcode & 0xF)
    if reply.aa:
        flags |= AA
    if ra:
        flags |= RA
    if dropped and truncate:
        flags |= TC
    parts[0] = _HEADER.pack(0, flags, 1, ancount, nscount, arcount)
    return b"".join(parts)


def error_reply(data: bytes, rcode: int, query: Query | None = None, *, ra: bool = False) -> bytes:
    """A reply with no records: the request's ID, opcode, RD and CD, and its question when it
    could be read. Extended rcodes (BADVERS) go into an OPT record."""
    msg_id, flags = struct.unpack_from("!HH", data.ljust(4, b"\0"))
    out_flags = QR | (flags & (_OPCODE | RD | CD)) | (rcode & 0xF) | (RA if ra else 0)
    question = query.question if query is not None else b""
    opt = b""
    if query is not None and query.edns is not None:
        opt = _opt_record(query.edns, rcode >> 4)
    header = _HEADER.pack(msg_id, out_flags, 1 if question else 0, 0, 0, 1 if opt else 0)
    return header + question + opt


def _opt_record(edns: Edns, extended_rcode: int) -> bytes:
    ttl = (extended_rcode << 24) | (0x8000 if edns.do else 0)
    return b"\x00" + _RR_FIXED.pack(OPT, OUR_PAYLOAD, ttl, 0)
