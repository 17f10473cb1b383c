"""Agent check endpoints, TTL semantics, expiry and DeregisterCriticalServiceAfter reaping."""

from __future__ import annotations

import aiohttp
import pytest

from tests.consul_emulator import ConsulEmulator, running_emulator

from .conftest import Api, eventually

TTL_SERVICE = {"Name": "web", "ID": "web-1", "Check": {"CheckID": "web-ttl", "TTL": "30s"}}


async def check(api: Api, check_id: str) -> dict[str, object]:
    checks: dict[str, dict[str, object]] = (await api.get("/v1/agent/checks")).json()
    return checks[check_id]


@pytest.mark.parametrize(
    ("verb", "status"), [("pass", "passing"), ("warn", "warning"), ("fail", "critical")]
)
async def test_pass_warn_fail_set_status_and_note(api: Api, verb: str, status: str) -> None:
    await api.register(TTL_SERVICE)
    reply = await api.put(f"/v1/agent/check/{verb}/web-ttl?note=hello%20there")
    assert (reply.status, reply.text) == (200, "")
    got = await check(api, "web-ttl")
    assert (got["Status"], got["Output"]) == (status, "hello there")


async def test_update_sets_status_and_output(api: Api) -> None:
    await api.register(TTL_SERVICE)
    reply = await api.put("/v1/agent/check/update/web-ttl", {"status": "warning", "output": "slow"})
    assert reply.status == 200
    got = await check(api, "web-ttl")
    assert (got["Status"], got["Output"]) == ("warning", "slow")


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        ("/v1/agent/check/pass/nope", None, 404,
         'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'),
        ("/v1/agent/check/update/nope", {"Status": "passing"}, 404,
         'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'),
        ("/v1/agent/check/fail/web-http", None, 500,
         'CheckID "web-http" does not have associated TTL'),
        ("/v1/agent/check/update/web-ttl", {"Status": "ok"}, 400, "Invalid check status: 'ok'"),
        ("/v1/agent/check/update/web-ttl", {}, 400, "Invalid check status: ''"),
        ("/v1/agent/check/update/web-ttl", {"Status": "passing", "Foo": 1}, 400,
         'Request decode failed: json: unknown field "Foo"'),
        ("/v1/agent/check/update/web-ttl", None, 400, "Request decode failed: EOF"),
        ("/v1/agent/check/deregister/nope", None, 404,
         'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'),
        ("/v1/agent/check/register", {"TTL": "1s"}, 400, "Missing check name"),
        ("/v1/agent/check/register", {"Name": "c", "TTL": "1s", "Status": "x"}, 400,
         "Bad check status"),
        ("/v1/agent/check/register", {"Name": "c"}, 400,
         "Invalid check: TTL must be > 0 for TTL checks"),
        ("/v1/agent/check/register", {"Name": "c", "TTL": "1s", "ServiceID": "zz"}, 404,
         'ServiceID "zz" does not exist'),
        ("/v1/agent/service/maintenance/web-1", None, 400, "Missing value for enable"),
        ("/v1/agent/service/maintenance/web-1?enable=maybe", None, 400,
         'Invalid value for enable: "maybe"'),
        ("/v1/agent/service/maintenance/nope?enable=true", None, 404,
         'Unknown service ID "nope". Ensure that the service ID is passed, not the service name.'),
    ],
)  # fmt: skip
async def test_check_errors(api: Api, path: str, body: object, status: int, text: str) -> None:
    await api.register(TTL_SERVICE)
    await api.register(
        {
            "Name": "web",
            "ID": "web-2",
            "Check": {"CheckID": "web-http", "HTTP": "http://x", "Interval": "10s"},
        }
    )
    reply = await api.put(path, body)
    assert (reply.status, reply.text) == (status, text)


async def test_output_is_truncated(api: Api) -> None:
    await api.register({"Name": "w", "Check": {"CheckID": "c", "TTL": "30s", "OutputMaxSize": 10}})
    await api.put("/v1/agent/check/update/c", {"Status": "passing", "Output": "x" * 25})
    assert (await check(api, "c"))["Output"] == "x" * 10 + " ... (captured 10 of 25 bytes)"


