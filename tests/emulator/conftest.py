"""Fixtures for the Consul emulator's own tests: a running emulator, raw HTTP, py-consul clients."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import consul
import consul.aio
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from tests.consul_emulator import ConsulEmulator, running_emulator

MASTER = "root-secret"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, read completely."""

    status: int
    headers: CIMultiDictProxy[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def index(self) -> int:
        return int(self.headers["X-Consul-Index"])


class Api:
    """Raw HTTP against the emulator; paths are sent exactly as written (no re-quoting)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["X-Consul-Token"] = token
        payload: bytes | str | None = data
        if body is not None:
            payload = json.dumps(body)
        url = URL(self.base + path, encoded=True)
        async with self.session.request(method, url, data=payload, headers=hdrs) as resp:
            text = await resp.text()
            return Reply(resp.status, resp.headers, text)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PUT", path, body=body, **kw)

    async def register(self, body: dict[str, Any], query: str = "", **kw: Any) -> None:
        reply = await self.put(f"/v1/agent/service/register{query}", body, **kw)
        assert reply.status == 200, reply.text


@pytest.fixture
async def emulator() -> AsyncIterator[ConsulEmulator]:
    async with running_emulator() as emu:
        yield emu


@pytest.fixture
async def acl_emulator() -> AsyncIterator[ConsulEmulator]:
    tokens = {
        "web-writer": [("service_prefix", "web", "write"), ("node_prefix", "", "read")],
        "reader": [("service_prefix", "", "read"), ("node_prefix", "", "read")],
    }
    async with running_emulator(acl_master_token=MASTER, acl_tokens=tokens) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(emulator: ConsulEmulator, session: aiohttp.ClientSession) -> Api:
    return Api(session, emulator.url)


@pytest.fixture
def acl_api(acl_emulator: ConsulEmulator, session: aiohttp.ClientSession) -> Api:
    return Api(session, acl_emulator.url)


def make_aio_client(port: int, **kwargs: Any) -> consul.aio.Consul:
    """py-consul's asyncio client (its constructor trips an aiohttp deprecation warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ssl_context is deprecated", DeprecationWarning)
        return consul.aio.Consul(host="127.0.0.1", port=port, **kwargs)


@pytest.fixture
async def aio_client(emulator: ConsulEmulator) -> AsyncIterator[consul.aio.Consul]:
    client = make_aio_client(emulator.port)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def sync_client(emulator: ConsulEmulator) -> Iterator[consul.Consul]:
    """py-consul's blocking client; call it through ``asyncio.to_thread``."""
    client = consul.Consul(host="127.0.0.1", port=emulator.port)
    try:
        yield client
    finally:
        client.http.session.close()


async def eventually(
    probe: Callable[[], Awaitable[bool]], timeout: float = 5.0, interval: float = 0.02
) -> None:
    """Poll ``probe`` until it returns True, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await probe():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def in_flight(emulator: ConsulEmulator, path: str) -> None:
    """Wait until a request for ``path`` has reached the emulator and not been answered yet."""

    async def pending() -> bool:
        return any(r["path"] == path and r["status"] == 0 for r in emulator.requests())

    await eventually(pending)
