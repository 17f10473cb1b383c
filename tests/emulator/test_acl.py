"""ACL mode: management token, unknown tokens, anonymous texts, list filtering, precedence."""

from __future__ import annotations

import pytest

from tests.consul_emulator import ConsulEmulator

from .conftest import MASTER, Api, make_aio_client

ANON = (
    "Permission denied: anonymous token lacks permission '{perm}' on \"{name}\". "
    "The anonymous token is used implicitly when a request does not specify a token."
)


async def seed(api: Api) -> None:
    await api.register({"Name": "web", "Check": {"TTL": "1m", "Status": "passing"}}, token=MASTER)
    await api.register({"Name": "db", "Check": {"TTL": "1m", "Status": "passing"}}, token=MASTER)


async def test_default_policy_header_is_deny(acl_api: Api) -> None:
    reply = await acl_api.get("/v1/status/leader")
    assert reply.headers["X-Consul-Default-ACL-Policy"] == "deny"
    assert (await acl_api.get("/v1/nope")).headers["X-Consul-Default-ACL-Policy"] == "deny"


async def test_management_token_can_do_everything(acl_api: Api) -> None:
    await seed(acl_api)
    services = await acl_api.get("/v1/agent/services", token=MASTER)
    assert sorted(services.json()) == ["db", "web"]
    assert "X-Consul-Results-Filtered-By-ACLs" not in services.headers
    assert (await acl_api.get("/v1/agent/self", token=MASTER)).status == 200
    assert (await acl_api.put("/v1/agent/service/deregister/db", token=MASTER)).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "perm", "name"),
    [
        ("PUT", "/v1/agent/service/register", {"Name": "web"}, "service:write", "web"),
        ("PUT", "/v1/agent/service/deregister/web", None, "service:write", "web"),
        ("PUT", "/v1/agent/check/pass/service:web", None, "service:write", "web"),
        ("PUT", "/v1/agent/service/maintenance/web?enable=true", None, "service:write", "web"),
        ("PUT", "/v1/agent/maintenance?enable=true", None, "node:write", "node1"),
        ("GET", "/v1/agent/service/web", None, "service:read", "web"),
        ("GET", "/v1/agent/self", None, "agent:read", "node1"),
    ],
)
async def test_anonymous_is_denied_with_consul_text(
    acl_api: Api, method: str, path: str, body: object, perm: str, name: str
) -> None:
    await seed(acl_api)
    reply = await acl_api.call(method, path, body=body)
    assert (reply.status, reply.text) == (403, ANON.format(perm=perm, name=name))


async def test_unknown_token_is_acl_not_found(acl_api: Api) -> None:
    for path in ("/v1/agent/services", "/v1/health/service/web", "/v1/agent/self"):
        reply = await acl_api.get(path, token="garbage")
        assert (reply.status, reply.text) == (403, "ACL not found")
    reply = await acl_api.put("/v1/agent/service/register", {"Name": "x"}, token="garbage")
    assert (reply.status, reply.text) == (403, "ACL not found")


async def test_unknown_ids_are_404_before_permission_checks(acl_api: Api) -> None:
    reply = await acl_api.put("/v1/agent/service/deregister/nope")
    assert reply.status == 404
    assert (await acl_api.get("/v1/agent/service/nope")).text == "unknown service ID: nope"


async def test_token_lacking_permission_names_its_accessor(
    acl_api: Api, acl_emulator: ConsulEmulator
) -> None:
    reply = await acl_api.put("/v1/agent/service/register", {"Name": "db"}, token="web-writer")
    accessor = acl_emulator.accessor_id("web-writer")
    assert (reply.status, reply.text) == (
        403,
        f"Permission denied: token with AccessorID '{accessor}' lacks permission "
        "'service:write' on \"db\"",
    )
    ok = await acl_api.put("/v1/agent/service/register", {"Name": "web-api"}, token="web-writer")
    assert ok.status == 200


async def test_lists_are_filtered_silently(acl_api: Api) -> None:
    await seed(acl_api)
    anonymous = await acl_api.get("/v1/agent/services")
    assert (anonymous.status, anonymous.json()) == (200, {})
    assert "X-Consul-Results-Filtered-By-ACLs" not in anonymous.headers
    scoped = await acl_api.get("/v1/agent/services", token="web-writer")
    assert list(scoped.json()) == ["web"]
    assert scoped.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    health = await acl_api.get("/v1/health/service/db", token="web-writer")
    assert health.json() == []
    assert health.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    catalog = await acl_api.get("/v1/catalog/services", token="web-writer")
    assert catalog.json() == {"web": []}
    everything = await acl_api.get("/v1/catalog/services", token="reader")
    assert sorted(everything.json()) == ["consul", "db", "web"]
    assert "X-Consul-Results-Filtered-By-ACLs" not in everything.headers
    assert (await acl_api.get("/v1/agent/checks", token="web-writer")).json().keys() == {
        "service:web"
    }


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Consul-Token": MASTER},
        {"Authorization": f"Bearer {MASTER}"},
        {"Authorization": f"bearer   {MASTER} trailing"},
    ],
)
async def test_token_sources(acl_api: Api, headers: dict[str, str]) -> None:
    await seed(acl_api)
    reply = await acl_api.get("/v1/agent/services", headers=headers)
    assert sorted(reply.json()) == ["db", "web"]


async def test_token_precedence(acl_api: Api) -> None:
    await seed(acl_api)
    query_wins = await acl_api.get(
        f"/v1/agent/services?token={MASTER}", headers={"X-Consul-Token": "garbage"}
    )
    assert query_wins.status == 200
    header_wins = await acl_api.get(
        "/v1/agent/services",
        headers={"X-Consul-Token": "garbage", "Authorization": f"Bearer {MASTER}"},
    )
    assert (header_wins.status, header_wins.text) == (403, "ACL not found")
    other_scheme = await acl_api.get(
        "/v1/agent/services", headers={"Authorization": f"Basic {MASTER}"}
    )
    assert other_scheme.json() == {}


async def test_py_consul_with_token(acl_emulator: ConsulEmulator) -> None:
    client = make_aio_client(acl_emulator.port, token=MASTER)
    try:
        assert await client.agent.service.register("web", service_id="web-1")
        assert list(await client.agent.services()) == ["web-1"]
    finally:
        await client.close()
    anonymous = make_aio_client(acl_emulator.port)
    try:
        import consul

        with pytest.raises(consul.ACLPermissionDenied, match="anonymous token lacks permission"):
            await anonymous.agent.service.register("db")
    finally:
        await anonymous.close()
