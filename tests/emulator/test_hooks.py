"""Test hooks: /_emulator endpoints and the in-process API."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import consul.aio
import pytest

from tests.consul_emulator import ConsulEmulator, running_emulator

from .conftest import MASTER, Api, eventually, in_flight, make_aio_client


async def test_index_hook_and_property(api: Api, emulator: ConsulEmulator) -> None:
    reply = await api.get("/_emulator/index")
    assert reply.json() == {"index": emulator.index}
    await api.register({"Name": "web"})
    assert (await api.get("/_emulator/index")).json()["index"] == emulator.index
    assert (await api.get("/v1/catalog/services")).index == emulator.index


async def test_force_check_status_hook(api: Api, emulator: ConsulEmulator) -> None:
    await api.register({"Name": "web", "Check": {"HTTP": "http://127.0.0.1:9", "Interval": "10s"}})
    reply = await api.call("POST", "/_emulator/check/service:web/status?status=passing&output=up")
    assert reply.status == 200
    assert emulator.checks()["service:web"]["Status"] == "passing"
    assert len((await api.get("/v1/health/service/web?passing")).json()) == 1
    reply = await api.call(
        "POST", "/_emulator/check/serfHealth/status", body={"Status": "critical"}
    )
    assert reply.status == 200
    assert (await api.get("/v1/health/service/web?passing")).json() == []
    emulator.set_check_status("serfHealth", "passing")
    with pytest.raises(KeyError):
        emulator.set_check_status("nope", "passing")
    missing = await api.call("POST", "/_emulator/check/nope/status?status=passing")
    assert missing.status == 404


async def test_faults_by_count(api: Api) -> None:
    reply = await api.call(
        "POST", "/_emulator/fault", body={"path": "/v1/agent/", "status": 503, "count": 2}
    )
    assert reply.status == 200
    for _ in range(2):
        failed = await api.get("/v1/agent/services")
        assert (failed.status, failed.text) == (503, "injected fault")
        assert failed.headers["X-Consul-Default-ACL-Policy"] == "allow"
    assert (await api.get("/v1/catalog/services")).status == 200  # other prefix untouched
    assert (await api.get("/v1/agent/services")).status == 200


async def test_faults_by_duration_and_clear(api: Api, emulator: ConsulEmulator) -> None:
    await api.call("POST", "/_emulator/fault?path=/v1/&status=500&duration=30s&body=boom")
    assert (await api.get("/v1/status/leader")).text == "boom"
    assert len((await api.get("/_emulator/fault")).json()) == 1
    emulator.advance(31)
    assert (await api.get("/v1/status/leader")).status == 200
    emulator.add_fault("/v1/status/", status=429, method="GET")
    assert (await api.get("/v1/status/peers")).status == 429
    assert (await api.call("DELETE", "/_emulator/fault")).status == 200
    assert (await api.get("/v1/status/peers")).status == 200


async def test_fault_delay(api: Api, emulator: ConsulEmulator) -> None:
    emulator.add_fault("/v1/status/leader", status=None, delay=0.2, count=1)
    started = time.monotonic()
    reply = await api.get("/v1/status/leader")
    assert reply.status == 200
    assert time.monotonic() - started >= 0.15


async def test_request_log_counts_requests_and_never_keeps_tokens(
    session: aiohttp.ClientSession,
) -> None:
    async with running_emulator(acl_master_token=MASTER) as emu:
        api = Api(session, emu.url)
        await api.get(f"/v1/agent/services?token={MASTER}&filter=")
        await api.get("/v1/health/service/web?index=1&wait=1ms", token=MASTER)
        await api.get("/v1/status/leader")
        await api.get("/_emulator/index")
        records = (await api.get("/_emulator/requests")).json()
        assert [(r["method"], r["path"], r["token"]) for r in records] == [
            ("GET", "/v1/agent/services", True),
            ("GET", "/v1/health/service/web", True),
            ("GET", "/v1/status/leader", False),
        ]
        assert records[0]["query"] == {"filter": [""]}
        assert records[1]["query"] == {"index": ["1"], "wait": ["1ms"]}
        assert records[1]["status"] == 200
        assert records[0]["client"].startswith("127.0.0.1:")
        assert MASTER not in json.dumps(records)
        assert MASTER not in json.dumps(emu.requests())
        since = records[-1]["seq"]
        await api.get("/v1/status/peers")
        newer = (await api.get(f"/_emulator/requests?since={since}")).json()
        assert [r["path"] for r in newer] == ["/v1/status/peers"]
        assert (await api.call("DELETE", "/_emulator/requests")).status == 200
        assert emu.requests() == []


async def test_no_leader_mode(api: Api, emulator: ConsulEmulator) -> None:
    await api.call("POST", "/_emulator/no-leader?enable=true")
    assert (await api.get("/v1/status/leader")).text == '""'
    reply = await api.put("/v1/agent/service/register", {"Name": "web"})
    assert (reply.status, reply.text) == (500, "No cluster leader")
    assert (await api.get("/v1/health/service/web")).text == "No cluster leader"
    stale = await api.get("/v1/health/service/web?stale")
    assert stale.status == 200
    assert stale.headers["X-Consul-KnownLeader"] == "false"
    emulator.no_leader = False
    assert (await api.get("/v1/status/leader")).text == '"127.0.0.1:8300"'


async def test_reset(api: Api, emulator: ConsulEmulator) -> None:
    await api.register({"Name": "web"})
    emulator.add_fault("/v1/nothing")
    before = emulator.index
    assert (await api.call("POST", "/_emulator/reset")).status == 200
    assert (await api.get("/v1/agent/services")).json() == {}
    assert (await api.get("/v1/catalog/services")).json() == {"consul": []}
    assert emulator.index > before
    assert (await api.get("/_emulator/fault")).json() == []


async def test_sync_reverts_catalog_edits_of_agent_services(
    api: Api, emulator: ConsulEmulator
) -> None:
    await api.register({"Name": "web", "Tags": ["a"]})
    await api.register({"Name": "eto", "Tags": ["a"], "EnableTagOverride": True})
    for name in ("web", "eto"):
        edit = {
            "Node": "node1",
            "Address": "127.0.0.1",
            "Service": {"Service": name, "Tags": ["b"]},
        }
        assert (await api.put("/v1/catalog/register", edit)).status == 200
    await api.put(
        "/v1/catalog/register",
        {"Node": "node1", "Address": "127.0.0.1", "Service": {"Service": "stray"}},
    )
    assert (await api.get("/v1/catalog/service/web")).json()[0]["ServiceTags"] == ["b"]
    assert (await api.call("POST", "/_emulator/sync")).status == 200
    assert (await api.get("/v1/catalog/service/web")).json()[0]["ServiceTags"] == ["a"]
    assert (await api.get("/v1/catalog/service/eto")).json()[0]["ServiceTags"] == ["b"]
    assert (await api.get("/v1/catalog/service/stray")).json() == []
    assert emulator.services()["eto"]["Tags"] == ["b"]


async def test_restart_listener_refuses_connections_then_keeps_state(
    emulator: ConsulEmulator,
) -> None:
    client = make_aio_client(emulator.port)
    try:
        await client.agent.service.register("web")
        port = emulator.port
        await emulator.close_listener()
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.agent.services()
        await emulator.open_listener()
        assert emulator.port == port
        assert list(await client.agent.services()) == ["web"]
        await emulator.restart_listener(0.05)
        assert list(await client.agent.services()) == ["web"]
    finally:
        await client.close()


async def test_closing_the_listener_answers_pending_blocking_queries(
    api: Api, emulator: ConsulEmulator
) -> None:
    first = await api.get("/v1/catalog/services")
    waiter = asyncio.ensure_future(api.get(f"/v1/catalog/services?index={first.index}&wait=5m"))
    await in_flight(emulator, "/v1/catalog/services")
    await emulator.close_listener()
    reply = await asyncio.wait_for(waiter, 5)
    assert reply.index == first.index
    await emulator.open_listener()


async def test_listener_restart_hook(api: Api, aio_client: consul.aio.Consul) -> None:
    reply = await api.call("POST", "/_emulator/listener/restart?down=500ms")
    assert reply.json() == {"down": 0.5}

    async def answers() -> bool:
        try:
            leader: str = await aio_client.status.leader()
            return leader == "127.0.0.1:8300"
        except aiohttp.ClientConnectionError:
            return False

    async def refused() -> bool:
        return not await answers()

    await eventually(refused)
    await eventually(answers)


async def test_constructor_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ConsulEmulator(host="0.0.0.0")
