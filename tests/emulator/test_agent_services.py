"""Agent service endpoints: register, deregister, list, get (with hash blocking)."""

from __future__ import annotations

import asyncio
from typing import Any

import consul
import consul.aio
import consul.exceptions
import pytest

from tests.consul_emulator import ConsulEmulator

from .conftest import Api, in_flight

WEB: dict[str, Any] = {"Name": "web", "ID": "web-1", "Address": "10.0.0.5", "Port": 8080}


async def test_register_then_list_has_consul_shape(api: Api) -> None:
    reply = await api.put("/v1/agent/service/register", {**WEB, "Tags": ["v1"]})
    assert (reply.status, reply.text) == (200, "")
    listing = await api.get("/v1/agent/services")
    assert listing.status == 200
    assert listing.headers["Content-Type"].startswith("application/json")
    assert "X-Consul-Index" not in listing.headers
    assert listing.json() == {
        "web-1": {
            "ID": "web-1",
            "Service": "web",
            "Tags": ["v1"],
            "Meta": {},
            "Port": 8080,
            "Address": "10.0.0.5",
            "TaggedAddresses": {
                "lan_ipv4": {"Address": "10.0.0.5", "Port": 8080},
                "wan_ipv4": {"Address": "10.0.0.5", "Port": 8080},
            },
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Datacenter": "dc1",
        }
    }


async def test_defaults_ipv6_tagged_addresses_and_all_fields(api: Api) -> None:
    await api.register(
        {
            "name": "db",
            "address": "::1",
            "port": 5432,
            "meta": {"env": "prod"},
            "weights": {"passing": 3, "warning": 2},
            "enable_tag_override": True,
            "tagged_addresses": {"lan": {"address": "db.local", "port": 5432}},
            "SocketPath": "",
            "Kind": "",
        }
    )
    svc = (await api.get("/v1/agent/services")).json()["db"]
    assert svc["ID"] == "db"  # ID defaults to the name
    assert svc["Tags"] == []
    assert svc["Meta"] == {"env": "prod"}
    assert svc["Weights"] == {"Passing": 3, "Warning": 2}
    assert svc["EnableTagOverride"] is True
    assert svc["TaggedAddresses"] == {
        "lan": {"Address": "db.local", "Port": 5432},
        "lan_ipv6": {"Address": "::1", "Port": 5432},
        "wan_ipv6": {"Address": "::1", "Port": 5432},
    }


async def test_hostname_address_gets_no_tagged_addresses(api: Api) -> None:
    await api.register({"Name": "h", "Address": "example.internal"})
    assert "TaggedAddresses" not in (await api.get("/v1/agent/services")).json()["h"]


