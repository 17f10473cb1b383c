"""Registries behind one small protocol. Picked by the URI scheme, from an explicit table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from registrator.broadcast import Latest
from registrator.model import CatalogSnapshot, ServiceInstance


class Backend(Protocol):
    """What the reconcile loop needs from a registry. Errors: BackendUnavailable (retry later),
    BackendRejected (4xx: the registry refuses this request)."""

    async def start(self) -> None:
        """Connect, and wait for the registry to answer (per -retry-attempts)."""

    async def close(self) -> None: ...

    def set_node(self, name: str, address: str) -> None:
        """This host's node name and address, once the Docker engine told us."""

    async def register(self, instance: ServiceInstance) -> None: ...

    async def deregister(self, service_id: str) -> None:
        """Remove a service; an unknown ID is not an error."""

    async def services(self) -> Mapping[str, ServiceInstance]:
        """Every service this agent (embedded: this registry) holds, by ID."""

    async def pass_ttl(self, check_id: str) -> bool:
        """Mark a TTL check passing; False when the registry does not know the check."""

    async def node_address(self) -> str | None:
        """The address the registry knows this node by, when it has one."""

    async def watch_catalog(self, snapshots: Latest[CatalogSnapshot]) -> None:
        """Publish the registry's contents (Consul: cluster-wide) until cancelled."""
