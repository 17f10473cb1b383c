"""The embedded registry: one host, in memory, nothing else to run. It holds what this daemon
registers, runs the HTTP and TCP checks of those registrations itself (Consul's agent would), and
publishes both to the DNS responder and the proxy writer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from registrator.broadcast import Latest
from registrator.logs import get_logger
from registrator.model import CatalogInstance, CatalogSnapshot, Check, Health, ServiceInstance
from registrator.probes import RUNNABLE_KINDS, Prober, ProbeResult, initial_status, timings, worst
from registrator.reconcile import ttl_check_id

LOGGED_OUTPUT = 512  # of a check's output, per status change: enough to see why, not a page dump


class EmbeddedRegistry:
    def __init__(self, node: str = "", node_address: str = "127.0.0.1") -> None:
        self.node = node
        self._address = node_address
        self._services: dict[str, ServiceInstance] = {}
        # service ID -> check index -> status, for the checks that count (see _counted)
        self._status: dict[str, dict[int, Health]] = {}
        self._probes: dict[str, list[asyncio.Task[None]]] = {}
        self._prober = Prober()
        self._changed = asyncio.Event()
        self._log = get_logger()

    def set_node(self, name: str, address: str) -> None:
        self.node = name
        self._address = address
        self._changed.set()

    async def start(self) -> None:
        await self._prober.start()

    async def close(self) -> None:
        tasks = [task for tasks in self._probes.values() for task in tasks]
        for service_id in list(self._probes):
            self._stop_probes(service_id)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._prober.close()

    async def register(self, instance: ServiceInstance) -> None:
        previous = self._services.get(instance.id)
        self._services[instance.id] = instance
        if previous is None or previous.checks != instance.checks:
            self._stop_probes(instance.id)
            self._start_probes(instance)
        self._changed.set()

    async def deregister(self, service_id: str) -> None:
        if self._services.pop(service_id, None) is not None:
            self._stop_probes(service_id)
            self._changed.set()

    async def services(self) -> Mapping[str, ServiceInstance]:
        return dict(self._services)

    async def pass_ttl(self, check_id: str) -> bool:
        return True  # the registry lives and dies with the daemon that passes its TTLs

    async def node_address(self) -> str | None:
        return None

    async def watch_catalog(self, snapshots: Latest[CatalogSnapshot]) -> None:
        """Publish after changes; a burst of registrations becomes one snapshot."""
        version = snapshots.get().version
        while True:
            await self._changed.wait()
            self._changed.clear()
            version += 1
            instances = tuple(
                CatalogInstance(
                    node=self.node,
                    node_address=self._address,
                    service=svc,
                    status=worst(self._status.get(sid, {}).values()),
                )
                for sid, svc in sorted(self._services.items())
            )
            nodes = ((self.node, self._address),) if self.node else ()
            await snapshots.publish(CatalogSnapshot(instances, nodes, version))

    def _start_probes(self, instance: ServiceInstance) -> None:
        statuses: dict[int, Health] = {}
        tasks: list[asyncio.Task[None]] = []
        for index, check in enumerate(instance.checks):
            if not _counted(instance, check):
                self._log.warning(
                    "embedded_check_not_run",
                    service_id=instance.id,
                    kind=check.kind,
                    reason="the embedded registry runs HTTP and TCP checks only; use Consul",
                )
                continue
            statuses[index] = initial_status(check)
            if check.kind in RUNNABLE_KINDS:
                tasks.append(
                    asyncio.create_task(
                        self._probe_forever(instance.id, index, check),
                        name=f"probe {instance.id} #{index}",
                    )
                )
        self._status[instance.id] = statuses
        self._probes[instance.id] = tasks

    def _stop_probes(self, service_id: str) -> None:
        for task in self._probes.pop(service_id, []):
            task.cancel()
        self._status.pop(service_id, None)

    async def _probe_forever(self, service_id: str, index: int, check: Check) -> None:
        # The first probe runs at once: until it passes, a check that starts critical keeps a
        # new instance out of DNS and the proxy.
        interval, _ = timings(check)
        while True:
            try:
                result = await self._prober.probe(check)
            except Exception as exc:  # noqa: BLE001 - a probe bug must not freeze the status
                self._log.exception("check_probe_failed", service_id=service_id, check=index)
                result = ProbeResult("critical", f"probe failed: {exc!r}")
            statuses = self._status.get(service_id)
            if statuses is None:
                return  # deregistered while the probe ran
            if statuses.get(index) != result.status:
                statuses[index] = result.status
                log = self._log.info if result.status == "passing" else self._log.warning
                log(
                    "check_status_changed",
                    service_id=service_id,
                    check=index,
                    kind=check.kind,
                    status=result.status,
                    output=result.output[:LOGGED_OUTPUT],
                )
                self._changed.set()
            await asyncio.sleep(interval)


def _counted(instance: ServiceInstance, check: Check) -> bool:
    """HTTP and TCP checks run here; the daemon's own TTL check (-ttl) passes while the daemon
    lives, which is exactly as long as this registry. Script, gRPC and application TTL checks
    have nobody to run or pass them without Consul: they are left out rather than held critical."""
    if check.kind in RUNNABLE_KINDS:
        return True
    return check.kind == "ttl" and check.check_id == ttl_check_id(instance.id)