REGISTER_ERRORS: list[tuple[str, Any, int, str]] = [
    ("empty body", b"", 400, "Request decode failed: EOF"),
    ("unknown field", {"Name": "w", "Foo": 1}, 400,
     'Request decode failed: json: unknown field "Foo"'),
    ("ID in check", {"Name": "w", "Check": {"ID": "x", "TTL": "1s"}}, 400,
     'Request decode failed: json: unknown field "ID"'),
    ("bad duration", {"Name": "w", "Check": {"TTL": "x"}}, 400,
     'Request decode failed: time: invalid duration "x"'),
    ("wrong type", {"Name": "w", "Port": "80"}, 400,
     "Request decode failed: json: cannot unmarshal string into Go struct field "
     "ServiceDefinition.Port of type int"),
    ("missing name", {"ID": "x"}, 400, "Missing service name"),
    ("any address v4", {"Name": "w", "Address": "0.0.0.0"}, 400, "Invalid service address"),
    ("any address v6", {"Name": "w", "Address": "::"}, 400, "Invalid service address"),
    ("weights passing", {"Name": "w", "Weights": {"Passing": 0, "Warning": 1}}, 400,
     "Invalid Weights: Passing must be greater than 0"),
    ("weights warning", {"Name": "w", "Weights": {"Passing": 1, "Warning": -1}}, 400,
     "Invalid Weights: Warning must be greater or equal than 0"),
    ("weights range", {"Name": "w", "Weights": {"Passing": 70000, "Warning": 1}}, 400,
     "Invalid Weights: DNS Weight must be between 0 and 65535"),
    ("meta blank key", {"Name": "w", "Meta": {"": "v"}}, 400,
     "Invalid Service Meta: Couldn't load metadata pair ('', 'v'): Key cannot be blank"),
    ("meta bad chars", {"Name": "w", "Meta": {"a.b": "v"}}, 400,
     "Invalid Service Meta: Couldn't load metadata pair ('a.b', 'v'): "
     "Key contains invalid characters"),
    ("meta long key", {"Name": "w", "Meta": {"k" * 129: "v"}}, 400,
     f"Invalid Service Meta: Couldn't load metadata pair ('{'k' * 129}', 'v'): "
     "Key is too long (limit: 128 characters)"),
    ("meta reserved", {"Name": "w", "Meta": {"consul-x": "v"}}, 400,
     "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'v'): "
     "Key prefix 'consul-' is reserved for internal use"),
    ("meta long value", {"Name": "w", "Meta": {"k": "v" * 513}}, 400,
     f"Invalid Service Meta: Couldn't load metadata pair ('k', '{'v' * 513}'): "
     "Value is too long (limit: 512 characters)"),
    ("meta count", {"Name": "w", "Meta": {f"k{i}": "v" for i in range(65)}}, 400,
     "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"),
    ("check no type", {"Name": "w", "Checks": [{}]}, 400,
     "Invalid check: TTL must be > 0 for TTL checks"),
    ("check ttl+interval", {"Name": "w", "Check": {"TTL": "1s", "Interval": "1s"}}, 400,
     "Invalid check: Interval and TTL cannot both be specified"),
    ("http no interval", {"Name": "w", "Check": {"HTTP": "http://x"}}, 400,
     "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    ("alias ttl", {"Name": "w", "Check": {"AliasService": "db", "TTL": "1s"}}, 400,
     "Invalid check: TTL must be not be set for Alias checks"),
    ("failures", {"Name": "w", "Check": {"TTL": "1s", "FailuresBeforeWarning": 3,
                                          "FailuresBeforeCritical": 2}}, 400,
     "Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical"),
    ("check status", {"Name": "w", "Check": {"TTL": "1s", "Status": "ok"}}, 400,
     "Status for checks must 'passing', 'warning', 'critical'"),
    ("connect proxy", {"Name": "p", "Kind": "connect-proxy", "Port": 1}, 400,
     "Validation failed: 1 error occurred:\n\t* Proxy.DestinationServiceName must be "
     "non-empty for Connect proxy services\n\n"),
    ("tagged v4", {"Name": "w", "TaggedAddresses": {"lan_ipv4": {"Address": "::1"}}}, 500,
     'Service tagged address "lan_ipv4" must be a valid ipv4 address'),
    ("tagged v6", {"Name": "w", "TaggedAddresses": {"wan_ipv6": {"Address": "1.2.3.4"}}}, 500,
     'Service tagged address "wan_ipv6" must be a valid ipv6 address'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [pytest.param(b, s, t, id=i) for i, b, s, t in REGISTER_ERRORS],
)
async def test_register_errors(api: Api, body: Any, status: int, text: str) -> None:
    if isinstance(body, bytes):
        reply = await api.call("PUT", "/v1/agent/service/register", data=body)
    else:
        reply = await api.put("/v1/agent/service/register", body)
    assert (reply.status, reply.text) == (status, text)
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await api.get("/v1/agent/services")).json() == {}


async def test_empty_check_object_is_ignored(api: Api) -> None:
    await api.register({"Name": "w", "Check": {}})
    assert (await api.get("/v1/agent/checks")).json() == {}


async def test_default_check_ids_and_names(api: Api) -> None:
    await api.register({"Name": "one", "Check": {"TTL": "10s"}})
    await api.register({"Name": "two", "Check": {"TTL": "10s"}, "Checks": [{"TTL": "5s"}]})
    checks = (await api.get("/v1/agent/checks")).json()
    assert sorted(checks) == ["service:one", "service:two:1", "service:two:2"]
    assert checks["service:one"]["Name"] == "Service 'one' check"
    assert checks["service:two:2"]["Status"] == "critical"


