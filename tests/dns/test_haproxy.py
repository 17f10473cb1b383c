"""End to end: HAProxy's own resolver finds backends through our SRV records
(`server-template ... resolvers`), requests through HAProxy reach them, and a deregistration
reaches HAProxy through DNS too."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.dns.catalog import inst, snapshot
from tests.dns.conftest import Serve, need_tool
from tests.dns.upstream import free_port

HAPROXY_CFG = """\
global
    maxconn 100

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

resolvers ours
    nameserver dns1 127.0.0.1:{dns_port}
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 100ms
    timeout retry 100ms
    hold valid 1s

frontend fe
    bind 127.0.0.1:{fe_port}
    default_backend be

backend be
    balance roundrobin
    default-server init-addr none check inter 200ms
    server-template web 3 _web._tcp.service.consul resolvers ours resolve-prefer ipv4
"""


@asynccontextmanager
async def http_backend(name: str) -> AsyncIterator[int]:
    """A tiny HTTP server on 127.0.0.1 answering every request with `name`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = name.encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def http_get(port: int) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else 0
    return status, body.decode(errors="replace")


async def test_haproxy_resolves_backends_through_our_srv_records(
    serve: Serve, tmp_path: Path
) -> None:
    haproxy = need_tool("haproxy")
    async with http_backend("one") as port_one, http_backend("two") as port_two:
        served = await serve(
            snapshot(inst("web", "127.0.0.1", port_one), inst("web", "127.0.0.1", port_two))
        )
        fe_port = free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(dns_port=served.port, fe_port=fe_port))
        check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        proc = subprocess.Popen(
            [haproxy, "-f", str(cfg), "-db"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            seen: set[str] = set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while seen != {"one", "two"}:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert loop.time() < deadline, f"HAProxy never reached both backends: {seen}"
                try:
                    status, body = await http_get(fe_port)
                except OSError:
                    status, body = 0, ""
                if status == 200:
                    seen.add(body)
                else:
                    await asyncio.sleep(0.05)
            assert any(b"_web" in key for key in served.server.cache.hits_udp)  # asked us

            # deregister "two": HAProxy's next resolution drops that server
            await served.snapshots.publish(snapshot(inst("web", "127.0.0.1", port_one), version=2))
            deadline = loop.time() + 20
            streak = 0
            while streak < 10:
                assert loop.time() < deadline, "HAProxy kept sending to the removed backend"
                status, body = await http_get(fe_port)
                streak = streak + 1 if (status, body) == (200, "one") else 0
                if streak == 0:
                    await asyncio.sleep(0.05)
        finally:
            proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
