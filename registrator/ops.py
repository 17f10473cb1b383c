"""The ops HTTP endpoint: `/health`, `/metrics` (Prometheus), `/v1/catalog` (the registry
snapshot as JSON) and `/`, a self-refreshing page showing hosts -> containers -> services ->
instances with their health."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from aiohttp import web

from registrator.broadcast import Latest
from registrator.logs import get_logger
from registrator.metrics import CONTENT_TYPE, Metrics
from registrator.model import CatalogSnapshot
from registrator.reconcile import id_owner

HealthProbe = Callable[[], dict[str, str | None]]  # component -> None when fine, else the reason


def snapshot_json(snapshot: CatalogSnapshot) -> dict[str, Any]:
    return {
        "version": snapshot.version,
        "nodes": [{"Node": n, "Address": a} for n, a in snapshot.nodes],
        "instances": [
            {
                "Node": i.node,
                "Container": i.service.container_name or (id_owner(i.service.id) or ("", ""))[1],
                "Status": i.status,
                **i.service.to_consul(),
            }
            for i in snapshot.instances
        ],
    }


def build_app(
    snapshots: Latest[CatalogSnapshot], health: HealthProbe, metrics: Metrics | None = None
) -> web.Application:
    page = files("registrator").joinpath("status.html").read_bytes()
    metrics = metrics or Metrics()

    async def get_health(_: web.Request) -> web.Response:
        problems = {k: v for k, v in health().items() if v is not None}
        body = {"status": "fail" if problems else "ok", "problems": problems}
        return web.json_response(body, status=503 if problems else 200)

    async def get_catalog(_: web.Request) -> web.Response:
        return web.json_response(snapshot_json(snapshots.get()))

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def get_page(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/", get_page)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", get_health)
    app.router.add_get("/v1/catalog", get_catalog)
    return app


def parse_hostport(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT`; ValueError with a sentence when it is neither."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


async def start_ops(
    address: str, snapshots: Latest[CatalogSnapshot], health: HealthProbe, metrics: Metrics
) -> web.AppRunner:
    """Bind the ops endpoint; the caller cleans the runner up. OSError when it cannot bind."""
    host, port = parse_hostport(address)
    runner = web.AppRunner(build_app(snapshots, health, metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    get_logger().info("ops_listening", address=address)
    return runner