@pytest.mark.parametrize(
    ("query", "replaced"),
    [("?replace-existing-checks", True), ("?replace-existing-checks=true", True),
     ("?replace-existing-checks=1", False), ("?replace-existing-checks=false", False), ("", False)],
)  # fmt: skip
async def test_replace_existing_checks(api: Api, query: str, replaced: bool) -> None:
    two = [{"CheckID": "a", "TTL": "9s"}, {"CheckID": "b", "TTL": "9s"}]
    await api.register({"Name": "w", "Checks": two})
    await api.register({"Name": "w", "Checks": [{"CheckID": "a", "TTL": "9s"}]}, query)
    checks = sorted((await api.get("/v1/agent/checks")).json())
    assert checks == (["a"] if replaced else ["a", "b"])


async def test_reregistration_keeps_status_output_and_does_not_bump_index(
    api: Api, emulator: ConsulEmulator
) -> None:
    body = {**WEB, "Check": {"CheckID": "web-ttl", "TTL": "30s"}}
    await api.register(body)
    assert (await api.put("/v1/agent/check/pass/web-ttl?note=ok")).status == 200
    before = (await api.get("/v1/health/service/web")).index
    await api.register(
        {**body, "Check": {"CheckID": "web-ttl", "TTL": "30s", "Status": "critical"}}
    )
    after = await api.get("/v1/health/service/web")
    assert after.index == before
    check = after.json()[0]["Checks"][1]
    assert (check["Status"], check["Output"]) == ("passing", "ok")
    assert emulator.checks()["web-ttl"]["Status"] == "passing"


async def test_deregister(api: Api) -> None:
    await api.register(WEB)
    assert (await api.put("/v1/agent/service/deregister/web-1")).text == ""
    assert (await api.get("/v1/agent/services")).json() == {}
    again = await api.put("/v1/agent/service/deregister/web-1")
    assert (again.status, again.text) == (
        404,
        'Unknown service ID "web-1". Ensure that the service ID is passed, not the service name.',
    )


async def test_ids_are_case_sensitive_and_may_contain_encoded_slashes(api: Api) -> None:
    await api.register({"Name": "web", "ID": "a/b"})
    assert (await api.put("/v1/agent/service/deregister/A%2Fb")).status == 404
    assert (await api.get("/v1/agent/service/a%2Fb")).json()["ID"] == "a/b"
    assert (await api.put("/v1/agent/service/deregister/a%2Fb")).status == 200


async def test_get_service_has_content_hash_and_404_text(api: Api) -> None:
    await api.register(WEB)
    reply = await api.get("/v1/agent/service/web-1")
    body = reply.json()
    assert body["ContentHash"] == reply.headers["X-Consul-ContentHash"]
    assert len(body["ContentHash"]) == 16
    assert list(body)[-2:] == ["ContentHash", "Datacenter"]
    missing = await api.get("/v1/agent/service/nope")
    assert (missing.status, missing.text) == (404, "unknown service ID: nope")


async def test_get_service_hash_blocking_returns_on_change(
    api: Api, emulator: ConsulEmulator
) -> None:
    await api.register(WEB)
    first = await api.get("/v1/agent/service/web-1")
    digest = first.headers["X-Consul-ContentHash"]
    waiter = asyncio.ensure_future(api.get(f"/v1/agent/service/web-1?hash={digest}&wait=30s"))
    await in_flight(emulator, "/v1/agent/service/web-1")
    assert not waiter.done()
    await api.register({**WEB, "Tags": ["new"]})
    changed = await asyncio.wait_for(waiter, 5)
    assert changed.json()["Tags"] == ["new"]
    assert changed.headers["X-Consul-ContentHash"] != digest


