"""Packed replies for one zone, so that steady-state queries are a dictionary look-up.

No I/O; the only state is the cache itself, a rotation counter and a random source for orders.

Two levels, both holding *variants*: the same reply packed with its answer groups in different
orders (the per-query shuffle), minus the two ID bytes.

- `hits_udp` / `hits_tcp` are keyed by the exact request bytes after the ID. Since the key holds the
  question as sent, the stored variants already echo it byte for byte, so the server's hot path is
  `data[:2] + variants[n % len(variants)]` with no parsing at all.
- `_entries` is keyed by what the reply depends on: the lower-cased question, RD/CD/DO, EDNS
  presence and the size limit. A request whose spelling (0x20 case randomisation), EDNS options or
  ID differ lands here; its question bytes are patched into the variants.

Shuffling: a reply with k answer groups is packed in every order for k <= 3 (at most 6), else in
min(k, 8) rotations of one random permutation, so every instance comes first equally often and,
when the size limit cuts the list, each rotation shows a different subset. Queries take the
variants in turn. The cache is never updated in place: the server swaps a new `WireCache` (with the
new zone) when the catalog changes, which is the whole invalidation story.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Sequence

from registrator.dns.answer import Forward, answer
from registrator.dns.wire import (
    BADVERS,
    CD,
    RD,
    Query,
    Rejected,
    assemble,
    error_reply,
    parse_query,
    prepare,
    size_limit,
)
from registrator.dns.zone import Zone

MAX_VARIANTS = 8
MAX_BYTES = 32 * 1024 * 1024  # both levels together; the cache is cleared beyond this
MAX_KEYS = 8192  # per dictionary
_KEY = struct.Struct("!HB")

Variants = tuple[bytes, ...]


class WireCache:
    __slots__ = ("_bytes", "_entries", "_rng", "_tick", "hits_tcp", "hits_udp", "truncate", "zone")

    def __init__(self, zone: Zone, *, truncate: bool = True, rng: random.Random | None = None):
        self.zone = zone
        self.truncate = truncate
        self.hits_udp: dict[bytes, Variants] = {}
        self.hits_tcp: dict[bytes, Variants] = {}
        self._entries: dict[bytes, Variants] = {}
        self._bytes = 0
        self._tick = 0
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not security

    def respond(self, data: bytes, tcp: bool = False) -> bytes | Forward | Rejected:
        """The reply to the request `data`; FORWARD when it goes to a recursor."""
        hits = self.hits_tcp if tcp else self.hits_udp
        variants = hits.get(data[2:])
        if variants is None:
            query = parse_query(data)
            if isinstance(query, Rejected):
                return query
            if query.edns is not None and query.edns.version != 0:
                return error_reply(data, BADVERS, query, ra=self.zone.recursion)
            found = self._variants(query, tcp)
            if isinstance(found, Forward):
                return found
            variants = self._remember(hits, data[2:], query, found)
        self._tick += 1
        return data[:2] + variants[self._tick % len(variants)]

    def _variants(self, query: Query, tcp: bool) -> Variants | Forward:
        limit = size_limit(query, tcp)
        edns = query.edns
        bits = (
            bool(query.flags & RD) << 3
            | bool(query.flags & CD) << 2
            | (edns is not None) << 1
            | (edns is not None and edns.do)
        )
        key = _KEY.pack(limit, bits) + query.canonical_question
        variants = self._entries.get(key)
        if variants is not None:
            return variants
        result = answer(self.zone, query.labels, query.qtype, query.qclass, bool(query.flags & RD))
        if isinstance(result, Forward):
            return result
        prepared = prepare(result, query.labels)
        variants = tuple(
            assemble(
                prepared,
                query.canonical_question,
                query.flags,
                edns,
                limit,
                order,
                ra=self.zone.recursion,
                truncate=self.truncate,
            )[2:]
            for order in self._orders(len(result.groups), result.shuffle)
        )
        self._store(self._entries, key, variants)
        return variants

    def _remember(
        self, hits: dict[bytes, Variants], raw_key: bytes, query: Query, variants: Variants
    ) -> Variants:
        question = query.question
        if question != query.canonical_question:
            end = 10 + len(question)
            variants = tuple(v[:10] + question + v[end:] for v in variants)
        self._store(hits, raw_key, variants)
        return variants

    def _store(self, table: dict[bytes, Variants], key: bytes, variants: Variants) -> None:
        size = sum(map(len, variants)) + len(key)
        if len(table) >= MAX_KEYS or self._bytes + size > MAX_BYTES:
            self.hits_udp.clear()
            self.hits_tcp.clear()
            self._entries.clear()
            self._bytes = 0
        table[key] = variants
        self._bytes += size

    def _orders(self, count: int, shuffle: bool) -> Sequence[Sequence[int]]:
        if not shuffle or count < 2:
            return (range(count),)
        if count <= 3:
            return tuple(itertools.permutations(range(count)))
        base = list(range(count))
        self._rng.shuffle(base)
        steps = min(count, MAX_VARIANTS)
        return tuple(base[i * count // steps :] + base[: i * count // steps] for i in range(steps))
