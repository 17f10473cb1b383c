"""--dns-recursors: names outside our domains go to an upstream (a real dnsmasq); without
recursors they are REFUSED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dns.clients import CLIENT_KINDS, Client, dig, dnspython
from tests.dns.conftest import Serve, need_tool
from tests.dns.upstream import DNSMASQ, dnsmasq, free_port

UPSTREAM_RECORDS = [
    "host-record=www.example.test,192.0.2.7",
    "local=/example.test/",
]


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[int]:
    need_tool(DNSMASQ)
    async with dnsmasq(tmp_path, UPSTREAM_RECORDS) as port:
        yield port


@pytest.mark.parametrize(("tool", "transport"), CLIENT_KINDS)
async def test_outside_names_are_forwarded(
    serve: Serve, upstream: int, tool: str, transport: str
) -> None:
    """Forwarded over the client's transport; the upstream's answer is relayed with RA."""
    if tool == "dig":
        need_tool("dig")
    served = await serve(recursors=(("127.0.0.1", upstream),))
    client = Client(tool, transport, served.port)
    result = await client.ask("www.example.test", "A")
    assert result.rcode == "NOERROR"
    assert result.answers() == {"A 192.0.2.7"}
    assert "ra" in result.flags
    missing = await client.ask("nope.example.test", "A")
    assert missing.rcode == "NXDOMAIN"  # an acceptable upstream answer, relayed


async def test_in_domain_answers_say_ra_with_recursors(serve: Serve, upstream: int) -> None:
    served = await serve(recursors=(("127.0.0.1", upstream),))
    result = await dnspython(served.port, "web.service.consul")
    assert {"aa", "ra"} <= result.flags
    assert len(result.answer) == 3


async def test_unregistered_ptr_is_forwarded(serve: Serve, tmp_path: Path) -> None:
    need_tool(DNSMASQ)
    lines = ["ptr-record=7.2.0.192.in-addr.arpa,www.example.test"]
    async with dnsmasq(tmp_path, lines) as port:
        served = await serve(recursors=(("127.0.0.1", port),))
        result = await dnspython(served.port, "7.2.0.192.in-addr.arpa", "PTR")
        assert result.answers() == {"PTR www.example.test."}
        mine = await dnspython(served.port, "10.0.0.127.in-addr.arpa", "PTR")
        assert mine.answers() == {"PTR web.service.consul."}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_recursors_are_tried_in_order(serve: Serve, upstream: int, transport: str) -> None:
    """A dead recursor (nothing listening) is skipped; the next one answers."""
    served = await serve(
        recursors=(("127.0.0.1", free_port()), ("127.0.0.1", upstream)), recursor_timeout=1.0
    )
    result = await dnspython(served.port, "www.example.test", tcp=transport == "tcp")
    assert result.answers() == {"A 192.0.2.7"}


async def test_all_recursors_failing_is_servfail(serve: Serve) -> None:
    served = await serve(recursors=(("127.0.0.1", free_port()),), recursor_timeout=1.0)
    result = await dnspython(served.port, "www.example.test")
    assert result.rcode == "SERVFAIL"
    assert "ra" in result.flags


async def test_upstream_refusal_is_not_relayed(serve: Serve, upstream: int) -> None:
    """REFUSED (or SERVFAIL) upstream means: try the next one; none left: SERVFAIL."""
    served = await serve(recursors=(("127.0.0.1", upstream),))
    result = await dnspython(served.port, "www.elsewhere.test")  # dnsmasq has no upstream
    assert result.rcode == "SERVFAIL"


async def test_no_recursion_without_rd(serve: Serve, upstream: int) -> None:
    """A client that does not ask for recursion is REFUSED rather than forwarded."""
    need_tool("dig")
    served = await serve(recursors=(("127.0.0.1", upstream),))
    result = await dig(served.port, "www.example.test", "A", extra=("+norecurse",))
    assert result.rcode == "REFUSED"
    assert "aa" not in result.flags
