"""The daemon: wires the roles together, supervises them, and shuts down on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from registrator import __version__
from registrator.backends import Backend
from registrator.backends.embedded import EmbeddedRegistry
from registrator.broadcast import Latest
from registrator.dns import DnsConfig, DnsServer
from registrator.errors import StartupError
from registrator.logs import get_logger
from registrator.metrics import Metrics
from registrator.model import CatalogSnapshot
from registrator.ops import start_ops
from registrator.proxy_config import METRIC_KINDS, ProxyConfig, ProxyWriter
from registrator.registrar import Registrar
from registrator.settings import Settings

SHUTDOWN_GRACE_S = 10.0
DUPLICATE_SIGNAL_S = 0.5


class _Stop(Exception):
    """Raised inside the task group to end it on a signal."""


def make_backend(settings: Settings, environ: Mapping[str, str]) -> Backend:
    if not settings.uri.is_consul:
        return EmbeddedRegistry()
    from registrator.backends.consul import ConsulBackend, ConsulConfig

    config = ConsulConfig.from_uri(
        settings.uri,
        environ,
        token_file=settings.token_file,
        retry_attempts=settings.retry_attempts,
        retry_interval_ms=settings.retry_interval,
        watch_services=settings.watch_services,
    )
    return ConsulBackend(config)


async def run_daemon(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Run until SIGTERM/SIGINT. A second signal exits at once."""
    log = get_logger()
    env = os.environ if environ is None else environ
    dns_config = DnsConfig.from_settings(settings)  # ConfigError: before anything starts
    proxy_config = ProxyConfig.from_settings(settings)
    backend = make_backend(settings, env)
    snapshots: Latest[CatalogSnapshot] = Latest(CatalogSnapshot())
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    first_signal_at = 0.0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal first_signal_at
        if stop.is_set():
            # `make`, `timeout` and process-group kills deliver the same signal twice at once;
            # only a later one is somebody insisting.
            if loop.time() - first_signal_at < DUPLICATE_SIGNAL_S:
                return
            log.warning("daemon_forced_exit", signal=sig.name)
            os._exit(128 + sig.value)
        first_signal_at = loop.time()
        log.info("daemon_stopping", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    registrar = None if settings.no_register else Registrar(settings, backend, metrics)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(_remove_signal_handlers, loop)
        stack.push_async_callback(backend.close)
        await backend.start()
        dns = None
        if dns_config is not None:
            dns = DnsServer(dns_config, snapshots)
            await _listen(dns.start(), "DNS", f"{dns_config.host}:{dns_config.port}")
            stack.push_async_callback(dns.close)
            metrics.add_source("registrator_dns", lambda: _dns_counters(dns), _DNS_KINDS)
        if settings.http_addr != "off":
            probe = registrar.health if registrar is not None else dict
            runner = await _listen(
                start_ops(settings.http_addr, snapshots, probe, metrics), "ops", settings.http_addr
            )
            stack.push_async_callback(runner.cleanup)
        writer = ProxyWriter(proxy_config) if proxy_config is not None else None
        if writer is not None:
            metrics.add_source("registrator_proxy", writer.stats.counters, METRIC_KINDS)
        log.info(
            "daemon_started",
            version=__version__,
            backend=str(settings.uri),
            register=registrar is not None,
            dns=dns_config is not None,
            proxy=proxy_config is not None,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                if _snapshot_consumed(settings):
                    tg.create_task(backend.watch_catalog(snapshots))
                tg.create_task(_track_snapshots(snapshots, metrics))
                if registrar is not None:
                    tg.create_task(registrar.run())
                if dns is not None:
                    tg.create_task(dns.serve_forever())
                if writer is not None:
                    tg.create_task(writer.run(snapshots))
                await stop.wait()
                raise _Stop
        except* _Stop:
            pass
        if registrar is not None and settings.deregister_on_shutdown:
            try:
                async with asyncio.timeout(SHUTDOWN_GRACE_S):
                    await registrar.deregister_all()
            except TimeoutError:
                log.warning("shutdown_deregister_timeout", grace_s=SHUTDOWN_GRACE_S)
    log.info("daemon_stopped")


T = TypeVar("T")


def _snapshot_consumed(settings: Settings) -> bool:
    """Whether anything reads the registry snapshot. In Consul mode, watching the whole catalog
    costs every daemon one blocking query per service name; skip it when nobody looks."""
    return (
        not settings.uri.is_consul
        or settings.dns_addr != "off"
        or settings.http_addr != "off"
        or bool(settings.haproxy_config or settings.traefik_config)
    )


async def _listen(starting: Awaitable[T], what: str, address: str) -> T:
    try:
        return await starting
    except OSError as exc:
        raise StartupError(f"{what} cannot listen on {address}: {exc.strerror or exc}") from exc


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


_DNS_KINDS = {"queries": "counter:rcode", "answer_seconds": "counter"}
_RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def _dns_counters(dns: DnsServer) -> dict[str, Any]:
    by_rcode = {(_RCODE_NAMES.get(rc, str(rc)),): n for rc, n in enumerate(dns.rcodes) if n}
    return {"queries": by_rcode, "answer_seconds": dns.answer_seconds}


async def _track_snapshots(snapshots: Latest[CatalogSnapshot], metrics: Metrics) -> None:
    version = snapshots.version
    while True:
        version, snapshot = await snapshots.wait_newer(version)
        metrics.snapshot_published(snapshot)
