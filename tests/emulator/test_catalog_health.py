"""Catalog and health read endpoints: shapes, name/tag case rules, ?passing, filters, node-meta."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import consul
import consul.aio
import pytest

from tests.consul_emulator import ConsulEmulator

from .conftest import Api


async def seed(api: Api) -> None:
    """web-1 passing (tags v1, Primary), web-2 warning (v2), db-1 critical."""
    for sid, tags, status in (
        ("web-1", ["v1", "Primary"], "passing"),
        ("web-2", ["v2"], "warning"),
    ):
        await api.register(
            {"Name": "web", "ID": sid, "Tags": tags, "Port": 8080, "Meta": {"env": "prod"},
             "Check": {"CheckID": f"{sid}-ttl", "TTL": "5m", "Status": status}}
        )  # fmt: skip
    await api.register({"Name": "db", "ID": "db-1", "Check": {"CheckID": "db-ttl", "TTL": "5m"}})


async def test_fresh_agent_catalog(api: Api, emulator: ConsulEmulator) -> None:
    services = await api.get("/v1/catalog/services")
    assert services.json() == {"consul": []}
    assert services.index >= 1
    nodes = (await api.get("/v1/catalog/nodes")).json()
    assert len(nodes) == 1
    node = nodes[0]
    assert list(node) == [
        "ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta",
        "CreateIndex", "ModifyIndex",
    ]  # fmt: skip
    assert node["Node"] == emulator.node_name
    assert node["TaggedAddresses"] == {
        "lan": "127.0.0.1", "lan_ipv4": "127.0.0.1", "wan": "127.0.0.1", "wan_ipv4": "127.0.0.1",
    }  # fmt: skip
    assert node["Meta"]["consul-network-segment"] == ""
    state = (await api.get("/v1/health/state/passing")).json()
    serf = next(c for c in state if c["CheckID"] == "serfHealth")
    assert serf["Name"] == "Serf Health Status"
    assert serf["Output"] == "Agent alive and reachable"
    assert serf["ServiceTags"] == []


async def test_catalog_services_and_service(api: Api) -> None:
    await seed(api)
    assert (await api.get("/v1/catalog/services")).json() == {
        "consul": [], "db": [], "web": ["Primary", "v1", "v2"],
    }  # fmt: skip
    rows = (await api.get("/v1/catalog/service/WEB")).json()
    assert [r["ServiceID"] for r in rows] == ["web-1", "web-2"]
    row = rows[0]
    assert row["ServiceName"] == "web"
    assert row["ServiceTags"] == ["v1", "Primary"]
    assert row["ServiceWeights"] == {"Passing": 1, "Warning": 1}
    assert row["ServiceMeta"] == {"env": "prod"}
    assert row["ServiceProxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}}
    assert row["ServiceConnect"] == {}
    assert row["ServiceAddress"] == ""
    assert "ServiceTaggedAddresses" not in row
    assert row["CreateIndex"] <= row["ModifyIndex"]
    tagged = (await api.get("/v1/catalog/service/web?tag=primary&tag=V1")).json()
    assert [r["ServiceID"] for r in tagged] == ["web-1"]
    assert (await api.get("/v1/catalog/service/nope")).json() == []
    missing = await api.get("/v1/catalog/service/")
    assert (missing.status, missing.text) == (400, "Missing service name")


async def test_catalog_node(api: Api, emulator: ConsulEmulator) -> None:
    await seed(api)
    body = (await api.get(f"/v1/catalog/node/{emulator.node_name.upper()}")).json()
    assert body["Node"]["Node"] == emulator.node_name
    assert sorted(body["Services"]) == ["consul", "db-1", "web-1", "web-2"]
    assert body["Services"]["web-1"]["Port"] == 8080
    assert "Port" not in body["Services"]["db-1"]  # omitempty
    unknown = await api.get("/v1/catalog/node/ghost")
    assert (unknown.status, unknown.text) == (200, "null")
    assert (await api.get("/v1/catalog/node/")).text == "Missing node name"


async def test_health_service_entries(api: Api) -> None:
    await seed(api)
    entries = (await api.get("/v1/health/service/web")).json()
    assert [e["Service"]["ID"] for e in entries] == ["web-1", "web-2"]
    entry = entries[0]
    assert list(entry) == ["Node", "Service", "Checks"]
    assert [c["CheckID"] for c in entry["Checks"]] == ["serfHealth", "web-1-ttl"]
    svc = entry["Service"]
    assert svc["Tags"] == ["v1", "Primary"]
    assert svc["Weights"] == {"Passing": 1, "Warning": 1}
    assert svc["PeerName"] == ""
    service_check = entry["Checks"][1]
    assert service_check["ServiceTags"] == ["v1", "Primary"]
    assert service_check["Type"] == "ttl"
    assert (await api.get("/v1/health/service/nope")).json() == []


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["web-1", "web-2"]),
        ("?passing", ["web-1"]),
        ("?passing=true", ["web-1"]),
        ("?passing=1", ["web-1"]),
        ("?passing=T", ["web-1"]),
        ("?passing=false", ["web-1", "web-2"]),
        ("?passing=0", ["web-1", "web-2"]),
        ("?tag=PRIMARY", ["web-1"]),
        ("?tag=v1&tag=v2", []),
        ("?filter=" + quote('Service.ID == "web-2"'), ["web-2"]),
        ("?filter=" + quote('"warning" in Checks.Status'), ["web-2"]),
        ("?filter=" + quote('Service.Meta.env == prod and Node.Node matches "^node"'),
         ["web-1", "web-2"]),
        ("?filter=" + quote("Service.Port != 8080"), []),
    ],
)  # fmt: skip
async def test_health_service_query_parameters(api: Api, query: str, ids: list[str]) -> None:
    await seed(api)
    reply = await api.get(f"/v1/health/service/Web{query}")
    assert reply.status == 200, reply.text
    assert [e["Service"]["ID"] for e in reply.json()] == ids


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/v1/health/service/web?passing=maybe", 400, "Invalid value for ?passing"),
        ("/v1/health/service/", 400, "Missing service name"),
        ("/v1/health/checks/", 400, "Missing service name"),
        ("/v1/health/node/", 400, "Missing node name"),
        ("/v1/health/state/", 400, "Missing check state"),
        ("/v1/health/service/web?filter=" + quote("Service.ID =="), 500, None),
        ("/v1/health/service/web?filter=" + quote("Bogus == 1"), 500,
         "error finding value in datum: /Bogus at part 0: couldn't find struct field with name "
         '"Bogus"'),
    ],
)  # fmt: skip
async def test_health_errors(api: Api, path: str, status: int, text: str | None) -> None:
    await seed(api)
    reply = await api.get(path)
    assert reply.status == status
    if text is None:
        assert reply.text.startswith("Failed to create boolean expression evaluator: ")
    else:
        assert reply.text == text


async def test_health_checks_node_and_state(api: Api, emulator: ConsulEmulator) -> None:
    await seed(api)
    checks = (await api.get("/v1/health/checks/WEB")).json()
    assert [c["CheckID"] for c in checks] == ["web-1-ttl", "web-2-ttl"]
    node = (await api.get(f"/v1/health/node/{emulator.node_name}")).json()
    assert [c["CheckID"] for c in node] == ["db-ttl", "serfHealth", "web-1-ttl", "web-2-ttl"]
    assert (await api.get("/v1/health/node/ghost")).json() == []
    by_state = {
        state: [c["CheckID"] for c in (await api.get(f"/v1/health/state/{state}")).json()]
        for state in ("any", "passing", "warning", "critical", "bogus")
    }
    assert by_state == {
        "any": ["db-ttl", "serfHealth", "web-1-ttl", "web-2-ttl"],
        "passing": ["serfHealth", "web-1-ttl"],
        "warning": ["web-2-ttl"],
        "critical": ["db-ttl"],
        "bogus": [],
    }
    filtered = await api.get("/v1/health/state/any?filter=" + quote('ServiceName == "db"'))
    assert [c["CheckID"] for c in filtered.json()] == ["db-ttl"]


async def test_node_meta_filter_and_external_nodes(api: Api) -> None:
    reg = {
        "Node": "ext1", "Address": "192.0.2.10", "NodeMeta": {"rack": "r1"},
        "Service": {"Service": "legacy", "Port": 80, "Tags": ["old"]},
        "Check": {"CheckID": "legacy-alive", "Name": "alive", "Status": "passing",
                  "ServiceID": "legacy"},
    }  # fmt: skip
    reply = await api.put("/v1/catalog/register", reg)
    assert (reply.status, reply.text) == (200, "true")
    names = [n["Node"] for n in (await api.get("/v1/catalog/nodes?node-meta=rack:r1")).json()]
    assert names == ["ext1"]
    services = (await api.get("/v1/catalog/services?node-meta=rack:r1")).json()
    assert services == {"legacy": ["old"]}
    entry = (await api.get("/v1/health/service/legacy?passing")).json()[0]
    assert entry["Node"]["Address"] == "192.0.2.10"
    assert [c["CheckID"] for c in entry["Checks"]] == ["legacy-alive"]
    dereg = await api.put("/v1/catalog/deregister", {"Node": "ext1"})
    assert dereg.text == "true"
    assert (await api.get("/v1/catalog/service/legacy")).json() == []
    bad = await api.put("/v1/catalog/register", {"Address": "1.2.3.4"})
    assert (bad.status, bad.text) == (500, "Must provide node")


async def test_py_consul_catalog_and_health(
    aio_client: consul.aio.Consul, sync_client: consul.Consul, api: Api
) -> None:
    await seed(api)
    index, nodes = await aio_client.health.service("web", passing=True)
    assert int(index) >= 1
    assert [n["Service"]["ID"] for n in nodes] == ["web-1"]
    _, services = await aio_client.catalog.services()
    assert services["web"] == ["Primary", "v1", "v2"]
    _, rows = await asyncio.to_thread(sync_client.catalog.service, "web", tag="v2")
    assert [r["ServiceID"] for r in rows] == ["web-2"]
    _, checks = await asyncio.to_thread(sync_client.health.state, "critical")
    assert [c["CheckID"] for c in checks] == ["db-ttl"]
    leader = await aio_client.status.leader()
    assert leader == "127.0.0.1:8300"
    assert await asyncio.to_thread(sync_client.status.peers) == ["127.0.0.1:8300"]
    me = await aio_client.agent.self()
    assert me["Config"]["Datacenter"] == "dc1"
    assert me["Member"]["Addr"] == "127.0.0.1"
    filtered: Any = await aio_client.agent.services(filter_expr='Service == "db"')
    assert list(filtered) == ["db-1"]


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ("/v1/catalog/service/web?filter=" + quote('ServiceID == "web-2"'), "ServiceID", ["web-2"]),
        ("/v1/catalog/service/web?filter=" + quote('"v1" in ServiceTags'), "ServiceID", ["web-1"]),
        ("/v1/catalog/nodes?filter=" + quote('Meta["consul-network-segment"] == ""'), "Node",
         ["node1"]),
        ("/v1/catalog/nodes?filter=" + quote('Node != "node1"'), "Node", []),
        ("/v1/health/checks/web?filter=" + quote("Status == warning"), "CheckID", ["web-2-ttl"]),
        ("/v1/health/node/node1?filter=" + quote('ServiceID is empty'), "CheckID", ["serfHealth"]),
    ],
)  # fmt: skip
async def test_catalog_and_health_filters(
    api: Api, path: str, key: str, expected: list[str]
) -> None:
    await seed(api)
    reply = await api.get(path)
    assert reply.status == 200, reply.text
    assert [row[key] for row in reply.json()] == expected


async def test_catalog_services_and_node_filters(api: Api) -> None:
    await seed(api)
    services = await api.get("/v1/catalog/services?filter=" + quote('ServiceName == "db"'))
    assert services.json() == {"db": []}
    node = await api.get("/v1/catalog/node/node1?filter=" + quote("Port == 8080"))
    assert sorted(node.json()["Services"]) == ["web-1", "web-2"]


async def test_agent_checks_filter(api: Api) -> None:
    await seed(api)
    reply = await api.get("/v1/agent/checks?filter=" + quote('Status == "critical"'))
    assert list(reply.json()) == ["db-ttl"]
    bad = await api.get("/v1/agent/checks?filter=" + quote("Status =="))
    assert bad.status == 500
    assert bad.text.startswith("Failed to create boolean expression evaluator: ")
