"""Fixtures: a DNS server on 127.0.0.1:0 serving tests.dns.catalog, and real clients for it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import pytest

from registrator.broadcast import Latest
from registrator.dns import DnsConfig, DnsServer
from registrator.model import CatalogSnapshot
from tests.dns.catalog import CATALOG
from tests.dns.clients import CLIENT_KINDS, Client

BASE_CONFIG = DnsConfig(
    host="127.0.0.1",
    port=0,
    domain="consul",
    alt_domain="alt.test",
    ttl=2,
    service_ttls=(("web", 5), ("d*", 7)),
    node_ttl=3,
    negative_ttl=1,
)


@dataclass
class Served:
    server: DnsServer
    snapshots: Latest[CatalogSnapshot]
    config: DnsConfig

    @property
    def port(self) -> int:
        return self.server.port


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """`await serve(snapshot=CATALOG, **DnsConfig overrides)`: a started server, closed after."""
    async with AsyncExitStack() as stack:

        async def start(snapshot: CatalogSnapshot = CATALOG, **overrides: Any) -> Served:
            config = replace(BASE_CONFIG, **overrides)
            latest = Latest(snapshot)
            server = await stack.enter_async_context(DnsServer(config, latest))
            return Served(server, latest, config)

        yield start


@pytest.fixture
async def served(serve: Serve) -> Served:
    return await serve()


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(params=CLIENT_KINDS, ids=["dig-udp", "dig-tcp", "dnspython-udp", "dnspython-tcp"])
def client(request: pytest.FixtureRequest, served: Served) -> Client:
    tool, transport = request.param
    if tool == "dig":
        need_tool("dig")
    return Client(tool, transport, served.port)
