"""The pure core stays pure: no sockets, processes, clocks, environment or logging in zone,
answer, wire, wire_cache and config (the house rule; time and randomness come in as values)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import registrator.dns

PURE = ["zone.py", "answer.py", "wire.py", "wire_cache.py", "config.py"]
BANNED = {
    "asyncio",
    "socket",
    "subprocess",
    "os",
    "time",
    "logging",
    "structlog",
    "registrator.logs",
}


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module: str) -> None:
    tree = ast.parse((Path(registrator.dns.__file__).parent / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not imported & BANNED


def test_answering_runs_on_uvloop() -> None:
    """The server's UDP reader (add_reader on a raw socket) works on uvloop, as the CLI runs it."""
    uvloop = pytest.importorskip("uvloop")
    from registrator.broadcast import Latest
    from registrator.dns import DnsServer
    from tests.dns.catalog import CATALOG
    from tests.dns.clients import dnspython
    from tests.dns.conftest import BASE_CONFIG

    async def main() -> tuple[set[str], set[str]]:
        async with DnsServer(BASE_CONFIG, Latest(CATALOG)) as server:
            udp = await dnspython(server.port, "web.service.consul")
            tcp = await dnspython(server.port, "web.service.consul", tcp=True)
            return udp.answers(), tcp.answers()

    udp, tcp = uvloop.run(main())
    assert udp == tcp == {"A 127.0.0.10", "A 127.0.0.11", "A 127.0.0.12"}
