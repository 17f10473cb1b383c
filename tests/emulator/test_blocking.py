"""Blocking queries: early return on change, same index on timeout, index rules."""

from __future__ import annotations

import asyncio

import consul.aio
import pytest

from tests.consul_emulator import ConsulEmulator

from .conftest import Api, in_flight

BLOCKING_PATHS = [
    "/v1/catalog/services",
    "/v1/catalog/service/web",
    "/v1/catalog/nodes",
    "/v1/catalog/node/node1",
    "/v1/health/service/web",
    "/v1/health/checks/web",
    "/v1/health/node/node1",
    "/v1/health/state/any",
]


@pytest.mark.parametrize("path", BLOCKING_PATHS)
async def test_read_headers(api: Api, path: str) -> None:
    reply = await api.get(path)
    assert reply.status == 200
    assert reply.index >= 1
    assert reply.headers["X-Consul-KnownLeader"] == "true"
    assert reply.headers["X-Consul-LastContact"] == "0"
    assert reply.headers["X-Consul-Effective-Consistency"] == "leader"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/catalog/services",
        "/v1/catalog/service/web",
        "/v1/health/service/web",
        "/v1/health/checks/web",
        "/v1/health/state/any",
        "/v1/health/node/node1",
        "/v1/catalog/node/node1",
    ],
)
async def test_returns_early_when_the_index_moves(
    api: Api, emulator: ConsulEmulator, path: str
) -> None:
    await api.register({"Name": "web", "Check": {"TTL": "1m"}})
    first = await api.get(path)
    waiter = asyncio.ensure_future(api.get(f"{path}?index={first.index}&wait=30s"))
    await in_flight(emulator, path)
    assert not waiter.done()
    await api.register({"Name": "web", "ID": "web-2", "Check": {"TTL": "1m"}})
    reply = await asyncio.wait_for(waiter, 5)
    assert reply.index > first.index


async def test_check_status_change_wakes_health_queries(api: Api, emulator: ConsulEmulator) -> None:
    await api.register({"Name": "web", "Check": {"TTL": "1m"}})
    first = await api.get("/v1/health/service/web?passing")
    assert first.json() == []
    waiter = asyncio.ensure_future(api.get(f"/v1/health/service/web?passing&index={first.index}"))
    await in_flight(emulator, "/v1/health/service/web")
    assert not waiter.done()
    await api.put("/v1/agent/check/pass/service:web")
    reply = await asyncio.wait_for(waiter, 5)
    assert reply.index > first.index
    assert [e["Service"]["ID"] for e in reply.json()] == ["web"]


async def test_unrelated_service_does_not_wake_a_service_query(
    api: Api, emulator: ConsulEmulator
) -> None:
    await api.register({"Name": "web"})
    first = await api.get("/v1/health/service/web")
    waiter = asyncio.ensure_future(api.get(f"/v1/health/service/web?index={first.index}&wait=5m"))
    await in_flight(emulator, "/v1/health/service/web")
    await api.register({"Name": "other"})
    await api.get("/v1/status/leader")  # a round trip: the waiter has seen the change by now
    in_flight_paths = [r["path"] for r in emulator.requests() if r["status"] == 0]
    assert in_flight_paths == ["/v1/health/service/web"]
    assert not waiter.done()
    emulator.advance(6 * 60)  # past wait + jitter
    reply = await asyncio.wait_for(waiter, 5)
    assert reply.index == first.index
    assert [e["Service"]["ID"] for e in reply.json()] == ["web"]


async def test_times_out_in_real_time_with_the_same_index(api: Api) -> None:
    first = await api.get("/v1/catalog/services")
    reply = await asyncio.wait_for(
        api.get(f"/v1/catalog/services?index={first.index}&wait=100ms"), 5
    )
    assert reply.status == 200
    assert reply.index == first.index


async def test_index_never_goes_backwards_across_delete(api: Api) -> None:
    await api.register({"Name": "web"})
    created = (await api.get("/v1/health/service/web")).index
    await api.put("/v1/agent/service/deregister/web")
    deleted = await api.get("/v1/health/service/web")
    assert deleted.json() == []
    assert deleted.index > created
    await api.register({"Name": "web"})
    assert (await api.get("/v1/health/service/web")).index > deleted.index


async def test_index_starts_above_earlier_runs(emulator: ConsulEmulator) -> None:
    from tests.consul_emulator import running_emulator

    async with running_emulator() as later:
        assert later.index > emulator.index


async def test_index_zero_is_immediate_and_stale_is_echoed(api: Api) -> None:
    reply = await api.get("/v1/health/service/web?index=0&stale")
    assert reply.status == 200
    assert reply.headers["X-Consul-Effective-Consistency"] == "stale"
    consistent = await api.get("/v1/health/service/web?consistent")
    assert consistent.headers["X-Consul-Effective-Consistency"] == "consistent"
    max_stale = await api.get("/v1/health/service/web?max_stale=5s")
    assert max_stale.headers["X-Consul-Effective-Consistency"] == "stale"


@pytest.mark.parametrize(
    ("query", "status", "text"),
    [
        ("?index=1&wait=10", 400, "Invalid wait time"),
        ("?index=abc", 400, "Invalid index"),
        ("?index=-1", 400, "Invalid index"),
        ("?stale&consistent", 400,
         "Cannot specify ?stale with ?consistent, conflicting semantics."),
        ("?max_stale=x", 400, 'Invalid max_stale value "x"'),
        ("?dc=other", 500, "No path to datacenter"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", BLOCKING_PATHS)
async def test_query_option_errors(api: Api, path: str, query: str, status: int, text: str) -> None:
    reply = await api.get(f"{path}{query}")
    assert (reply.status, reply.text) == (status, text)


async def test_own_dc_is_fine(api: Api) -> None:
    assert (await api.get("/v1/catalog/services?dc=dc1")).status == 200


async def test_py_consul_blocking_query(
    api: Api, emulator: ConsulEmulator, aio_client: consul.aio.Consul
) -> None:
    index, _ = await aio_client.health.service("web")
    waiter = asyncio.ensure_future(aio_client.health.service("web", index=index, wait="30s"))
    await in_flight(emulator, "/v1/health/service/web")
    await api.register({"Name": "web"})
    new_index, nodes = await asyncio.wait_for(waiter, 5)
    assert int(new_index) > int(index)
    assert [n["Service"]["ID"] for n in nodes] == ["web"]
