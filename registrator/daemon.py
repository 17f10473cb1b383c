"""The daemon: wires the roles together, supervises them, and shuts down on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping

from registrator import __version__
from registrator.backends import Backend
from registrator.backends.embedded import EmbeddedRegistry
from registrator.broadcast import Latest
from registrator.logs import get_logger
from registrator.metrics import Metrics
from registrator.model import CatalogSnapshot
from registrator.ops import serve_ops
from registrator.registrar import Registrar
from registrator.settings import Settings

SHUTDOWN_GRACE_S = 10.0


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
    )
    return ConsulBackend(config)


async def run_daemon(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Run until SIGTERM/SIGINT. A second signal exits at once."""
    log = get_logger()
    env = os.environ if environ is None else environ
    backend = make_backend(settings, env)
    snapshots: Latest[CatalogSnapshot] = Latest(CatalogSnapshot())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("daemon_forced_exit", signal=sig.name)
            os._exit(128 + sig.value)
        log.info("daemon_stopping", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    metrics = Metrics()
    registrar = None if settings.no_register else Registrar(settings, backend, metrics)
    try:
        await backend.start()
        log.info(
            "daemon_started",
            version=__version__,
            backend=str(settings.uri),
            register=registrar is not None,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(backend.watch_catalog(snapshots))
                if registrar is not None:
                    tg.create_task(registrar.run())
                if settings.http_addr != "off":
                    probe = registrar.health if registrar is not None else dict
                    tg.create_task(serve_ops(settings.http_addr, snapshots, probe, metrics))
                tg.create_task(_track_snapshots(snapshots, metrics))
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
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await backend.close()
        log.info("daemon_stopped")


async def _track_snapshots(snapshots: Latest[CatalogSnapshot], metrics: Metrics) -> None:
    version = snapshots.version
    while True:
        version, snapshot = await snapshots.wait_newer(version)
        metrics.snapshot_published(snapshot.version)
