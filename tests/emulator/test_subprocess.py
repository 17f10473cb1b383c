"""``python -m tests.consul_emulator`` as a separate process."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from .conftest import Api, make_aio_client

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"^consul-emulator listening on (http://127\.0\.0\.1:(\d+))\n$")


@asynccontextmanager
async def emulator_process(*args: str) -> AsyncIterator[tuple[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.consul_emulator",
        *args,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        match = LISTENING.match(line)
        assert match, line
        yield match.group(1).decode(), int(match.group(2))
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


async def test_runs_as_a_module_and_exits_on_sigterm(session: aiohttp.ClientSession) -> None:
    async with emulator_process("--port", "0", "--acl-master-token", "root") as (url, port):
        api = Api(session, url)
        denied = await api.put("/v1/agent/service/register", {"Name": "web"})
        assert denied.status == 403
        client = make_aio_client(port, token="root")
        try:
            assert await client.agent.service.register("web", check={"ttl": "1m"})
            _, nodes = await client.health.service("web")
            assert [n["Service"]["ID"] for n in nodes] == ["web"]
        finally:
            await client.close()
        assert (await api.call("POST", "/_emulator/advance?by=2m")).status == 200
        checks = (await api.get("/v1/agent/checks", token="root")).json()
        assert checks["service:web"]["Output"] == "TTL expired"


async def test_sigint_also_exits_cleanly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.consul_emulator",
        "--port=0",
        "--node-name=edge",
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert LISTENING.match(await asyncio.wait_for(proc.stdout.readline(), 15))
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
async def test_refuses_non_loopback_hosts(host: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.consul_emulator",
        "--port",
        "0",
        "--host",
        host,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert b"non-loopback" in stderr
