"""serve_dns: binds UDP and TCP, says when it is ready, cleans up when cancelled."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from registrator.broadcast import Latest
from registrator.dns import DnsConfig, DnsServer, serve_dns
from tests.dns.catalog import CATALOG
from tests.dns.clients import dnspython
from tests.dns.conftest import BASE_CONFIG
from tests.dns.upstream import free_port


async def test_serve_dns_runs_until_cancelled_and_releases_its_ports() -> None:
    port = free_port()
    config = replace(BASE_CONFIG, port=port)
    ready = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(serve_dns(config, Latest(CATALOG), ready))
        await asyncio.wait_for(ready.wait(), 5)
        for tcp in (False, True):
            result = await dnspython(port, "web.service.consul", tcp=tcp)
            assert len(result.answer) == 3
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    events = [e["event"] for e in logs]
    assert events.count("dns_started") == events.count("dns_stopped") == 1
    started = next(e for e in logs if e["event"] == "dns_started")
    assert started["address"] == f"127.0.0.1:{port}"
    # both sockets are closed: the port can be bound again at once
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp_sock:
        tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp_sock.bind(("127.0.0.1", port))


async def test_port_zero_picks_one_port_for_udp_and_tcp() -> None:
    async with DnsServer(BASE_CONFIG, Latest(CATALOG)) as server:
        assert server.port > 0
        udp = await dnspython(server.port, "node1.node.consul")
        tcp = await dnspython(server.port, "node1.node.consul", tcp=True)
        assert udp.answers() == tcp.answers() == {"A 127.0.0.1"}


async def test_port_in_use_fails_at_start() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        config = replace(BASE_CONFIG, port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            await serve_dns(config, Latest(CATALOG))


async def test_ipv6_listener() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    import dns.asyncquery
    import dns.message

    async with DnsServer(replace(BASE_CONFIG, host="::1"), Latest(CATALOG)) as server:
        query = dns.message.make_query("consul", "NS")
        msg = await dns.asyncquery.udp(query, "::1", port=server.port, timeout=3)
        assert [rr.to_text() for rr in msg.additional[0]] == ["::1"]


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        DnsConfig().port = 1  # type: ignore[misc]
