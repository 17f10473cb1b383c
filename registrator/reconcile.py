"""Desired state against actual state -> a plan. Pure: the daemon fetches both sides and applies
the plan; this module only decides."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from registrator.model import Check, Container, ServiceInstance

# registrator's cleanup pattern: <node>:<container-name>:<port>[:udp]
_OWNED_ID = re.compile(r"(?P<node>.+?):(?P<container>[a-zA-Z0-9][a-zA-Z0-9_.-]+):[0-9]+(?::udp)?")


@dataclass(frozen=True, slots=True)
class Plan:
    register: tuple[ServiceInstance, ...] = ()
    deregister: tuple[str, ...] = ()  # service IDs
    kept: tuple[str, ...] = ()  # not desired, kept on purpose (-deregister on-success)

    @property
    def empty(self) -> bool:
        return not (self.register or self.deregister)


def id_owner(service_id: str) -> tuple[str, str] | None:
    """(node, container name) for IDs in registrator's form, else None."""
    m = _OWNED_ID.fullmatch(service_id)
    return (m.group("node"), m.group("container")) if m else None


def plan(
    desired: Mapping[str, ServiceInstance],
    actual: Mapping[str, ServiceInstance],
    *,
    node: str,
    ours: Iterable[str] = (),
    cleanup: bool = False,
    keep_containers: Iterable[str] = (),
) -> Plan:
    """What to register and deregister so that `actual` becomes `desired`.

    Services are only ever deregistered when this daemon owns them: registered by this process
    (`ours`), or, with `cleanup`, carrying this node's ID prefix. Another node's services, and
    services registered by hand, are never touched. Services of containers in `keep_containers`
    (exited non-zero under `-deregister on-success`) stay, so their checks turn critical."""
    ours = set(ours)
    keep = set(keep_containers)
    register = tuple(inst for sid, inst in sorted(desired.items()) if actual.get(sid) != inst)
    deregister: list[str] = []
    kept: list[str] = []
    for sid in sorted(actual):
        if sid in desired:
            continue
        owner = id_owner(sid)
        on_this_node = owner is not None and owner[0] == node
        if sid not in ours and not (cleanup and on_this_node):
            continue
        if owner is not None and owner[1] in keep:
            kept.append(sid)
            continue
        deregister.append(sid)
    return Plan(register, tuple(deregister), tuple(kept))


def with_ttl_check(instance: ServiceInstance, ttl: int) -> ServiceInstance:
    """Add the daemon's own TTL check (`-ttl`): the daemon passes it while the container runs, so
    the services of a dead host turn critical, then leave after DeregisterCriticalServiceAfter."""
    check = Check(
        check_id=ttl_check_id(instance.id),
        ttl=f"{ttl}s",
        status="passing",  # passing from the start; critical once passes stop for `ttl` s
        deregister_after=f"{3 * ttl}s",  # Consul raises anything under 1 minute to 1 minute
    )
    return replace(instance, checks=(*instance.checks, check))


def ttl_check_id(service_id: str) -> str:
    return f"service:{service_id}:ttl"


def exit_keeps_registration(container: Container) -> bool:
    """`-deregister on-success`: keep a container that exited non-zero on its own, as registrator
    does (a signal, exit code >= 128, counts as a stop: `docker stop` and `docker kill`)."""
    return not container.running and 0 < container.exit_code < 128