async def test_get_service_hash_blocking_times_out_with_same_hash(
    api: Api, emulator: ConsulEmulator
) -> None:
    await api.register(WEB)
    digest = (await api.get("/v1/agent/service/web-1")).headers["X-Consul-ContentHash"]
    waiter = asyncio.ensure_future(api.get(f"/v1/agent/service/web-1?hash={digest}&wait=1m"))
    await in_flight(emulator, "/v1/agent/service/web-1")
    emulator.advance(70)
    reply = await asyncio.wait_for(waiter, 5)
    assert reply.headers["X-Consul-ContentHash"] == digest
    bad = await api.get(f"/v1/agent/service/web-1?hash={digest}&wait=10")
    assert (bad.status, bad.text) == (400, "Invalid wait time")


async def test_list_filter_and_filter_parse_error(api: Api) -> None:
    await api.register({**WEB, "Meta": {"env": "prod"}})
    await api.register({"Name": "db", "Tags": ["primary"]})
    prod = await api.get("/v1/agent/services?filter=Meta.env%20%3D%3D%20%22prod%22")
    assert list(prod.json()) == ["web-1"]
    tagged = await api.get("/v1/agent/services?filter=%22primary%22%20in%20Tags")
    assert list(tagged.json()) == ["db"]
    bad = await api.get("/v1/agent/services?filter=Service%20%3D%3D")
    assert bad.status == 500
    assert bad.text.startswith("Failed to create boolean expression evaluator: ")


# --- py-consul ----------------------------------------------------------------------------------


async def test_py_consul_sync_client_round_trip(sync_client: consul.Consul) -> None:
    agent = sync_client.agent
    ok = await asyncio.to_thread(
        agent.service.register,
        "web",
        service_id="web-1",
        address="10.0.0.5",
        port=8080,
        tags=["v1"],
        meta={"env": "prod"},
        check=consul.Check.ttl("10s"),
        enable_tag_override=True,
        tagged_addresses={"lan": {"address": "10.0.0.5", "port": 8080}},
    )
    assert ok is True
    services = await asyncio.to_thread(agent.services)
    assert services["web-1"]["Meta"] == {"env": "prod"}
    assert services["web-1"]["EnableTagOverride"] is True
    assert await asyncio.to_thread(agent.check.ttl_pass, "service:web-1", "fine") is True
    checks = await asyncio.to_thread(agent.checks)
    assert checks["service:web-1"]["Output"] == "fine"
    definition = await asyncio.to_thread(agent.service_definition, "web-1")
    assert definition["ContentHash"]
    assert await asyncio.to_thread(agent.service.deregister, "web-1") is True
    # py-consul's boolean callback maps our 404s to False.
    assert await asyncio.to_thread(agent.service.deregister, "web-1") is False
    assert await asyncio.to_thread(agent.check.ttl_pass, "service:web-1") is False


async def test_py_consul_aio_client_round_trip(aio_client: consul.aio.Consul) -> None:
    agent = aio_client.agent
    assert await agent.service.register(
        "api", service_id="api-1", port=9000, check=consul.Check.http("http://127.0.0.1:9/", "10s")
    )
    checks = await agent.checks()
    assert checks["service:api-1"]["Type"] == "http"
    assert checks["service:api-1"]["Interval"] == "10s"
    assert checks["service:api-1"]["Definition"] == {
        "HTTP": "http://127.0.0.1:9/",
        "Interval": "10s",
    }
    with pytest.raises(consul.ConsulException, match='CheckID "service:api-1" does not have'):
        await agent.check.ttl_pass("service:api-1")
    with pytest.raises(consul.exceptions.BadRequest, match="Invalid check"):
        await agent.service.register("bad", check={"http": "http://x"})
    assert await agent.service.maintenance("api-1", True, "upgrading")
    checks = await agent.checks()
    maint = checks["_service_maintenance:api-1"]
    assert (maint["Status"], maint["Notes"]) == ("critical", "upgrading")
    assert await agent.service.maintenance("api-1", False)
    assert "_service_maintenance:api-1" not in await agent.checks()
    assert await agent.service.deregister("api-1")
    assert await agent.services() == {}
