"""The embedded registry: one host, in memory, nothing else to run. It holds what this daemon
registers and publishes it to the DNS responder and the proxy writer. It runs no health checks:
on one host, Docker's own HEALTHCHECK decides (unhealthy containers are deregistered)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from registrator.broadcast import Latest
from registrator.model import CatalogInstance, CatalogSnapshot, ServiceInstance


class EmbeddedRegistry:
    def __init__(self, node: str = "", node_address: str = "127.0.0.1") -> None:
        self.node = node
        self._address = node_address
        self._services: dict[str, ServiceInstance] = {}
        self._changed = asyncio.Event()

    def set_node(self, name: str, address: str) -> None:
        self.node = name
        self._address = address
        self._changed.set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def register(self, instance: ServiceInstance) -> None:
        self._services[instance.id] = instance
        self._changed.set()

    async def deregister(self, service_id: str) -> None:
        if self._services.pop(service_id, None) is not None:
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
                CatalogInstance(node=self.node, node_address=self._address, service=svc)
                for _, svc in sorted(self._services.items())
            )
            nodes = ((self.node, self._address),) if self.node else ()
            await snapshots.publish(CatalogSnapshot(instances, nodes, version))