async def test_ttl_expiry_output_both_forms_with_virtual_clock(
    api: Api, emulator: ConsulEmulator
) -> None:
    await api.register(
        {**TTL_SERVICE, "Check": {"CheckID": "web-ttl", "TTL": "30s", "Status": "passing"}}
    )
    emulator.advance(29)
    assert (await check(api, "web-ttl"))["Status"] == "passing"
    before = (await api.get("/v1/health/service/web")).index
    reply = await api.call("POST", "/_emulator/advance?by=2s")
    assert reply.status == 200
    got = await check(api, "web-ttl")
    assert (got["Status"], got["Output"]) == ("critical", "TTL expired")
    assert (await api.get("/v1/health/service/web")).index > before
    await api.put("/v1/agent/check/pass/web-ttl?note=ok")
    emulator.advance(31)
    got = await check(api, "web-ttl")
    assert got["Output"] == "TTL expired (last output before timeout follows): ok"


async def test_ttl_expires_in_real_time_without_hooks(api: Api) -> None:
    await api.register(
        {"Name": "rt", "Check": {"CheckID": "rt", "TTL": "300ms", "Status": "passing"}}
    )

    async def critical() -> bool:
        return (await check(api, "rt"))["Status"] == "critical"

    await eventually(critical, timeout=5)


async def test_dcsa_reaping_with_the_virtual_clock(api: Api, emulator: ConsulEmulator) -> None:
    await api.register(
        {
            "Name": "web",
            "ID": "web-1",
            "Check": {"TTL": "10s", "DeregisterCriticalServiceAfter": "10s"},
        }
    )
    definition = (await check(api, "service:web-1"))["Definition"]
    assert definition == {"DeregisterCriticalServiceAfter": "10s"}
    emulator.advance(10.5)  # TTL expired: critical from now on
    emulator.advance(50)  # DCSA was raised to 1m: still there
    assert "web-1" in (await api.get("/v1/agent/services")).json()
    reply = await api.call("POST", "/_emulator/advance", body={"by": "40s"})
    assert reply.status == 200
    assert (await api.get("/v1/agent/services")).json() == {}
    assert (await api.get("/v1/health/service/web")).json() == []
    assert (await api.get("/v1/agent/checks")).json() == {}


async def test_dcsa_reaping_in_real_time_with_small_settings(
    session: aiohttp.ClientSession,
) -> None:
    async with running_emulator(check_reap_interval=0.05, dcsa_min=0.1) as emu:
        api = Api(session, emu.url)
        await api.register(
            {"Name": "gone", "Check": {"TTL": "100ms", "DeregisterCriticalServiceAfter": "100ms"}}
        )

        async def reaped() -> bool:
            services: dict[str, object] = (await api.get("/v1/agent/services")).json()
            return services == {}

        await eventually(reaped, timeout=5)


async def test_check_register_deregister_and_node_checks(api: Api) -> None:
    await api.register({"Name": "web", "ID": "web-1"})
    body = {"name": "mem", "id": "mem", "ttl": "10s", "notes": "n", "serviceid": "web-1"}
    assert (await api.put("/v1/agent/check/register", body)).status == 200
    assert (await api.put("/v1/agent/check/register", {"Name": "disk", "TTL": "10s"})).status == 200
    checks = (await api.get("/v1/agent/checks")).json()
    assert checks["mem"]["ServiceName"] == "web"
    assert checks["disk"]["ServiceID"] == ""
    entry = (await api.get("/v1/health/service/web")).json()[0]
    assert [c["CheckID"] for c in entry["Checks"]] == ["disk", "serfHealth", "mem"]
    assert (await api.put("/v1/agent/check/deregister/mem")).status == 200
    assert sorted((await api.get("/v1/agent/checks")).json()) == ["disk"]


async def test_node_maintenance(api: Api) -> None:
    await api.register({"Name": "web"})
    assert (await api.put("/v1/agent/maintenance?enable=true&reason=patching")).status == 200
    maint = await check(api, "_node_maintenance")
    assert (maint["Status"], maint["Notes"]) == ("critical", "patching")
    assert (await api.get("/v1/health/service/web?passing")).json() == []
    assert (await api.put("/v1/agent/maintenance?enable=false")).status == 200
    assert len((await api.get("/v1/health/service/web?passing")).json()) == 1


@pytest.mark.parametrize(
    ("status", "code"), [("passing", 200), ("warning", 429), ("critical", 503)]
)
async def test_agent_health_service_by_id(api: Api, status: str, code: int) -> None:
    await api.register(
        {"Name": "web", "ID": "web-1", "Check": {"CheckID": "c", "TTL": "1m", "Status": status}}
    )
    reply = await api.get("/v1/agent/health/service/id/web-1")
    assert reply.status == code
    assert reply.json()["AggregatedStatus"] == status
    text = await api.get("/v1/agent/health/service/id/web-1?format=text")
    assert (text.status, text.text) == (code, status)
    missing = await api.get("/v1/agent/health/service/id/nope?format=text")
    assert (missing.status, missing.text) == (404, "ServiceId nope not found")
