"""Global HTTP conventions: 404/405/OPTIONS, headers, ?pretty, empty-collection rules."""

from __future__ import annotations

import pytest

from .conftest import Api


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/agent/service/register", "OPTIONS,PUT"),
        ("GET", "/v1/agent/service/deregister/web", "OPTIONS,PUT"),
        ("POST", "/v1/agent/check/pass/x", "OPTIONS,PUT"),
        ("PUT", "/v1/agent/services", "OPTIONS,GET"),
        ("DELETE", "/v1/catalog/services", "OPTIONS,GET"),
        ("PUT", "/v1/health/service/web", "OPTIONS,GET"),
    ],
)
async def test_wrong_method_is_405_with_allow(api: Api, method: str, path: str, allow: str) -> None:
    reply = await api.call(method, path)
    assert (reply.status, reply.text) == (405, f"method {method} not allowed")
    assert reply.headers["Allow"] == allow
    assert reply.headers["X-Consul-Default-ACL-Policy"] == "allow"


async def test_options_lists_methods(api: Api) -> None:
    reply = await api.call("OPTIONS", "/v1/agent/service/register")
    assert (reply.status, reply.text, reply.headers["Allow"]) == (200, "", "OPTIONS,PUT")


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/agent/servicez", "/v1/agent/services/"])
async def test_unknown_path(api: Api, path: str) -> None:
    reply = await api.get(path)
    assert (reply.status, reply.text) == (
        404,
        "Invalid URL path: not a recognized HTTP API endpoint",
    )
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["X-Consul-Default-ACL-Policy"] == "allow"


async def test_pretty_output(api: Api) -> None:
    compact = await api.get("/v1/catalog/services")
    pretty = await api.get("/v1/catalog/services?pretty")
    assert compact.text == '{"consul":[]}'
    assert pretty.text == '{\n    "consul": []\n}\n'


async def test_status_endpoints(api: Api) -> None:
    assert (await api.get("/v1/status/leader")).text == '"127.0.0.1:8300"'
    assert (await api.get("/v1/status/peers")).json() == ["127.0.0.1:8300"]


async def test_agent_self(api: Api) -> None:
    body = (await api.get("/v1/agent/self")).json()
    config = body["Config"]
    assert config["NodeName"] == "node1"
    assert config["Datacenter"] == config["PrimaryDatacenter"] == "dc1"
    assert config["Server"] is True
    assert len(config["NodeID"].split("-")) == 5
    member = body["Member"]
    assert (member["Name"], member["Addr"], member["Status"]) == ("node1", "127.0.0.1", 1)
    assert member["Tags"]["dc"] == "dc1"


async def test_empty_collections_are_never_null(api: Api) -> None:
    assert (await api.get("/v1/agent/services")).text == "{}"
    assert (await api.get("/v1/agent/checks")).text == "{}"
    assert (await api.get("/v1/health/service/x")).text == "[]"
    assert (await api.get("/v1/catalog/service/x")).text == "[]"
    assert (await api.get("/v1/health/checks/x")).text == "[]"


async def test_enterprise_parameters(api: Api) -> None:
    assert (await api.get("/v1/catalog/services?ns=default")).status == 200
    reply = await api.get("/v1/catalog/services?ns=team")
    assert (reply.status, reply.text) == (
        400,
        'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature',
    )
    await api.register({"Name": "w", "Namespace": "default", "Partition": ""})
    reply = await api.put("/v1/agent/service/register", {"Name": "w", "Namespace": "team"})
    assert (reply.status, reply.text) == (
        400,
        'Request decode failed: json: unknown field "Namespace"',
    )


async def test_non_v1_paths(api: Api) -> None:
    reply = await api.get("/ui/")
    assert (reply.status, reply.text) == (404, "404 page not found\n")
    hook = await api.get("/_emulator/nope")
    assert hook.status == 404
