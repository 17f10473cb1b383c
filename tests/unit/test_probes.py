"""The embedded registry's own health checks: Consul's rules as pure functions, the probes against
real sockets on loopback, and the registry publishing what they find."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from registrator.backends.embedded import EmbeddedRegistry
from registrator.broadcast import Latest
from registrator.model import CatalogSnapshot, Check, Health, ServiceInstance
from registrator.probes import (
    Prober,
    http_health,
    initial_status,
    split_host_port,
    timings,
    worst,
)
from registrator.reconcile import with_ttl_check
from tests.proxy.conftest import until


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (200, "passing"),
        (204, "passing"),
        (299, "passing"),
        (429, "warning"),
        (199, "critical"),
        (300, "critical"),
        (404, "critical"),
        (500, "critical"),
        (503, "critical"),
    ],
)
def test_http_status_codes_follow_consul(code: int, status: Health) -> None:
    assert http_health(code) == status


@pytest.mark.parametrize(
    ("statuses", "result"),
    [
        ((), "passing"),
        (("passing", "passing"), "passing"),
        (("passing", "warning"), "warning"),
        (("warning", "critical", "passing"), "critical"),
    ],
)
def test_the_worst_check_decides(statuses: tuple[Health, ...], result: Health) -> None:
    assert worst(statuses) == result


@pytest.mark.parametrize(
    ("status", "initial"),
    [(None, "critical"), ("passing", "passing"), ("warning", "warning"), ("bogus", "critical")],
)
def test_checks_start_critical_unless_told(status: str | None, initial: Health) -> None:
    assert initial_status(Check(http="http://x/", status=status)) == initial


@pytest.mark.parametrize(
    ("interval", "timeout", "expected"),
    [
        (None, None, (10.0, 10.0)),
        ("30s", "5s", (30.0, 5.0)),
        ("5s", "30s", (5.0, 5.0)),  # a timeout never outlasts the interval
        ("100ms", None, (1.0, 1.0)),  # Consul's 1 s floor
        ("-3s", "0", (1.0, 1.0)),
        ("1m30s", "2.5s", (90.0, 2.5)),
    ],
)
def test_timings(interval: str | None, timeout: str | None, expected: tuple[float, float]) -> None:
    assert timings(Check(tcp="h:1", interval=interval, timeout=timeout)) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:53", ("::1", 53)),
        ("db.local:5432", ("db.local", 5432)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize("address", ["127.0.0.1", ":80", "host:http", "host:"])
def test_split_host_port_refuses(address: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        split_host_port(address)


@dataclass
class App:
    """An HTTP app on loopback whose answers a test can change while probes run."""

    url: str
    code: int = 200
    seen: list[tuple[str, str]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)  # ends /slow's wait


@pytest.fixture
async def app() -> AsyncIterator[App]:
    state = App(url="")

    async def health(request: web.Request) -> web.Response:
        state.seen.append((request.method, request.headers.get("User-Agent", "")))
        return web.Response(status=state.code, text=f"answered {state.code}")

    async def slow(request: web.Request) -> web.Response:
        await state.released.wait()
        return web.Response(text="late")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/health")

    server = web.Application()
    server.router.add_route("*", "/health", health)
    server.router.add_get("/slow", slow)
    server.router.add_get("/moved", moved)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.released.set()
        await runner.cleanup()


@pytest.fixture
async def prober() -> AsyncIterator[Prober]:
    p = Prober()
    await p.start()
    try:
        yield p
    finally:
        await p.close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("code", "status"), [(200, "passing"), (429, "warning"), (404, "critical"), (500, "critical")]
)
async def test_http_probe_judges_the_answer(
    app: App, prober: Prober, code: int, status: Health
) -> None:
    app.code = code
    result = await prober.probe(Check(http=f"{app.url}/health"))
    assert result.status == status
    assert f"{code}" in result.output
    assert f"answered {code}" in result.output
    assert app.seen == [("GET", "consul-registrator health check")]


async def test_http_probe_uses_the_method_and_follows_redirects(app: App, prober: Prober) -> None:
    assert (await prober.probe(Check(http=f"{app.url}/health", method="HEAD"))).status == "passing"
    assert (await prober.probe(Check(http=f"{app.url}/moved"))).status == "passing"
    assert [m for m, _ in app.seen] == ["HEAD", "GET"]


async def test_http_probe_times_out_critical(app: App, prober: Prober) -> None:
    result = await prober.probe(Check(http=f"{app.url}/slow", interval="1s", timeout="200ms"))
    assert result.status == "critical"
    assert "timed out after 0.2s" in result.output


async def test_http_probe_refused_is_critical(prober: Prober) -> None:
    result = await prober.probe(Check(http=f"http://127.0.0.1:{closed_port()}/"))
    assert result.status == "critical"
    assert "ClientConnectorError" in result.output


async def test_tcp_probe(app: App, prober: Prober) -> None:
    listening = app.url.removeprefix("http://")
    assert (await prober.probe(Check(tcp=listening))).status == "passing"
    refused = await prober.probe(Check(tcp=f"127.0.0.1:{closed_port()}"))
    assert refused.status == "critical"
    assert refused.output.startswith("TCP connect 127.0.0.1:")


async def test_other_kinds_are_not_probed(prober: Prober) -> None:
    with pytest.raises(ValueError, match="does not run script checks"):
        await prober.probe(Check(args=("true",)))


def instance(*checks: Check, sid: str = "node:web:8080") -> ServiceInstance:
    return ServiceInstance(id=sid, name="web", address="127.0.0.1", port=8080, checks=checks)


@pytest.fixture
async def registry() -> AsyncIterator[tuple[EmbeddedRegistry, Latest[CatalogSnapshot]]]:
    reg = EmbeddedRegistry("node")
    snapshots: Latest[CatalogSnapshot] = Latest(CatalogSnapshot())
    await reg.start()
    watcher = asyncio.create_task(reg.watch_catalog(snapshots))
    try:
        yield reg, snapshots
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await reg.close()


def status_of(snapshots: Latest[CatalogSnapshot], sid: str) -> str | None:
    return next((i.status for i in snapshots.get().instances if i.service.id == sid), None)


async def test_registry_publishes_what_its_probes_find(
    app: App, registry: tuple[EmbeddedRegistry, Latest[CatalogSnapshot]]
) -> None:
    reg, snapshots = registry
    app.code = 500
    with capture_logs() as logs:
        await reg.register(instance(Check(http=f"{app.url}/health", interval="1s")))
        # starts critical, and the first probe (500) keeps it there
        await until(lambda: app.seen, timeout=5, what="first probe")
        await until(lambda: status_of(snapshots, "node:web:8080"), timeout=5, what="snapshot")
        assert status_of(snapshots, "node:web:8080") == "critical"
        app.code = 200
        await until(
            lambda: status_of(snapshots, "node:web:8080") == "passing", timeout=5, what="passing"
        )
    changed = [e for e in logs if e["event"] == "check_status_changed"]
    assert [e["status"] for e in changed] == ["passing"]  # 500 matched the initial critical
    assert "200 OK" in changed[0]["output"]

    await reg.deregister("node:web:8080")
    await until(lambda: not snapshots.get().instances, timeout=5, what="gone from the snapshot")
    probes_before = len(app.seen)
    await asyncio.sleep(0)  # the cancelled probe gets its chance to (not) run
    assert len(app.seen) == probes_before
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("probe ")]


async def test_initial_status_and_unrun_kinds(
    registry: tuple[EmbeddedRegistry, Latest[CatalogSnapshot]],
) -> None:
    reg, snapshots = registry
    down = f"127.0.0.1:{closed_port()}"
    with capture_logs() as logs:
        # the script check is not run and not counted; the daemon's own TTL check passes
        await reg.register(with_ttl_check(instance(Check(args=("/bin/check",))), ttl=30))
        await reg.register(
            instance(Check(tcp=down, status="passing", interval="1s"), sid="node:db:5432")
        )
        await until(
            lambda: status_of(snapshots, "node:db:5432") == "critical",
            timeout=5,
            what="the refused TCP check turns the passing start critical",
        )
    assert status_of(snapshots, "node:web:8080") == "passing"
    (not_run,) = [e for e in logs if e["event"] == "embedded_check_not_run"]
    assert not_run["kind"] == "script"
    assert not_run["service_id"] == "node:web:8080"


async def test_changed_checks_restart_the_probes(
    app: App, registry: tuple[EmbeddedRegistry, Latest[CatalogSnapshot]]
) -> None:
    reg, snapshots = registry

    def probes() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("probe node:web:8080")]

    down = instance(Check(tcp=f"127.0.0.1:{closed_port()}", interval="1s"))
    await reg.register(down)
    await until(lambda: status_of(snapshots, "node:web:8080"), timeout=5, what="snapshot")
    assert status_of(snapshots, "node:web:8080") == "critical"
    (first,) = probes()
    await reg.register(down)  # the same registration again: the same probe keeps running
    assert probes() == [first]
    await reg.register(instance(Check(http=f"{app.url}/health", interval="1s")))
    await until(
        lambda: status_of(snapshots, "node:web:8080") == "passing", timeout=5, what="passing"
    )
    assert first.cancelled()
    assert len(probes()) == 1
