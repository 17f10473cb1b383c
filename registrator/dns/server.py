"""The DNS server: UDP and TCP sockets around `WireCache`. The I/O shell.

UDP is read straight from a non-blocking socket in a reader callback that drains up to
`_UDP_BATCH` datagrams per wake-up (one event-loop round trip for many packets; faster than a
`DatagramProtocol` on both asyncio and uvloop). A repeated question is answered with one dict
look-up and one concatenation; everything else goes through `WireCache.respond`.

The zone is rebuilt whenever the catalog snapshot changes and swapped in with a fresh cache, so an
answer never outlives the snapshot it was built from.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from contextlib import suppress
from types import TracebackType
from typing import Any

from registrator.broadcast import Latest
from registrator.dns.answer import SERVFAIL, Forward
from registrator.dns.config import DnsConfig
from registrator.dns.wire import QR, Query, Rejected, error_reply, parse_query
from registrator.dns.wire_cache import WireCache
from registrator.dns.zone import build_zone
from registrator.logs import get_logger
from registrator.model import CatalogSnapshot

_UDP_BATCH = 64  # datagrams per reader wake-up; then other tasks get a turn
_RECV_SIZE = 4097  # one more than wire.MAX_QUERY, so oversized queries are seen as such
_MAX_FORWARDS = 256  # recursive queries in flight; more are dropped (the client retries)
_MAX_TCP_CONNECTIONS = 512
_BIND_ATTEMPTS = 20  # port 0: UDP picks a port, TCP may find it taken; try again


class DnsServer:
    """UDP + TCP DNS server answering from the newest snapshot in `snapshots`.

    `async with DnsServer(config, snapshots) as server:` binds (`server.port` is then the bound
    port, useful with port 0), follows the snapshots, and closes everything on exit.
    """

    def __init__(self, config: DnsConfig, snapshots: Latest[CatalogSnapshot]) -> None:
        self.config = config
        self._snapshots = snapshots
        self._cache = WireCache(build_zone(CatalogSnapshot(), config, 1))
        self._serial = 0
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._forwards: set[asyncio.Task[Any]] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._tick = 0
        # Counters for /metrics, kept as plain ints: a list index increment is all a query pays.
        self.rcodes = [0] * 16  # replies sent, by rcode
        self.answer_seconds = 0.0  # time spent answering UDP batches (mean = this / replies)
        self.port = 0
        self._log = get_logger(role="dns")

    @property
    def cache(self) -> WireCache:
        """The current zone and its reply cache (swapped whole on every catalog change)."""
        return self._cache

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        version, snapshot = self._snapshots.version, self._snapshots.get()
        self._install(snapshot, version)
        try:
            await self._bind()
        except BaseException:
            await self.close()
            raise
        self._watcher = asyncio.create_task(self._follow(version), name="dns-zone-follower")

    async def serve_forever(self) -> None:
        """Follow the snapshots until cancelled."""
        if self._watcher is None:
            raise RuntimeError("DnsServer.start() was not called")
        await self._watcher

    async def close(self) -> None:
        tasks = [t for t in (self._watcher, *self._forwards, *self._connections) if t]
        for task in tasks:
            task.cancel()
        if self._udp is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
        await asyncio.gather(*tasks, return_exceptions=True)  # their own CancelledErrors included
        self._watcher = None

    # -- zone ---------------------------------------------------------------------------------

    async def _follow(self, version: int) -> None:
        while True:
            version, snapshot = await self._snapshots.wait_newer(version)
            self._install(snapshot, version)

    def _install(self, snapshot: CatalogSnapshot, version: int) -> None:
        self._serial = max(self._serial + 1, int(time.time()))
        try:
            zone = build_zone(snapshot, self.config, self._serial)
        except Exception:  # noqa: BLE001 - keep serving the previous zone
            self._log.error("dns_zone_build_failed", version=version, exc_info=True)
            return
        self._cache = WireCache(zone, truncate=self.config.truncate)
        self._log.debug(
            "dns_zone_updated",
            version=version,
            services=len(zone.services),
            nodes=len(zone.nodes),
        )

    # -- sockets ------------------------------------------------------------------------------

    async def _bind(self) -> None:
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for attempt in range(_BIND_ATTEMPTS):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.setblocking(False)
                udp.bind((host, port))
                bound = udp.getsockname()[1]
                self._tcp = await asyncio.start_server(
                    self._serve_tcp_connection, host, bound, reuse_address=True
                )
            except OSError as exc:
                udp.close()
                if port == 0 and exc.errno == errno.EADDRINUSE and attempt + 1 < _BIND_ATTEMPTS:
                    continue
                raise
            break
        self._udp = udp
        self.port = bound
        asyncio.get_running_loop().add_reader(udp.fileno(), self._on_udp_readable)

    def _on_udp_readable(self) -> None:
        sock = self._udp
        if sock is None:
            return
        recvfrom, sendto = sock.recvfrom, sock.sendto
        hits = self._cache.hits_udp  # the cache cannot be swapped while this callback runs
        tick = self._tick
        rcodes = self.rcodes
        started = time.perf_counter()
        try:
            for _ in range(_UDP_BATCH):
                try:
                    data, addr = recvfrom(_RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:  # e.g. an ICMP error queued on the socket
                    continue
                variants = hits.get(data[2:])
                if variants is not None:  # the hot path: a question seen before, byte for byte
                    tick += 1
                    reply = data[:2] + variants[tick % len(variants)]
                else:
                    result = self._respond(data, addr, tcp=False)
                    if isinstance(result, Forward):
                        self._start_forward(data, addr)
                        continue
                    if result is None:
                        continue
                    reply = result
                rcodes[reply[3] & 15] += 1
                try:  # noqa: SIM105 - no context manager per packet on the hot path
                    sendto(reply, addr)
                except OSError:  # a full send buffer drops the reply, as UDP may
                    pass
        finally:
            self._tick = tick
            self.answer_seconds += time.perf_counter() - started

    def _respond(self, data: bytes, peer: Any, tcp: bool) -> bytes | Forward | None:
        """Answer from the cache; any failure becomes SERVFAIL. None: send nothing."""
        cache = self._cache
        try:
            result = cache.respond(data, tcp)
        except Exception:  # noqa: BLE001 - one bad query must never stop the server
            self._log.error("dns_handler_failed", peer=_peer(peer), exc_info=True)
            return _servfail(data, cache.zone.recursion)
        if isinstance(result, Rejected):
            self._log.debug("dns_packet_malformed", reason=result.reason, peer=_peer(peer))
            return result.reply
        return result

    # -- recursion ----------------------------------------------------------------------------

    def _start_forward(self, data: bytes, peer: Any) -> None:
        if len(self._forwards) >= _MAX_FORWARDS:
            self._log.debug("dns_forward_dropped", peer=_peer(peer), in_flight=len(self._forwards))
            return
        task = asyncio.ensure_future(self._forward(data, tcp=False))
        self._forwards.add(task)
        task.add_done_callback(lambda t: self._forward_done(t, data, peer))

    def _forward_done(self, task: asyncio.Task[bytes | None], data: bytes, peer: Any) -> None:
        self._forwards.discard(task)
        if task.cancelled() or self._udp is None:
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("dns_handler_failed", peer=_peer(peer), exc_info=exc)
        reply = task.result() if exc is None else _servfail(data, True)
        if reply is not None:
            self.rcodes[reply[3] & 15] += 1
            with suppress(OSError):
                self._udp.sendto(reply, peer)

    async def _forward(self, data: bytes, tcp: bool) -> bytes | None:
        """The first acceptable upstream reply (NOERROR or NXDOMAIN), else SERVFAIL."""
        for host, port in self.config.recursors:
            try:
                async with asyncio.timeout(self.config.recursor_timeout):
                    if tcp:
                        reply = await _ask_tcp(data, host, port)
                    else:
                        reply = await _ask_udp(data, host, port)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                self._log.debug("dns_recursor_failed", recursor=f"{host}:{port}", error=repr(exc))
                continue
            if len(reply) >= 12 and reply[:2] == data[:2] and reply[2] & 0x80:
                if reply[3] & 0xF in (0, 3):
                    return reply
                self._log.debug(
                    "dns_recursor_failed", recursor=f"{host}:{port}", rcode=reply[3] & 0xF
                )
        return _servfail(data, True)

    # -- TCP ----------------------------------------------------------------------------------

    async def _serve_tcp_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= _MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                async with asyncio.timeout(self.config.tcp_idle_timeout):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                variants = self._cache.hits_tcp.get(data[2:])
                if variants is not None:
                    self._tick += 1
                    reply: bytes | None = data[:2] + variants[self._tick % len(variants)]
                else:
                    result = self._respond(data, peer, tcp=True)
                    if isinstance(result, Forward):
                        result = await self._forward(data, tcp=True)
                    reply = result
                if reply is None:
                    break  # a packet we drop: end the conversation
                self.rcodes[reply[3] & 15] += 1
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


def _servfail(data: bytes, ra: bool) -> bytes | None:
    """SERVFAIL for `data`, echoing its question when it can be read; never raises."""
    if len(data) < 12 or data[2] & (QR >> 8):
        return None
    try:
        query = parse_query(data)
    except Exception:  # noqa: BLE001 - the parser itself may be what failed
        query = None
    return error_reply(data, SERVFAIL, query if isinstance(query, Query) else None, ra=ra)


def _peer(peer: Any) -> str:
    try:
        return f"{peer[0]}:{peer[1]}"
    except (TypeError, IndexError):
        return str(peer)


async def _ask_udp(data: bytes, host: str, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    class _Upstream(asyncio.DatagramProtocol):
        def datagram_received(self, packet: bytes, addr: Any) -> None:
            if not reply.done() and packet[:2] == data[:2]:
                reply.set_result(packet)

        def error_received(self, exc: Exception) -> None:
            if not reply.done():
                reply.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(_Upstream, remote_addr=(host, port))
    try:
        transport.sendto(data)
        return await reply
    finally:
        transport.close()


async def _ask_tcp(data: bytes, host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(len(data).to_bytes(2, "big") + data)
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(size)
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def serve_dns(
    config: DnsConfig,
    snapshots: Latest[CatalogSnapshot],
    ready: asyncio.Event | None = None,
) -> None:
    """Serve DNS until cancelled: bind UDP and TCP, set `ready`, follow `snapshots`."""
    log = get_logger(role="dns")
    async with DnsServer(config, snapshots) as server:
        log.info(
            "dns_started",
            address=f"{config.host}:{server.port}",
            domain=config.domain,
            alt_domain=config.alt_domain,
            recursors=[f"{h}:{p}" for h, p in config.recursors],
        )
        if ready is not None:
            ready.set()
        try:
            await server.serve_forever()
        finally:
            log.info("dns_stopped", address=f"{config.host}:{server.port}")
